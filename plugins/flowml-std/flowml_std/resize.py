"""``image.resize``: scale an image to a fixed size."""

from __future__ import annotations

from typing import Literal

from flowml.lazy import lazy_import
torch = lazy_import("torch")
F = lazy_import("torch.nn.functional")

import flowml
from flowml import IMAGE, Field, Input, Node, Output

from .params import Size


class Resize(Node):
    """Scale an image to a fixed width and height (the aspect ratio is not kept).

    ``image`` ``(B, C, H, W)`` -> ``image`` ``(B, C, height, width)``. ``area`` suits large
    downscales, ``nearest`` pixel art; bicubic overshoot is clamped to [0, 1].
    """

    type_name = "image.resize"
    inputs = (Input("image", IMAGE, "(B, C, H, W)"),)
    outputs = (Output("image", IMAGE, "(B, C, height, width)"),)

    class Params(flowml.Params):
        size: Size = Field(description="[width, height] in pixels")
        mode: Literal["bilinear", "bicubic", "nearest", "area"] = Field(
            "bilinear", description="interpolation")
        antialias: bool = Field(True, description="low-pass before downscaling (bilinear, bicubic)")

    def process(self, image: torch.Tensor) -> torch.Tensor:
        width, height = self.params.size
        if image.shape[-2:] == (height, width):
            return image
        mode = self.params.mode
        smooth = mode in ("bilinear", "bicubic")
        out = F.interpolate(image, size=(height, width), mode=mode,
                            align_corners=False if smooth else None,
                            antialias=self.params.antialias and smooth)
        return out.clamp_(0, 1) if mode == "bicubic" else out
