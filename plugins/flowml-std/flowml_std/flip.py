"""``image.flip``: mirror an image."""

from __future__ import annotations

from flowml.lazy import lazy_import
torch = lazy_import("torch")

import flowml
from flowml import IMAGE, Field, Input, Node, Output


class Flip(Node):
    """Mirror an image left-right and/or upside down (exact: pixels are moved, not resampled).

    ``image`` ``(B, C, H, W)`` -> ``image`` same shape.
    """

    type_name = "image.flip"
    inputs = (Input("image", IMAGE, "(B, C, H, W)"),)
    outputs = (Output("image", IMAGE, "(B, C, H, W)"),)

    class Params(flowml.Params):
        horizontal: bool = Field(True, description="mirror left-right")
        vertical: bool = Field(False, description="mirror top-bottom")

    def process(self, image: torch.Tensor) -> torch.Tensor:
        dims = [d for d, on in ((-1, self.params.horizontal), (-2, self.params.vertical)) if on]
        return torch.flip(image, dims) if dims else image
