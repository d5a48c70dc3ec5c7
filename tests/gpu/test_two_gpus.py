"""Placement on two GPUs (issue 20): stream order across devices, and buffers kept alive until
the other device has read them. These need two CUDA GPUs; with fewer they skip and say so."""

from __future__ import annotations

import pytest
from gpu_nodes import RESULTS

from flowml.runtime.scheduler import Scheduler

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2,
                       reason="needs two CUDA GPUs (issue 20: run on nvidia-h200-x2)"),
]


def run(g, **kw):
    with Scheduler(g, **kw) as sched:
        result = sched.run()
    assert result.ok, result.error
    return sched


def test_slow_producer_on_one_gpu_consumer_on_the_other_sees_finished_data(gpu_graph):
    """The producer spins cuda:0 for each frame; a consumer on cuda:1 must read each frame
    after it is written (events across devices), with frames in flight."""
    g = gpu_graph("""
        flowml: 1
        max_in_flight: 4
        nodes:
          src: {type: gpu.frames, params: {frames: 30, size: 1024}, device: "cuda:0"}
          slow: {type: gpu.slow_add, inputs: {x: src/x}, params: {cycles: 5000000}, device: "cuda:0"}
          a: {type: gpu.scale, inputs: {x: slow/x}, params: {k: 2.0, steps: 1}, device: "cuda:1"}
          b: {type: gpu.scale, inputs: {x: slow/x}, params: {k: 3.0, steps: 1}, device: "cuda:0"}
          s: {type: gpu.sum, inputs: {a: a/x, b: b/x}, device: "cuda:1"}
          out: {type: gpu.collect, inputs: {x: s/x}}
    """)
    run(g, device="cuda")
    assert RESULTS["out"] == [5.0 * (i + 1) for i in range(30)]


def test_there_and_back_every_frame(gpu_graph):
    g = gpu_graph("""
        flowml: 1
        max_in_flight: 3
        nodes:
          src: {type: gpu.frames, params: {frames: 20, size: 512}, device: "cuda:0"}
          a: {type: gpu.slow_add, inputs: {x: src/x}, params: {cycles: 1000000}, device: "cuda:1"}
          b: {type: gpu.slow_add, inputs: {x: a/x}, params: {cycles: 1000000}, device: "cuda:0"}
          c: {type: gpu.scale, inputs: {x: b/x}, params: {k: 2.0, steps: 1}, device: "cuda:1"}
          out: {type: gpu.collect, inputs: {x: c/x}}
    """)
    run(g, device="cuda")
    assert RESULTS["out"] == [2.0 * (i + 2) for i in range(20)]


def test_the_source_buffer_is_not_reused_before_the_other_gpu_has_read_it():
    """A producer's tensor handed to cuda:1 and dropped at once: the producer's next
    allocation on its own stream must not get that memory while the copy is still queued
    (held back here behind a sleep on the consumer's stream, which the copy waits for)."""
    from flowml.gpu.lanes import GpuCall, Lane

    producer = torch.cuda.Stream("cuda:0")
    lane = Lane(torch.device("cuda:1"), torch.cuda.Stream("cuda:1"))
    call = GpuCall("consumer", lane)
    for attempt in range(5):
        with torch.cuda.stream(producer):
            x = torch.full((4, 1024, 1024), 7.0, device="cuda:0")
            made = torch.cuda.Event()
            made.record(producer)
        with torch.cuda.stream(lane.stream):
            torch.cuda._sleep(200_000_000)  # the consumer's stream is busy: the copy must wait
        out, done = call.run(lambda inputs: inputs["x"] * 1.0, {"x": x}, [made], ["x"])
        del x  # the producer drops its frame ...
        with torch.cuda.stream(producer):  # ... and writes its next one, on its own stream
            y = torch.full((4, 1024, 1024), -1.0, device="cuda:0")
        done.synchronize()
        assert float(out.min()) == 7.0 and float(out.max()) == 7.0, f"attempt {attempt}"
        del y
