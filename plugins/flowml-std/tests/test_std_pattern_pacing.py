"""capture.pattern as the clock of a live graph delivers its own ``fps`` (issue 12, item 9:
it ran at 456 fps for ``fps: 20``); offline it still runs as fast as the graph takes frames."""

from __future__ import annotations

import threading
import time

from flowml.graph import load_graph
from flowml.plugins import load_registry
from flowml.runtime.scheduler import Scheduler

GRAPH = """
flowml: 1
clock: src
mode: {mode}
nodes:
  src: {{type: capture.pattern, params: {{pattern: bars, size: [32, 18], fps: {fps}}}}}
  flip: {{type: image.flip, inputs: {{image: src/image}}}}
"""


def run_for(mode: str, fps: float, seconds: float):
    graph = load_graph("g.yaml", load_registry(), text=GRAPH.format(mode=mode, fps=fps))
    sched = Scheduler(graph, device="cpu")
    t0 = time.perf_counter()
    result = sched.run(duration=seconds)
    return sched, result, time.perf_counter() - t0


def test_a_live_pattern_clock_runs_at_its_fps():
    sched, result, elapsed = run_for("live", 20, 2.0)
    fps = sched.stats.completed / elapsed
    assert 12 <= fps <= 24, f"{fps:.1f} fps for fps: 20"   # generous for a loaded 2-core box
    assert sched.stats.ticks <= 2.0 * 20 + 3


def test_an_offline_pattern_clock_is_not_slowed_down():
    sched, result, elapsed = run_for("offline", 5, 1.0)
    assert sched.stats.completed > 3 * 5 * elapsed  # far more than 5 a second: not paced


def test_a_paced_pattern_clock_stops_at_once():
    graph = load_graph("g.yaml", load_registry(), text=GRAPH.format(mode="live", fps=0.5))
    sched = Scheduler(graph, device="cpu")
    thread = threading.Thread(target=sched.run, daemon=True)
    thread.start()
    time.sleep(0.5)  # the first frame came; the next is due in 2 s
    t0 = time.perf_counter()
    sched.stop()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert time.perf_counter() - t0 < 1.5  # did not wait out the 2 s frame
