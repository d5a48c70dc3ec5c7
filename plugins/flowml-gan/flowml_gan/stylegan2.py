"""StyleGAN2 (config F) generator: mapping network z -> w, synthesis network w -> image.

Written for flowml from the StyleGAN2 paper and the structure of stylegan2-ada-pytorch: module,
parameter and buffer names, constructor keywords and the math are those of NVIDIA's
``training/networks.py``, so an official snapshot's ``G_ema`` state dict loads with
``load_state_dict(strict=True)`` and gives the same image (``tests/test_parity.py``).

Shapes: z ``(B, z_dim)``, c ``(B, c_dim)``, w ``(B, num_ws, w_dim)``, image
``(B, img_channels, R, R)`` in about [-1, 1] (the training data's range).
"""

from __future__ import annotations

import math
from typing import Any, Literal, Sequence

import torch
from torch import nn

from . import sg2_fused
from .ops import (ACTIVATIONS, bias_act, conv2d_resample, modulated_conv2d, normalize_2nd_moment,
                  setup_filter, upsample2d)

NoiseMode = Literal["const", "random", "none"]
__all__ = ["FullyConnectedLayer", "Conv2dLayer", "MappingNetwork", "SynthesisLayer", "ToRGBLayer",
           "SynthesisBlock", "SynthesisNetwork", "Generator", "NoiseMode"]


class FullyConnectedLayer(nn.Module):
    """Dense layer with equalised learning rate: ``act(x @ (W * lr/sqrt(in)).T + b * lr)``.
    x ``(B, in_features)`` -> ``(B, out_features)``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 activation: str = "linear", lr_multiplier: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
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


class Conv2dLayer(nn.Module):
    """Plain convolution with equalised learning rate (the resnet skip path).
    x ``(B, Cin, H, W)`` -> ``(B, Cout, H*up, W*up)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", up: int = 1, down: int = 1,
                 resample_filter: Sequence[float] = (1, 3, 3, 1), conv_clamp: float | None = None,
                 channels_last: bool = False, trainable: bool = True):
        super().__init__()
        if down != 1:
            raise ValueError("Conv2dLayer: down-sampling (a discriminator's) is not implemented here")
        self.activation = activation
        self.up = up
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.act_gain = ACTIVATIONS[activation]
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        bias_t = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = nn.Parameter(weight)
            self.bias = nn.Parameter(bias_t) if bias_t is not None else None
        else:
            self.register_buffer("weight", weight)
            if bias_t is not None:
                self.register_buffer("bias", bias_t)
            else:
                self.bias = None

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = (self.weight * self.weight_gain).to(x.dtype)
        b = self.bias.to(x.dtype) if self.bias is not None else None
        f = self.resample_filter if self.up > 1 else None
        x = conv2d_resample(x, w, f, up=self.up, padding=self.padding, flip_weight=self.up == 1)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=clamp)


class MappingNetwork(nn.Module):
    """z (and a label c) -> w: pixel-norm, ``num_layers`` leaky-ReLU dense layers, broadcast to
    ``num_ws`` copies, optional truncation towards ``w_avg``. Returns ``(B, num_ws, w_dim)``
    (``(B, w_dim)`` when ``num_ws`` is None)."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None,
                 num_layers: int = 8, embed_features: int | None = None,
                 layer_features: int | None = None, activation: str = "lrelu",
                 lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.995):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.num_ws, self.num_layers, self.w_avg_beta = num_ws, num_layers, w_avg_beta
        embed = 0 if c_dim == 0 else (w_dim if embed_features is None else embed_features)
        hidden = w_dim if layer_features is None else layer_features
        features = [z_dim + embed] + [hidden] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed)
        for i in range(num_layers):
            setattr(self, f"fc{i}", FullyConnectedLayer(features[i], features[i + 1],
                                                        activation=activation,
                                                        lr_multiplier=lr_multiplier))
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None = None,
                truncation_psi: float = 1.0, truncation_cutoff: int | None = None) -> torch.Tensor:
        x = None
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                raise ValueError(f"mapping: z must be (B, {self.z_dim}), got "
                                 f"{None if z is None else tuple(z.shape)}")
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                raise ValueError(f"mapping: this network is conditional; c must be (B, {self.c_dim})")
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            x = truncate(x, self.w_avg, truncation_psi, truncation_cutoff)
        return x


def truncate(w: torch.Tensor, w_avg: torch.Tensor, psi: float,
             cutoff: int | None = None) -> torch.Tensor:
    """``w_avg + psi * (w - w_avg)`` for the first ``cutoff`` ws (all when None).
    w ``(B, num_ws, w_dim)``, w_avg ``(w_dim,)``."""
    if cutoff is None:
        return w_avg.lerp(w, psi)
    w = w.clone()
    w[:, :cutoff] = w_avg.lerp(w[:, :cutoff], psi)
    return w


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (up-sampling x2 in a block's first layer), noise, bias,
    leaky ReLU. x ``(B, Cin, R/up, R/up)``, w ``(B, w_dim)`` -> ``(B, Cout, R, R)``."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int,
                 kernel_size: int = 3, up: int = 1, use_noise: bool = True,
                 activation: str = "lrelu", resample_filter: Sequence[float] = (1, 3, 3, 1),
                 conv_clamp: float | None = None, channels_last: bool = False):
        super().__init__()
        self.resolution, self.up, self.use_noise = resolution, up, use_noise
        self.activation, self.conv_clamp = activation, conv_clamp
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.act_gain = ACTIVATIONS[activation]
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: NoiseMode = "const",
                fused_modconv: bool = True, gain: float = 1.0) -> torch.Tensor:
        backend = sg2_fused.backend_for(x, w, self.weight) if fused_modconv else None
        if backend is not None:
            y = sg2_fused.attempt(backend, sg2_fused.synthesis_layer, self, x, w, noise_mode, gain)
            if y is not None:
                return y
        styles = self.affine(w)
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution],
                                device=x.device) * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter if self.up > 1 else None,
                             flip_weight=self.up == 1, fused=fused_modconv)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 convolution to colour, not demodulated. ``(B, C, R, R)`` -> ``(B, 3, R, R)``."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: float | None = None, channels_last: bool = False):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        backend = sg2_fused.backend_for(x, w, self.weight) if fused_modconv else None
        if backend is not None:
            y = sg2_fused.attempt(backend, sg2_fused.torgb_layer, self, x, w)
            if y is not None:
                return y
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=fused_modconv)
        return bias_act(x, self.bias, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution: (const | up-sampling conv0), conv1, and with the ``skip`` architecture a
    toRGB added to the up-sampled image so far. ``forward(x, img, ws)`` with ws
    ``(B, num_conv + num_torgb, w_dim)`` returns ``(x (B, C, R, R), img (B, 3, R, R) float32)``."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int,
                 img_channels: int, is_last: bool, architecture: str = "skip",
                 resample_filter: Sequence[float] = (1, 3, 3, 1), conv_clamp: float | None = None,
                 use_fp16: bool = False, fp16_channels_last: bool = False, **layer_kwargs: Any):
        super().__init__()
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"architecture {architecture!r}: use orig, skip or resnet")
        self.in_channels, self.w_dim, self.resolution = in_channels, w_dim, resolution
        self.img_channels, self.is_last, self.architecture = img_channels, is_last, architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.num_conv = 0
        self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim=w_dim, resolution=resolution,
                                        up=2, resample_filter=resample_filter,
                                        conv_clamp=conv_clamp, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim=w_dim, resolution=resolution,
                                    conv_clamp=conv_clamp, **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor,
                force_fp32: bool = False, fused_modconv: bool | None = None,
                noise_mode: NoiseMode = "const") -> tuple[torch.Tensor, torch.Tensor | None]:
        ws_iter = iter(ws.unbind(dim=1))
        dtype = torch.float16 if self.use_fp16 and not force_fp32 else torch.float32
        fmt = torch.channels_last if self.channels_last and not force_fp32 else torch.contiguous_format
        if fused_modconv is None:
            fused_modconv = (not self.training) and (dtype == torch.float32 or ws.shape[0] == 1)
        kw = dict(fused_modconv=fused_modconv, noise_mode=noise_mode)
        if self.in_channels == 0:
            x = self.const.to(dtype=dtype, memory_format=fmt).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            x = self.conv1(x, next(ws_iter), **kw)
        elif self.architecture == "resnet":
            x = x.to(dtype=dtype, memory_format=fmt)
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x, next(ws_iter), **kw)
            x = self.conv1(x, next(ws_iter), gain=math.sqrt(0.5), **kw)
            x = y + x
        else:
            x = x.to(dtype=dtype, memory_format=fmt)
            x = self.conv0(x, next(ws_iter), **kw)
            x = self.conv1(x, next(ws_iter), **kw)
        if not (self.is_last or self.architecture == "skip"):
            return x, upsample2d(img, self.resample_filter) if img is not None else None
        y = self.torgb(x, next(ws_iter), fused_modconv=fused_modconv)
        if img is not None and img.dtype == torch.float32:
            backend = sg2_fused.backend_for(img, y)
            if backend is not None:  # up-sampling and the add in one pass
                out = sg2_fused.attempt(backend, sg2_fused.upsample_add, img, self.resample_filter, y)
                if out is not None:
                    return x, out
        y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        img = upsample2d(img, self.resample_filter) + y if img is not None else y
        return x, img


class SynthesisNetwork(nn.Module):
    """w ``(B, num_ws, w_dim)`` -> image ``(B, img_channels, R, R)``: blocks ``b4`` ... ``bR``,
    channels ``min(channel_base // res, channel_max)``; the ``num_fp16_res`` highest
    resolutions run in fp16 unless ``force_fp32``."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int,
                 channel_base: int = 32768, channel_max: int = 512, num_fp16_res: int = 0,
                 **block_kwargs: Any):
        super().__init__()
        if img_resolution < 4 or img_resolution & (img_resolution - 1):
            raise ValueError(f"img_resolution {img_resolution}: a power of two, at least 4")
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.img_resolution_log2 = int(math.log2(img_resolution))
        self.block_resolutions = [2 ** i for i in range(2, self.img_resolution_log2 + 1)]
        channels = {r: min(channel_base // r, channel_max) for r in self.block_resolutions}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim=w_dim,
                                   resolution=res, img_channels=img_channels,
                                   is_last=res == img_resolution, use_fp16=res >= fp16_resolution,
                                   **block_kwargs)
            self.num_ws += block.num_conv + (block.num_torgb if res == img_resolution else 0)
            setattr(self, f"b{res}", block)

    def forward(self, ws: torch.Tensor, noise_mode: NoiseMode = "const", force_fp32: bool = False,
                fused_modconv: bool | None = None) -> torch.Tensor:
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"synthesis: ws must be (B, {self.num_ws}, {self.w_dim}), "
                             f"got {tuple(ws.shape)}")
        ws = ws.to(torch.float32)
        x = img = None
        index = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            cur = ws.narrow(1, index, block.num_conv + block.num_torgb)
            index += block.num_conv
            x, img = block(x, img, cur, force_fp32=force_fp32, fused_modconv=fused_modconv,
                           noise_mode=noise_mode)
        return img


class Generator(nn.Module):
    """``mapping`` + ``synthesis``; the constructor takes an official snapshot's init kwargs.
    forward: z ``(B, z_dim)``, c ``(B, c_dim)`` -> image ``(B, img_channels, R, R)``."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int,
                 img_channels: int, mapping_kwargs: dict | None = None,
                 synthesis_kwargs: dict | None = None):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.init_kwargs = dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
                                img_channels=img_channels, mapping_kwargs=dict(mapping_kwargs or {}),
                                synthesis_kwargs=dict(synthesis_kwargs or {}))
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution,
                                          img_channels=img_channels, **(synthesis_kwargs or {}))
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws,
                                      **(mapping_kwargs or {}))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, **synthesis_kwargs: Any) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, **synthesis_kwargs)
