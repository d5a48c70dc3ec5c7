"""``image.color``: brightness, contrast, saturation and gamma, all live-tweakable."""

from __future__ import annotations

from flowml.lazy import lazy_import
torch = lazy_import("torch")

import flowml
from flowml import IMAGE, Field, Input, Node, Output

LUMA = (0.299, 0.587, 0.114)  # Rec. 601 weights, as torchvision uses for saturation


class ColorAdjust(Node):
    """Brightness, contrast, saturation and gamma of the RGB channels (alpha passes through).

    ``image`` ``(B, C, H, W)`` -> ``image`` same shape. Applied in this order, on ``x`` in [0, 1]:

    - brightness: ``x * brightness``
    - contrast:   ``(x - 0.5) * contrast + 0.5`` (a fixed pivot: no flicker from a per-frame mean)
    - saturation: ``gray + (x - gray) * saturation``, ``gray`` the Rec. 601 luma
    - clamp to [0, 1], then gamma: ``x ** (1 / gamma)`` (gamma > 1 lightens the mid-tones)

    Default values change nothing, and a step at its default costs nothing.
    """

    type_name = "image.color"
    inputs = (Input("image", IMAGE, "(B, C, H, W)"),)
    outputs = (Output("image", IMAGE, "(B, C, H, W)"),)

    class Params(flowml.Params):
        brightness: float = Field(1.0, ge=0.0, le=4.0, description="gain; 1: unchanged, 0: black")
        contrast: float = Field(1.0, ge=0.0, le=4.0, description="1: unchanged, 0: flat mid grey")
        saturation: float = Field(1.0, ge=0.0, le=4.0, description="1: unchanged, 0: grey")
        gamma: float = Field(1.0, ge=0.1, le=10.0, description="1: unchanged, >1: lighter mid-tones")

    def process(self, image: torch.Tensor) -> torch.Tensor:
        p = self.params
        if (p.brightness, p.contrast, p.saturation, p.gamma) == (1.0, 1.0, 1.0, 1.0):
            return image
        x, rest = image[:, :3], image[:, 3:]
        if p.brightness != 1.0:
            x = x * p.brightness
        if p.contrast != 1.0:
            x = (x - 0.5) * p.contrast + 0.5
        if p.saturation != 1.0 and x.shape[1] == 3:
            luma = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            gray = (x * luma).sum(dim=1, keepdim=True)
            x = gray + (x - gray) * p.saturation
        x = x.clamp(0, 1)
        if p.gamma != 1.0:
            x = x.pow(1.0 / p.gamma)
        return torch.cat([x, rest], dim=1) if rest.shape[1] else x
