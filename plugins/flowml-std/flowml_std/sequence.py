"""``output.images``: write frames as numbered image files."""

from __future__ import annotations

from flowml.lazy import lazy_import
torch = lazy_import("torch")
from pydantic import field_validator

import flowml
from flowml import IMAGE, Field, Input, Node

from .convert import host_pixels
from .imagefile import check_writable_suffix, save_image


class ImageSequence(Node):
    """Write every Nth frame as an image file: frame_00000.png, frame_00001.png, ...

    ``image`` ``(B, C, H, W)`` in [0, 1]: batch item 0 is written as 8-bit RGB(A) (the graph
    hands it over as uint8 on the host). ``{index}`` in ``pattern`` is the graph's frame
    (tick) number; ``every`` counts the frames this node receives.
    """

    type_name = "output.images"
    inputs = (Input("image", IMAGE, "(B, C, H, W); item 0 is written", uint8=True),)
    blocking = True

    class Params(flowml.Params):
        dir: str = Field(description="folder for the files, relative to the graph file; made if missing",
                         file="output")
        pattern: str = Field("frame_{index:05d}.png", file="output",
                             description="file name; {index} is the graph's frame number")
        every: int = Field(1, ge=1, le=1_000_000, description="write every Nth frame received")

        @field_validator("pattern")
        @classmethod
        def _pattern(cls, pattern: str) -> str:
            try:
                name = pattern.format(index=0)
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"{pattern!r} is not a valid pattern ({exc}); "
                                 "use e.g. 'frame_{index:05d}.png'")
            if name == pattern.format(index=1):
                raise ValueError(f"{pattern!r} gives every frame the same name; put {{index}} in it")
            check_writable_suffix(name)
            return pattern

    def setup(self, ctx: flowml.NodeContext) -> None:
        self.folder = ctx.resolve(self.params.dir)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.received = 0

    def on_params(self, old: flowml.Params, new: flowml.Params) -> None:
        if new.dir != old.dir:  # type: ignore[attr-defined]
            folder = self.ctx.resolve(new.dir)  # type: ignore[attr-defined]
            folder.mkdir(parents=True, exist_ok=True)
            self.folder = folder

    def process(self, image: torch.Tensor) -> None:
        received, self.received = self.received, self.received + 1
        if received % self.params.every == 0:
            name = self.params.pattern.format(index=self.ctx.tick.index)
            save_image(host_pixels(image), self.folder / name)
