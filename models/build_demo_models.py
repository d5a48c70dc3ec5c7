"""Build the demo's model with no download: ``python models/build_demo_models.py [--out DIR]``.

A thin wrapper: the model and its builder live in the flowml package (``flowml.models.toon``),
so installed wheels have them too (``flowml demo`` builds it into its own folder). Writes
``toon.pt`` (TorchScript) and ``toon.pt2`` (torch.export) into ``models/`` by default.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from flowml.models.toon import Toon, build as _build

HERE = Path(__file__).resolve().parent
__all__ = ["Toon", "build", "main"]


def build(out: Path = HERE) -> list[Path]:
    """Write ``toon.pt`` and ``toon.pt2`` into ``out``; return their paths."""
    return _build(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write to (default: models/)")
    args = parser.parse_args()
    started = time.perf_counter()
    for path in build(args.out):
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    print(f"done in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
