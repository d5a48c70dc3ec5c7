"""Node.report(): what a node says of itself reaches the graph's stats (--stats, --stats-json),
after teardown too, and a report that raises is shown as an error, never raised."""

from __future__ import annotations

import textwrap

from flowml import SCALAR, Input, Node
from flowml.graph import load_graph
from flowml.plugins import Registry
from flowml.runtime.scheduler import Scheduler
from flowml.runtime.stats import stats_table

from runtime_nodes import Counter


class Reporting(Node):
    """A sink that counts what it saw and reports it."""

    type_name = "test.reporting"
    inputs = (Input("value", SCALAR),)

    def setup(self, ctx):
        self.seen = 0

    def process(self, value):
        self.seen += 1

    def report(self):
        return {"seen": self.seen, "latency_ms": {"p50": 1.5, "p99": None}}


class Broken(Reporting):
    type_name = "test.broken_report"

    def report(self):
        raise RuntimeError("no counters")


def test_a_nodes_report_is_in_the_stats_and_the_table(tmp_path):
    reg = Registry()
    for cls in (Counter, Reporting, Broken):
        reg.add(cls, "runtime-tests")
    path = tmp_path / "graph.yaml"
    path.write_text(textwrap.dedent("""\
        flowml: 1
        nodes:
          src: {type: test.counter, params: {frames: 5}}
          rep: {type: test.reporting, inputs: {value: src/value}}
          bad: {type: test.broken_report, inputs: {value: src/value}}
        """))
    sched = Scheduler(load_graph(path, reg))
    with sched:
        sched.run()
    nodes = sched.stats.as_dict()["nodes"]  # read after teardown, as flowml run writes it
    assert nodes["rep"]["report"] == {"seen": 5, "latency_ms": {"p50": 1.5, "p99": None}}
    assert nodes["bad"]["report"] == {"error": "RuntimeError: no counters"}
    assert "report" not in nodes["src"]
    caption = stats_table(sched.stats).caption
    assert "rep: seen 5  latency_ms p50 1.5" in caption and "bad: error RuntimeError" in caption
