"""NodeContext.wired: the runtime tells each node, before setup, which of its outputs the graph
reads; a reload that changes that set keeps the node and tells it (no setup again, no stale set)."""

from flowml import SCALAR, Node, Output
from flowml.runtime.scheduler import Scheduler
from flowml.testing import NodeHarness

SEEN: list[tuple[str, frozenset | None]] = []


class TwoOutputs(Node):
    """Emits ``a`` = 1 and ``b`` = 2, each only when wired (as a node that skips unread work)."""

    type_name = "test.two_outputs"
    outputs = (Output("a", SCALAR), Output("b", SCALAR))

    def setup(self, ctx):
        SEEN.append((ctx.node_id, ctx.wired))

    def process(self):
        wired = self.ctx.wired
        return {k: v for k, v in (("a", 1.0), ("b", 2.0)) if wired is None or k in wired}


GRAPH = """
    flowml: 1
    clock: {{fps: 30}}
    mode: offline
    nodes:
      two: {{type: test.two_outputs}}
      alone: {{type: test.two_outputs}}
      rec: {{type: test.record, inputs: {{value: two/{port}}}, params: {{key: wired}}}}
"""


def test_nodes_know_their_wired_outputs_and_a_rewiring_tells_the_kept_node(graph, registry):
    import runtime_nodes

    registry.add(TwoOutputs, "runtime-tests")
    SEEN.clear()
    seen_outputs = []
    with Scheduler(graph(GRAPH.format(port="b"))) as sched:
        assert dict(SEEN) == {"two": frozenset({"b"}), "alone": frozenset()}
        sched.after_tick.append(lambda tick, outputs: seen_outputs.append(dict(outputs["two"])))
        assert sched.run(frames=2).ok
        assert runtime_nodes.RECORDS["wired"] == [2.0, 2.0]
        assert seen_outputs[-1] == {"b": 2.0}  # `a` was not computed
        SEEN.clear()
        done = sched.request_reload(graph(GRAPH.format(port="b"))).result(timeout=5)
        assert "two" in done["kept"] and SEEN == []  # the same wiring: kept
        node = sched.nodes["two"].node
        done = sched.request_reload(graph(GRAPH.format(port="a"))).result(timeout=5)
        assert {"two", "alone"} <= set(done["kept"]) and SEEN == []  # no setup again
        assert sched.nodes["two"].node is node and node.ctx.wired == frozenset({"a"})
        assert sched.run(frames=2).ok
        assert seen_outputs[-1] == {"a": 1.0}  # the next ticks compute what is read now
        assert runtime_nodes.RECORDS["wired"][-2:] == [1.0, 1.0]


def test_outside_a_graph_wired_is_unknown():
    SEEN.clear()
    with NodeHarness(TwoOutputs, node_id="h") as h:
        assert h.process() == {"a": 1.0, "b": 2.0}
    assert SEEN == [("h", None)]
