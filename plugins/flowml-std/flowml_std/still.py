"""``capture.image``: a still image file as a source."""

from __future__ import annotations

import flowml
from flowml import IMAGE, Field, Node, Output
from flowml.lazy import lazy_import

transfer = lazy_import("flowml.gpu.transfer")

from .imagefile import load_image
from .params import Size


class ImageSource(Node):
    """A still image file (PNG, JPEG, ...) emitted unchanged on every tick.

    Output ``image``: ``(1, 3, H, W)`` float32 RGB in [0, 1] (``(1, 4, H, W)`` with ``alpha``),
    loaded once in ``setup`` and cached: every tick gets the same tensor, so consumers must not
    modify it in place (no flowml node does).
    """

    type_name = "capture.image"
    outputs = (Output("image", IMAGE, "(1, 3|4, H, W) RGB(A) in [0, 1]"),)
    live = False

    class Params(flowml.Params):
        path: str = Field(description="image file, relative to the graph file", file="input")
        size: Size | None = Field(None, description="[width, height] to resize to (Lanczos); none: as is")
        alpha: bool = Field(False, description="keep the alpha channel (RGBA output)")

    def setup(self, ctx: flowml.NodeContext) -> None:
        self._load()

    def on_params(self, old: flowml.Params, new: flowml.Params) -> None:
        self._load()

    def _load(self) -> None:
        p = self.params
        pixels = load_image(self.ctx.resolve(p.path), p.size, p.alpha)
        self.image = transfer.image_from_host(pixels, self.ctx.device)

    def process(self):
        return self.image
