"""Where the milliseconds of live 1080p latency go, frame by frame (CUDA GPU needed).

    python benchmarks/latency_probe.py [--frames 150] [--rounds 3] [--out probe.json]

The latency scenario of ``flowml bench`` (1080p frames in pinned memory at 30 fps, the style
network, a uint8 host sink), with host stamps at every hand-off and CUDA timing events around
the GPU work, beside the hand-written loop; the variants run interleaved in one process.
Per frame, in ms after the frame came in: ``handed`` (the clock thread queued it), ``tick``
(the dispatcher started the tick), ``up0``/``up1`` (upload called / returned), ``m0``/``m1``
(model called / returned), ``d0``/``d1`` (download enqueued), ``w0``/``w1`` (the sink's thread
waits / has the frame), ``L`` (latency); ``G`` is the GPU's span from the upload to the end of
the download. Medians per round; frames 1.5 ms over the median are listed in full ("tail").
First, ``cold_steps``: what each call of an upload costs back to back, after a 13 ms sleep
and after a 13 ms busy wait (a live frame arrives on a thread that slept). The stamps and
events cost time themselves: compare variants with each other, and take the latency figures
from ``flowml bench``. Results: docs/benchmarks.md."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from flowml.bench import loops, nodes, scenarios
from flowml.bench.models import StyleNet
from flowml.bench.nodes import DATA
from flowml.gpu import transfer
from flowml.runtime import scheduler as sched_mod

ST: dict[int, dict[str, float]] = {}
EV: dict[int, list] = {}
CUR = {"idx": -1}


def stamp(name: str, idx: int | None = None) -> None:
    ST.setdefault(CUR["idx"] if idx is None else idx, {})[name] = time.perf_counter()


# --- instrumentation -------------------------------------------------------------------------
_orig_run_tick = sched_mod.Scheduler._run_tick
_orig_ifh = transfer.image_from_host
_orig_sd = transfer.start_download
_orig_wait = transfer.Download.wait
_orig_module = nodes.Module.process


def run_tick(self, frame, index):
    CUR["idx"] = idx = round(frame.t * 30)
    ST.setdefault(idx, {})["handed"] = frame.arrived
    stamp("tick")
    return _orig_run_tick(self, frame, index)


IFH = {"fn": _orig_ifh}


def ifh(array, device="cpu", staging="auto"):
    idx = CUR["idx"]
    stamp("up0", idx)
    e0 = torch.cuda.Event(enable_timing=True)
    e0.record()
    out = IFH["fn"](array, device, staging)
    EV.setdefault(idx, [None, None])[0] = e0
    stamp("up1", idx)
    return out


def sd(value, waits, stream, uint8=False):
    idx = CUR["idx"]
    stamp("d0", idx)
    d = _orig_sd(value, waits, stream, uint8)
    e1 = torch.cuda.Event(enable_timing=True)
    e1.record(stream)
    EV.setdefault(idx, [None, None])[1] = e1
    d.idx = idx
    stamp("d1", idx)
    return d


def wait(self):
    idx = getattr(self, "idx", None)
    if idx is not None:
        stamp("w0", idx)
    v = _orig_wait(self)
    if idx is not None:
        stamp("w1", idx)
    return v


def module(self, x):
    stamp("m0")
    y = _orig_module(self, x)
    stamp("m1")
    return y


def install():
    sched_mod.Scheduler._run_tick = run_tick
    transfer.image_from_host = ifh
    transfer.start_download = sd
    transfer.Download.wait = wait
    nodes.Module.process = module


# --- variants ----------------------------------------------------------------------------------
def old_image_from_host(array, device="cpu", staging="auto"):
    """image_from_host as it was before 2026-12-01 (7 torch calls on a pinned frame)."""
    device = torch.device(device)
    src = torch.from_numpy(array) if array.flags.c_contiguous else None
    if staging == "auto":
        staging = "direct" if src is not None and src.is_pinned() else transfer.PAGEABLE_STAGING
    if src is None:
        src = torch.from_numpy(np.ascontiguousarray(array))
    src = src.to(device, non_blocking=True)
    h, w, c = src.shape
    out = torch.empty((1, c, h, w), dtype=torch.float32, device=src.device)
    return torch.mul(src.permute(2, 0, 1).unsqueeze(0), 1.0 / 255.0, out=out)


def flowml_run(tmp: Path, n: int, key: str, old_upload: bool = False, inline: bool = True):
    """The latency scenario's live graph; ``old_upload``: image_from_host as before
    2026-12-01; ``inline``: the clock source read on the dispatcher
    (``scheduler.INLINE_CAPTURE_SOURCES``)."""
    ST.clear(), EV.clear()
    saved = IFH["fn"], sched_mod.INLINE_CAPTURE_SOURCES
    if old_upload:
        IFH["fn"] = old_image_from_host
    sched_mod.INLINE_CAPTURE_SOURCES = inline
    try:
        text = scenarios.LIVE.format(n=n, interval=1 / 30, sink="bench.host_sink_u8", cg="false",
                                     key=key)
        DATA["t_in"], DATA["t_src"], DATA["t_out"] = {}, {}, {}
        scenarios.run_graph(text, tmp, device="cuda")
    finally:
        IFH["fn"], sched_mod.INLINE_CAPTURE_SOURCES = saved
    torch.cuda.synchronize()
    rows = []
    for idx, t_out in DATA["t_out"].items():
        s = ST.get(idx, {})
        t_in = DATA["t_in"][idx]
        e = EV.get(idx)
        row = {k: (v - t_in) * 1000 for k, v in s.items()}
        row["L"] = (t_out - t_in) * 1000
        if e and e[0] is not None and e[1] is not None:
            row["G"] = e[0].elapsed_time(e[1])
        rows.append(row)
    return rows


def loop_run(frames, model, n: int):
    """loops.latency with stamps and GPU events."""
    from flowml.gpu.transfer import to_uint8_bhwc

    pin_in = torch.empty(frames[0].shape, dtype=torch.uint8, pin_memory=True)
    with torch.inference_mode():
        out_shape = to_uint8_bhwc(model(loops._to_input(pin_in.cuda()))).shape
    pin_out = torch.empty(out_shape, dtype=torch.uint8, pin_memory=True)
    torch.cuda.synchronize()
    rows, evs = [], []
    for i in loops._paced(n, 30):
        t0 = time.perf_counter()
        frame = torch.from_numpy(frames[i % len(frames)])
        if not frame.is_pinned():
            pin_in.numpy()[...] = frames[i % len(frames)]
            frame = pin_in
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        with torch.inference_mode():
            x = loops._to_input(frame.cuda(non_blocking=True))
            t_up = time.perf_counter()
            y = model(x)
            t_m = time.perf_counter()
            pin_out.copy_(to_uint8_bhwc(y), non_blocking=True)
        e1.record()
        t_d = time.perf_counter()
        torch.cuda.synchronize()
        t1 = time.perf_counter()
        rows.append({"up1": (t_up - t0) * 1000, "m1": (t_m - t0) * 1000, "d1": (t_d - t0) * 1000,
                     "L": (t1 - t0) * 1000})
        evs.append((e0, e1))
    torch.cuda.synchronize()
    for r, (e0, e1) in zip(rows, evs):
        r["G"] = e0.elapsed_time(e1)
    return rows


def cold_steps(frame, reps: int = 60):
    """Host us of each step of an upload: warm (back to back), after a 13 ms sleep, after a
    13 ms busy wait."""
    from flowml.gpu.transfer import hwc_uint8_to_image
    side = torch.cuda.Stream()
    res = {}
    for cond in ("warm", "sleep", "spin", "sleep", "warm"):
        per: dict[str, list] = {}
        for _ in range(reps):
            if cond == "sleep":
                time.sleep(0.013)
            elif cond == "spin":
                end = time.perf_counter() + 0.013
                while time.perf_counter() < end:
                    pass
            t = [time.perf_counter()]
            a = torch.from_numpy(frame); t.append(time.perf_counter())
            a.is_pinned(); t.append(time.perf_counter())
            d = a.to("cuda", non_blocking=True); t.append(time.perf_counter())
            x = hwc_uint8_to_image(d); t.append(time.perf_counter())
            ev = torch.cuda.Event(); ev.record(); t.append(time.perf_counter())
            side.wait_event(ev); t.append(time.perf_counter())
            y = x * 2; t.append(time.perf_counter())
            names = ["from_numpy", "is_pinned", "to_cuda", "convert", "event", "wait_event", "mul"]
            for k, name in enumerate(names):
                per.setdefault(name, []).append((t[k + 1] - t[k]) * 1e6)
            per.setdefault("total", []).append((t[-1] - t[0]) * 1e6)
            torch.cuda.synchronize()
        med = {k: round(float(np.median(v)), 1) for k, v in per.items()}
        print("cold_steps", cond, json.dumps(med), flush=True)
        res.setdefault(cond, []).append(med)
    return res


def summary(rows):
    keys = ["handed", "tick", "up0", "up1", "m0", "m1", "d0", "d1", "w0", "w1", "G", "L"]
    out = {}
    for k in keys:
        vals = [r[k] for r in rows if k in r]
        if vals:
            out[k] = round(float(np.median(vals)), 3)
    g = [r["L"] - r["G"] for r in rows if "G" in r]
    out["L-G"] = round(float(np.median(g)), 3)
    pre = [r["up0"] for r in rows if "up0" in r]
    if pre:
        out["L-G-up0"] = round(float(np.median([r["L"] - r["G"] - r["up0"] for r in rows if "G" in r and "up0" in r])), 3)
    out["p99"] = round(float(np.percentile([r["L"] for r in rows], 99)), 3)
    out["n"] = len(rows)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=150, help="frames per variant and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", help="write the figures as JSON here")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    DATA["model"] = model = StyleNet().cuda().eval()
    frames = scenarios._frames(1080, 1920)
    DATA["frames"] = frames
    DATA["pinned_frames"] = pinned = [scenarios._pinned(f) for f in frames]
    x = torch.rand(1, 3, 1080, 1920, device="cuda")
    with torch.inference_mode():
        model_ms = loops.gpu_ms(lambda: model(x))
    print(f"model_gpu_ms {model_ms:.3f}", flush=True)
    install()
    cold = cold_steps(pinned[0])
    n = a.frames
    variants = {
        "loop_pinned": lambda: loop_run(pinned, model, n),
        "flowml_pinned_before": lambda: flowml_run(tmp, n, "pinned_frames", old_upload=True,
                                                   inline=False),
        "flowml_pinned_clock_thread": lambda: flowml_run(tmp, n, "pinned_frames", inline=False),
        "flowml_pinned": lambda: flowml_run(tmp, n, "pinned_frames"),
    }
    flowml_run(tmp, 20, "pinned_frames")  # warm-up
    res: dict[str, list] = {k: [] for k in variants}
    for rnd in range(a.rounds):
        for name, fn in variants.items():
            rows = fn()
            s = summary(rows)
            cut = s["L"] + 1.5
            s["tail"] = [{k: round(v, 3) for k, v in row.items()} for row in rows if row["L"] > cut]
            res[name].append(s)
            print(rnd, name, json.dumps({k: v for k, v in s.items() if k != "tail"}), flush=True)
            for t in s["tail"]:
                print("   tail", json.dumps(t), flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps({"model_gpu_ms": model_ms, "cold_steps_us": cold,
                                           "rounds": res}, indent=1))


if __name__ == "__main__":
    main()
