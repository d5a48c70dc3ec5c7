"""Synthetic pictures, each a pure function of its arguments: ``(1, 3, H, W)`` float32 in [0, 1].

Drawn with a few broadcast torch ops on the target device, so a 640x360 frame takes about
a millisecond on a CPU core.
"""

from __future__ import annotations

import math
import random

from flowml.lazy import lazy_import
torch = lazy_import("torch")

Colour = tuple[float, float, float]

BARS: list[Colour] = [  # SMPTE 75% bars: white, yellow, cyan, green, magenta, red, blue
    (0.75, 0.75, 0.75), (0.75, 0.75, 0.0), (0.0, 0.75, 0.75), (0.0, 0.75, 0.0),
    (0.75, 0.0, 0.75), (0.75, 0.0, 0.0), (0.0, 0.0, 0.75),
]
DISCS: list[Colour] = [
    (0.96, 0.42, 0.36), (0.99, 0.80, 0.36), (0.36, 0.80, 0.72),
    (0.42, 0.56, 0.96), (0.86, 0.50, 0.86), (0.98, 0.96, 0.90),
]


def _rgb(colour: Colour, device: torch.device | str) -> torch.Tensor:
    return torch.tensor(colour, dtype=torch.float32, device=device).view(3, 1, 1)


def bars(index: int, width: int, height: int, device: torch.device | str) -> torch.Tensor:
    """Colour bars over the top two thirds, a grey ramp below it, and a red block that moves
    4 px per frame along the ramp (so that frames differ)."""
    x = torch.arange(width, device=device)
    which = (x * len(BARS) // width).clamp(max=len(BARS) - 1)
    top = torch.tensor(BARS, device=device)[which].T[:, None, :]  # (3, 1, W)
    ramp = (x / max(width - 1, 1)).expand(3, 1, width)
    split = height * 2 // 3
    image = torch.cat([top.expand(3, split, width), ramp.expand(3, height - split, width)], dim=1)
    block = max(width // 40, 1)
    left = (index * 4) % width
    image[:, split:, left:left + block] = _rgb((1.0, 0.0, 0.0), device)
    return image[None]


def noise(index: int, width: int, height: int, seed: int, device: torch.device | str) -> torch.Tensor:
    """Uniform RGB noise; the same (seed, index) gives the same frame on the same device type."""
    generator = torch.Generator(device=device).manual_seed(seed * 1_000_003 + index)
    return torch.rand((1, 3, height, width), generator=generator, device=device)


def noise_frames(first: int, count: int, width: int, height: int, seed: int, device: torch.device | str,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Frames ``first .. first + count - 1`` of ``noise``, ``(count, 3, H, W)``: equal to
    ``torch.cat([noise(i, ...) for i in ...])``, but written in place into one tensor by one
    generator reseeded per frame (``generator``, on ``device``, reused across calls): no new
    generator and no frame-sized temporary per frame, no ``cat`` of the batch."""
    out = torch.empty((count, 3, height, width), device=device)
    generator = generator if generator is not None else torch.Generator(device=device)
    for i in range(count):
        generator.manual_seed(seed * 1_000_003 + first + i)
        torch.rand((1, 3, height, width), generator=generator, out=out[i:i + 1])
    return out


def scene(t: float, width: int, height: int, seed: int, device: torch.device | str) -> torch.Tensor:
    """A dusk sky, a sun, drifting soft-edged discs and two rolling hills at time ``t`` seconds.

    The seed picks the discs' colours, sizes and paths; motion is smooth and periodic in ``t``.
    Lengths below are in picture heights (the picture is 1 high, ``width / height`` wide);
    shapes are painted only inside their bounding boxes, which keeps a frame cheap.
    """
    aspect, unit = width / height, float(height)  # unit: pixels per picture height
    ys = torch.arange(height, device=device, dtype=torch.float32).view(1, height, 1)
    xs = torch.arange(width, device=device, dtype=torch.float32).view(1, 1, width)

    warm = 0.5 + 0.5 * math.sin(2 * math.pi * t / 12)  # the sky breathes every 12 s
    top = _rgb((0.10, 0.14, 0.38), device) * (1 - warm) + _rgb((0.22, 0.12, 0.40), device) * warm
    low = _rgb((0.98, 0.66, 0.45), device) * (1 - warm) + _rgb((0.96, 0.48, 0.52), device) * warm
    image = (top + (low - top) * (ys / unit).pow(1.4)).expand(3, height, width).contiguous()

    def paint(rows: slice, cols: slice, cover: torch.Tensor, colour: Colour, amount: float = 1.0) -> None:
        region = image[:, rows, cols]
        region += (_rgb(colour, device) - region) * (cover * amount)

    def box(cx: float, cy: float, r: float) -> tuple[slice, slice]:
        return (slice(max(int((cy - r) * unit) - 1, 0), max(min(int((cy + r) * unit) + 2, height), 0)),
                slice(max(int((cx - r) * unit) - 1, 0), max(min(int((cx + r) * unit) + 2, width), 0)))

    def disc(cx: float, cy: float, r: float, colour: Colour, amount: float = 1.0) -> None:
        rows, cols = box(cx, cy, r)
        d = ((xs[..., cols] - cx * unit) ** 2 + (ys[:, rows] - cy * unit) ** 2).sqrt()
        paint(rows, cols, (r * unit - d).div(1.5).clamp(0, 1), colour, amount)  # 1.5 px soft edge

    sun_x, sun_y = aspect * 0.74, 0.50 + 0.04 * math.sin(2 * math.pi * t / 10)
    rows, cols = box(sun_x, sun_y, 0.4)
    d2 = (xs[..., cols] / unit - sun_x) ** 2 + (ys[:, rows] / unit - sun_y) ** 2
    paint(rows, cols, torch.exp(-d2 / 0.03), (1.0, 0.85, 0.55), 0.45)
    disc(sun_x, sun_y, 0.11, (1.0, 0.93, 0.70))

    rng = random.Random(seed)
    for colour in rng.sample(DISCS, k=5):
        r = rng.uniform(0.04, 0.09)
        hz_x, hz_y = rng.uniform(0.08, 0.22), rng.uniform(0.10, 0.30)  # a Lissajous path
        phase_x, phase_y = rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi)
        cx = aspect * (0.5 + 0.40 * math.sin(2 * math.pi * hz_x * t + phase_x))
        cy = 0.42 + 0.24 * math.sin(2 * math.pi * hz_y * t + phase_y)
        disc(cx, cy, r, colour, 0.92)

    for base, amp, speed, colour in ((0.74, 0.05, 0.25, (0.30, 0.22, 0.36)),
                                     (0.84, 0.04, 0.55, (0.12, 0.10, 0.18))):
        rows = slice(max(int((base - 1.5 * amp) * unit) - 1, 0), height)
        x = xs / unit
        ridge = base + amp * torch.sin(x * 3.1 + speed * t) + amp * 0.5 * torch.sin(x * 7.3 - speed * 1.7 * t)
        paint(rows, slice(None), (ys[:, rows] - ridge * unit).clamp(0, 1), colour)
    return image.clamp_(0, 1)[None]
