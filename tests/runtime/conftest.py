import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import runtime_nodes  # noqa: E402

from flowml.graph import load_graph  # noqa: E402
from flowml.plugins import Registry  # noqa: E402


@pytest.fixture
def registry():
    reg = Registry()
    for cls in (runtime_nodes.Counter, runtime_nodes.LiveCounter, runtime_nodes.AddOne,
                runtime_nodes.Blob, runtime_nodes.Record, runtime_nodes.Fail, runtime_nodes.Calls,
                runtime_nodes.BackgroundCamera):
        reg.add(cls, "runtime-tests")
    return reg


@pytest.fixture
def graph(tmp_path, registry):
    """graph(yaml_text) -> ValidatedGraph."""
    runtime_nodes.RECORDS.clear()
    runtime_nodes.EVENTS.clear()

    def make(text: str):
        p = tmp_path / "graph.yaml"
        p.write_text(textwrap.dedent(text))
        return load_graph(p, registry)

    return make
