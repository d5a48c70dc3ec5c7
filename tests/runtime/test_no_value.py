"""``flowml.NO_VALUE``: an output with no value this tick skips the consumers that need it.

A gate passes every ``every``-th value and says NO_VALUE otherwise. What must hold: the
consumers of a gated value run only on the ticks it has a value (and spread the absence
downstream), an optional input gets None instead, skipped ticks are counted as ``skipped``,
never as drops, and every tick still completes; ``metadata_keys`` reach a consumer's
``check_upstream`` when the graph is validated.
"""

from __future__ import annotations

import textwrap
import threading

import pytest
import runtime_nodes
from runtime_nodes import RECORDS

import flowml
from flowml import JSON, NO_VALUE, SCALAR, Field, Input, Node, Output, Params
from flowml.graph import load_graph
from flowml.graph.errors import GraphErrors
from flowml.plugins import Registry
from flowml.runtime.scheduler import Scheduler
from flowml.testing import NodeHarness

_lock = threading.Lock()


class Gate(Node):
    """The value on every ``every``-th tick, NO_VALUE on the others."""

    type_name = "nv.gate"
    inputs = (Input("value", SCALAR),)
    outputs = (Output("value", SCALAR),)

    class Params(Params):
        every: int = Field(3, ge=1)

    def process(self, value):
        return value if value % self.params.every == 0 else NO_VALUE


class WorkerGate(Gate):
    """A Gate on its own worker thread (its consumers get a future)."""

    type_name = "nv.worker_gate"
    blocking = True


class Split(Node):
    """Two outputs: ``kept`` gated, ``count`` always there."""

    type_name = "nv.split"
    inputs = (Input("value", SCALAR),)
    outputs = (Output("kept", SCALAR), Output("count", SCALAR))

    def process(self, value):
        return {"kept": value if value % 2 == 0 else NO_VALUE, "count": value}


class Join(Node):
    """Records ``(a, b)``; ``b`` is optional."""

    type_name = "nv.join"
    inputs = (Input("a", SCALAR), Input("b", SCALAR, optional=True))

    class Params(Params):
        key: str = "join"

    def process(self, a, b=None):
        with _lock:
            RECORDS[self.params.key].append((a, b))


class Meta(Node):
    """A JSON producer that declares its record keys."""

    type_name = "nv.meta"
    inputs = (Input("value", SCALAR),)
    outputs = (Output("meta", JSON),)

    class Params(Params):
        keys: list[str] = ["probability", "predicted_class"]

    @classmethod
    def metadata_keys(cls, params):
        return frozenset(params.keys)

    def process(self, value):
        return {k: value for k in self.params.keys}


class Opaque(Meta):
    """The same, but it does not say which keys it emits."""

    type_name = "nv.opaque"

    @classmethod
    def metadata_keys(cls, params):
        return None


class Needs(Node):
    """Needs some keys in its input records; says so at validation."""

    type_name = "nv.needs"
    inputs = (Input("meta", JSON),)

    class Params(Params):
        keys: list[str] = ["probability"]

    @classmethod
    def check_upstream(cls, params, upstream, graph_dir):
        keys = upstream.get("meta")
        if keys is None:
            return []
        return [f"rules.yaml:{i + 3}: key {k!r} is not emitted upstream (it emits {sorted(keys)})"
                for i, k in enumerate(params.keys) if k not in keys]

    def process(self, meta):
        pass


@pytest.fixture
def nv_graph(tmp_path):
    reg = Registry()
    for cls in (runtime_nodes.Counter, runtime_nodes.LiveCounter, runtime_nodes.AddOne,
                runtime_nodes.Record, Gate, WorkerGate, Split, Join, Meta, Opaque, Needs):
        reg.add(cls, "nv-tests")
    RECORDS.clear()

    def make(text: str):
        p = tmp_path / "graph.yaml"
        p.write_text(textwrap.dedent(text))
        return load_graph(p, reg)

    return make


def run(g, **kw):
    sched = Scheduler(g, **kw)
    seen: list[dict] = []
    sched.after_tick.append(lambda tick, values: seen.append(values))
    with sched:
        result = sched.run()
    return result, seen


CHAIN = """
flowml: 1
max_in_flight: 3
nodes:
  src:  {{type: test.counter, params: {{frames: 30}}}}
  gate: {{type: {gate}, inputs: {{value: src/value}}, params: {{every: 3}}}}
  add:  {{type: test.add, inputs: {{value: gate/value}}, params: {{offset: 100}}}}
  rec:  {{type: test.record, inputs: {{value: add/value}}}}
"""


@pytest.mark.parametrize("gate", ["nv.gate", "nv.worker_gate"])
def test_consumers_run_only_on_ticks_with_a_value_and_nothing_is_dropped(nv_graph, gate):
    result, seen = run(nv_graph(CHAIN.format(gate=gate)))
    assert result.ok and result.reason == "end of stream"
    assert RECORDS["default"] == [100 + i for i in range(0, 30, 3)]
    nodes = result.stats.nodes
    assert nodes["gate"].calls == 30 and nodes["gate"].skipped == 0
    assert (nodes["add"].calls, nodes["add"].skipped) == (10, 20)
    assert (nodes["rec"].calls, nodes["rec"].skipped) == (10, 20)  # spread downstream
    assert all(n.drops == 0 for n in nodes.values())
    assert result.stats.completed == 30 and result.stats.source_drops == 0
    assert result.stats.as_dict()["nodes"]["add"]["skipped"] == 20
    # the after-tick hooks (expressions read scalar outputs) never see NO_VALUE
    values = [v for tick in seen for out in tick.values() if isinstance(out, dict) for v in out.values()]
    assert NO_VALUE not in values and len(seen) == 30


def test_live_mode_counts_skips_not_drops(nv_graph):
    g = nv_graph(CHAIN.format(gate="nv.gate").replace(
        "test.counter, params: {frames: 30}", "test.live_counter, params: {frames: 30, interval: 0.002}"))
    result, seen = run(g)
    assert result.ok
    values = [tick["src"]["value"] for tick in seen]  # the frames the graph took (live: not all)
    gated = sum(v % 3 != 0 for v in values)
    rec, add = result.stats.nodes["rec"], result.stats.nodes["add"]
    assert add.skipped == rec.skipped == gated and add.calls == len(values) - gated
    assert rec.calls + rec.drops == len(values) - gated  # a drop is only a frame it could not take
    assert RECORDS["default"] and all((v - 100) % 3 == 0 for v in RECORDS["default"])


def test_an_optional_input_gets_none_and_the_node_runs(nv_graph):
    result, _ = run(nv_graph("""
        flowml: 1
        nodes:
          src:  {type: test.counter, params: {frames: 7}}
          gate: {type: nv.gate, inputs: {value: src/value}, params: {every: 3}}
          join: {type: nv.join, inputs: {a: src/value, b: gate/value}}
    """))
    assert result.ok
    assert RECORDS["join"] == [(i, i if i % 3 == 0 else None) for i in range(7)]
    assert result.stats.nodes["join"].skipped == 0


def test_one_output_without_a_value_leaves_the_other_one(nv_graph):
    result, _ = run(nv_graph("""
        flowml: 1
        nodes:
          src:   {type: test.counter, params: {frames: 6}}
          split: {type: nv.split, inputs: {value: src/value}}
          kept:  {type: test.record, inputs: {value: split/kept}, params: {key: kept}}
          count: {type: test.record, inputs: {value: split/count}, params: {key: count}}
    """))
    assert result.ok
    assert RECORDS["kept"] == [0, 2, 4] and RECORDS["count"] == list(range(6))


def test_harness_skips_like_a_graph():
    with NodeHarness(runtime_nodes.AddOne) as h:
        assert h.process(value=NO_VALUE) == {"value": NO_VALUE}
        assert h.process(value=1) == {"value": 2}
    RECORDS.clear()
    with NodeHarness(Join) as h:
        h.process(a=1, b=NO_VALUE)
    assert RECORDS["join"] == [(1, None)]
    with NodeHarness(Gate) as h:
        assert h.process(value=1) == {"value": NO_VALUE}  # a bare return, for one output


def test_no_value_is_one_falsy_object():
    import copy
    import pickle

    assert flowml.NO_VALUE is NO_VALUE and not NO_VALUE and NO_VALUE is not None
    assert copy.deepcopy(NO_VALUE) is NO_VALUE and pickle.loads(pickle.dumps(NO_VALUE)) is NO_VALUE
    assert repr(NO_VALUE) == "flowml.NO_VALUE"


CHECKED = """
flowml: 1
nodes:
  src:  {{type: test.counter, params: {{frames: 2}}}}
  meta: {{type: {producer}, inputs: {{value: src/value}}}}
  need:
    type: nv.needs
    inputs: {{meta: meta/meta}}
    params: {{keys: [probability, tracker_id]}}
"""


def test_check_upstream_gets_the_producers_metadata_keys_at_validation(nv_graph):
    with pytest.raises(GraphErrors) as err:
        nv_graph(CHECKED.format(producer="nv.meta"))
    (e,) = err.value.errors
    assert e.line == 9 and "node 'need': rules.yaml:4: key 'tracker_id' is not emitted" in e.message
    assert "['predicted_class', 'probability']" in e.message
    nv_graph(CHECKED.format(producer="nv.opaque"))  # unknown keys: not checked, no error


GATE = threading.Event()


class Held(Node):
    """A worker node whose first call waits until GATE is set (at most 5 s)."""

    type_name = "nv.held"
    blocking = True
    inputs = (Input("value", SCALAR),)
    outputs = (Output("value", SCALAR),)

    def setup(self, ctx):
        self.calls = 0

    def process(self, value):
        self.calls += 1
        if self.calls == 1:
            RECORDS["gate"].append(GATE.wait(5))
        return NO_VALUE if value % 2 else value


class Opener(Node):
    """Inline, after the worker chain in the file: sets GATE on its third call."""

    type_name = "nv.opener"
    inputs = (Input("value", SCALAR),)

    def setup(self, ctx):
        self.calls = 0

    def process(self, value):
        self.calls += 1
        if self.calls == 3:
            GATE.set()


def test_a_worker_consumer_of_a_worker_waits_on_its_own_thread_not_the_dispatchers(tmp_path):
    """rec (a worker) takes held's output while held (a worker) is still busy with frame 0:
    the dispatcher goes on and runs `open` for frames 1 and 2 meanwhile, which opens the gate.
    Were the dispatcher waiting for held, the gate would only open after 5 s (False)."""
    reg = Registry()
    for cls in (runtime_nodes.Counter, runtime_nodes.Record, Held, Opener):
        reg.add(cls, "nv-tests")
    RECORDS.clear()
    GATE.clear()
    p = tmp_path / "graph.yaml"
    p.write_text(textwrap.dedent("""
        flowml: 1
        max_in_flight: 3
        nodes:
          src:  {type: test.counter, params: {frames: 6}}
          held: {type: nv.held, inputs: {value: src/value}}
          rec:  {type: test.record, inputs: {value: held/value}}
          open: {type: nv.opener, inputs: {value: src/value}}
    """))
    result, _ = run(load_graph(p, reg))
    assert result.ok
    assert RECORDS["gate"] == [True]
    assert RECORDS["default"] == [0, 2, 4]  # in order; the odd frames had no value
    assert result.stats.nodes["rec"].skipped == 3 and result.stats.completed == 6
