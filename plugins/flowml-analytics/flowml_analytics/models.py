"""Build torchvision's video classifiers (r3d_18, mc3_18, r2plus1d_18) as files ``torch.model``
loads, with random weights (nothing is downloaded) or the user's own state dict::

    python -m flowml_analytics.models r3d_18 models/r3d_18.pt              # TorchScript
    python -m flowml_analytics.models r2plus1d_18 models/r21d.pt2 --frames 16   # torch.export
    python -m flowml_analytics.models r3d_18 mine.pt --weights my_r3d.pth --classes 10

The model takes a clip ``(B, 3, T, H, W)`` (``video.clip``'s BCTHW layout) and returns logits
``(B, classes)``. The file is traced / exported for ``--frames`` x ``--size`` clips; it takes
any batch B (TorchScript's trace keeps the batch free; torch.export is given a dynamic batch
dimension, 1 to 1024), so ``video.clip``'s batched clips (``input: frames``) run at batch n.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

ARCHITECTURES = ("r3d_18", "mc3_18", "r2plus1d_18")


def build(name: str, *, classes: int = 400, seed: int = 0, weights: Path | None = None):
    """The torchvision model ``name`` in eval mode: seeded random weights, or ``weights``
    (a state dict saved with ``torch.save(model.state_dict(), path)``)."""
    import torch
    from torchvision.models import video

    if name not in ARCHITECTURES:
        raise SystemExit(f"unknown model {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    torch.manual_seed(seed)
    model = getattr(video, name)(weights=None, num_classes=classes)
    if weights is not None:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
    return model.eval()


def export(model, out: Path, frames: int = 16, size: int = 112) -> Path:
    """Save ``model`` to ``out``: torch.export (``.pt2``) or TorchScript (any other suffix)."""
    import torch

    example = torch.randn(1, 3, frames, size, size)
    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        if out.suffix == ".pt2":  # batch 2 as the example: export specialises a dimension of size 1
            batch = torch.export.Dim("batch", min=1, max=1024)
            torch.export.save(torch.export.export(model, (example.expand(2, -1, -1, -1, -1).contiguous(),),
                                                  dynamic_shapes=({0: batch},)), str(out))
        else:
            with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; torch.model still loads it
                warnings.simplefilter("ignore")
                torch.jit.save(torch.jit.trace(model, example, check_trace=False), str(out))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m flowml_analytics.models", description=__doc__.split("\n\n")[0])
    ap.add_argument("name", choices=ARCHITECTURES)
    ap.add_argument("out", type=Path, help=".pt (TorchScript) or .pt2 (torch.export)")
    ap.add_argument("--frames", type=int, default=16, help="T of the example clip (default 16)")
    ap.add_argument("--size", type=int, default=112, help="height and width of the example clip (default 112)")
    ap.add_argument("--classes", type=int, default=400, help="number of classes (default 400, Kinetics)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    ap.add_argument("--weights", type=Path, default=None, help="a state dict to load instead of random weights")
    a = ap.parse_args(argv)
    model = build(a.name, classes=a.classes, seed=a.seed, weights=a.weights)
    print(export(model, a.out, a.frames, a.size))


if __name__ == "__main__":
    main()
