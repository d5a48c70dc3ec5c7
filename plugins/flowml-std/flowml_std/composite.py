"""``image.composite``: lay one image over another."""

from __future__ import annotations

from typing import Callable, Literal

from flowml.lazy import lazy_import
torch = lazy_import("torch")
F = lazy_import("torch.nn.functional")

import flowml
from flowml import IMAGE, TENSOR, Field, Input, Node, NodeError, Output

Blend = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]
BLENDS: dict[str, Blend] = {
    "over": lambda fg, bg: fg,
    "mix": lambda fg, bg: fg,
    "add": lambda fg, bg: (fg + bg).clamp(0, 1),
    "multiply": lambda fg, bg: fg * bg,
    "screen": lambda fg, bg: 1 - (1 - fg) * (1 - bg),
}


class Composite(Node):
    """Blend a foreground over a background: over, add, multiply, screen or mix.

    ``fg`` ``(B, C, H, W)``, ``bg`` ``(B, C', H', W')``, optional ``alpha`` ``(B, 1, H, W)``
    -> ``image`` ``(B, 3, H, W)`` RGB at the foreground's size (``bg`` and ``alpha`` are resized
    to it when their sizes differ). With ``blend(fg, bg)`` the mode's formula on RGB::

        a   = opacity * alpha    (alpha: the alpha input, else fg's 4th channel, else 1)
        out = bg + (blend(fg, bg) - bg) * a

    ``mix`` is a plain crossfade by ``opacity`` that ignores alpha.
    """

    type_name = "image.composite"
    inputs = (
        Input("fg", IMAGE, "(B, C, H, W) foreground; RGBA gives its own alpha"),
        Input("bg", IMAGE, "(B, C, H', W') background"),
        Input("alpha", TENSOR, "(B, 1, H, W) coverage of fg in [0, 1], e.g. a matte", optional=True),
    )
    outputs = (Output("image", IMAGE, "(B, 3, H, W) RGB"),)

    class Params(flowml.Params):
        mode: Literal["over", "add", "multiply", "screen", "mix"] = Field(
            "over", description="how fg combines with bg")
        opacity: float = Field(1.0, ge=0.0, le=1.0, description="strength of fg; 0: bg only")

    def process(self, fg: torch.Tensor, bg: torch.Tensor,
                alpha: torch.Tensor | None = None) -> torch.Tensor:
        size = fg.shape[-2:]
        fg_rgb, bg_rgb = _rgb(fg, "fg"), _rgb(_fit(bg, size), "bg")
        mode, opacity = self.params.mode, self.params.opacity
        out = BLENDS[mode](fg_rgb, bg_rgb)
        if mode != "mix" and alpha is not None:
            coverage = _matte(alpha, size).to(out.dtype) * opacity
        elif mode != "mix" and fg.shape[1] == 4:
            coverage = fg[:, 3:4] * opacity
        elif opacity != 1.0:
            coverage = opacity
        else:
            return out
        return bg_rgb + (out - bg_rgb) * coverage


def _rgb(image: torch.Tensor, port: str) -> torch.Tensor:
    """The RGB channels of a (B, 1|3|4, H, W) image (grey is repeated)."""
    if image.ndim != 4 or image.shape[1] not in (1, 3, 4):
        raise NodeError(f"input {port!r}: expected an image (B, C, H, W) with C in 1, 3, 4; "
                        f"got shape {tuple(image.shape)}")
    return image.expand(-1, 3, -1, -1) if image.shape[1] == 1 else image[:, :3]


def _fit(image: torch.Tensor, size: torch.Size) -> torch.Tensor:
    if image.shape[-2:] == size:
        return image
    return F.interpolate(image, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)


def _matte(alpha: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """(B, 1, H, W), (B, H, W) or (H, W) -> (B, 1, H, W) at ``size``."""
    matte = alpha[None, None] if alpha.ndim == 2 else alpha[:, None] if alpha.ndim == 3 else alpha
    if matte.ndim != 4 or matte.shape[1] != 1:
        raise NodeError(f"input 'alpha': expected a matte (B, 1, H, W); got shape {tuple(alpha.shape)}")
    return _fit(matte.float(), size)
