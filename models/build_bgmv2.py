"""Build the matting models the matting graphs use, with no download::

    python models/build_bgmv2.py                 # models/difference_matte.pt (a few KB)
    python models/build_bgmv2.py --bgmv2         # + models/bgmv2_resnet50_random.pt (~160 MB)

``difference_matte.pt``: a non-learned background-difference matte (``difference_matte.py``)
with Background Matting V2's interface: ``(src, bgr) -> (pha, fgr, pha_sm, fgr_sm, err_sm,
ref_sm)`` and the settable attributes ``backbone_scale``, ``refine_mode``,
``refine_sample_pixels``, ``refine_threshold`` (plus ``matte_low``, ``matte_high``).

``bgmv2_resnet50_random.pt``: the BGMv2 network, ResNet-50 backbone, random weights
(``bgmv2.py``): its mattes mean nothing, its speed is the real one. A real BGMv2 TorchScript
file (``torchscript_resnet50_fp32.pth`` and friends from the authors' release) has the same
interface and drops into ``graphs/matting.yaml`` in its place.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bgmv2 import random_bgmv2  # noqa: E402
from difference_matte import DifferenceMatte  # noqa: E402


def script(module: torch.nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; BGMv2 ships in it
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        return torch.jit.script(module.eval())


def build_difference_matte(folder: Path) -> Path:
    path = folder / "difference_matte.pt"
    torch.jit.save(script(DifferenceMatte()), str(path))
    return path


def build_bgmv2(folder: Path, seed: int = 0) -> Path:
    path = folder / "bgmv2_resnet50_random.pt"
    torch.jit.save(script(random_bgmv2(seed)), str(path))
    return path


def build(folder: Path = HERE, bgmv2: bool = False) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [build_difference_matte(folder)]
    if bgmv2:
        paths.append(build_bgmv2(folder))
    return paths


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
