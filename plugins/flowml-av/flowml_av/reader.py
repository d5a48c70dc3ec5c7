"""``capture.video``: decode a video file with PyAV."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Iterator

import av

import flowml
from flowml import IMAGE, EndOfStream, Field, Node, NodeError, Output, Stamped
from flowml import image_from_host


Pixels = Annotated[int, Field(ge=1, le=16384)]


class VideoSource(Node):
    """Frames of a video file (anything FFmpeg reads), stamped with their own time.

    Output ``image``: ``(1, 3, H, W)`` float32 RGB in [0, 1] on the node's device, stamped
    ``t`` = the frame's presentation time in seconds (its pts). Looping adds the file's length
    to the stamps of each later pass, so time keeps going forward. Frames are scaled to
    ``size`` by FFmpeg while converting to RGB, before the upload.
    """

    type_name = "capture.video"
    outputs = (Output("image", IMAGE, "(1, 3, H, W) RGB in [0, 1]"),)
    live = False

    class Params(flowml.Params):
        path: str = Field(description="video file, relative to the graph file")
        loop: bool = Field(False, description="start again at `start` after the last frame")
        start: float = Field(0.0, ge=0.0, description="seconds into the file to begin at")
        size: tuple[Pixels, Pixels] | None = Field(
            None, description="[width, height] to scale to; none: as is")

    def setup(self, ctx: flowml.NodeContext) -> None:
        path = ctx.resolve(self.params.path)
        self.container = _open(path)
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"  # frame and slice threads: decoding is bit-exact either way
        self.step = 1.0 / float(self.stream.average_rate or 30)
        self.offset = 0.0  # added to stamps: the length of the passes already played
        self.first_t: float | None = None
        self.last_t = 0.0
        self.index = 0
        self.frames = self._rewind()

    def _rewind(self) -> Iterator[av.VideoFrame]:
        """Decode from ``start``, dropping the frames between the keyframe sought to and ``start``."""
        start = self.params.start
        if start > 0 or self.index > 0:
            self.container.seek(int(start / self.stream.time_base), stream=self.stream)
        return (f for f in self.container.decode(self.stream)
                if f.time is None or f.time >= start - self.step / 2)

    def process(self) -> Stamped:
        frame = next(self.frames, None)
        if frame is None and self.params.loop and self.first_t is not None:
            self.offset += self.last_t - self.first_t + self.step
            self.frames = self._rewind()
            frame = next(self.frames, None)
        if frame is None:
            raise EndOfStream
        t = frame.time if frame.time is not None else self.index * self.step
        if self.first_t is None:
            self.first_t = t
        self.last_t = t
        self.index += 1
        width, height = self.params.size or (frame.width, frame.height)
        pixels = frame.to_ndarray(format="rgb24", width=width, height=height)
        return Stamped({"image": image_from_host(pixels, self.ctx.device)}, t=t + self.offset)

    def teardown(self) -> None:
        container = getattr(self, "container", None)
        if container is not None:
            container.close()


def _open(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise NodeError(f"video file not found: {path}; check `path` (relative to the graph file)")
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise NodeError(f"cannot read video {path}: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise NodeError(f"{path} has no video stream")
    return container
