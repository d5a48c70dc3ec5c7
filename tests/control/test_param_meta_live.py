"""Param metadata against a running graph: non-live params refused over OSC (oscsend) and in
presets, a model's path changed over OSC loads the new model, `flowml nodes` shows the tags."""

from __future__ import annotations

import json

import yaml
from control_helpers import LOOPBACK, LiveGraphs, OscDump, oscsend, wait_until
from control_nodes import ALL, FRAMES

from flowml import SCALAR, Field, Input, Node, Output, Params, cli
from flowml.plugins import load_registry

NOT_LIVE = "changes only in the graph file; it rebuilds the node"


class Fixed(Node):
    """A node with a param that only the graph file may change."""

    type_name = "meta.fixed"
    inputs = (Input("value", SCALAR),)
    outputs = (Output("value", SCALAR),)

    class Params(Params):
        mode: str = Field("a", live=False, description="read in setup only")
        offset: float = Field(0.0, live=False)
        gain: float = Field(1.0, ge=0, le=10)

    def process(self, value):
        FRAMES[self.ctx.node_id].append(self.params)
        return value * self.params.gain + self.params.offset


GRAPH = """
flowml: 1
clock: {fps: 100}
nodes:
  k: {type: ctl.knobs}
  f: {type: meta.fixed, inputs: {value: k/value}, params: {mode: b}}
"""


def test_non_live_params_are_refused_over_osc_and_the_graph_runs_on(live):
    live.registry.add(Fixed, "meta-tests")
    with OscDump() as dump:
        run = live.start(GRAPH, reply=(LOOPBACK, dump.port))
        port = run.osc_port
        oscsend(port, "/f/mode", "s", "c")
        oscsend(port, "/f/offset", "f", 2.0)
        errors = dump.wait_for(lambda m: m.address == "/flowml/error", n=2, timeout=10)
        reasons = {m.args[0]: m.args[1] for m in errors}
        assert NOT_LIVE in reasons["/f/mode"] and NOT_LIVE in reasons["/f/offset"]
        oscsend(port, "/f/offset/expr", "s", "1 + sin(t)")  # nor may an expression move it
        dump.wait_for(lambda m: m.address == "/flowml/error" and m.args[0] == "/f/offset/expr"
                      and NOT_LIVE in m.args[1], timeout=10)
        oscsend(port, "/f/gain", "f", 3.0)  # a live param of the same node still is
        wait_until(lambda: FRAMES["f"] and FRAMES["f"][-1].gain == 3.0, timeout=10)
        p = FRAMES["f"][-1]
        assert (p.mode, p.offset) == ("b", 0.0) and run.thread.is_alive()


def test_a_graph_file_expression_on_a_non_live_param_is_reported_and_ignored(live, caplog):
    live.registry.add(Fixed, "meta-tests")
    live.start(GRAPH.replace("params: {mode: b}", 'params: {mode: b, offset: {expr: "t"}}'))
    wait_until(lambda: len(FRAMES["f"]) > 10, timeout=10)
    assert {p.offset for p in FRAMES["f"]} == {0.0}
    logged = [r.getMessage() for r in caplog.records if "/f/offset" in r.getMessage()]
    assert logged and "expression 't' ignored" in logged[0] and NOT_LIVE in logged[0]


def test_presets_leave_non_live_params_out(live):
    live.registry.add(Fixed, "meta-tests")
    presets = live.folder / "graph.presets.yaml"
    presets.write_text(yaml.safe_dump({"old": {"f": {"mode": "b", "gain": 2.0}},
                                       "moved": {"f": {"mode": "z", "gain": 4.0}}}))
    with OscDump() as dump:
        run = live.start(GRAPH, reply=(LOOPBACK, dump.port))
        port = run.osc_port
        oscsend(port, "/flowml/preset/recall", "s", "old")  # mode as it is: no problem
        wait_until(lambda: FRAMES["f"] and FRAMES["f"][-1].gain == 2.0, timeout=10)
        oscsend(port, "/flowml/preset/recall", "s", "moved")
        err = dump.wait_for(lambda m: m.address == "/flowml/error", timeout=10)[0]
        assert "/f/mode" in err.args[1] and NOT_LIVE in err.args[1]
        wait_until(lambda: FRAMES["f"][-1].gain == 4.0, timeout=10)  # the rest applied
        assert FRAMES["f"][-1].mode == "b"
        assert [m for m in dump.messages if m.address == "/flowml/error"] == [err]
        oscsend(port, "/flowml/preset/save", "s", "new")
        dump.wait_for(lambda m: m.address == "/flowml/preset/saved", timeout=10)
    saved = yaml.safe_load(presets.read_text())["new"]["f"]
    assert saved == {"gain": 4.0}


def _save_model(path, value: float) -> None:
    import torch

    class Constant(torch.nn.Module):
        def __init__(self, v: float):
            super().__init__()
            self.v = v

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 0.0 + self.v

    torch.jit.script(Constant(value)).save(str(path))


def test_a_models_path_sent_over_osc_loads_the_new_model(tmp_path):
    """Issue 21 item 8, from OSC: the node is built anew on the new file."""
    import control_nodes

    _save_model(tmp_path / "a.pt", 0.0)
    _save_model(tmp_path / "b.pt", 1.0)
    control_nodes.reset()
    registry = load_registry()
    for cls in ALL:
        registry.add(cls, "control-tests")
    graphs = LiveGraphs(tmp_path, registry)
    try:
        run = graphs.start("""
            flowml: 1
            clock: {fps: 50}
            nodes:
              src: {type: capture.pattern, params: {size: [16, 16], pattern: bars}}
              net: {type: torch.model, inputs: {image: src/image}, params: {path: a.pt}}
              out: {type: ctl.sink, inputs: {value: net/image}}
        """)
        wait_until(lambda: FRAMES["out"], timeout=10)
        assert float(FRAMES["out"][-1].params.mean()) == 0.0
        old = run.sched.nodes["net"].node
        oscsend(run.osc_port, "/net/path", "s", "b.pt")
        wait_until(lambda: float(FRAMES["out"][-1].params.mean()) == 1.0, timeout=15)
        assert run.sched.nodes["net"].node is not old
        assert run.store.params["/net/path"].value == "b.pt"
    finally:
        graphs.stop_all()


def test_flowml_nodes_shows_the_metadata(capsys):
    assert cli.main(["nodes", "torch.model", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)["node_types"][0]
    params = {p["name"]: p for p in info["params"]}
    assert params["path"]["meta"] == {"rebuild": True, "file": "input"}
    assert params["path"]["tag"] == "in-file"
    assert params["inputs"]["tag"] == "not live" and params["precision"]["meta"] == {}
    assert cli.main(["nodes", "output.video"]) == 0
    lines = capsys.readouterr().out.splitlines()
    params_column = "".join(line.split("│")[-2].strip() for line in lines if line.count("│") > 2)
    assert "(out-file,rebuild)" in params_column and "(notlive)" in params_column.replace(" ", "")
