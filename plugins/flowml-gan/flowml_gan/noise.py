"""``noise.smooth``: a smooth, deterministic noise image whose sampling offset is a live param.

The StyleGAN latent of the ML Real-time seed project is TouchDesigner's Noise TOP, 512 x 1,
translated by ``t * 0.1``: the same noise field, sampled a little further along each frame, so
z (and the picture) drifts smoothly. ``capture.pattern noise`` is new noise every frame; this is
the field. Each pixel is gradient (Perlin) noise at ``((x + 0.5) / period + tx, (y + 0.5) /
period + ty)``, summed over ``harmonics`` octaves; the lattice's gradients come from an integer
hash of (cell, seed), so a frame is a function of the params only (no state, any device).
"""

from __future__ import annotations

import math
from typing import Annotated

from flowml.lazy import lazy_import

import flowml
from flowml import IMAGE, Field, Node, Output

torch = lazy_import("torch")

__all__ = ["SmoothNoise", "gradient_noise"]

_MASK = (1 << 32) - 1
Pixels = Annotated[int, Field(ge=1, le=16384)]


def _hash(ix: "torch.Tensor", iy: "torch.Tensor", seed: int) -> "torch.Tensor":
    """A 32-bit hash (int64 holding 0 .. 2**32-1) of integer lattice coordinates and a seed."""
    h = (ix * 0x27D4EB2D + iy * 0x165667B1 + seed * 0x9E3779B1) & _MASK
    h = ((h ^ (h >> 15)) * 0x2C1B3C6D) & _MASK
    h = ((h ^ (h >> 12)) * 0x297A2D39) & _MASK
    return h ^ (h >> 15)


def gradient_noise(x: "torch.Tensor", y: "torch.Tensor", seed: int) -> "torch.Tensor":
    """2-D gradient noise at float64 points ``x``, ``y`` (any equal shapes) -> float32 of that
    shape, in about [-1, 1], continuous with continuous first derivatives, 0 on the lattice."""
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = (x - x0).float(), (y - y0).float()
    ix, iy = x0.long(), y0.long()

    def corner(dx: int, dy: int) -> "torch.Tensor":
        angle = _hash(ix + dx, iy + dy, seed).float() * (2 * math.pi / 2**32)
        return torch.cos(angle) * (fx - dx) + torch.sin(angle) * (fy - dy)

    u = fx * fx * fx * (fx * (fx * 6 - 15) + 10)  # quintic fade
    v = fy * fy * fy * (fy * (fy * 6 - 15) + 10)
    bottom = torch.lerp(corner(0, 0), corner(1, 0), u)
    top = torch.lerp(corner(0, 1), corner(1, 1), u)
    return torch.lerp(bottom, top, v) * math.sqrt(2)


class SmoothNoise(Node):
    """A smooth noise image: ``image`` (1, 3, H, W) float32 (the same value in R, G and B).

    ``0.5 + amplitude * n`` clamped to [0, 1] (an image), ``n`` gradient noise in about
    [-1, 1] (the default amplitude 0.5 spans [0, 1]), ``period`` pixels a lattice cell, ``tx``/``ty`` translating the
    field in cells (``tx: {expr: "t * 0.1"}`` as in the seed project), ``harmonics`` extra
    octaves of half the period and ``roughness`` times the amplitude each. Recomputed only when
    a param changes. Fed to ``stylegan.latent`` (``z_input: true``) a ``[512, 1]`` image is z.
    """

    type_name = "noise.smooth"
    outputs = (Output("image", IMAGE, "(1, 3, H, W) float32 in [0, 1], 0.5 + amplitude * noise"),)

    class Params(flowml.Params):
        size: tuple[Pixels, Pixels] = Field((512, 1), description="[width, height] in pixels, e.g. [512, 1] for z")
        period: float = Field(8.0, gt=0, le=1e6, description="pixels a noise cell spans (feature size)")
        tx: float = Field(0.0, ge=-1e9, le=1e9, description="translation along x in cells, e.g. {expr: t * 0.1}")
        ty: float = Field(0.0, ge=-1e9, le=1e9, description="translation along y in cells")
        amplitude: float = Field(0.5, ge=0, le=100, description="the noise's scale around 0.5")
        harmonics: int = Field(0, ge=0, le=8, description="extra octaves, each half the period")
        roughness: float = Field(0.5, ge=0, le=1, description="each octave's amplitude over the last's")
        seed: int = Field(0, ge=0, le=2**31 - 1, description="picks the field")

    def setup(self, ctx: flowml.NodeContext) -> None:
        self._last: tuple[tuple, torch.Tensor] | None = None

    def process(self) -> dict[str, "torch.Tensor"]:
        p = self.params
        key = tuple(p.model_dump().values())
        if self._last is not None and self._last[0] == key:
            return {"image": self._last[1]}
        (width, height), dev = p.size, self.ctx.torch_device
        xs = (torch.arange(width, device=dev, dtype=torch.float64) + 0.5)[None, :].expand(height, width)
        ys = (torch.arange(height, device=dev, dtype=torch.float64) + 0.5)[:, None].expand(height, width)
        n = torch.zeros(height, width, device=dev)
        amp, period = 1.0, p.period
        for octave in range(p.harmonics + 1):
            scale = p.period / period  # the translation moves every octave by the same pixels
            n += amp * gradient_noise(xs / period + p.tx * scale, ys / period + p.ty * scale,
                                      p.seed + 7919 * octave)
            amp, period = amp * p.roughness, period / 2
        image = (0.5 + p.amplitude * n).clamp(0, 1).expand(1, 3, height, width).contiguous()
        self._last = (key, image)
        return {"image": image}
