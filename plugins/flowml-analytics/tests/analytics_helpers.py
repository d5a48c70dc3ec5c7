"""Shared by flowml-analytics' tests: videos whose frames carry their own number, and graphs.

The number of each frame is drawn as 12 bits in big 16x16 blocks (a 4 x 3 grid on 64x48
frames, white = 1), which survive H.264 at any sane quality and read back exactly."""

from __future__ import annotations

import textwrap
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

W, H, BLOCK = 64, 48, 16


def draw_number(n: int) -> np.ndarray:
    """An (H, W, 3) uint8 frame showing ``n`` (0 <= n < 4096) in binary blocks."""
    frame = np.zeros((H, W, 3), np.uint8)
    for bit in range(12):
        if n >> bit & 1:
            r, c = divmod(bit, 4)
            frame[r * BLOCK:(r + 1) * BLOCK, c * BLOCK:(c + 1) * BLOCK] = 255
    return frame


def read_number(frame: np.ndarray) -> int:
    """The number ``draw_number`` drew into a (decoded) frame."""
    grey = frame.astype(np.float32).mean(axis=2)
    n = 0
    for bit in range(12):
        r, c = divmod(bit, 4)
        centre = grey[r * BLOCK + 4:(r + 1) * BLOCK - 4, c * BLOCK + 4:(c + 1) * BLOCK - 4]
        n |= int(centre.mean() > 127) << bit
    return n


def write_numbered_video(path: Path, count: int, fps: int = 10) -> Path:
    """An H.264 MP4 of ``count`` frames numbered 0 .. count-1, at ``fps``."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.codec_context.options = {"crf": "12", "preset": "ultrafast", "threads": "1"}
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(draw_number(i), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def clip_numbers(path: Path) -> tuple[list[int], list[bool]]:
    """The frame numbers a clip shows, in order, and which of its packets are keyframes."""
    with av.open(str(path)) as c:
        keys = [bool(p.is_keyframe) for p in c.demux(video=0) if p.size]
    with av.open(str(path)) as c:
        numbers = [read_number(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    return numbers, keys


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path
