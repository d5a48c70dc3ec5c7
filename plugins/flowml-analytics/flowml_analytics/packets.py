"""Encoded packets for ``action.record``: one H.264 encoder, a ring of its packets, clip files.

Every frame is encoded once (libx264 with ``tune=zerolatency``: one packet per frame, at
once, no B-frames, so a packet's decode order is its frame order); the ring keeps the last
``seconds`` of packets, always from a keyframe on; a clip is those packets muxed, timestamps
rebased to 0, into a fragmented MP4 (``flowml_av.writer.FRAGMENTED``: playable up to its last
fragment even after a hard kill). Nothing is decoded or encoded again to cut a clip: a 1080p
ring holds megabytes, not the ~0.9 GB of raw frames 10 s would take.
"""

from __future__ import annotations

import io
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

from flowml.lazy import lazy_import
av = lazy_import("av")
reformatter = lazy_import("av.video.reformatter")

from flowml_av.writer import BT709, FRAGMENTED

TIME_BASE = Fraction(1, 90_000)  # MPEG's 90 kHz clock: any frame rate, exact to 11 us


@dataclass
class Coded:
    """One encoded frame: its packet, time ``t`` (seconds, the tick's), pts, frame index."""

    packet: Any  # av.Packet
    t: float
    pts: int
    index: int
    key: bool


class Encoder:
    """H.264 (libx264, yuv420p, BT.709 limited range) for ``width x height`` RGB24 frames, a
    keyframe every ``gop`` frames and wherever ``encode(..., key=True)`` asks for one."""

    def __init__(self, width: int, height: int, *, fps: float, gop: int, crf: int, preset: str,
                 threads: int):
        self._template = av.open(io.BytesIO(), "w", format="mp4")  # never written: holds the stream
        self.stream = self._template.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
        codec = self.stream.codec_context
        codec.time_base = TIME_BASE
        codec.gop_size = gop
        codec.colorspace, codec.color_primaries, codec.color_trc = BT709, BT709, BT709
        codec.color_range = reformatter.ColorRange.MPEG.value
        codec.options = {"preset": preset, "tune": "zerolatency", "crf": str(crf), "threads": str(threads),
                         "keyint_min": str(gop), "sc_threshold": "0", "forced-idr": "1"}
        codec.open()
        self.extradata = codec.extradata

    def encode(self, rgb: Any, pts: int, key: bool = False) -> list[Any]:
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
            format="yuv420p", dst_colorspace=reformatter.Colorspace.ITU709,
            dst_color_range=reformatter.ColorRange.MPEG)
        frame.pts = pts
        if key:
            frame.pict_type = av.video.frame.PictureType.I
        return list(self.stream.encode(frame))

    def close(self) -> None:
        try:
            list(self.stream.encode(None))  # zerolatency holds no frames; this just ends it
        finally:
            self._template.close()


class PacketRing:
    """The packets of the last ``seconds``, from a keyframe on: the one at or before
    ``newest - seconds`` is kept, so any pre-roll up to ``seconds`` can start on a keyframe."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.items: deque[Coded] = deque()

    def add(self, item: Coded) -> None:
        self.items.append(item)
        keep_from = item.t - self.seconds
        while len(self.items) > 1:
            later_key = next((i for i, c in enumerate(self.items) if i > 0 and c.key), None)
            if later_key is None or self.items[later_key].t > keep_from:
                break
            for _ in range(later_key):
                self.items.popleft()

    def start(self, target: float, after: int, tol: float) -> int | None:
        """Where a clip should start: the position of the last keyframe at or before ``target``
        among the frames after frame index ``after`` (the previous clip's last), else the first
        keyframe after it; None when the ring has no keyframe after ``after``."""
        keys = [i for i, c in enumerate(self.items) if c.key and c.index > after]
        if not keys:
            return None
        early = [i for i in keys if self.items[i].t <= target + tol]
        return early[-1] if early else keys[0]

    def since(self, position: int) -> Iterator[Coded]:
        for i in range(position, len(self.items)):
            yield self.items[i]


class ClipFile:
    """One clip being written: an MP4 whose first frame is a keyframe, timestamps from 0."""

    def __init__(self, path: Path, encoder: Encoder, first: Coded):
        self.path = path
        self.container = av.open(str(path), "w", format="mp4", options=dict(FRAGMENTED))
        self.stream = self.container.add_stream_from_template(encoder.stream)
        self.stream.codec_context.extradata = encoder.extradata
        self.stream.time_base = TIME_BASE
        self.first, self.last = first, first
        self.frames = 0

    def write(self, item: Coded) -> None:
        packet = item.packet
        packet.stream = self.stream
        packet.time_base = TIME_BASE
        packet.pts = packet.dts = item.pts - self.first.pts
        self.container.mux(packet)
        self.last = item
        self.frames += 1

    def close(self) -> None:
        self.container.close()
