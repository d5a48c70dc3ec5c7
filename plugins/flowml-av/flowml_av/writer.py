"""``output.video``: encode H.264 MP4 with PyAV (libx264)."""

from __future__ import annotations

from fractions import Fraction
from typing import Literal

import av
import torch
from av.video.reformatter import ColorRange, Colorspace
from pydantic import field_validator

import flowml
from flowml import IMAGE, Field, Input, Node, NodeError

from .convert import host_rgb24

Preset = Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                 "slower", "veryslow"]
FRAGMENTED = {
    # a fragment per keyframe, flushed to disk at once; delay_moov writes the header with the
    # first fragment, once the B-frame delay is known, so that the first frame's stamp is 0
    "movflags": "frag_keyframe+empty_moov+delay_moov+default_base_moof",
    "flush_packets": "1",
}

# x264 with several threads, or with macroblock-tree rate control (mbtree) even on one thread,
# gave different bytes for the same frames from run to run (x264 core 165 in PyAV 18's FFmpeg).
REPEATABLE = {"threads": "1", "mbtree": "0"}
BT709 = 1  # FFmpeg's AVCOL_SPC_BT709 = AVCOL_PRI_BT709 = AVCOL_TRC_BT709


class VideoWriter(Node):
    """Encode frames to an H.264 MP4 file (libx264) with exact timestamps and repeatable bytes.

    ``image`` ``(B, C, H, W)`` in [0, 1]: batch item 0 is encoded (alpha dropped, grey
    repeated; the graph hands it over as uint8 on the host). The first frame sets the video's
    size (an odd width or height loses its last pixel, as yuv420p needs even sizes); frame k
    gets pts k in time base 1/fps. Colours are converted with BT.709 and tagged so.

    ``fragmented`` (default) writes a fragment at every keyframe and flushes it to disk, so a
    process killed hard still leaves a playable file up to the last whole fragment; otherwise
    the index is written in ``teardown`` (which the scheduler runs on Ctrl-C too). With
    ``deterministic`` (default) the same frames and params give a byte-identical file.
    Encoder params are read at the first frame; live changes to them have no effect.
    """

    type_name = "output.video"
    inputs = (Input("image", IMAGE, "(B, C, H, W); item 0 is encoded", uint8=True),)
    blocking = True

    class Params(flowml.Params):
        path: str = Field(description="the .mp4 file, relative to the graph file; its folder is made")
        fps: float = Field(30.0, gt=0, le=1000, description="frame rate: frame k is shown at k / fps")
        crf: int = Field(20, ge=0, le=51, description="quality: 0 lossless ... 51 worst; 18-23 look good")
        preset: Preset = Field("medium", description="x264 speed/size trade-off")
        pix_fmt: Literal["yuv420p", "yuv444p"] = Field(
            "yuv420p", description="yuv420p plays everywhere; yuv444p keeps full colour resolution")
        fragmented: bool = Field(True, description="fragmented MP4: playable even after a hard kill")
        keyframe_interval: float = Field(
            1.0, gt=0, le=60, description="seconds between keyframes (and fragments)")
        deterministic: bool = Field(
            True, description="same frames, same bytes: one encoder thread, no mbtree (files a few % larger)")

        @field_validator("path")
        @classmethod
        def _mp4(cls, path: str) -> str:
            if not path.lower().endswith((".mp4", ".m4v")):
                raise ValueError(f"{path!r}: output.video writes MP4; end the file name in .mp4")
            return path

    def setup(self, ctx: flowml.NodeContext) -> None:
        self.path = ctx.resolve(self.params.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.container: av.container.OutputContainer | None = None
        self.count = 0

    def process(self, image: torch.Tensor) -> None:
        pixels = host_rgb24(image)
        if self.container is None:
            self._open(width=pixels.shape[1] // 2 * 2, height=pixels.shape[0] // 2 * 2)
        height, width = self.stream.height, self.stream.width
        if pixels.shape[0] // 2 * 2 != height or pixels.shape[1] // 2 * 2 != width:
            raise NodeError(f"frame {self.count} is {pixels.shape[1]}x{pixels.shape[0]}, but the video "
                            f"is {width}x{height} (set by the first frame); put an image.resize before it")
        frame = av.VideoFrame.from_ndarray(pixels[:height, :width], format="rgb24")
        frame = frame.reformat(format=self.params.pix_fmt, dst_colorspace=Colorspace.ITU709,
                               dst_color_range=ColorRange.MPEG)
        frame.pts = self.count
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.count += 1

    def _open(self, width: int, height: int) -> None:
        p = self.params
        if width < 2 or height < 2:
            raise NodeError(f"a {width}x{height} frame is too small to encode; H.264 needs 2x2 or more")
        rate = Fraction(p.fps).limit_denominator(1001)
        self.container = av.open(str(self.path), "w", format="mp4",
                                 options=FRAGMENTED if p.fragmented else {})
        self.stream = self.container.add_stream("libx264", rate=rate)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, p.pix_fmt
        codec = self.stream.codec_context
        codec.time_base = 1 / rate
        codec.gop_size = max(1, round(p.fps * p.keyframe_interval))
        # tag what process() converts to (BT.709, limited range), so players need not guess
        codec.colorspace, codec.color_primaries, codec.color_trc = BT709, BT709, BT709
        codec.color_range = ColorRange.MPEG.value
        codec.options = {"crf": str(p.crf), "preset": p.preset,
                         **(REPEATABLE if p.deterministic else {"threads": "0"})}

    def teardown(self) -> None:
        if getattr(self, "container", None) is None:
            self.log.warning("output.video: no frame arrived, so %s was not written", self.path)
            return
        try:
            for packet in self.stream.encode(None):  # flush the frames x264 still holds
                self.container.mux(packet)
        finally:
            self.container.close()
            self.container = None
