"""A synthetic scene with known tracks: coloured squares and discs moving on known paths over
a static textured background, written as a real H.264 file with its ground truth.

Each object moves inside its own cell of a grid (so objects never overlap: every identity
switch is the tracker's), bouncing off the cell's walls at constant speed, with a vertical
wobble; objects appear and leave at known frames. With ``crossing``, objects go in pairs
along horizontal lanes instead, from opposite walls, bouncing off the frame's sides: the two
of a pair pass over each other (half overlapping) again and again, which a detector sees as
one blob for a while and a tracker must sort out afterwards. ``python -m flowml_track.synth OUT.mp4``
writes a video and ``OUT.json`` (the ground truth) and ``OUT.gt.txt`` (MOT format).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

CLASSES = ("square", "disc")


@dataclass(frozen=True)
class Thing:
    """One object: its id, class, colour, size and path (a bounce inside its cell)."""

    id: int
    kind: str                      # "square" or "disc"
    colour: tuple[int, int, int]   # RGB
    half: int                      # half the side / the radius, pixels
    cell: tuple[int, int, int, int]  # x0, y0, x1, y1 the centre stays within (wall to wall)
    start: tuple[float, float]     # centre at frame 0 of its path
    velocity: tuple[float, float]  # pixels per frame
    wobble: float                  # amplitude of the vertical sine, pixels
    first: int                     # first frame it is visible
    last: int                      # last frame it is visible

    def centre(self, frame: int) -> tuple[int, int]:
        """Integer centre at ``frame``: a reflection inside the cell (exact, no state)."""
        x0, y0, x1, y1 = self.cell
        k = frame - self.first
        x = _bounce(self.start[0] + self.velocity[0] * k, x0, x1)
        y = _bounce(self.start[1] + self.velocity[1] * k + self.wobble * math.sin(0.15 * k), y0, y1)
        return int(round(x)), int(round(y))

    def box(self, frame: int) -> tuple[int, int, int, int]:
        """Its exact pixel extent at ``frame``, xyxy with exclusive x2, y2."""
        cx, cy = self.centre(frame)
        return cx - self.half, cy - self.half, cx + self.half + 1, cy + self.half + 1


def _crossing(size: tuple[int, int], frames: int, fps: int, objects: int, rng: np.random.Generator,
              warmup: int) -> list[Thing]:
    """Pairs on horizontal lanes, starting at opposite walls at the same speed: they cross."""
    w, h = size
    lanes = max(1, objects // 2)
    lane = h / lanes
    things = []
    for i in range(objects):
        k, side = divmod(i, 2)
        half = int(max(3, lane * 0.18))
        y = (k + 0.5) * lane + (half * 0.5 if side else -half * 0.5)
        cell = (half + 1, int(y), w - half - 2, int(y))
        speed = w * rng.uniform(0.012, 0.02)
        hue = (0.1 + 0.618034 * i) % 1.0
        things.append(Thing(id=i + 1, kind=CLASSES[i % 2], colour=_rgb(hue), half=half, cell=cell,
                            start=(cell[2] if side else cell[0], y), velocity=(-speed if side else speed, 0.0),
                            wobble=0.0, first=warmup, last=frames - 1))
    return things


def _bounce(v: float, lo: float, hi: float) -> float:
    span = hi - lo
    if span <= 0:
        return lo
    u = (v - lo) % (2 * span)
    return lo + (u if u <= span else 2 * span - u)


class Scene:
    """``objects`` things in a grid over a textured background, ``frames`` frames at ``fps``."""

    def __init__(self, size: tuple[int, int] = (160, 120), frames: int = 90, fps: int = 30,
                 objects: int = 4, seed: int = 0, warmup: int = 8, crossing: bool = False):
        self.size, self.frames, self.fps = size, frames, fps
        rng = np.random.default_rng(seed)
        self.background = texture(size, rng)
        w, h = size
        if crossing:
            self.things = _crossing(size, frames, fps, objects, rng, warmup)
            return
        cols = max(1, math.ceil(math.sqrt(objects * w / h)))
        rows = max(1, math.ceil(objects / cols))
        cw, ch = w / cols, h / rows
        things = []
        for i in range(objects):
            r, c = divmod(i, cols)
            half = int(max(3, min(cw, ch) * rng.uniform(0.12, 0.2)))
            gap = half + 2
            cell = (int(c * cw + gap), int(r * ch + gap), int((c + 1) * cw - gap - 1), int((r + 1) * ch - gap - 1))
            speed = max(0.6, min(cw, ch) * rng.uniform(0.02, 0.04))
            angle = rng.uniform(0, 2 * math.pi)
            first = warmup + int(rng.integers(0, max(1, frames // 6)))
            last = frames - 1 if i % 3 else max(first + 2 * fps // 3, frames - 1 - int(rng.integers(fps // 2, fps)))
            hue = (0.1 + 0.618034 * i) % 1.0
            things.append(Thing(
                id=i + 1, kind=CLASSES[i % 2], colour=_rgb(hue), half=half, cell=cell,
                start=(rng.uniform(cell[0], cell[2]), rng.uniform(cell[1], cell[3])),
                velocity=(speed * math.cos(angle), speed * math.sin(angle) * 0.6),
                wobble=min(ch * 0.08, 4.0), first=first, last=min(last, frames - 1)))
        self.things = things

    def visible(self, frame: int) -> list[Thing]:
        return [t for t in self.things if t.first <= frame <= t.last]

    def render(self, frame: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB of ``frame``."""
        import cv2

        img = self.background.copy()
        for t in self.visible(frame):
            x1, y1, x2, y2 = t.box(frame)
            if t.kind == "square":
                cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), t.colour, -1)
            else:
                cv2.circle(img, ((x1 + x2 - 1) // 2, (y1 + y2 - 1) // 2), t.half, t.colour, -1, cv2.LINE_8)
        return img

    def truth(self, frame: int) -> list[dict]:
        """The ground truth of ``frame``: ``[{id, class, box: [x1, y1, x2, y2]}]``."""
        return [{"id": t.id, "class": t.kind, "box": list(t.box(frame))} for t in self.visible(frame)]

    def all_truth(self) -> dict:
        return {"size": list(self.size), "fps": self.fps, "frames": self.frames, "classes": list(CLASSES),
                "objects": [{"id": t.id, "class": t.kind, "first": t.first, "last": t.last} for t in self.things],
                "truth": [{"frame": i, "t": i / self.fps, "objects": self.truth(i)} for i in range(self.frames)]}


def texture(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A static, textured, mid-grey background: blurred noise, a few smooth gradients, a grid."""
    import cv2

    w, h = size
    noise = rng.normal(0, 1, (h, w, 3)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), 2.0) * 40
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 110 + 20 * np.sin(xx / max(w, 1) * 6.3)[..., None] + 15 * np.cos(yy / max(h, 1) * 4.1)[..., None]
    img = np.clip(base + noise, 40, 200)
    step = max(8, min(w, h) // 6)
    img[::step, :, :] *= 0.8
    img[:, ::step, :] *= 0.8
    return img.astype(np.uint8)


def _rgb(hue: float) -> tuple[int, int, int]:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(hue, 0.9, 0.95)
    return int(255 * r), int(255 * g), int(255 * b)


def frames_of(scene: Scene) -> Iterator[np.ndarray]:
    for i in range(scene.frames):
        yield scene.render(i)


def write_video(scene: Scene, path: str | Path, crf: int = 18) -> Path:
    """The scene as an H.264 MP4 (yuv420p, libx264) with PyAV; ``path.json`` / ``path.gt.txt``
    (MOT: frame from 1, id, x, y, w, h, 1, 1, 1) next to it hold the ground truth."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(scene.fps))
        stream.width, stream.height = scene.size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}
        for img in frames_of(scene):
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    path.with_suffix(".json").write_text(json.dumps(scene.all_truth()))
    write_mot(path.with_suffix(".gt.txt"), ((i, scene.truth(i)) for i in range(scene.frames)), gt=True)
    return path


def write_mot(path: str | Path, frames, gt: bool = False) -> Path:
    """``frames``: (frame index from 0, [{id, box}]) pairs -> a MOT Challenge text file."""
    lines = []
    for i, objects in frames:
        for o in objects:
            x1, y1, x2, y2 = o["box"]
            tail = "1,1,1" if gt else f"{o.get('score', 1.0):.4f},-1,-1,-1"
            lines.append(f"{i + 1},{o['id']},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{tail}")
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="the MP4 to write")
    ap.add_argument("--size", type=int, nargs=2, default=(640, 360), metavar=("W", "H"))
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--objects", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--crossing", action="store_true", help="pairs that cross, instead of one object per cell")
    a = ap.parse_args(argv)
    path = write_video(Scene(tuple(a.size), a.frames, a.fps, a.objects, a.seed, crossing=a.crossing), a.out)
    print(f"wrote {path} and {path.with_suffix('.json')}, {path.with_suffix('.gt.txt')}")


if __name__ == "__main__":
    main()
