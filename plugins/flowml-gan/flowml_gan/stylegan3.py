"""StyleGAN3 (configs T and R) generator: mapping network z -> w, alias-free synthesis w -> image.

Written for flowml from the StyleGAN3 paper (Karras et al. 2021, "Alias-Free Generative
Adversarial Networks": Fourier-feature input, layers whose sampling rates, cutoffs and
transition bands follow a geometric progression, each nonlinearity wrapped in up- and
down-sampling by ideal-ish low-pass filters) and by reading the structure of NVlabs/stylegan3
``training/networks_stylegan3.py``: module, parameter and buffer names, constructor keywords
and the math are NVIDIA's, so an official snapshot's ``G_ema`` state dict loads with
``load_state_dict(strict=True)`` and gives the same image (``tests/test_gan_parity_sg3.py``).

Config T: 3x3 convolutions, separable Kaiser filters. Config R (rotation equivariant):
``conv_kernel=1`` (1x1 convolutions), ``use_radial_filters=True`` (radially symmetric
down-sampling filters outside the critically sampled layers), twice the channels.

Unlike NVIDIA's code, everything derived from the configuration (filters, paddings, the
Fourier features' sampling grid) is computed when the network is built, so ``forward`` makes
no host-to-device copy and reads nothing back: the network can be captured as a CUDA graph.

Shapes: z ``(B, z_dim)``, w ``(B, num_ws, w_dim)`` with ``num_ws = num_layers + 2``, image
``(B, img_channels, R, R)`` float32 in about [-1, 1].
"""

from __future__ import annotations

import math
from typing import Any, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import stylegan2
from .filters import design_lowpass_filter
from .ops import bias_act
from .fused import filtered_lrelu_fast as filtered_lrelu
from .ops_sg3 import modulated_conv2d

NoiseMode = Literal["const", "random", "none"]
__all__ = ["FullyConnectedLayer", "MappingNetwork", "SynthesisInput", "SynthesisLayer",
           "SynthesisNetwork", "Generator", "layer_plan"]


class FullyConnectedLayer(nn.Module):
    """Dense layer with equalised learning rate: ``act(x @ (W * lr/sqrt(in)).T + b * lr)``.
    x ``(B, in_features)`` -> ``(B, out_features)``. ``weight_init`` is the initial weight's
    standard deviation, ``bias_init`` a number or one value per output."""

    def __init__(self, in_features: int, out_features: int, activation: str = "linear",
                 bias: bool = True, lr_multiplier: float = 1.0, weight_init: float = 1.0,
                 bias_init: float | Sequence[float] = 0.0):
        super().__init__()
        self.in_features, self.out_features, self.activation = in_features, out_features, activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) * (weight_init / lr_multiplier))
        init = torch.as_tensor(bias_init, dtype=torch.float32).expand(out_features)
        self.bias = nn.Parameter(init / lr_multiplier) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)


class MappingNetwork(stylegan2.MappingNetwork):
    """StyleGAN3's mapping network: StyleGAN2's with 2 layers and ``w_avg_beta`` 0.998 by
    default, every layer ``w_dim`` wide. ``(B, z_dim)`` -> ``(B, num_ws, w_dim)``."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int, num_layers: int = 2,
                 lr_multiplier: float = 0.01, w_avg_beta: float = 0.998):
        super().__init__(z_dim, c_dim, w_dim, num_ws, num_layers=num_layers,
                         lr_multiplier=lr_multiplier, w_avg_beta=w_avg_beta)


class SynthesisInput(nn.Module):
    """Fourier features: ``channels`` sinusoids of random frequency (inside a disc of radius
    ``bandwidth``) and phase, rotated and translated per sample by an affine map of w and by
    the user's ``transform`` (3x3, the inverse transform of the image), then mixed by a
    trainable matrix. w ``(B, w_dim)`` -> ``(B, channels, size, size)``."""

    def __init__(self, w_dim: int, channels: int, size: int | Sequence[int],
                 sampling_rate: float, bandwidth: float):
        super().__init__()
        self.w_dim, self.channels = w_dim, channels
        self.size = [int(v) for v in np.broadcast_to(np.asarray(size), [2])]  # [width, height]
        self.sampling_rate, self.bandwidth = float(sampling_rate), float(bandwidth)
        freqs = torch.randn([channels, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs /= radii * radii.square().exp().pow(0.25)
        freqs *= bandwidth
        phases = torch.rand([channels]) - 0.5
        self.weight = nn.Parameter(torch.randn([channels, channels]))
        self.affine = FullyConnectedLayer(w_dim, 4, weight_init=0, bias_init=[1, 0, 0, 0])
        self.register_buffer("transform", torch.eye(3, 3))
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", phases)
        # the sampling grid (height, width, xy) in image units, centred: a constant
        w_, h_ = self.size
        theta = torch.tensor([[0.5 * w_ / self.sampling_rate, 0, 0],
                              [0, 0.5 * h_ / self.sampling_rate, 0]], dtype=torch.float32)
        grid = F.affine_grid(theta.unsqueeze(0), [1, 1, h_, w_], align_corners=False)[0]
        self.register_buffer("grid", grid, persistent=False)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        t = self.affine(w)  # (B, 4): rotation (cos, sin) and translation (x, y)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        c, s, tx, ty = t.unbind(dim=1)
        zero, one = torch.zeros_like(c), torch.ones_like(c)
        rot = torch.stack([c, -s, zero, s, c, zero, zero, zero, one], dim=1).reshape(-1, 3, 3)
        shift = torch.stack([one, zero, -tx, zero, one, -ty, zero, zero, one], dim=1).reshape(-1, 3, 3)
        m = rot @ shift @ self.transform.unsqueeze(0)  # rotate the image, then translate it
        phases = self.phases.unsqueeze(0) + (self.freqs.unsqueeze(0) @ m[:, :2, 2:]).squeeze(2)
        freqs = self.freqs.unsqueeze(0) @ m[:, :2, :2]  # (B, C, 2)
        # fade out frequencies that the user's transform pushed out of band
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth)
                      / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        x = (self.grid.unsqueeze(0).unsqueeze(3) @ freqs.permute(0, 2, 1).unsqueeze(1).unsqueeze(2)).squeeze(3)
        x = torch.sin((x + phases.unsqueeze(1).unsqueeze(2)) * (math.pi * 2))
        x = x * amplitudes.unsqueeze(1).unsqueeze(2)  # (B, H, W, C)
        x = x @ (self.weight / math.sqrt(self.channels)).t()
        return x.permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, channels={self.channels}, size={self.size}, "
                f"sampling_rate={self.sampling_rate:g}, bandwidth={self.bandwidth:g}")


class SynthesisLayer(nn.Module):
    """One alias-free layer: modulated conv, then bias + leaky ReLU at ``lrelu_upsampling``
    times the higher of the in/out sampling rates, between a low-pass up-sampling filter
    (``up_filter``, cutoff ``in_cutoff``) and a low-pass down-sampling one (``down_filter``,
    ``out_cutoff``; radial in config R). The last layer (``is_torgb``) is a 1x1 conv to colour
    without demodulation or nonlinearity. x ``(B, in_channels, in_size, in_size)``, w
    ``(B, w_dim)`` -> ``(B, out_channels, out_size, out_size)``."""

    def __init__(self, w_dim: int, is_torgb: bool, is_critically_sampled: bool, use_fp16: bool,
                 in_channels: int, out_channels: int, in_size: int | Sequence[int],
                 out_size: int | Sequence[int], in_sampling_rate: float, out_sampling_rate: float,
                 in_cutoff: float, out_cutoff: float, in_half_width: float, out_half_width: float,
                 conv_kernel: int = 3, filter_size: int = 6, lrelu_upsampling: int = 2,
                 use_radial_filters: bool = False, conv_clamp: float | None = 256,
                 magnitude_ema_beta: float = 0.999):
        super().__init__()
        self.w_dim, self.is_torgb = w_dim, bool(is_torgb)
        self.is_critically_sampled, self.use_fp16 = bool(is_critically_sampled), bool(use_fp16)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.in_size = [int(v) for v in np.broadcast_to(np.asarray(in_size), [2])]
        self.out_size = [int(v) for v in np.broadcast_to(np.asarray(out_size), [2])]
        self.in_sampling_rate, self.out_sampling_rate = float(in_sampling_rate), float(out_sampling_rate)
        self.tmp_sampling_rate = max(self.in_sampling_rate, self.out_sampling_rate) * (
            1 if is_torgb else lrelu_upsampling)
        self.in_cutoff, self.out_cutoff = float(in_cutoff), float(out_cutoff)
        self.in_half_width, self.out_half_width = float(in_half_width), float(out_half_width)
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp, self.magnitude_ema_beta = conv_clamp, magnitude_ema_beta

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, self.conv_kernel, self.conv_kernel]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))

        self.up_factor = _ratio(self.tmp_sampling_rate, self.in_sampling_rate, "up")
        self.up_taps = filter_size * self.up_factor if self.up_factor > 1 and not is_torgb else 1
        self.register_buffer("up_filter", design_lowpass_filter(
            self.up_taps, self.in_cutoff, self.in_half_width * 2, self.tmp_sampling_rate))
        self.down_factor = _ratio(self.tmp_sampling_rate, self.out_sampling_rate, "down")
        self.down_taps = filter_size * self.down_factor if self.down_factor > 1 and not is_torgb else 1
        self.down_radial = use_radial_filters and not is_critically_sampled
        self.register_buffer("down_filter", design_lowpass_filter(
            self.down_taps, self.out_cutoff, self.out_half_width * 2, self.tmp_sampling_rate,
            radial=self.down_radial))

        # padding of the up-sampled image so that the output has out_size samples, placed
        # symmetrically (the paper's appendix C.3)
        pad = []
        for i in (0, 1):
            total = ((self.out_size[i] - 1) * self.down_factor + 1
                     - (self.in_size[i] + self.conv_kernel - 1) * self.up_factor
                     + self.up_taps + self.down_taps - 2)
            lo = (total + self.up_factor) // 2
            pad += [lo, total - lo]
        self.padding = pad  # [x0, x1, y0, y1]
        self.gain = 1.0 if is_torgb else math.sqrt(2)
        self.slope = 1.0 if is_torgb else 0.2
        self.torgb_gain = 1 / math.sqrt(in_channels * self.conv_kernel ** 2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: NoiseMode = "const",
                force_fp32: bool = False, update_emas: bool = False) -> torch.Tensor:
        styles = self.affine(w)
        if self.is_torgb:
            styles = styles * self.torgb_gain
        fp16 = self.use_fp16 and not force_fp32 and x.device.type == "cuda"
        dtype = torch.float16 if fp16 else torch.float32
        x = modulated_conv2d(x.to(dtype), self.weight, styles, demodulate=not self.is_torgb,
                             padding=self.conv_kernel - 1, input_gain=self.magnitude_ema.rsqrt())
        return filtered_lrelu(x, self.up_filter, self.down_filter, self.bias.to(dtype),
                              up=self.up_factor, down=self.down_factor, padding=self.padding,
                              gain=self.gain, slope=self.slope, clamp=self.conv_clamp)

    def extra_repr(self) -> str:
        return (f"is_torgb={self.is_torgb}, critical={self.is_critically_sampled}, "
                f"fp16={self.use_fp16}, {self.in_channels}->{self.out_channels}, "
                f"{self.in_size[0]}->{self.out_size[0]} px, up {self.up_factor} down "
                f"{self.down_factor}, cutoff {self.in_cutoff:g}->{self.out_cutoff:g}")


def _ratio(a: float, b: float, what: str) -> int:
    r = int(np.rint(a / b))
    if b * r != a:
        raise ValueError(f"StyleGAN3 layer: the {what}-sampling factor {a:g}/{b:g} is not an integer")
    return r


def layer_plan(img_resolution: int, img_channels: int, channel_base: int = 32768,
               channel_max: int = 512, num_layers: int = 14, num_critical: int = 2,
               first_cutoff: float = 2, first_stopband: float = 2 ** 2.1,
               last_stopband_rel: float = 2 ** 0.3, margin_size: int = 10) -> dict[str, np.ndarray]:
    """The paper's geometric progression of cutoffs ``f_c`` and minimum stop-bands ``f_t`` from
    the first layer to the last ``num_critical`` (critically sampled) ones, and what follows
    from them: sampling rates (powers of two), transition half-widths, sizes (with margin) and
    channels, one entry per layer 0..num_layers (arrays of ``num_layers + 1``)."""
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    e = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** e
    stopbands = first_stopband * (last_stopband / first_stopband) ** e
    rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, rates / 2) - cutoffs
    sizes = rates + margin_size * 2
    sizes[-2:] = img_resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = img_channels
    return dict(cutoffs=cutoffs, stopbands=stopbands, sampling_rates=rates,
                half_widths=half_widths, sizes=sizes, channels=channels)


class SynthesisNetwork(nn.Module):
    """w ``(B, num_ws, w_dim)`` -> image ``(B, img_channels, R, R)``: ``input`` (Fourier
    features) and ``num_layers + 1`` layers named ``L{i}_{size}_{channels}`` (the last is the
    toRGB), the output scaled by ``output_scale``. Layers whose sampling rate times
    ``2**num_fp16_res`` exceeds the resolution run in fp16 on a GPU unless ``force_fp32``."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int,
                 channel_base: int = 32768, channel_max: int = 512, num_layers: int = 14,
                 num_critical: int = 2, first_cutoff: float = 2, first_stopband: float = 2 ** 2.1,
                 last_stopband_rel: float = 2 ** 0.3, margin_size: int = 10,
                 output_scale: float = 0.25, num_fp16_res: int = 4, **layer_kwargs: Any):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.num_ws = num_layers + 2
        self.num_layers, self.num_critical, self.margin_size = num_layers, num_critical, margin_size
        self.output_scale, self.num_fp16_res = output_scale, num_fp16_res
        plan = layer_plan(img_resolution, img_channels, channel_base, channel_max, num_layers,
                          num_critical, first_cutoff, first_stopband, last_stopband_rel, margin_size)
        rates, sizes, ch = plan["sampling_rates"], plan["sizes"], plan["channels"]
        cut, hw = plan["cutoffs"], plan["half_widths"]
        self.input = SynthesisInput(w_dim, int(ch[0]), int(sizes[0]), rates[0], cut[0])
        self.layer_names: list[str] = []
        for i in range(num_layers + 1):
            p = max(i - 1, 0)
            layer = SynthesisLayer(
                w_dim=w_dim, is_torgb=i == num_layers, is_critically_sampled=i >= num_layers - num_critical,
                use_fp16=bool(rates[i] * 2 ** num_fp16_res > img_resolution),
                in_channels=int(ch[p]), out_channels=int(ch[i]), in_size=int(sizes[p]),
                out_size=int(sizes[i]), in_sampling_rate=int(rates[p]),
                out_sampling_rate=int(rates[i]), in_cutoff=cut[p], out_cutoff=cut[i],
                in_half_width=hw[p], out_half_width=hw[i], **layer_kwargs)
            name = f"L{i}_{layer.out_size[0]}_{layer.out_channels}"
            setattr(self, name, layer)
            self.layer_names.append(name)

    def forward(self, ws: torch.Tensor, noise_mode: NoiseMode = "const", force_fp32: bool = False,
                **_: Any) -> torch.Tensor:
        """``noise_mode`` is accepted for StyleGAN2's interface; StyleGAN3 has no noise."""
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"synthesis: ws must be (B, {self.num_ws}, {self.w_dim}), "
                             f"got {tuple(ws.shape)}")
        ws = ws.to(torch.float32).unbind(dim=1)
        x = self.input(ws[0])
        for name, w in zip(self.layer_names, ws[1:]):
            x = getattr(self, name)(x, w, force_fp32=force_fp32)
        if self.output_scale != 1:
            x = x * self.output_scale
        return x.to(torch.float32)


class Generator(nn.Module):
    """``mapping`` + ``synthesis`` from an official StyleGAN3 snapshot's init kwargs (the
    synthesis and layer keywords flat beside the others, as NVIDIA's ``Generator`` takes them).
    forward: z ``(B, z_dim)``, c ``(B, c_dim)`` -> image ``(B, img_channels, R, R)``."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int,
                 img_channels: int, mapping_kwargs: dict | None = None, **synthesis_kwargs: Any):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.init_kwargs = dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
                                img_channels=img_channels, mapping_kwargs=dict(mapping_kwargs or {}),
                                **synthesis_kwargs)
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution,
                                          img_channels=img_channels, **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws,
                                      **(mapping_kwargs or {}))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, **synthesis_kwargs: Any) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, **synthesis_kwargs)
