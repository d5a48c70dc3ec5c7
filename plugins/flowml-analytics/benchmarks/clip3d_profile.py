"""Where a tick of clip3d_bench's batched graph goes, on the GPU (r3d_18, random weights).

    python plugins/flowml-analytics/benchmarks/clip3d_profile.py [--stride 8] [--batch 64]
        [--cuda-graph] [--frames 3072] [--out DIR]

One run of clip3d_bench's graph (capture.pattern ``batch: K`` -> video.clip ``input: frames``
-> torch.model -> classify.topk -> rules.match -> action.log), measured past its warm-up as the
bench measures it (``clip3d_bench.flowml_run``), once plain and once under ``torch.profiler``.
Prints, per measured tick: the wall time (synchronize to synchronize) and what the model alone
at the graph's batch takes; the GPU kernel time (all streams, summed) and its share of the
wall time (well under 1: the host, not the GPU, sets the pace); the process's CPU time and the
dispatcher thread's; each node's host time a call; and the CUDA kernels and host-side ops
taking the most time a tick (a ``.item()``/``.cpu()`` in a node shows as
``aten::_local_scalar_dense``/``aten::copy_`` to the host with a ``cudaStreamSynchronize``).
JSON to ``DIR/clip3d_profile.json`` with ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parent))
import clip3d_bench as bench  # noqa: E402

TOP = 14


def _table(prof, ticks: int, device: bool) -> list[dict]:
    """The ops (CPU) or kernels (CUDA) taking the most self time, in us a tick."""
    rows = []
    for e in prof.key_averages():
        us = e.self_device_time_total if device else e.self_cpu_time_total
        if us <= 0 or (device and e.device_type != torch.autograd.DeviceType.CUDA):
            continue
        rows.append({"name": e.key[:90], "us_a_tick": round(us / ticks, 1), "calls_a_tick": round(e.count / ticks, 2)})
    rows.sort(key=lambda r: -r["us_a_tick"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stride", type=int, default=8)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--frames", type=int, default=0, help="frames measured (default: 48 ticks)")
    ap.add_argument("--cuda-graph", action="store_true", help="the model captured as a CUDA graph")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    bench.cuda_or_exit("clip3d_profile")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        model, net = bench.r3d_model(tmp)
        n = max(1, a.batch // a.stride)
        alone = bench.model_alone(net, n)
        bench.flowml_run(tmp, model, a.stride, a.batch, a.cuda_graph, a.batch, min_ticks=2)  # warm-up
        nodes: dict = {}
        plain = bench.flowml_run(tmp, model, a.stride, a.frames, a.cuda_graph, a.batch, node_us=nodes)
        holder: dict = {}

        def profiler():
            holder["p"] = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
            return holder["p"]

        profiled = bench.flowml_run(tmp, model, a.stride, a.frames, a.cuda_graph, a.batch, profile=profiler)
    ticks = profiled["ticks"]
    kernels = _table(holder["p"], ticks, device=True)
    gpu_us = sum(r["us_a_tick"] for r in kernels)
    tick_us = 1e6 * plain["seconds"] / plain["ticks"]
    alone_us = 1e6 * n / alone["clips_per_s_cuda_graph" if a.cuda_graph else "clips_per_s"]
    report = {"stride": a.stride, "batch": a.batch, "cuda_graph": a.cuda_graph, "model_batch": n,
              "wall_fps": round(plain["wall_fps"], 1), "stats_fps": round(plain["fps"], 1),
              "tick_us": round(tick_us, 1), "model_alone_us_a_call": round(alone_us, 1),
              "model_alone_fps": round(1e6 * a.batch / alone_us, 1) if a.stride <= a.batch else None,
              "profiled_tick_us": round(1e6 * profiled["seconds"] / ticks, 1),
              "gpu_kernel_us_a_tick": round(gpu_us, 1),
              "gpu_share_of_profiled_tick": round(gpu_us / (1e6 * profiled["seconds"] / ticks), 3),
              "host_cpu_us_a_tick": round(plain["host_cpu_us_a_tick"], 1),
              "dispatcher_cpu_us_a_tick": round(plain["dispatcher_cpu_us_a_tick"], 1),
              "node_host_us": nodes, "kernels": kernels[:TOP], "host_ops": _table(holder["p"], ticks, False)[:TOP]}
    text = json.dumps(report, indent=2)
    print(text)
    if a.out is not None:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / f"clip3d_profile_s{a.stride}_k{a.batch}{'_cg' if a.cuda_graph else ''}.json").write_text(text)


if __name__ == "__main__":
    main()
