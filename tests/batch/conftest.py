"""Fixtures of the batch tests: the media of ``batch_helpers`` made once per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from batch_helpers import CHECK, FRAMES, GOOD, GRAPH, Media, cli, write_video  # noqa: E402

import numpy as np  # noqa: E402


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> Media:
    root = tmp_path_factory.mktemp("batch")
    good = [root / "videos" / ("a" if i < 5 else "b") / f"clip{i}.mp4" for i in range(GOOD)]
    for i, p in enumerate(good):
        write_video(p, 64, 48, FRAMES, seed=i)
    odd = root / "videos" / "b" / "odd.mp4"
    write_video(odd, 48, 32, FRAMES, seed=99)
    corrupt = root / "videos" / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(7).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    (root / "check.py").write_text(CHECK)
    graph = root / "flip.yaml"
    graph.write_text(GRAPH.format(first=os.path.relpath(good[0], root), out="ref/example.mp4"))
    return Media(root, graph, good, root / "videos" / "missing.mp4", corrupt, odd)


@pytest.fixture(scope="session")
def reference(media: Media) -> dict[str, bytes]:
    """Each good input's output from a plain ``flowml run`` of the graph written for it."""
    refs = {}
    for p in media.good:
        g = media.root / f"ref_{p.stem}.yaml"
        out = media.root / "ref" / f"{p.stem}.mp4"
        g.write_text(GRAPH.format(first=p, out=out))
        assert cli("run", str(g)) == 0
        refs[p.stem] = out.read_bytes()
    return refs




def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if _cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none here)")
    for item in items:
        if "cuda" in item.keywords and "tests/batch" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)
