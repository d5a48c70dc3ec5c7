"""``output.image``: write one still from the stream."""

from __future__ import annotations

from flowml.lazy import lazy_import
np = lazy_import("numpy")
torch = lazy_import("torch")
from pydantic import field_validator

import flowml
from flowml import IMAGE, Field, Input, Node

from .convert import host_pixels
from .imagefile import check_writable_suffix, save_image


class ImageSnapshot(Node):
    """Write one frame as an image file: the graph's frame ``at_frame``, or the last one.

    ``image`` ``(B, C, H, W)`` in [0, 1]: batch item 0 is written as 8-bit RGB(A) (the graph
    hands it over as uint8 on the host). Without ``at_frame``, or when the stream ends before
    it, the last frame received is written in ``teardown``, so a run stopped early still
    leaves a picture to look at.
    """

    type_name = "output.image"
    inputs = (Input("image", IMAGE, "(B, C, H, W); item 0 is written", uint8=True),)
    blocking = True

    class Params(flowml.Params):
        path: str = Field(description="image file (.png, .jpg, ...), relative to the graph file",
                          file="output")
        at_frame: int | None = Field(
            None, ge=0, description="the graph's frame number to write (from 0); none: the last")

        @field_validator("path")
        @classmethod
        def _suffix(cls, path: str) -> str:
            return check_writable_suffix(path)

    def setup(self, ctx: flowml.NodeContext) -> None:
        self.path = ctx.resolve(self.params.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.last: np.ndarray | None = None
        self.written = False

    def on_params(self, old: flowml.Params, new: flowml.Params) -> None:
        if new.path != old.path:  # type: ignore[attr-defined]
            path = self.ctx.resolve(new.path)  # type: ignore[attr-defined]
            path.parent.mkdir(parents=True, exist_ok=True)
            self.path = path

    def process(self, image: torch.Tensor) -> None:
        if self.written:
            return
        self.last = host_pixels(image)
        at_frame = self.params.at_frame
        if at_frame is not None and self.ctx.tick.index >= at_frame:  # >=: live mode drops frames
            self._write()

    def teardown(self) -> None:
        if self.last is not None:
            self._write()
        elif not self.written:
            self.log.warning("output.image: no frame arrived, so %s was not written", self.path)

    def _write(self) -> None:
        save_image(self.last, self.path)
        self.written = True
        self.last = None
