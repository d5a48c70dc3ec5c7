"""Build the matting models the matting graphs use, with no download::

    python models/build_bgmv2.py                 # models/difference_matte.pt (a few KB)
    python models/build_bgmv2.py --bgmv2         # + models/bgmv2_resnet50_random.pt (~160 MB)

A thin wrapper: the networks and their builders live in the flowml package
(``flowml.models.matting``, ``flowml.models.bgmv2``, ``flowml.models.difference_matte``), so
installed wheels (and ``flowml bench``) have them without this folder.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from flowml.models.matting import build_bgmv2, build_difference_matte, script
from flowml.models.matting import build as _build

HERE = Path(__file__).resolve().parent
__all__ = ["build", "build_bgmv2", "build_difference_matte", "script", "main"]


def build(folder: Path = HERE, bgmv2: bool = False) -> list[Path]:
    return _build(folder, bgmv2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=HERE, help="folder to write into (default: models/)")
    p.add_argument("--bgmv2", action="store_true", help="also the ~160 MB random-weight ResNet-50 BGMv2")
    a = p.parse_args()
    t0 = time.perf_counter()
    for path in build(a.out, a.bgmv2):
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(f"done in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
