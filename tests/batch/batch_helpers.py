"""Helpers of the batch tests (a uniquely named module: other test folders have a conftest
too). The media: 12 short real videos (9 good, one missing, one corrupt, one whose frame size
makes a node raise) and a graph over them; the conftest makes them once per session, with each
good file's output from a plain ``flowml run`` (what every batch output must equal, byte for
byte)."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GOOD = 9
FRAMES = 8


@dataclass
class Media:
    root: Path
    graph: Path
    good: list[Path]
    missing: Path
    corrupt: Path
    odd: Path            # 48x32: check.py raises on it

    @property
    def inputs(self) -> list[Path]:
        return [*self.good, self.missing, self.corrupt, self.odd]

    def args(self, out: str, *extra: str) -> list[str]:
        """``flowml batch`` arguments over all 12 inputs, outputs into ``out``."""
        return [str(self.graph), "--inputs", str(self.root / "videos" / "**" / "*.mp4"),
                "--inputs", str(self.missing), "--set", "src.path={input}",
                "--set", f"out.path={out}/{{stem}}.mp4", *extra]


def write_video(path: Path, width: int, height: int, frames: int, seed: int) -> None:
    """A small H.264 file of moving blocks, written with PyAV (libx264)."""
    import av

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"preset": "ultrafast"}
        base = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        for i in range(frames):
            img = np.roll(base, 3 * i, axis=1)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = i
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)


GRAPH = """\
flowml: 1
name: flip
clock: src
nodes:
  src: {{type: capture.video, params: {{path: {first}}}}}
  flip: {{type: image.flip, inputs: {{image: src/image}}}}
  check: {{type: python.function, inputs: {{image: flip/image}},
          params: {{path: check.py, function: check, args: {{delay: 0.0}}}}}}
  out: {{type: output.video, inputs: {{image: check/image}}, params: {{path: {out}, preset: ultrafast}}}}
"""

CHECK = '''\
import time


def check(image, delay):
    """Refuses 48-pixel-wide frames (a file that makes a node raise); waits `delay` s a frame."""
    if image.shape[-1] == 48:
        raise ValueError(f"{image.shape[-1]}x{image.shape[-2]} frames are not wanted here")
    time.sleep(delay)
    return image
'''


def cli(*args: str) -> int:
    """``flowml ARGS`` in this process (the CLI's code, without an interpreter start), with
    pytest's signal handlers put back afterwards."""
    from flowml.cli import main

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return main(list(args))
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


def outputs_in(folder: Path) -> list[str]:
    """Every entry under ``folder``, hidden ones (a staging folder left behind) included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def read_lines(path: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines()]

