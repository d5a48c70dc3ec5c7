"""The scheduler on CUDA: stream ordering, buffer lifetime under frames in flight, devices,
CUDA-graph replay. These run where a CUDA GPU is present and skip cleanly elsewhere."""

from __future__ import annotations

import pytest
from gpu_nodes import RESULTS

from flowml.runtime.scheduler import Scheduler

pytestmark = pytest.mark.cuda


def run(g, **kw):
    with Scheduler(g, **kw) as sched:
        result = sched.run()
    assert result.ok, result.error
    return result, sched


def test_slow_producer_on_one_stream_consumers_on_others_see_finished_data(gpu_graph):
    # slow feeds two consumers: each gets its own lane and must wait on slow's event
    g = gpu_graph("""
        flowml: 1
        max_in_flight: 4
        nodes:
          src: {type: gpu.frames, params: {frames: 30, size: 1024}}
          slow: {type: gpu.slow_add, inputs: {x: src/x}, params: {cycles: 5000000}}
          a: {type: gpu.scale, inputs: {x: slow/x}, params: {k: 2.0, steps: 1}}
          b: {type: gpu.scale, inputs: {x: slow/x}, params: {k: 3.0, steps: 1}}
          s: {type: gpu.sum, inputs: {a: a/x, b: b/x}}
          out: {type: gpu.collect, inputs: {x: s/x}}
    """)
    _, sched = run(g, device="cuda")
    assert RESULTS["out"] == [5.0 * (i + 1) for i in range(30)]


def test_chain_shares_one_lane_and_branches_get_their_own(gpu_graph):
    g = gpu_graph("""
        flowml: 1
        nodes:
          src: {type: gpu.frames, params: {frames: 3}}
          p: {type: gpu.scale, inputs: {x: src/x}}
          q: {type: gpu.scale, inputs: {x: p/x}}
          r: {type: gpu.scale, inputs: {x: q/x}}
          out: {type: gpu.collect, inputs: {x: r/x}}
    """)
    with Scheduler(g, device="cuda") as sched:
        lanes = {n: sched.nodes[n].gpu.lane for n in ("p", "q", "r")}
        events = {n: sched.nodes[n].gpu.record_event for n in ("p", "q", "r")}
        sched.run()
    assert lanes["p"] is lanes["q"] is lanes["r"]
    assert events == {"p": False, "q": False, "r": True}
    assert RESULTS["out"] == [8.0 * i for i in range(3)]


def test_buffers_survive_frames_in_flight(gpu_graph):
    # many frames, every tensor allocated on one stream and freed while others still read it:
    # without record_stream the allocator would hand the memory out again too early
    g = gpu_graph("""
        flowml: 1
        max_in_flight: 6
        nodes:
          src: {type: gpu.frames, params: {frames: 200, size: 256}}
          slow: {type: gpu.slow_add, inputs: {x: src/x}, params: {cycles: 200000}}
          a: {type: gpu.scale, inputs: {x: slow/x}, params: {k: 1.0, steps: 2}}
          b: {type: gpu.slow_add, inputs: {x: slow/x}, params: {cycles: 400000}}
          s: {type: gpu.sum, inputs: {a: a/x, b: b/x}}
          out: {type: gpu.collect, inputs: {x: s/x}}
    """)
    run(g, device="cuda")
    assert RESULTS["out"] == [2.0 * i + 3.0 for i in range(200)]


def test_cuda_graph_replay_equals_eager(gpu_graph):
    text = """
        flowml: 1
        nodes:
          src: {{type: gpu.frames, params: {{frames: 12, size: 64}}}}
          f: {{type: gpu.scale, inputs: {{x: src/x}}, cuda_graph: {cg}, params: {{k: 1.5, steps: 30}}}}
          out: {{type: gpu.collect, inputs: {{x: f/x}}}}
    """
    run(gpu_graph(text.format(cg="false")), device="cuda")
    eager = list(RESULTS["out"])
    RESULTS.clear()
    g = gpu_graph(text.format(cg="true"))
    with Scheduler(g, device="cuda") as sched:
        captured = sched.nodes["f"].captured
        assert sched.run().ok
    assert RESULTS["out"] == eager == [1.5 * i for i in range(12)]
    assert captured.captures == 1


def test_cuda_graph_recaptures_when_params_change(gpu_graph):
    g = gpu_graph("""
        flowml: 1
        max_in_flight: 1
        nodes:
          src: {type: gpu.frames, params: {frames: 10, size: 32}}
          f: {type: gpu.scale, inputs: {x: src/x}, cuda_graph: true, params: {k: 2.0, steps: 3}}
          out: {type: gpu.collect, inputs: {x: f/x}}
    """)
    with Scheduler(g, device="cuda") as sched:
        sched.after_tick.append(lambda t, v: t.index == 4 and sched.set_params("f", {"k": 10.0}))
        assert sched.run().ok
        assert sched.nodes["f"].captured.captures == 2
    assert RESULTS["out"] == [2.0 * i for i in range(5)] + [10.0 * i for i in range(5, 10)]


def test_gpu_time_per_node_from_events(gpu_graph):
    g = gpu_graph("""
        flowml: 1
        nodes:
          src: {type: gpu.frames, params: {frames: 20}}
          slow: {type: gpu.slow_add, inputs: {x: src/x}, params: {cycles: 1000000}}
          out: {type: gpu.collect, inputs: {x: slow/x}}
    """)
    result, sched = run(g, device="cuda", gpu_timing=True)
    d = result.stats.nodes["slow"].as_dict()
    assert d.get("gpu_mean_us", 0) > 50, d
    # the timing events are reused: the lane holds a few pairs, not one per call
    lane = sched.nodes["slow"].gpu.lane
    held = len(lane._spare_timing) + sum(len(q) for q in lane.timings.values())
    assert result.stats.nodes["slow"].gpu_calls >= 10 and held <= 6, (held, d)


def test_two_devices_with_explicit_transfer(gpu_graph):
    import torch

    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA GPUs")
    g = gpu_graph("""
        flowml: 1
        nodes:
          src: {type: gpu.frames, params: {frames: 10}, device: "cuda:0"}
          a: {type: gpu.slow_add, inputs: {x: src/x}, device: "cuda:1"}
          b: {type: gpu.scale, inputs: {x: a/x}, device: "cuda:0", params: {k: 2.0, steps: 1}}
          out: {type: gpu.collect, inputs: {x: b/x}}
    """)
    run(g, device="cuda")
    assert RESULTS["out"] == [2.0 * (i + 1) for i in range(10)]


@pytest.mark.parametrize("staging", ["direct", "pinned", "auto"])
def test_pinned_upload_and_download_roundtrip(staging):
    import numpy as np

    from flowml.gpu.transfer import image_from_host, image_to_host, pinned_frame

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (2160, 3840, 4), dtype=np.uint8)[::2, ::2, :3]  # strided
    img = image_from_host(frame, "cuda", staging)
    assert img.shape == (1, 3, 1080, 1920) and img.is_cuda and img.is_contiguous()
    assert np.array_equal(image_to_host(img), frame)
    pinned = pinned_frame(1080, 1920)
    pinned[...] = frame
    assert np.array_equal(image_to_host(image_from_host(pinned, "cuda", staging)), frame)


def test_uint8_host_port_gets_bhwc_uint8_converted_on_the_gpu(gpu_graph):
    import torch

    g = gpu_graph("""
        flowml: 1
        nodes:
          src: {type: gpu.frames, params: {frames: 3, size: 16}}
          s: {type: gpu.scale, inputs: {x: src/x}, params: {k: 0.25, steps: 1}}
          out: {type: gpu.collect_u8, inputs: {x: s/x}}
    """)
    run(g, device="cuda")
    assert RESULTS["u8"] == [(torch.uint8, "cpu", (1, 16, 16, 3), round(255 * min(1, 0.25 * i)))
                             for i in range(3)]


def test_cuda_graph_capture_while_the_clock_thread_uploads(gpu_graph):
    """Capture happens on the dispatcher while the clock source works on its own thread
    (pinned allocations, copies): the capture must not be invalidated by them."""
    g = gpu_graph("""
        flowml: 1
        max_in_flight: 3
        nodes:
          src: {type: gpu.upload, params: {frames: 40, size: 256}}
          f: {type: gpu.scale, inputs: {x: src/x}, cuda_graph: true, params: {k: 2.0, steps: 10}}
          out: {type: gpu.collect, inputs: {x: f/x}}
    """)
    run(g, device="cuda")
    assert RESULTS["out"] == [2.0 * i for i in range(40)]


@pytest.mark.parametrize("mode", ["offline", "live"])
def test_host_frames_from_the_clock_thread_are_uploaded_on_arrival(gpu_graph, mode):
    """The dispatcher uploads them; live, the newest frame wins and none is changed."""
    g = gpu_graph("""
        flowml: 1
        mode: MODE
        max_in_flight: 3
        nodes:
          src: {type: gpu.host_upload, params: {frames: 30, size: 64}}
          a: {type: gpu.scale, inputs: {x: src/x}, params: {k: 255.0, steps: 1}}
          b: {type: gpu.scale, inputs: {x: src/x}, params: {k: 255.0, steps: 1}}
          s: {type: gpu.sum, inputs: {a: a/x, b: b/x}}
          out: {type: gpu.collect, inputs: {x: s/x}}
    """.replace("MODE", mode))
    run(g, device="cuda")
    got = [round(v, 3) for v in RESULTS["out"]]
    if mode == "offline":
        assert got == [2.0 * i for i in range(30)]
    else:  # the newest frame wins: some may be dropped, none changed or reordered
        assert got and got == sorted(set(got)) and all(v / 2 in range(30) for v in got)
