"""A tick is done when its GPU work is done (runtime.completion), on CUDA: a graph with no host
sink whose node only enqueues ~5 ms of GPU work per frame. Without the completion path the
dispatcher counts each tick when its work is enqueued (recent_fps in the thousands) and runs
ahead of the GPU by any number of frames."""

from __future__ import annotations

import statistics

import pytest

from flowml.runtime.scheduler import Scheduler

pytestmark = pytest.mark.cuda

FRAMES = 40
MAX_IN_FLIGHT = 2
TARGET_MS = 5.0

GRAPH = """
    flowml: 1
    max_in_flight: {mif}
    nodes:
      src: {{type: gpu.frames, params: {{frames: {frames}, size: 64}}}}
      gen: {{type: gpu.slow_add, inputs: {{x: src/x}}, cuda_graph: {cg}, params: {{cycles: {cycles}}}}}
"""


def sleep_ms(cycles: int, reps: int = 7) -> float:
    """Median GPU time of ``torch.cuda._sleep(cycles)``, from CUDA events on a hand loop."""
    import torch

    stream = torch.cuda.Stream()
    spans = []
    with torch.cuda.stream(stream):
        for _ in range(reps):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            torch.cuda._sleep(cycles)
            end.record()
            spans.append((start, end))
    stream.synchronize()
    return statistics.median(a.elapsed_time(b) for a, b in spans)


@pytest.fixture(scope="module")
def cycles_and_ms() -> tuple[int, float]:
    """The ``_sleep`` cycles worth about TARGET_MS on this GPU, and their measured GPU time."""
    probe = 1_000_000
    sleep_ms(probe)  # warm up
    cycles = int(probe * TARGET_MS / sleep_ms(probe))
    return cycles, sleep_ms(cycles)


@pytest.mark.parametrize("cuda_graph", [False, True], ids=["eager", "captured"])
def test_ticks_complete_at_the_gpu_rate_and_in_flight_bounds_gpu_work(gpu_graph, cycles_and_ms,
                                                                      cuda_graph):
    import torch

    cycles, gpu_ms = cycles_and_ms
    g = gpu_graph(GRAPH.format(mif=MAX_IN_FLIGHT, frames=FRAMES, cycles=cycles,
                               cg=str(cuda_graph).lower()))
    ends: list[torch.cuda.Event] = []  # per tick: recorded on gen's stream after its work
    in_flight: list[int] = []          # per tick start: earlier ticks whose GPU work is not done

    with Scheduler(g, device="cuda") as sched:
        stream = sched.nodes["gen"].gpu.lane.stream

        def before(tick) -> None:  # the tick holds its slot here
            in_flight.append(sum(not e.query() for e in ends))

        def after(tick, ready) -> None:
            event = torch.cuda.Event()
            event.record(stream)
            ends.append(event)

        sched.before_tick.append(before)
        sched.after_tick.append(after)
        result = sched.run()
        assert sched.mode == "offline"  # the dispatcher books the ticks (completion.py)
        fps, lat_min = sched.stats.recent_fps(), sched.stats.latency_ms(0)
    assert result.ok, result.error
    assert result.stats.completed == FRAMES
    print(f"\n{'captured' if cuda_graph else 'eager'}: GPU {gpu_ms:.2f} ms a frame "
          f"({1000 / gpu_ms:.0f} fps), recent_fps {fps:.1f}, latency min {lat_min:.2f} ms, "
          f"in flight at tick start max {max(in_flight)}")
    # each tick holds one slot, so at most MAX_IN_FLIGHT - 1 others are still on the GPU
    assert max(in_flight) <= MAX_IN_FLIGHT - 1, in_flight
    assert max(in_flight) >= 1, in_flight  # ... and the dispatcher does run ahead of the GPU
    gpu_fps = 1000 / gpu_ms
    assert gpu_fps / 1.5 <= fps <= gpu_fps * 1.5, (fps, gpu_fps)
    assert lat_min >= 0.8 * gpu_ms  # a frame's latency covers its GPU work, not its enqueue
