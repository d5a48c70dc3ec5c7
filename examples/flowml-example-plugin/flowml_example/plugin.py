"""The plugin's one hook: tell flowml which node types this package provides."""

from typing import Annotated

import flowml
from flowml import IMAGE, Field, Input, Node, Output, Params


class Vignette(Node):
    """Darken an image towards its corners."""

    type_name = "example.vignette"
    inputs = (Input("image", IMAGE, "(B, C, H, W) in [0, 1]"),)
    outputs = (Output("image", IMAGE, "same shape, corners darkened"),)

    class Params(Params):
        strength: float = Field(0.5, ge=0.0, le=1.0, description="0: none, 1: black corners")
        radius: float = Field(0.8, gt=0.0, le=2.0, description="where darkening starts, 1 = corner")

    def setup(self, ctx):
        self._mask_for: tuple | None = None

    def process(self, image):
        import torch

        b, c, h, w = image.shape
        if self._mask_for != (h, w, image.device, self.params):
            y = torch.linspace(-1, 1, h, device=image.device).view(h, 1)
            x = torch.linspace(-1, 1, w, device=image.device).view(1, w)
            r = torch.sqrt(x * x + y * y) / (2 ** 0.5)
            fall = ((r - self.params.radius * 0.5) / (1 - self.params.radius * 0.5)).clamp(0, 1)
            self._mask = 1 - self.params.strength * fall
            self._mask_for = (h, w, image.device, self.params)
        return image * self._mask


@flowml.function_node("example.invert", inputs={"image": IMAGE}, outputs={"image": IMAGE})
def invert(image, *, amount: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0):
    """Invert an image; amount 0.5 gives mid grey."""
    return image * (1 - amount) + (1 - image) * amount


@flowml.hookimpl
def register_node_types(register):
    register(Vignette)
    register(invert)
