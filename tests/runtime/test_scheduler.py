"""The scheduler on the CPU: offline determinism, live dropping, every/hold, errors, params."""

from __future__ import annotations

import os
import threading
import time

from runtime_nodes import EVENTS, RECORDS

from flowml.runtime.scheduler import Scheduler

CHAIN = """
flowml: 1
clock: src
max_in_flight: {mif}
nodes:
  src: {{type: test.counter, params: {{frames: {frames}}}}}
  add: {{type: test.add, inputs: {{value: src/value}}, params: {{offset: 100}}}}
  rec: {{type: test.record, inputs: {{value: add/value}}, params: {{delay: {delay}}}}}
"""


def run(g, **kw):
    sched = Scheduler(g, **{k: v for k, v in kw.items() if k in ("mode", "max_in_flight", "on_error")})
    with sched:
        result = sched.run(**{k: v for k, v in kw.items() if k in ("frames", "duration")})
    return result, sched


def test_offline_processes_every_frame_in_order(graph):
    g = graph(CHAIN.format(frames=200, delay=0.001, mif=3))
    result, sched = run(g)
    assert sched.mode == "offline"  # a non-live clock source means offline
    assert result.reason == "end of stream" and result.ok
    assert RECORDS["default"] == [100 + i for i in range(200)]
    assert result.stats.completed == 200 and result.stats.source_drops == 0
    assert result.stats.nodes["rec"].drops == 0
    assert EVENTS["default"] == ["teardown"]


def test_offline_back_pressure_with_a_slow_sink_drops_nothing(graph):
    g = graph(CHAIN.format(frames=30, delay=0.01, mif=2))
    result, _ = run(g)
    assert RECORDS["default"] == [100 + i for i in range(30)]
    assert result.stats.source_drops == 0


def test_frames_limit(graph):
    g = graph(CHAIN.format(frames=0, delay=0, mif=2))
    result, _ = run(g, frames=25)
    assert result.reason == "frames"
    assert RECORDS["default"] == [100 + i for i in range(25)]


def test_live_slow_node_drops_frames_and_latency_stays_bounded(graph):
    g = graph("""
        flowml: 1
        clock: src
        max_in_flight: 2
        nodes:
          src: {type: test.live_counter, params: {interval: 0.002}}
          slow: {type: test.add, inputs: {value: src/value}, params: {delay: 0.03}}
          rec: {type: test.record, inputs: {value: slow/value}}
    """)
    result, sched = run(g, duration=1.5)
    assert sched.mode == "live"
    s = result.stats
    assert s.source_drops > 0, "a source 15x faster than the graph must drop frames"
    seen = RECORDS["default"]
    assert seen == sorted(seen) and len(set(seen)) == len(seen), "frames stay in order, no repeats"
    assert seen[-1] - seen[0] > len(seen), "later frames were skipped, not queued"
    # latency is bounded by a few stage times, not by how long the graph has run
    assert s.latency_ms(99) < 10 * 30, s.as_dict()


def _rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_live_memory_stays_flat_with_a_slow_sink(graph):
    g = graph("""
        flowml: 1
        clock: src
        nodes:
          src: {type: test.live_counter, params: {interval: 0.001}}
          blob: {type: test.blob, inputs: {value: src/value}}
          rec: {type: test.record, inputs: {value: blob/tensor}, params: {delay: 0.02}}
    """)
    sched = Scheduler(g)
    samples = []
    sched.after_tick.append(lambda tick, values: tick.index % 20 == 0 and samples.append(_rss_mb()))
    with sched:
        result = sched.run(duration=3.0)
    assert result.stats.nodes["rec"].drops > 0 or result.stats.source_drops > 0
    early = max(samples[1:len(samples) // 3])
    late = max(samples[-len(samples) // 3:])
    assert late - early < 20, f"RSS grew from {early:.0f} MB to {late:.0f} MB"


def test_every_n_runs_a_node_every_third_tick_and_holds(graph):
    g = graph("""
        flowml: 1
        nodes:
          src: {type: test.counter, params: {frames: 10}}
          c: {type: test.calls, inputs: {value: src/value}, every: 3}
          rec: {type: test.record, inputs: {value: c/value}}
    """)
    result, _ = run(g)
    assert RECORDS["default"] == [(0, 1)] * 3 + [(3, 2)] * 3 + [(6, 3)] * 3 + [(9, 4)]
    assert result.stats.nodes["c"].calls == 4 and result.stats.nodes["c"].held == 6


def test_hold_node_runs_asynchronously_in_live_mode(graph):
    g = graph("""
        flowml: 1
        clock: src
        nodes:
          src: {type: test.live_counter, params: {interval: 0.005}}
          est: {type: test.calls, inputs: {value: src/value}, hold: true, params: {delay: 0.1}}
          rec: {type: test.record, inputs: {value: est/value}}
    """)
    result, _ = run(g, duration=1.5)
    s = result.stats
    calls = s.nodes["est"].calls
    assert s.completed > 3 * calls, "the graph ran on while the slow node worked"
    counts = [n for _, n in RECORDS["default"]]
    assert counts == sorted(counts) and counts[-1] >= calls - 1


def test_hold_is_synchronous_offline_so_output_is_deterministic(graph):
    g = graph("""
        flowml: 1
        nodes:
          src: {type: test.counter, params: {frames: 6}}
          est: {type: test.calls, inputs: {value: src/value}, hold: true}
          rec: {type: test.record, inputs: {value: est/value}}
    """)
    run(g)
    assert RECORDS["default"] == [(i, i + 1) for i in range(6)]


FAILING = """
flowml: 1
on_error: {policy}
nodes:
  src: {{type: test.counter, params: {{frames: 10}}}}
  bad: {{type: test.fail, inputs: {{value: src/value}}, params: {{at: 4}}}}
  rec: {{type: test.record, inputs: {{value: bad/value}}}}
"""


def test_error_policy_stop_names_the_node_and_tears_down(graph):
    result, _ = run(graph(FAILING.format(policy="stop")))
    assert result.reason == "error"
    assert str(result.error) == "node 'bad' (test.fail) failed on frame 4: ValueError: boom at 4"
    assert RECORDS["default"] == [0, 1, 2, 3]
    assert EVENTS["default"] == ["teardown"]


def test_error_policy_skip_drops_the_frame_and_goes_on(graph):
    result, _ = run(graph(FAILING.format(policy="skip")))
    assert result.ok and result.reason == "end of stream"
    assert RECORDS["default"] == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert result.stats.failed == 1 and result.stats.nodes["bad"].errors == 1


def test_param_change_applies_at_the_next_tick_start(graph):
    g = graph(CHAIN.format(frames=20, delay=0, mif=1))
    sched = Scheduler(g)

    def change(tick, values):
        if tick.index == 9:
            sched.set_params("add", {"offset": 1000})

    sched.after_tick.append(change)
    with sched:
        sched.run()
    assert RECORDS["default"] == [100 + i for i in range(10)] + [1000 + i for i in range(10, 20)]


def test_bad_param_change_is_rejected_and_changes_nothing(graph):
    import pydantic
    import pytest

    g = graph(CHAIN.format(frames=3, delay=0, mif=1))
    with Scheduler(g) as sched:
        with pytest.raises(pydantic.ValidationError):
            sched.set_params("add", {"offset": "many"})
        sched.run()
    assert RECORDS["default"] == [100, 101, 102]


def test_rate_clock_offline_stamps_ticks_at_index_over_fps(graph):
    g = graph("""
        flowml: 1
        clock: {fps: 50}
        mode: offline
        nodes:
          src: {type: test.counter}
          rec: {type: test.record, inputs: {value: src/value}}
    """)
    stamps = []
    sched = Scheduler(g)
    sched.before_tick.append(lambda tick: stamps.append(tick.t))
    t0 = time.perf_counter()
    with sched:
        result = sched.run(frames=200)
    assert stamps == [i / 50 for i in range(200)]
    assert time.perf_counter() - t0 < 2.0, "offline does not pace to the wall clock (paced: 4 s)"
    assert result.stats.completed == 200


def test_host_output_frames_are_converted_when_they_arrive(tmp_path):
    """A source returns uint8 (H, W, C) frames; consumers get (1, C, H, W) float images."""
    import numpy as np
    import torch

    from flowml import IMAGE, Input, Node, Output, Stamped
    from flowml.graph import load_graph
    from flowml.plugins import Registry

    got = []

    class Camera(Node):
        type_name = "t.camera"
        outputs = (Output("image", IMAGE, host=True),)

        def setup(self, ctx):
            self.i = 0

        def process(self):
            self.i += 1
            return Stamped(np.full((4, 6, 3), self.i, np.uint8), t=self.i / 10)

    class Sink(Node):
        type_name = "t.sink"
        inputs = (Input("image", IMAGE),)

        def process(self, image):
            got.append(image)

    reg = Registry()
    reg.add(Camera, "t")
    reg.add(Sink, "t")
    p = tmp_path / "g.yaml"
    p.write_text("flowml: 1\nnodes:\n  c: {type: t.camera}\n  s: {type: t.sink, inputs: {image: c/image}}\n")
    with Scheduler(load_graph(p, reg)) as sched:
        assert sched.run(frames=3).ok
    assert [tuple(g.shape) for g in got] == [(1, 3, 4, 6)] * 3
    assert got[0].dtype == torch.float32 and torch.allclose(got[2], torch.full((1, 3, 4, 6), 3 / 255))


def test_uint8_port_delivers_bhwc_uint8_on_the_cpu_too(tmp_path):
    """A sink's code does not depend on where the graph runs."""
    import torch

    from flowml import IMAGE, Input, Node, Output
    from flowml.graph import load_graph
    from flowml.plugins import Registry

    got = []

    class Grey(Node):
        type_name = "t.grey"
        outputs = (Output("image", IMAGE),)

        def process(self):
            return torch.full((1, 3, 4, 6), 0.5)

    class Sink(Node):
        type_name = "t.sink"
        blocking = True
        inputs = (Input("image", IMAGE, uint8=True),)

        def process(self, image):
            got.append(image)

    reg = Registry()
    reg.add(Grey, "t")
    reg.add(Sink, "t")
    p = tmp_path / "g.yaml"
    p.write_text("flowml: 1\nclock: {fps: 10}\nmode: offline\nnodes:\n"
                 "  g: {type: t.grey}\n  s: {type: t.sink, inputs: {image: g/image}}\n")
    with Scheduler(load_graph(p, reg)) as sched:
        assert sched.run(frames=2).ok
    assert len(got) == 2 and got[0].dtype == torch.uint8 and got[0].shape == (1, 4, 6, 3)
    assert int(got[0][0, 0, 0, 0]) == 128


def test_liveness_may_depend_on_params_and_the_clock_knows_it_is_the_clock(tmp_path):
    import flowml
    from flowml import IMAGE, Node, Output, Stamped
    from flowml.graph import load_graph
    from flowml.plugins import Registry

    seen = {}

    class Reader(Node):
        type_name = "t.reader"
        outputs = (Output("image", IMAGE),)

        class Params(flowml.Params):
            url: str = "file.mp4"

        @classmethod
        def is_live(cls, params):
            return params.url.startswith("rtsp://")

        def setup(self, ctx):
            seen[ctx.node_id] = ctx.is_clock

        def process(self):
            import torch
            return Stamped(torch.zeros(1, 3, 2, 2), t=0.0)

    reg = Registry()
    reg.add(Reader, "t")
    for url, mode in (("file.mp4", "offline"), ("rtsp://cam/1", "live")):
        p = tmp_path / "g.yaml"
        p.write_text(f"flowml: 1\nclock: a\nnodes:\n  a: {{type: t.reader, params: {{url: '{url}'}}}}\n"
                     "  b: {type: t.reader}\n")
        sched = Scheduler(load_graph(p, reg))
        assert sched.mode == mode
        with sched:
            pass
        assert seen == {"a": True, "b": False}


CAMERA = """
flowml: 1
clock: cam
max_in_flight: 2
on_error: {policy}
nodes:
  cam: {{type: test.background_camera, params: {{frames: {frames}, fail_at: {fail_at}, interval: {interval}}}}}
  add: {{type: test.add, inputs: {{value: cam/value}}, params: {{offset: 100}}}}
  rec: {{type: test.record, inputs: {{value: add/value}}}}
"""


def test_a_source_that_captures_in_background_is_read_on_the_dispatcher(graph, monkeypatch):
    """No clock thread between the camera's reader and the graph; with the inline read turned
    off, the same graph reads it on a clock thread. Either way the newest frame wins."""
    from flowml.runtime import scheduler

    for inline, thread in ((True, "MainThread"), (False, "flowml-clock")):
        monkeypatch.setattr(scheduler, "INLINE_CAPTURE_SOURCES", inline)
        g = graph(CAMERA.format(policy="stop", frames=1000, fail_at=-1, interval=0.005))
        result, sched = run(g, frames=20)
        assert sched.mode == "live" and result.ok
        assert set(EVENTS.pop("threads")) == {thread}
        seen = RECORDS.pop("default")
        assert len(seen) == 20 and seen == sorted(set(seen)) and seen[0] >= 100


def test_stop_ends_a_background_source_waiting_for_a_frame_that_never_comes(graph):
    g = graph(CAMERA.format(policy="stop", frames=3, fail_at=-1, interval=0.05))
    sched = Scheduler(g)
    stopped_at: list[float] = []

    def stop_once_the_frames_are_through():  # then the source waits for a 4th that never comes
        deadline = time.perf_counter() + 20
        while len(RECORDS["default"]) < 3 and time.perf_counter() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        stopped_at.append(time.perf_counter())
        sched.stop()

    with sched:
        threading.Thread(target=stop_once_the_frames_are_through, daemon=True).start()
        result = sched.run()
        waited = time.perf_counter() - stopped_at[0]
    assert result.reason == "stopped" and result.ok
    assert RECORDS["default"] == [100, 101, 102]
    assert waited < 2.0, f"stop took {waited:.2f} s"


def test_a_background_source_that_fails_once_is_skipped_or_stops_the_graph(graph):
    result, _ = run(graph(CAMERA.format(policy="skip", frames=1000, fail_at=5, interval=0.005)), frames=12)
    assert result.ok and result.stats.nodes["cam"].errors == 1  # logged, then read on
    assert len(RECORDS["default"]) == 12  # a failed read starts no tick
    RECORDS.clear()
    result, _ = run(graph(CAMERA.format(policy="stop", frames=1000, fail_at=5, interval=0.005)))
    assert result.reason == "error" and "camera glitch at call 5" in str(result.error)
    assert len(RECORDS["default"]) == 5
