import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).parent.parent / "control"))
from control_helpers import LiveGraphs  # noqa: E402
import live_nodes  # noqa: E402
import runtime_nodes  # noqa: E402

from flowml.graph import load_graph  # noqa: E402
from flowml.plugins import Registry  # noqa: E402


@pytest.fixture
def registry():
    reg = Registry()
    for cls in (runtime_nodes.Counter, runtime_nodes.LiveCounter, runtime_nodes.AddOne,
                runtime_nodes.Blob, runtime_nodes.Record, runtime_nodes.Fail, runtime_nodes.Calls,
                runtime_nodes.BackgroundCamera, runtime_nodes.PureCalls, runtime_nodes.PureConstant):
        reg.add(cls, "runtime-tests")
    for cls in live_nodes.ALL:
        reg.add(cls, "runtime-tests")
    return reg


@pytest.fixture
def graph(tmp_path, registry):
    """graph(yaml_text) -> ValidatedGraph."""
    runtime_nodes.RECORDS.clear()
    runtime_nodes.EVENTS.clear()
    live_nodes.SEEN.clear()

    def make(text: str):
        p = tmp_path / "graph.yaml"
        p.write_text(textwrap.dedent(text))
        return load_graph(p, registry)

    return make


@pytest.fixture
def live(tmp_path, registry):
    """live.start(yaml_text, **settings) -> a graph running on its own thread with its
    control session (tests/control/control_helpers.py)."""
    runtime_nodes.RECORDS.clear()
    runtime_nodes.EVENTS.clear()
    live_nodes.SEEN.clear()
    graphs = LiveGraphs(tmp_path, registry)
    yield graphs
    graphs.stop_all()
