"""Two GPUs (issue 20): a two-stage graph whose stages take about the same GPU time, on one GPU
against split over two, with live latency beside the frame rates; and what the hand-off from
one GPU to the other costs at 1080p, flowml's path against ``torch`` copying by hand.

Each stage is the fast style-transfer network at 1080p (the same network twice: the same GPU
time by construction). The one-GPU graph runs both on ``cuda:0``; the split graph moves the
second to ``cuda:1``, so each frame crosses from one GPU to the other once (in ``peer_copy``,
``flowml.gpu.lanes``). On a machine with one GPU the scenario says so and measures nothing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import loops
from .models import StyleNet
from .nodes import DATA

GRAPH = """
flowml: 1
mode: {mode}
max_in_flight: {mif}
nodes:
  src: {{type: {source}, params: {{key: frames, count: {n}, interval: {interval}}}, device: "cuda:0"}}
  a: {{type: bench.module, inputs: {{x: src/image}}, params: {{key: stage_a}}, device: "cuda:0"}}
  b: {{type: bench.module, inputs: {{x: a/x}}, params: {{key: "stage_b@{dev_b}"}}, device: "{dev_b}"}}
  out: {{type: bench.host_sink, inputs: {{x: b/x}}}}
"""


def two_gpu(tmp: Path, n: int = 300) -> dict[str, Any]:
    count = torch.cuda.device_count()
    if count < 2:
        return {"skipped": f"needs two CUDA GPUs; this machine has {count} "
                           "(run it on a two-GPU machine: flowml bench --only two_gpu)"}
    from .scenarios import _frames, run_graph, steady_fps

    DATA["frames"] = _frames(1080, 1920)
    DATA["stage_a"] = StyleNet().to("cuda:0").eval()
    for dev in ("cuda:0", "cuda:1"):
        DATA[f"stage_b@{dev}"] = StyleNet().to(dev).eval()
    x = torch.rand(1, 3, 1080, 1920, device="cuda:0")
    with torch.inference_mode():
        stage_ms = loops.gpu_ms(lambda: DATA["stage_a"](x))

    def fps(dev_b: str) -> float:
        run_graph(GRAPH.format(mode="offline", mif=4, source="bench.host_frames", n=10,
                               interval=0, dev_b=dev_b), tmp, device="cuda")  # warm-up
        DATA["done"] = []
        run_graph(GRAPH.format(mode="offline", mif=4, source="bench.host_frames", n=n,
                               interval=0, dev_b=dev_b), tmp, device="cuda")
        return steady_fps(DATA["done"])

    def latency(dev_b: str, rate: float) -> dict[str, float]:
        DATA["t_in"], DATA["t_out"], DATA["done"] = {}, {}, []
        run_graph(GRAPH.format(mode="live", mif=3, source="bench.live_host_frames", n=n // 2,
                               interval=1.0 / rate, dev_b=dev_b), tmp, device="cuda")
        lat = np.array([DATA["t_out"][k] - DATA["t_in"][k] for k in DATA["t_out"]
                        if k in DATA["t_in"]][5:]) * 1e3
        return {"p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
                "frames": int(lat.size)}

    res: dict[str, Any] = {"gpus": [torch.cuda.get_device_name(i) for i in range(2)],
                           "peer_access": torch.cuda.can_device_access_peer(0, 1),
                           "stage_gpu_ms": stage_ms}
    res["one_gpu_fps"] = fps("cuda:0")
    res["two_gpu_fps"] = fps("cuda:1")
    res["speedup"] = res["two_gpu_fps"] / res["one_gpu_fps"]
    rate = 0.8 * res["one_gpu_fps"]  # a live rate both layouts keep up with
    res["live_rate_fps"] = rate
    res["one_gpu_latency"] = latency("cuda:0", rate)
    res["two_gpu_latency"] = latency("cuda:1", rate)
    res.update(handoff_1080p())
    res["target"] = ">= 1.8x the one-GPU frame rate"
    res["met"] = res["speedup"] >= 1.8
    return res


def handoff_1080p(reps: int = 50) -> dict[str, float]:
    """Milliseconds to move a (1, 3, 1080, 1920) float32 frame from cuda:0 to cuda:1: by hand
    (``x.to("cuda:1")``) and through flowml's ``peer_copy``, each timed over ``reps`` copies
    and a synchronize of both devices (the copy's own time, not the launch)."""
    from ..gpu.lanes import peer_copy

    x = torch.rand(1, 3, 1080, 1920, device="cuda:0")
    dst = torch.device("cuda:1")

    def timed(fn) -> float:
        for _ in range(3):
            fn()
        for d in (0, 1):
            torch.cuda.synchronize(d)
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        for d in (0, 1):
            torch.cuda.synchronize(d)
        return (time.perf_counter() - t0) / reps * 1e3

    with torch.cuda.device(dst):
        flowml_ms = timed(lambda: peer_copy(x, dst))
    hand_ms = timed(lambda: x.to(dst, non_blocking=True))
    gbps = x.numel() * x.element_size() / (flowml_ms / 1e3) / 1e9
    return {"handoff_torch_ms": hand_ms, "handoff_flowml_ms": flowml_ms, "handoff_flowml_GBps": gbps}
