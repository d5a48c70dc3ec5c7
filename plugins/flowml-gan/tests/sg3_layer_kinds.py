"""Every filtered-leaky-ReLU call that the official StyleGAN3 configs make (T and R, 256 and
1024 px, the networks built on the meta device: no weights), one entry per distinct kind,
for the fused-kernel tests on the CPU (``test_gan_fused.py``) and the GPU (``_cuda``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from flowml_gan.build import sg3_kwargs
from flowml_gan.filters import design_lowpass_filter
from flowml_gan.stylegan3 import SynthesisNetwork


@dataclass(frozen=True)
class LayerKind:
    """A layer's filtered_lrelu arguments (filters described, not built) and where it is used."""

    up: int
    up_taps: int           # 1: no up-sampling filter (toRGB)
    down: int
    down_shape: tuple      # () none, (k,) separable, (k, k) radial
    padding: tuple
    gain: float
    slope: float
    clamp: float | None
    in_size: int
    channels: int
    where: str             # e.g. "sg3-r 1024 L10_1044_161"

    @property
    def id(self) -> str:
        fd = "x".join(map(str, self.down_shape)) or "none"
        return f"up{self.up}-fu{self.up_taps}-fd{fd}-pad{self.padding[0]}_{self.padding[1]}"

    def filters(self, asymmetric: bool = False, device: str = "cpu"
                ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Low-pass filters of this kind's tap counts (StyleGAN3's design); ``asymmetric``
        perturbs them (a symmetric filter would hide a kernel that forgot to flip it)."""
        fu = design_lowpass_filter(self.up_taps, 3.0, 2.0, 8.0 * self.up) if self.up_taps > 1 else None
        fd = (design_lowpass_filter(self.down_shape[0], 3.0, 2.0, 16.0, radial=len(self.down_shape) == 2)
              if self.down_shape else None)
        if asymmetric:
            g = torch.Generator().manual_seed(7)
            fu = fu + 0.05 * torch.rand(fu.shape, generator=g) if fu is not None else None
            fd = fd + 0.05 * torch.rand(fd.shape, generator=g) / fd.numel() ** 0.5 if fd is not None else None
        return (fu.to(device) if fu is not None else None), (fd.to(device) if fd is not None else None)


def layer_kinds() -> list[LayerKind]:
    """The distinct (up, taps, down filter, padding, gain, slope, clamp) of SG3-T/R at 256 and
    1024 px, each with the first layer that uses it."""
    seen: dict[tuple, LayerKind] = {}
    for config in ("sg3-t", "sg3-r"):
        for res in (256, 1024):
            kw = {k: v for k, v in sg3_kwargs(config, res).items()
                  if k not in ("z_dim", "c_dim", "mapping_kwargs")}
            with torch.device("meta"):
                net = SynthesisNetwork(**kw)
            for name in net.layer_names:
                L = getattr(net, name)
                fd = L.down_filter
                kind = LayerKind(L.up_factor, L.up_taps, L.down_factor,
                                 tuple(fd.shape) if fd is not None else (), tuple(L.padding),
                                 L.gain, L.slope, L.conv_clamp, L.in_size[0] + L.conv_kernel - 1,
                                 L.out_channels, f"{config} {res} {name}")
                key = (kind.up, kind.up_taps, kind.down, kind.down_shape, kind.padding, kind.gain,
                       kind.slope, kind.clamp)
                seen.setdefault(key, kind)
    return list(seen.values())


KINDS = layer_kinds()
FUSED_KINDS = [k for k in KINDS if k.up_taps > 1]    # toRGB (no filters) takes the PyTorch op


def input_size(kind: LayerKind, min_out: int) -> int:
    """The smallest square input whose output is at least ``min_out`` a side."""
    kd = kind.down_shape[0] if kind.down_shape else 1
    for s in range(4, 4096):
        p = kind.padding[2] + kind.padding[3]
        if (s * kind.up + p - kind.up_taps - kd + 1 + kind.down) // kind.down >= min_out:
            return s
    raise ValueError(kind)


def small_input(kind: LayerKind, size: int, channels: int = 3, batch: int = 2, scale: float = 30.0,
                seed: int = 0, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """x ``(batch, channels, size, size + 3)`` (not square: x and y mixed up would show) and a
    bias, large enough that the leaky ReLU's negative side and a clamp of 25 both matter."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, size, size + 3, generator=g) * scale
    return x.to(device), torch.randn(channels, generator=g).to(device)


def args(kind: LayerKind, clamp: float | None = 25.0) -> dict:
    """filtered_lrelu keywords of ``kind`` (``clamp`` tighter than StyleGAN3's 256 by default,
    so that it binds on test data)."""
    return dict(up=kind.up, down=kind.down, padding=list(kind.padding), gain=kind.gain,
                slope=kind.slope, clamp=clamp)

