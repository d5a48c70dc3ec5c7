import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import control_nodes  # noqa: E402
from control_helpers import LiveGraphs  # noqa: E402

from flowml.plugins import Registry  # noqa: E402


@pytest.fixture
def registry():
    reg = Registry()
    for cls in control_nodes.ALL:
        reg.add(cls, "control-tests")
    return reg


@pytest.fixture
def live(tmp_path, registry):
    """live.start(yaml_text, **settings) -> a running graph with its control session."""
    control_nodes.reset()
    graphs = LiveGraphs(tmp_path, registry)
    yield graphs
    graphs.stop_all()
