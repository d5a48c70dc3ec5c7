"""Overlapping graph runs share the process-wide GIL switch interval and the frozen GC
(``flowml.runtime.interpreter``): one ending does not undo them under one still running."""

from __future__ import annotations

import gc
import sys
import threading
import time

from flowml.runtime.interpreter import graphs_running
from flowml.runtime.scheduler import GIL_SWITCH_S, Scheduler

CHAIN = """
flowml: 1
clock: src
nodes:
  src: {{type: test.counter, params: {{frames: {frames}}}}}
  rec: {{type: test.record, inputs: {{value: src/value}}, params: {{delay: {delay}}}}}
"""


def test_a_run_ending_keeps_the_settings_of_one_still_running(graph):
    before = sys.getswitchinterval()
    assert before != GIL_SWITCH_S and gc.get_freeze_count() == 0
    long = Scheduler(graph(CHAIN.format(frames=100000, delay=0.01)))   # stopped below, never ends itself
    started, results = threading.Event(), {}

    def run_long() -> None:
        with long:
            started.set()
            results["long"] = long.run()

    thread = threading.Thread(target=run_long)
    thread.start()
    try:
        assert started.wait(10)
        deadline = time.monotonic() + 10
        while graphs_running() == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert graphs_running() == 1
        with Scheduler(graph(CHAIN.format(frames=3, delay=0))) as short:
            assert short.run().ok
        # the short run has ended; the long one still runs with the settings it took
        assert thread.is_alive() and graphs_running() == 1
        assert sys.getswitchinterval() == GIL_SWITCH_S
        assert gc.get_freeze_count() > 0
    finally:
        long.stop()
        thread.join(30)
    assert results["long"].ok
    assert graphs_running() == 0
    assert sys.getswitchinterval() == before and gc.get_freeze_count() == 0
