"""Pure nodes (``Node.pure``): called only when their params or their producers' outputs
changed since their last call; otherwise their last outputs are handed on (``OnChange``)."""

from __future__ import annotations

from runtime_nodes import RECORDS

from flowml.runtime.scheduler import Scheduler


def test_a_pure_node_without_inputs_runs_once_and_its_consumers_see_it_every_tick(graph):
    g = graph("""
        flowml: 1
        clock: {fps: 1000}
        mode: offline
        nodes:
          const: {type: test.pure_constant, params: {value: 5}}
          pure: {type: test.pure_calls, inputs: {value: const/value}}
          rec: {type: test.record, inputs: {value: pure/value}}
    """)
    with Scheduler(g) as sched:
        result = sched.run(frames=10)
    s = result.stats.nodes
    assert (s["const"].calls, s["const"].held) == (1, 9)
    assert (s["pure"].calls, s["pure"].held) == (1, 9)  # its producer handed on the same outputs
    assert RECORDS["default"] == [(5, 1)] * 10


def test_a_pure_node_runs_again_when_a_param_changes_and_only_then(graph):
    g = graph("""
        flowml: 1
        clock: {fps: 1000}
        mode: offline
        nodes:
          const: {type: test.pure_constant, params: {value: 5}}
          rec: {type: test.record, inputs: {value: const/value}}
    """)
    with Scheduler(g) as sched:
        sched.run(frames=4)
        sched.set_params("const", {"value": 7})
        result = sched.run(frames=4)
    assert result.stats.nodes["const"].calls == 2
    assert RECORDS["default"] == [5] * 4 + [7] * 4


def test_a_pure_node_behind_a_changing_producer_runs_every_tick(graph):
    g = graph("""
        flowml: 1
        nodes:
          src: {type: test.counter, params: {frames: 10}}
          pure: {type: test.pure_calls, inputs: {value: src/value}}
          rec: {type: test.record, inputs: {value: pure/value}}
    """)
    with Scheduler(g) as sched:
        result = sched.run()
    assert (result.stats.nodes["pure"].calls, result.stats.nodes["pure"].held) == (10, 0)
    assert RECORDS["default"] == [(i, i + 1) for i in range(10)]


def test_a_pure_node_behind_a_held_producer_runs_when_the_producer_does(graph):
    g = graph("""
        flowml: 1
        nodes:
          src: {type: test.counter, params: {frames: 10}}
          every: {type: test.add, inputs: {value: src/value}, every: 3}
          pure: {type: test.pure_calls, inputs: {value: every/value}}
          rec: {type: test.record, inputs: {value: pure/value}}
    """)
    with Scheduler(g) as sched:
        result = sched.run()
    assert (result.stats.nodes["pure"].calls, result.stats.nodes["pure"].held) == (4, 6)
    assert RECORDS["default"] == [(1, 1)] * 3 + [(4, 2)] * 3 + [(7, 3)] * 3 + [(10, 4)]


def test_a_node_not_declared_pure_runs_every_tick_with_the_same_inputs(graph):
    g = graph("""
        flowml: 1
        clock: {fps: 1000}
        mode: offline
        nodes:
          const: {type: test.pure_constant}
          calls: {type: test.calls, inputs: {value: const/value}}
    """)
    with Scheduler(g) as sched:
        result = sched.run(frames=6)
    assert (result.stats.nodes["calls"].calls, result.stats.nodes["const"].calls) == (6, 1)


def test_a_pure_call_that_failed_is_not_reused_the_next_tick_calls_again(graph):
    g = graph("""
        flowml: 1
        clock: {fps: 1000}
        mode: offline
        nodes:
          const: {type: test.pure_constant, params: {value: 3, fail_first: 2}}
          rec: {type: test.record, inputs: {value: const/value}}
    """)
    with Scheduler(g, on_error="skip") as sched:
        result = sched.run(frames=6)
    assert result.stats.nodes["const"].calls == 1  # the third call is the first that returned
    assert result.stats.nodes["const"].errors == 2
    assert RECORDS["default"] == [3] * 4
