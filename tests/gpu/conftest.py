import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import gpu_nodes  # noqa: E402

from flowml.graph import load_graph  # noqa: E402
from flowml.plugins import Registry  # noqa: E402


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
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def gpu_graph(tmp_path):
    reg = Registry()
    for cls in gpu_nodes.ALL:
        reg.add(cls, "gpu-tests")
    gpu_nodes.RESULTS.clear()

    def make(text: str):
        p = tmp_path / "graph.yaml"
        p.write_text(textwrap.dedent(text))
        return load_graph(p, reg)

    return make
