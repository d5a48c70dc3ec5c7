"""``tensor.to_image``: a layer's activations (B, C, H, W) shown as an image."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import field_validator

import flowml
from flowml import IMAGE, TENSOR, Field, Input, Node, NodeError, Output
from flowml.lazy import lazy_import

torch = lazy_import("torch")
F = lazy_import("torch.nn.functional")

__all__ = ["TensorToImage", "to_image"]


def _pick(x: "torch.Tensor", mode: str, base: int, count: int) -> "torch.Tensor":
    """(B, C, H, W) -> (B, 1 or 3, H, W) signed values."""
    c = x.shape[1]
    if mode == "mean":
        return x.mean(dim=1, keepdim=True)
    if mode == "pca":
        b, _, h, w = x.shape
        flat = x.reshape(b, c, h * w)
        flat = flat - flat.mean(dim=2, keepdim=True)
        cov = flat @ flat.transpose(1, 2) / max(h * w - 1, 1)  # (B, C, C)
        _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues
        k = min(3, c)
        top = vecs[:, :, -k:].flip(-1)  # (B, C, k), largest first
        out = (top.transpose(1, 2) @ flat).reshape(b, k, h, w)
        if k < 3:
            out = torch.cat([out, out[:, -1:].expand(b, 3 - k, h, w)], dim=1)
        return out
    index = torch.arange(base, base + count, device=x.device) % c  # wraps around
    return x.index_select(1, index)


def to_image(x: "torch.Tensor", mode: str = "channels", base: int = 0, count: int = 3,
             norm: str = "infnorm", percentile: float = 99.0, gain_db: float = 0.0,
             size: tuple[int, int] | None = None, resize: str = "nearest") -> "torch.Tensor":
    """Activations ``x`` (B, C, H, W) -> image (B, 3, H', W') float32 in [0, 1].

    ``mode``: ``channels`` takes ``count`` (1 or 3) channels from ``base`` (wrapping past the
    last), ``mean`` averages all, ``pca`` projects on the 3 principal components over the
    pixels. ``norm``: ``infnorm`` divides by the largest magnitude, ``percentile`` by that
    percentile of the magnitudes (brighter, a few pixels clip), ``none`` keeps the values.
    Then ``gain_db`` (20 dB: x10) and ``[-1, 1] -> [0, 1]``; one channel is shown grey.
    ``size`` is ``[width, height]`` (``nearest`` keeps a small layer's pixels visible).
    """
    if x.ndim != 4:
        raise ValueError(f"tensor.to_image takes (B, C, H, W) activations, got shape {tuple(x.shape)}")
    y = _pick(x.float(), mode, base, count)
    flat = y.abs().flatten(1)
    if norm == "infnorm":
        scale = flat.amax(dim=1)
    elif norm == "percentile":
        scale = torch.quantile(flat, percentile / 100.0, dim=1)
    else:
        scale = torch.ones(y.shape[0], device=y.device)
    y = y / scale.clamp(min=1e-8).reshape(-1, 1, 1, 1) * (10 ** (gain_db / 20))
    y = (y * 0.5 + 0.5).clamp(0, 1)
    if y.shape[1] == 1:
        y = y.expand(-1, 3, -1, -1)
    if size is not None and (y.shape[-1], y.shape[-2]) != tuple(size):
        y = F.interpolate(y, size=(size[1], size[0]), mode=resize,
                          **({} if resize == "nearest" else {"align_corners": False}))
    return y.contiguous()


class TensorToImage(Node):
    """A layer's activations (B, C, H, W) as an image: channels, mean or PCA; normalised.

    Input ``tensor`` (e.g. a ``stylegan.generator`` tap); output ``image`` (B, 3, H, W) float32
    in [0, 1], resized to ``size`` if given. See ``flowml_gan.to_image.to_image``.
    """

    type_name = "tensor.to_image"
    inputs = (Input("tensor", TENSOR, "(B, C, H, W) activations"),)
    outputs = (Output("image", IMAGE, "(B, 3, H, W) RGB in [0, 1]"),)

    class Params(flowml.Params):
        mode: Literal["channels", "mean", "pca"] = Field(
            "channels", description="channels: pick from base; mean: all averaged; pca: 3 principal components")
        base: int = Field(0, ge=0, description="first channel shown (channels mode); wraps past the last")
        count: Literal[1, 3] = Field(3, description="channels shown: 1 (grey) or 3 (RGB)")
        norm: Literal["infnorm", "percentile", "none"] = Field(
            "infnorm", description="divide by the largest magnitude, by a percentile of them, or not")
        percentile: float = Field(99.0, gt=0, le=100, description="the percentile for norm: percentile")
        gain_db: float = Field(0.0, ge=-60, le=60, description="gain after normalising, in dB")
        size: Optional[tuple[int, int]] = Field(None, description="[width, height] of the image; none: the tensor's")
        resize: Literal["nearest", "bilinear"] = Field("nearest", description="how to resize")

        @field_validator("size")
        @classmethod
        def _size(cls, size: tuple[int, int] | None) -> tuple[int, int] | None:
            if size is not None and min(size) < 1:
                raise ValueError("size is [width, height] in pixels, both at least 1")
            return size

    def process(self, tensor: Any) -> dict[str, Any]:
        p = self.params
        if not isinstance(tensor, torch.Tensor) or tensor.ndim != 4:
            got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise NodeError(f"tensor.to_image takes a (B, C, H, W) tensor, got {got}; wire a "
                            "layer's activations (a stylegan.generator tap)")
        with torch.no_grad():
            image = to_image(tensor, p.mode, p.base, p.count, p.norm, p.percentile, p.gain_db,
                             p.size, p.resize)
        return {"image": image}
