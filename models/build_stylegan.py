"""Build random-weight StyleGAN2 snapshots in the layout of NVIDIA's ``.pkl`` files, with no
download and without NVIDIA's code: ``python models/build_stylegan.py [--resolution 1024]``.

The network is flowml-gan's StyleGAN2 (config F: 8 mapping layers, skip generator,
``channel_base`` 32768 / ``channel_max`` 512 at 1024 px, fp16 in the 4 highest resolutions,
``conv_clamp`` 256), its weights drawn as at the start of training, biases and noise strengths
made non-zero so that the image shows structure, the toRGB layers scaled so that it sits in
[-1, 1] instead of saturating. The pickle holds ``G`` and ``G_ema`` as
``torch_utils.persistence`` records (a placeholder instead of NVIDIA's source), which
``stylegan.generator`` reads exactly as it reads an official snapshot.

``--small`` writes a tiny network (a few hundred kB) for tests and the CPU variant of
``graphs/stylegan.yaml``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def make_generator(resolution: int = 256, small: bool = False, seed: int = 0):
    """A random StyleGAN2 generator (config F; ``small``: 32-d latents, at most 32 channels)."""
    from flowml_gan.stylegan2 import Generator

    torch.manual_seed(seed)
    dim = 32 if small else 512
    # NVIDIA's configs: fmaps 0.5 (channel_base 16384) up to 256 px (paper256), else 1
    base = 512 if small else (16384 if resolution <= 256 else 32768)
    synthesis = dict(channel_base=base, channel_max=32 if small else 512, num_fp16_res=4,
                     conv_clamp=256)
    G = Generator(dim, 0, dim, resolution, 3, mapping_kwargs={"num_layers": 8},
                  synthesis_kwargs=synthesis).eval().requires_grad_(False)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength") or name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        G.mapping.w_avg.copy_(torch.randn(G.mapping.w_avg.shape, generator=g) * 0.5)
        # the image is the sum of the toRGB outputs: scale them and centre the last one's bias
        # so that random images sit in [-1, 1] instead of saturating
        z = torch.randn(4, dim, generator=g)
        img = G(z, None, noise_mode="const", force_fp32=True)
        k = 0.5 / float(img.std())
        for name, p in G.named_parameters():
            if ".torgb." in name and not name.split(".torgb.")[1].startswith("affine"):
                p.mul_(k)
        last = getattr(G.synthesis, f"b{resolution}").torgb.bias
        last.sub_((img * k).mean(dim=[0, 2, 3]))
    return G


def build(folder: Path = HERE, resolution: int = 256, small: bool = False) -> Path:
    """Write ``stylegan2-random-<res>[-small].pkl`` into ``folder``; returns its path."""
    from flowml_gan.official import write_official_pickle

    G = make_generator(resolution, small)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"stylegan2-random-{resolution}{'-small' if small else ''}.pkl"
    return write_official_pickle(path, {"G": G, "G_ema": G, "augment_pipe": None})


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--resolution", type=int, default=256, help="image size, a power of two (default 256)")
    ap.add_argument("--small", action="store_true", help="a tiny network for tests")
    ap.add_argument("--out", type=Path, default=HERE, help="folder (default: models/)")
    args = ap.parse_args()
    print(build(args.out, args.resolution, args.small))
