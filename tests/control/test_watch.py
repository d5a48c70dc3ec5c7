"""--watch: editing the graph file (and a file a node reads) while the graph runs."""

from __future__ import annotations

import os
import textwrap

import pytest
from control_helpers import wait_until
from control_nodes import FRAMES, INSTANCES, SETUPS

GRAPH = """
flowml: 1
clock: {fps: 100}
nodes:
  src: {type: ctl.knobs}
  net: {type: ctl.model, inputs: {value: src/value}, params: {path: weights.txt, scale: 2.0}}
"""


def save_by_rename(path, text: str) -> None:
    """Save as many editors do: write a new file, rename it over the old one."""
    tmp = path.with_name(path.name + ".tmp~")
    tmp.write_text(textwrap.dedent(text))
    os.replace(tmp, path)


def test_edits_reload_keeping_unchanged_nodes(live):
    (live.folder / "weights.txt").write_text("v1")
    said: list[str] = []
    run = live.start(GRAPH, watch=True, say=said.append)
    run.wait_ticks(3)
    net = run.sched.nodes["net"].node
    assert SETUPS["net"] == 1 and INSTANCES["net"] == id(net)
    run.store.set("/src/gain", 7.0)            # a live tweak, to survive the edits

    # a param edit (saved by renaming over the file): same object, no setup again
    save_by_rename(run.path, GRAPH.replace("scale: 2.0", "scale: 5.0"))
    wait_until(lambda: FRAMES["net"][-1].params.scale == 5.0)
    assert run.sched.nodes["net"].node is net and SETUPS["net"] == 1
    wait_until(lambda: any("reloaded (2 nodes kept)" in line for line in said))
    assert FRAMES["src"][-1].params.gain == 7.0

    # a new node is built (saved in place)
    run.path.write_text(textwrap.dedent(GRAPH.replace("scale: 2.0", "scale: 5.0")) +
                        "  extra: {type: ctl.sink, inputs: {value: net/value}}\n")
    wait_until(lambda: FRAMES["extra"])
    assert run.sched.nodes["net"].node is net and SETUPS["net"] == 1
    wait_until(lambda: any("built extra" in line for line in said))
    assert FRAMES["extra"][-1].params == 7.0 * 5.0

    # a broken save: the errors are printed, the old graph runs on
    ticks, mark = run.ticks(), len(said)          # only what this save makes said counts
    save_by_rename(run.path, GRAPH.replace("ctl.model", "ctl.modle"))
    wait_until(lambda: any("the running graph goes on" in line for line in said[mark:]))
    error = next(line for line in said[mark:] if "unknown node type" in line)
    assert error.startswith(f"{run.path}:6:") and "did you mean 'ctl.model'?" in error
    run.wait_ticks(10)
    assert run.ticks() > ticks + 10 and "extra" in run.sched.nodes
    assert run.sched.nodes["net"].node is net and FRAMES["extra"][-1].params == 35.0

    # fixed again
    save_by_rename(run.path, GRAPH.replace("scale: 2.0", "scale: 3.0"))
    wait_until(lambda: "extra" not in run.sched.nodes)
    wait_until(lambda: FRAMES["net"][-1].params.scale == 3.0)
    assert run.sched.nodes["net"].node is net and SETUPS["net"] == 1
    wait_until(lambda: any("removed extra" in line for line in said))  # said once the swap is done


def test_a_node_that_fails_to_build_leaves_the_old_graph_running(live):
    (live.folder / "weights.txt").write_text("v1")
    said: list[str] = []
    run = live.start(GRAPH, watch=True, say=said.append)
    run.wait_ticks(3)
    save_by_rename(run.path, GRAPH + "  more: {type: ctl.model, inputs: {value: src/value}, "
                                     "params: {path: missing.txt}}\n")
    wait_until(lambda: any("reload failed" in line for line in said))
    line = next(line for line in said if "reload failed" in line)
    assert "node 'more' (ctl.model) failed in setup" in line and "missing.txt" in line
    run.wait_ticks(5)
    assert set(run.sched.nodes) == {"src", "net"} and run.thread.is_alive()


def test_a_changed_file_that_a_node_reads_rebuilds_that_node_only(live):
    weights = live.folder / "weights.txt"
    weights.write_text("v1")
    said: list[str] = []
    run = live.start(GRAPH, watch=True, say=said.append)
    run.wait_ticks(3)
    src = run.sched.nodes["src"].node
    run.store.set("/net/scale", 9.0)
    wait_until(lambda: FRAMES["net"][-1].params.scale == 9.0)
    weights.write_text("v2, retrained")
    wait_until(lambda: SETUPS["net"] == 2)
    wait_until(lambda: run.sched.nodes["net"].node.weights == "v2, retrained")
    assert run.sched.nodes["src"].node is src
    wait_until(lambda: any("weights.txt changed: rebuilding net" in line for line in said))
    wait_until(lambda: FRAMES["net"][-1].params.scale == 9.0)  # the live value is kept


def test_editing_a_python_function_file_reloads_it(tmp_path):
    from control_helpers import LiveGraphs
    from control_nodes import ALL

    from flowml.plugins import load_registry

    registry = load_registry()
    if registry.get("python.function") is None:
        pytest.skip("the python.function node (flowml-std) is not installed")
    for cls in ALL:
        registry.add(cls, "control-tests")
    (tmp_path / "effect.py").write_text("def f(value):\n    return value + 1\n")
    graphs = LiveGraphs(tmp_path, registry)
    said: list[str] = []
    try:
        graphs.start("""
            flowml: 1
            clock: {fps: 100}
            nodes:
              src: {type: ctl.knobs}
              fn: {type: python.function, inputs: {value: src/value},
                   params: {path: effect.py, function: f, inputs: ["value:scalar"], outputs: ["value:scalar"]}}
              out: {type: ctl.sink, inputs: {value: fn/value}}
        """, watch=True, say=said.append)
        wait_until(lambda: FRAMES["out"] and FRAMES["out"][-1].params == 2.0)
        (tmp_path / "effect.py").write_text("def f(value):\n    return value + 100\n")
        wait_until(lambda: FRAMES["out"][-1].params == 101.0)
        wait_until(lambda: any("effect.py changed: rebuilding fn" in line for line in said))
    finally:
        graphs.stop_all()


# -- what --watch watches: input files only (flowml.parammeta) ---------------------------------

RECORDER = """
flowml: 1
clock: {fps: 30}
nodes:
  src: {type: capture.pattern, params: {size: [64, 48], pattern: scene}}
  rec: {type: output.video, inputs: {image: src/image}, params: {path: rec/take.mp4, fps: 30}}
"""


def test_a_recording_under_watch_is_never_rebuilt_and_plays_whole(tmp_path):
    """Issue 21 item 3: output.video's own writes used to 'change' its path, so --watch
    rebuilt the writer (the file reopened with "w") every ~0.4 s."""
    import json
    import subprocess
    import sys

    import av

    graph = tmp_path / "show.yaml"
    graph.write_text(textwrap.dedent(RECORDER))
    stats = tmp_path / "stats.json"
    r = subprocess.run([sys.executable, "-m", "flowml.cli", "run", str(graph), "--watch",
                        "--duration", "6", "--stats-json", str(stats)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "watching show.yaml" in r.stderr
    assert "rebuilding" not in r.stderr and "reloaded" not in r.stderr, r.stderr
    calls = json.loads(stats.read_text())["nodes"]["rec"]["calls"]
    assert calls >= 30  # 6 s at 30 fps, with room for a loaded machine
    with av.open(str(tmp_path / "rec" / "take.mp4")) as container:
        frames = [f.pts for f in container.decode(video=0)]
    assert len(frames) == calls  # every frame the writer got is in the one take
    assert frames == sorted(frames) and len(set(frames)) == len(frames)


def _save_model(path, value: float) -> None:
    """A TorchScript model whose output is ``value`` everywhere (so which one ran shows)."""
    import torch

    class Constant(torch.nn.Module):
        def __init__(self, v: float):
            super().__init__()
            self.v = v

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 0.0 + self.v

    torch.jit.script(Constant(value)).save(str(path))


MODEL_GRAPH = """
flowml: 1
clock: {fps: 50}
nodes:
  src: {type: capture.pattern, params: {size: [16, 16], pattern: bars}}
  net: {type: torch.model, inputs: {image: src/image}, params: {path: a.pt}}
  out: {type: ctl.sink, inputs: {value: net/image}}
"""


def test_editing_a_models_path_loads_the_new_model(tmp_path):
    """Issue 21 item 8: torch.model's path changed in the graph file had no effect, and the
    reload said the node was kept."""
    import control_nodes
    from control_helpers import LiveGraphs
    from control_nodes import ALL

    from flowml.plugins import load_registry

    _save_model(tmp_path / "a.pt", 0.0)
    _save_model(tmp_path / "b.pt", 1.0)
    control_nodes.reset()
    registry = load_registry()
    for cls in ALL:
        registry.add(cls, "control-tests")
    graphs = LiveGraphs(tmp_path, registry)
    said: list[str] = []
    try:
        run = graphs.start(MODEL_GRAPH, watch=True, say=said.append)
        wait_until(lambda: FRAMES["out"], timeout=10)
        assert float(FRAMES["out"][-1].params.mean()) == 0.0
        old = run.sched.nodes["net"].node
        save_by_rename(run.path, MODEL_GRAPH.replace("path: a.pt", "path: b.pt"))
        wait_until(lambda: float(FRAMES["out"][-1].params.mean()) == 1.0, timeout=15)
        assert run.sched.nodes["net"].node is not old
        line = wait_until(lambda: next((s for s in said if "reloaded" in s), None), timeout=10)
        assert "net" in line.split(";", 1)[-1], line  # built anew, not among the kept
        assert "2 nodes kept" in line, line
    finally:
        graphs.stop_all()
