"""The matting models the matting graphs and ``flowml bench`` use, built with no download.

``difference_matte.pt``: a non-learned background-difference matte (``difference_matte.py``)
with Background Matting V2's interface: ``(src, bgr) -> (pha, fgr, pha_sm, fgr_sm, err_sm,
ref_sm)`` and the settable attributes ``backbone_scale``, ``refine_mode``,
``refine_sample_pixels``, ``refine_threshold`` (plus ``matte_low``, ``matte_high``).

``bgmv2_resnet50_random.pt``: the BGMv2 network, ResNet-50 backbone, random weights
(``bgmv2.py``, ~160 MB): its mattes mean nothing, its speed is the real one. A real BGMv2
TorchScript file (``torchscript_resnet50_fp32.pth`` and friends from the authors' release) has
the same interface and drops into ``graphs/matting.yaml`` in its place.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from .bgmv2 import random_bgmv2
from .difference_matte import DifferenceMatte
from .toon import ignore_jit_warnings


def script(module: torch.nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        ignore_jit_warnings()
        return torch.jit.script(module.eval())


def _save(module: torch.nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():
        ignore_jit_warnings()
        torch.jit.save(script(module), str(path))
    return path


def build_difference_matte(folder: Path) -> Path:
    """``folder/difference_matte.pt`` (a few KB)."""
    return _save(DifferenceMatte(), Path(folder) / "difference_matte.pt")


def build_bgmv2(folder: Path, seed: int = 0) -> Path:
    """``folder/bgmv2_resnet50_random.pt`` (~160 MB, a few seconds)."""
    return _save(random_bgmv2(seed), Path(folder) / "bgmv2_resnet50_random.pt")


def build(folder: Path, bgmv2: bool = False) -> list[Path]:
    """The difference matte, and with ``bgmv2`` the random-weight BGMv2 too, into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [build_difference_matte(folder)]
    if bgmv2:
        paths.append(build_bgmv2(folder))
    return paths
