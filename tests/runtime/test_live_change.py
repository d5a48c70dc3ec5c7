"""Issue 21: the runtime under live change, each item as a user hits it (graph files, OSC from
liblo's oscsend, reloads, stop at any moment). CPU only; the GPU halves are in tests/gpu."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest
from control_helpers import OscDump, oscsend, wait_until
from live_nodes import SEEN
from runtime_nodes import EVENTS, RECORDS

from flowml.runtime import scheduler as scheduler_module
from flowml.runtime.scheduler import Scheduler


def test_a_live_blocking_sink_with_an_animated_param_takes_every_frame_it_has_time_for(live):
    """Item 1: param swaps used to be queued on the sink's worker as work, and the live drop
    check counted them as backlog: 201 ticks, 1 call, 200 drops."""
    run = live.start("""
        flowml: 1
        clock: {fps: 100}
        nodes:
          src: {type: test.counter}
          rec: {type: test.record, inputs: {value: src/value},
                params: {delay: {expr: "0.001 + 0.0005*sin(t*6)"}}}
    """, osc=False)
    delays = set()
    for _ in range(15):
        run.wait_ticks(10, timeout=20)
        delays.add(run.sched.params_of("rec").delay)
    result = run.stop()
    ticks, rec = result.stats.ticks, result.stats.nodes["rec"]
    assert rec.calls >= 0.9 * ticks, (rec.calls, ticks, rec.drops)
    assert rec.drops <= 0.1 * ticks, (rec.drops, ticks)
    assert len(delays) > 5 and all(0.0005 <= d <= 0.0015 for d in delays), delays


def test_a_change_a_node_refuses_is_answered_and_the_graph_runs_on(live):
    """Item 5 / issue 12 item 3: an inline node's on_params raising used to end run() with a
    bare exception; on a worker node it was swallowed. Now both answer /flowml/error, keep the
    old value and go on."""
    with OscDump() as dump:
        run = live.start("""
            flowml: 1
            clock: {fps: 60}
            nodes:
              src: {type: test.counter}
              inline: {type: live.refuse, inputs: {value: src/value}}
              worker: {type: live.worker_refuse, inputs: {value: src/value}}
              rec: {type: test.record, inputs: {value: inline/value}}
        """, reply=("127.0.0.1", dump.port))
        run.wait_ticks(5)
        oscsend(run.osc_port, "/inline/gain", "f", 9.0)
        oscsend(run.osc_port, "/worker/gain", "f", 8.0)
        errors = dump.wait_for(lambda m: m.address == "/flowml/error", n=2, timeout=10)
        said = " ".join(str(m.args) for m in errors)
        assert "/inline/gain" in said and "/worker/gain" in said and "over the limit" in said
        run.wait_ticks(5)
        assert run.thread.is_alive() and run.sched._failure is None
        assert run.sched.params_of("inline").gain == 1.0 == run.sched.params_of("worker").gain
        assert run.store.by_key[("inline", "gain")].value == 1.0
        oscsend(run.osc_port, "/inline/gain", "f", 3.0)  # a change it takes still works
        wait_until(lambda: SEEN["inline"] and SEEN["inline"][-1] == 3.0)
    result = run.stop()
    assert result.ok and 9.0 not in SEEN["inline"] and 8.0 not in SEEN["worker"]


def test_a_bad_host_frame_is_a_node_error_and_on_error_skip_applies(graph):
    """Item 5: a 2-D host frame raised a bare ValueError from the upload, with no node id,
    ignoring ``on_error: skip``."""
    text = """
        flowml: 1
        clock: src
        on_error: {policy}
        nodes:
          src: {{type: live.flat_frame, params: {{frames: 8, bad_at: 3}}}}
          rec: {{type: test.record, inputs: {{value: src/image}}}}
    """
    with Scheduler(graph(text.format(policy="skip"))) as sched:
        result = sched.run()
    assert result.ok and result.reason == "end of stream"
    assert RECORDS["default"] == pytest.approx([i / 255 for i in (0, 1, 2, 4, 5, 6, 7)])
    with Scheduler(graph(text.format(policy="stop"))) as sched:
        result = sched.run()
    # caught where the frame is made (the producer's output contract) or at the latest in
    # its upload; either way a NodeFailed that names the node and the frame
    assert result.error is not None and result.error.phase in ("process", "upload")
    assert str(result.error).startswith("node 'src' (live.flat_frame) failed")
    assert "on frame 3" in str(result.error)


def test_a_second_ctrl_c_during_setup_tears_down_what_was_built(graph):
    """Item 5: KeyboardInterrupt in a node's setup left the nodes built before it un-torn-down."""
    g = graph("""
        flowml: 1
        clock: src
        nodes:
          src: {type: test.counter, params: {frames: 3}}
          rec: {type: test.record, inputs: {value: src/value}}
          late: {type: live.interrupt_setup, inputs: {value: src/value}}
    """)
    sched = Scheduler(g)
    with pytest.raises(KeyboardInterrupt):
        sched.setup()
    assert EVENTS["default"] == ["teardown"] and not sched.nodes


def test_stop_joins_the_clock_before_the_source_is_torn_down(graph):
    """Item 4: stopping only set a flag, and teardown() closed the source while its process()
    still ran on the clock thread (for PyAV or NDI: a container closed under a decode)."""
    g = graph("""
        flowml: 1
        clock: src
        nodes:
          src: {type: live.slow_source, params: {seconds: 0.3}}
          rec: {type: test.record, inputs: {value: src/value}}
    """)
    for _ in range(3):
        SEEN.clear()
        sched = Scheduler(g)
        sched.setup()
        threading.Timer(0.45, sched.stop).start()
        result = sched.run()
        sched.teardown()
        assert result.reason == "stopped" and SEEN["teardown"] == ["after"]
        assert not [t for t in threading.enumerate() if t.name == "flowml-clock"]


def test_a_blocking_node_with_outputs_cannot_queue_without_bound_in_live_mode(graph):
    """Item 6: a blocking non-sink node in live mode queued 155 frames in 2 s (its consumer, a
    sink that was behind, dropped them, so nothing waited for it)."""
    g = graph("""
        flowml: 1
        clock: src
        max_in_flight: 2
        nodes:
          src: {type: test.live_counter, params: {interval: 0.001}}
          blk: {type: live.blocking_add, inputs: {value: src/value}, params: {delay: 0.02}}
          rec: {type: test.record, inputs: {value: blk/value}, params: {delay: 0.05}}
    """)
    sched = Scheduler(g)
    sched.setup()
    backlog, done = [], threading.Event()

    def sample():
        while not done.wait(0.01):
            backlog.append(sched.nodes["blk"].policy.worker.backlog)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = sched.run(duration=1.5)
    finally:
        done.set()
        sampler.join()
        sched.teardown()
    assert result.ok and max(backlog) <= 2, max(backlog)
    assert result.stats.nodes["rec"].drops > 0 and result.stats.source_drops > 0


def test_stopping_waits_a_bounded_time_for_a_node_that_never_returns(graph, monkeypatch, caplog):
    """Item 6: Ctrl-C waited without limit on a blocked worker."""
    monkeypatch.setattr(scheduler_module, "STOP_WAIT_S", 0.5)
    g = graph("""
        flowml: 1
        clock: {fps: 50}
        nodes:
          src: {type: test.counter}
          hang: {type: live.stuck, params: {seconds: 20}, inputs: {value: src/value}}
    """)
    t0 = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="flowml"):
        with Scheduler(g) as sched:
            sched.run(duration=0.3)
    assert time.perf_counter() - t0 < 8
    assert "node 'hang' (live.stuck) is still busy" in caplog.text


def test_expressions_see_the_outputs_of_a_blocking_node(live):
    """Item 7: an expression reading a blocking node's output saw 0.0 where it produced 7."""
    run = live.start("""
        flowml: 1
        clock: {fps: 60}
        nodes:
          src: {type: test.counter}
          blk: {type: live.blocking_add, inputs: {value: src/value}, params: {offset: 7}}
          knob: {type: live.tunable, inputs: {value: src/value}, params: {b: {expr: "min(blk.value, 9)"}}}
    """, osc=False)
    wait_until(lambda: run.sched.params_of("knob").b >= 7, timeout=10)
    assert run.stop().ok


def test_params_queued_for_a_node_that_a_reload_removes_are_dropped(live):
    """Item 10: pending params for a node that a reload removed raised KeyError."""
    text = """
        flowml: 1
        clock: {fps: 60}
        nodes:
          src: {type: test.counter}
          gone: {type: test.add, inputs: {value: src/value}}
          rec: {type: test.record, inputs: {value: src/value}}
    """
    run = live.start(text, osc=False)
    run.wait_ticks(3)
    smaller = live.load(run.path, text.replace(
        "          gone: {type: test.add, inputs: {value: src/value}}\n", ""))
    run.sched.set_params("gone", {"offset": 5})
    fut = run.sched.request_reload(smaller)
    assert fut.result(timeout=10)["removed"] == ["gone"]
    run.wait_ticks(5)
    assert run.stop().ok


def test_a_reload_asked_for_after_run_returned_applies_at_once(graph):
    """Item 10: request_reload() after run() returned never resolved."""
    text = """
        flowml: 1
        clock: src
        nodes:
          src: {{type: test.counter, params: {{frames: 3}}}}
          add: {{type: test.add, inputs: {{value: src/value}}, params: {{offset: {off}}}}}
          rec: {{type: test.record, inputs: {{value: add/value}}}}
    """
    with Scheduler(graph(text.format(off=1))) as sched:
        sched.run()
        fut = sched.request_reload(graph(text.format(off=7)))
        assert fut.result(timeout=2)["kept"] == ["src", "add", "rec"]
        assert sched.params_of("add").offset == 7


def test_cuda_graph_keys_compare_numpy_inputs_by_value():
    """Item 10: a CUDA-graph key holding a numpy array raised (ambiguous truth value)."""
    from flowml.gpu.capture import _signature

    eye = np.eye(3, dtype=np.float32)
    assert _signature({"m": eye}) == _signature({"m": eye.copy()})
    assert _signature({"m": eye}) != _signature({"m": 2 * eye})


def test_an_expression_driven_past_an_exclusive_bound_is_clamped_inside_it(live, caplog):
    """A gt=0 param whose expression reaches 0 was clamped to 0 itself, and then refused."""
    run = live.start("""
        flowml: 1
        clock: {fps: 60}
        nodes:
          src: {type: test.counter}
          sink: {type: live.tunable, inputs: {value: src/value}, params: {rate: {expr: "2 - t*50"}}}
    """, osc=False)
    wait_until(lambda: run.sched.params_of("sink").rate < 1e-300, timeout=10)
    assert run.sched.params_of("sink").rate > 0
    assert run.stop().ok
    assert "/sink/rate" not in caplog.text  # never refused
