"""Random-weight StyleGAN snapshots in the layout of NVIDIA's ``.pkl`` files (no download, no
NVIDIA code): a thin wrapper of ``flowml_gan.build`` (``python -m flowml_gan.build --help``)
that writes into ``models/``.

    python models/build_stylegan.py                          # stylegan2-random-256.pkl
    python models/build_stylegan.py --config sg3-r --resolution 1024 --device cuda
    python models/build_stylegan.py --small                  # a tiny one for tests
"""

from __future__ import annotations

import argparse
from pathlib import Path

HERE = Path(__file__).resolve().parent


def make_generator(resolution: int = 256, small: bool = False, seed: int = 0, config: str = "sg2"):
    """A random generator (``flowml_gan.build.make_generator``)."""
    from flowml_gan.build import make_generator as make

    return make(config, resolution, small, seed)


def build(folder: Path = HERE, resolution: int = 256, small: bool = False, config: str = "sg2",
          device: str = "cpu") -> Path:
    """Write ``<arch>-random-<res>[-small].pkl`` into ``folder``; returns its path."""
    from flowml_gan.build import build as write

    return write(Path(folder), config, resolution, small, device=device)


if __name__ == "__main__":
    from flowml_gan.build import CONFIGS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", choices=CONFIGS, default="sg2", help="sg2 (config F), sg3-t or sg3-r")
    ap.add_argument("--resolution", type=int, default=256, help="image size, a power of two (default 256)")
    ap.add_argument("--small", action="store_true", help="a tiny network for tests")
    ap.add_argument("--device", default="cpu", help="where the calibration pass runs")
    ap.add_argument("--out", type=Path, default=HERE, help="folder (default: models/)")
    args = ap.parse_args()
    print(build(args.out, args.resolution, args.small, args.config, args.device))
