"""Random-weight StyleGAN snapshots in the layout of NVIDIA's ``.pkl`` files, with no download
and no NVIDIA code:

    python -m flowml_gan.build sg2 1024 stylegan2-random-1024.pkl
    python -m flowml_gan.build sg3-r 256 OUT.pkl [--small] [--seed N] [--device cuda]

Configs are NVIDIA's training configs: ``sg2`` is StyleGAN2 config F (stylegan2-ada-pytorch:
8 mapping layers, skip generator, ``channel_base`` 16384 up to 256 px (paper256) else 32768,
``channel_max`` 512, fp16 in the 4 highest resolutions, ``conv_clamp`` 256); ``sg3-t`` /
``sg3-r`` are ``train.py --cfg stylegan3-t|r`` (2 mapping layers, ``channel_base`` 32768 /
``channel_max`` 512, R: 1x1 convolutions, radial filters, twice the channels;
``magnitude_ema_beta`` of batch 32). ``small`` makes 32-d latents and a few dozen channels.

Weights are drawn as at the start of training, then made to give a picture rather than noise
or a saturated field: biases (and StyleGAN2's noise strengths) non-zero, ``w_avg`` off zero,
StyleGAN3's input-magnitude EMAs set to what training would track (one calibration pass), the
toRGB layers scaled so that images sit in [-1, 1]. The pickle holds ``G`` and ``G_ema`` as
``torch_utils.persistence`` records (a placeholder instead of NVIDIA's source), which
``flowml_gan.snapshot.load_generator`` reads exactly as it reads an official snapshot.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .arch import AnyGenerator
from .official import write_official_pickle

__all__ = ["CONFIGS", "sg3_kwargs", "make_sg2", "make_sg3", "make_generator", "build"]

CONFIGS = ("sg2", "sg3-t", "sg3-r")


def sg3_kwargs(config: str, resolution: int, small: bool = False) -> dict[str, Any]:
    """NVIDIA's StyleGAN3 init kwargs for ``sg3-t`` or ``sg3-r`` at ``resolution``."""
    dim = 32 if small else 512
    kw: dict[str, Any] = dict(z_dim=dim, c_dim=0, w_dim=dim, img_resolution=resolution,
                              img_channels=3, mapping_kwargs={"num_layers": 2},
                              channel_base=2048 if small else 32768,
                              channel_max=32 if small else 512,
                              magnitude_ema_beta=0.5 ** (32 / (20 * 1e3)))
    if config == "sg3-r":
        kw.update(conv_kernel=1, use_radial_filters=True, channel_base=kw["channel_base"] * 2,
                  channel_max=kw["channel_max"] * 2)
    elif config != "sg3-t":
        raise ValueError(f"StyleGAN3 config {config!r}: use sg3-t or sg3-r")
    return kw


def _randomise(G: nn.Module, g: torch.Generator, affine_biases: bool = True) -> None:
    for name, p in G.named_parameters():
        if name.endswith("noise_strength") or (name.endswith("bias") and (
                affine_biases or (".affine." not in name and not name.startswith("mapping.")))):
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    G.mapping.w_avg.copy_(torch.randn(G.mapping.w_avg.shape, generator=g) * 0.5)


def _fit_torgb(G: AnyGenerator, img: torch.Tensor, weights: list[torch.Tensor],
               bias: torch.Tensor, scale_after: float = 1.0) -> None:
    """Scale the toRGB weights so that ``img`` (made with them) gets std 0.5, centred."""
    k = 0.5 / float(img.std())
    for w in weights:
        w.mul_(k)
    bias.sub_((img * k).mean(dim=[0, 2, 3]) / scale_after)


def make_sg2(resolution: int = 256, small: bool = False, seed: int = 0,
             device: str = "cpu") -> AnyGenerator:
    """A random StyleGAN2 config-F generator."""
    from .stylegan2 import Generator

    torch.manual_seed(seed)
    dim = 32 if small else 512
    base = 512 if small else (16384 if resolution <= 256 else 32768)
    synthesis = dict(channel_base=base, channel_max=32 if small else 512, num_fp16_res=4, conv_clamp=256)
    G = Generator(dim, 0, dim, resolution, 3, mapping_kwargs={"num_layers": 8},
                  synthesis_kwargs=synthesis).eval().requires_grad_(False)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        _randomise(G, g)
        G.to(device)
        img = G(torch.randn(4, dim, generator=g).to(device), None, noise_mode="const", force_fp32=True)
        torgb = [p for n, p in G.named_parameters()
                 if ".torgb." in n and not n.split(".torgb.")[1].startswith("affine")]
        _fit_torgb(G, img, torgb, getattr(G.synthesis, f"b{resolution}").torgb.bias)
    return G.cpu()


def make_sg3(config: str = "sg3-t", resolution: int = 256, small: bool = False, seed: int = 0,
             device: str = "cpu") -> AnyGenerator:
    """A random StyleGAN3 generator (``sg3-t`` or ``sg3-r``)."""
    from .stylegan3 import Generator, SynthesisLayer

    torch.manual_seed(seed)
    G = Generator(**sg3_kwargs(config, resolution, small)).eval().requires_grad_(False)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        _randomise(G, g, affine_biases=False)  # the styles' and the input transform's stay
        G.to(device)
        z = torch.randn(8, G.z_dim, generator=g).to(device)

        # the magnitude EMAs as training tracks them: each layer's input mean square
        def track(layer: nn.Module, args: tuple) -> None:
            layer.magnitude_ema.copy_(args[0].detach().float().square().mean())

        layers = [m for m in G.synthesis.modules() if isinstance(m, SynthesisLayer)]
        hooks = [m.register_forward_pre_hook(track) for m in layers]
        try:
            G(z, None, force_fp32=True)
        finally:
            for h in hooks:
                h.remove()
        img = G(z, None, force_fp32=True)
        last = layers[-1]
        _fit_torgb(G, img, [last.weight], last.bias, scale_after=G.synthesis.output_scale)
    return G.cpu()


def make_generator(config: str = "sg2", resolution: int = 256, small: bool = False, seed: int = 0,
                   device: str = "cpu") -> AnyGenerator:
    """A random generator of ``config`` (one of ``CONFIGS``); ``device`` runs the calibration
    pass (a GPU for 1024 px)."""
    if config == "sg2":
        return make_sg2(resolution, small, seed, device)
    if config in ("sg3-t", "sg3-r"):
        return make_sg3(config, resolution, small, seed, device)
    raise ValueError(f"config {config!r}: use one of {', '.join(CONFIGS)}")


def default_name(config: str, resolution: int, small: bool = False) -> str:
    """``stylegan2-random-256.pkl``, ``stylegan3-r-random-1024-small.pkl``, ..."""
    arch = "stylegan2" if config == "sg2" else f"stylegan3-{config[-1]}"
    return f"{arch}-random-{resolution}{'-small' if small else ''}.pkl"


def build(out: str | Path, config: str = "sg2", resolution: int = 256, small: bool = False,
          seed: int = 0, device: str = "cpu") -> Path:
    """Write a random snapshot to ``out`` (a ``.pkl`` path, or a folder: ``default_name``
    inside it); returns its path."""
    out = Path(out)
    if out.suffix != ".pkl":
        out = out / default_name(config, resolution, small)
    out.parent.mkdir(parents=True, exist_ok=True)
    G = make_generator(config, resolution, small, seed, device)
    return write_official_pickle(out, {"G": G, "G_ema": G, "augment_pipe": None})


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m flowml_gan.build", description=__doc__.split("\n\n")[0])
    ap.add_argument("config", choices=CONFIGS, help="sg2 (config F), sg3-t or sg3-r")
    ap.add_argument("resolution", type=int, help="image size, a power of two (e.g. 256, 1024)")
    ap.add_argument("out", type=Path, help="the .pkl to write, or a folder")
    ap.add_argument("--small", action="store_true", help="32-d latents, few channels (tests)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="where the calibration pass runs (cuda for 1024 px)")
    args = ap.parse_args(argv)
    print(build(args.out, args.config, args.resolution, args.small, args.seed, args.device))


if __name__ == "__main__":
    main()
