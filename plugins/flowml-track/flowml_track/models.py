"""Model files for the tracking graphs, with random weights (no download).

    python -m flowml_track.models squeezenet OUT.pt [--classes 2] [--seed 0]

writes torchvision's SqueezeNet 1.1 as TorchScript, which ``torch.model`` loads: input
(K, 3, S, S) normalised crops (any K, 0 included), output (K, classes) logits. A user's own
trained classifier is exported the same way (``torch.jit.script(model).save(path)``) or with
``torch.export.save`` to a ``.pt2`` file.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path


def squeezenet(classes: int = 2, seed: int = 0):
    """torchvision's ``squeezenet1_1`` with ``classes`` outputs, random weights, eval mode."""
    import torch
    from torchvision.models import squeezenet1_1

    torch.manual_seed(seed)
    return squeezenet1_1(weights=None, num_classes=classes).eval()


def save_squeezenet(path: str | Path, classes: int = 2, seed: int = 0) -> Path:
    """``squeezenet(classes, seed)`` scripted and saved to ``path`` (TorchScript)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; torch.model still loads it
        warnings.simplefilter("ignore")
        torch.jit.script(squeezenet(classes, seed)).save(str(path))
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="build a model file for the tracking graphs")
    ap.add_argument("model", choices=["squeezenet"])
    ap.add_argument("out", help="file to write (.pt)")
    ap.add_argument("--classes", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    print(f"wrote {save_squeezenet(a.out, a.classes, a.seed)}")


if __name__ == "__main__":
    main()
