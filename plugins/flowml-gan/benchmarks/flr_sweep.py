"""Tune the one-kernel filtered_lrelu (``fused_tile``) on the GPU: every filtered_lrelu call of
StyleGAN3-R 1024 (and ``--configs sg3-t`` too), each candidate plan timed, checked, the best
written as a plan table (issue 14).

    python plugins/flowml-gan/benchmarks/flr_sweep.py --out $OUT/flr            # on a GPU
    FLOWML_GAN_FLR_PLANS=$OUT/flr/plans.json python plugins/flowml-gan/benchmarks/sg3_profile.py

The half2 variants (``uv`` 7 and 15) against the plans in force (the table's plan is each
call's "default" candidate, and its half2 twins are tried beside ``H2_TUNINGS``):

    FLOWML_GAN_FLR_PLANS=plugins/flowml-gan/benchmarks/flr_plans_h200.json \
        python plugins/flowml-gan/benchmarks/flr_sweep.py --configs sg3-r --budget-s 400 --out $OUT/flr

For each distinct call (layer kind, input shape, storage dtype: float32 for ``fp32`` and the
layer's own dtype for ``mixed``): random input of the layer's shape, the layer's filters, bias,
padding, gain, slope and clamp (the official config's synthesis network, ``build.sg3_kwargs``). Each
candidate (``candidate_tunings``; the default plan and the old kernel's ``(32, 256, 4, 0)``
among them) becomes a ``TilePlan``; all are compiled first, ``--workers`` NVRTC compiles at a
time. A candidate is then run once and checked against the three-pass kernels on the float32
input (float32 within 1e-4 of the largest value, float16 within 2e-3, the half2 variant within
``fused_tile.H2_TOL``), and timed: ``--reps``
calls captured in one CUDA graph (the filter copies and the kernel, as in a captured frame),
the median of ``--replays`` replays divided by ``--reps`` (CUDA events). The fastest correct
candidate of each call goes into the table under the call's ``kind_key`` with its output size;
``--budget-s`` stops the sweep early (later calls keep the defaults). A float16 call with
half2 candidates also gets its best half2 and best float candidate side by side (``h2_best``,
``float_best``; the report's "half2 variant" lines). Writes ``plans.json``
(the table ``FLOWML_GAN_FLR_PLANS`` reads, plus every timing) and ``plans.txt`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from flowml_gan.fused_tile import H2, Tuning


H2_TUNINGS = [Tuning(32, 128, 0, uv) for uv in (7, 15)] + [
    Tuning(32, 256, 0, 15), Tuning(32, 64, 8, 15), Tuning(24, 128, 0, 15), Tuning(48, 256, 0, 15),
    Tuning(48, 128, 0, 15), Tuning(16, 64, 0, 15), Tuning(48, 256, 0, 7)]
"""The half2 variants' candidates for a 2-D down filter (float16 storage; ``uv`` 7 the down
stage in half2, 15 the y-up stage too; ``H2_SEP_TUNINGS`` the separable filters'): a thread
makes two columns of the 2-D down stage, so ``ry`` by waves comes out about half the float
plans'."""


H2_SEP_TUNINGS = [Tuning(32, 128, 0, 7), Tuning(32, 128, 0, 15), Tuning(32, 256, 4, 15),
                  Tuning(48, 256, 0, 15), Tuning(24, 128, 0, 15), Tuning(16, 64, 0, 15)]
"""The half2 variants' candidates for a separable down filter (float16 storage)."""


def candidate_tunings(fd: int, dtype: str = "float32") -> list[Tuning]:
    """The plans tried for a call with down-sampling filter kind ``fd`` (2: 2-D, 1:
    separable, 0: none): the old kernel (a sample a thread in the up stages, 256 threads, 4
    outputs a thread), each variant bit alone, the defaults, more outputs a thread with fewer
    threads (the rolling 2-D stage takes any ``ry``), and other tile sides; for float16 storage
    and a down filter also the half2 variants (``H2_TUNINGS``, ``H2_SEP_TUNINGS``; ``sweep``
    adds the half2 twins of the plan in force)."""
    if fd == 2:
        return (H2_TUNINGS if dtype == "float16" else []) + [Tuning(32, 256, 4, 0), Tuning(32, 256, 4, 1), Tuning(32, 256, 4, 2),
                Tuning(32, 256, 4, 3), Tuning(32, 128, 0, 3), Tuning(32, 128, 16, 3),
                Tuning(32, 64, 16, 3), Tuning(32, 64, 32, 3), Tuning(24, 128, 0, 3),
                Tuning(48, 256, 0, 3), Tuning(16, 64, 0, 3)]
    if fd == 1:
        return (H2_SEP_TUNINGS if dtype == "float16" else []) + [Tuning(32, 256, 4, 0), Tuning(32, 256, 4, 1), Tuning(32, 128, 0, 1),
                Tuning(32, 256, 4, 3), Tuning(32, 128, 0, 3), Tuning(32, 128, 16, 3),
                Tuning(24, 128, 0, 3), Tuning(48, 256, 0, 3), Tuning(16, 64, 0, 3)]
    return [Tuning(32, 256, 4, 0), Tuning(32, 256, 4, 1), Tuning(32, 128, 0, 1),
            Tuning(24, 128, 0, 1), Tuning(48, 256, 0, 1), Tuning(16, 64, 0, 1)]


@dataclass
class Call:
    """One distinct filtered_lrelu call of a network: x ``(1, C, n, n)`` and its arguments."""

    where: list[str]
    x: torch.Tensor
    fu: torch.Tensor
    fd: torch.Tensor | None
    b: torch.Tensor
    kw: dict[str, Any]


def network_calls(config: str, resolution: int, precisions: list[str], device: str) -> list[Call]:
    """The distinct fused filtered_lrelu calls of ``config`` at ``resolution`` (toRGB, which
    the one-kernel path does not take, left out), for each precision's storage dtype."""
    from flowml_gan.build import sg3_kwargs
    from flowml_gan.fused_tile import tile_unsupported
    from flowml_gan.stylegan3 import SynthesisNetwork

    kw = {k: v for k, v in sg3_kwargs(config, resolution).items() if k not in ("z_dim", "c_dim", "mapping_kwargs")}
    with torch.device(device):
        net = SynthesisNetwork(**kw)   # the official config's filters and layers (weights unused)
    calls: dict[tuple, Call] = {}
    gen = torch.Generator(device=device).manual_seed(0)
    for precision in precisions:
        for name in net.layer_names:
            L = getattr(net, name)
            dtype = torch.float16 if L.use_fp16 and precision == "mixed" else torch.float32
            n = L.in_size[0] + L.conv_kernel - 1
            if L.up_filter is None:
                continue
            fu, fd = L.up_filter.detach(), (L.down_filter.detach() if L.down_filter is not None else None)
            kw = dict(up=L.up_factor, down=L.down_factor, padding=list(L.padding), gain=L.gain,
                      slope=L.slope, clamp=L.conv_clamp)
            meta = torch.empty(1, L.out_channels, n, n, device="meta", dtype=dtype)
            if fu is None or fu.ndim != 1 or tile_unsupported(meta, fu, fd, L.up_factor, L.down_factor, L.padding):
                continue
            key = (str(dtype), L.out_channels, n, L.up_factor, fu.shape[0], None if fd is None else tuple(fd.shape),
                   tuple(L.padding), L.gain, L.slope, L.conv_clamp)
            if key in calls:
                calls[key].where.append(f"{config} {precision} {name}")
                continue
            x = torch.randn(1, L.out_channels, n, n, generator=gen, device=device).to(dtype)
            calls[key] = Call([f"{config} {precision} {name}"], x, fu, fd, L.bias.detach().to(dtype), kw)
    return list(calls.values())


def _graph_ms(fn, reps: int, replays: int) -> float:
    """``reps`` calls of ``fn`` captured in one graph on the current (side) stream: the median
    replay's ms over ``replays``, per call."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=torch.cuda.current_stream()):
        for _ in range(reps):
            fn()
    graph.replay()
    times = []
    for _ in range(replays):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        graph.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / reps)
    del graph
    return float(statistics.median(times))


def sweep(calls: list[Call], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Time every candidate of every call; one row a call (see the module docstring)."""
    from flowml_gan import fused
    from flowml_gan.fused_tile import (H2, H2_TOL, CupyTileBackend, TilePlan, kind_key, output_size,
                                       tile_plan, tile_run)

    dev = calls[0].x.device
    backend = CupyTileBackend(lambda d: fused._CUPY._stream(d))
    started = time.perf_counter()
    todo: list[tuple[Call, list[tuple[Tuning | None, TilePlan]]]] = []
    for c in calls:
        plans: dict[TilePlan, Tuning | None] = {}
        default = tile_plan(c.x, c.fu, c.fd, c.kw["up"], c.kw["down"], c.kw["padding"])
        plans[default] = None
        fdk = 0 if c.fd is None else c.fd.ndim
        dtype = str(c.x.dtype).split(".")[-1]
        tunings = candidate_tunings(fdk, dtype)
        if dtype == "float16" and fdk:        # the half2 twins of the plan in force: its tiles
            side = max(default.tw, default.th)  # (the largest side gives them), its threads
            tunings += [Tuning(side, default.threads, 0, uv) for uv in (7, 15)]
        for t in tunings:
            try:
                p = tile_plan(c.x, c.fu, c.fd, c.kw["up"], c.kw["down"], c.kw["padding"], t.tile,
                              t.threads, t.ry or None, t.uv)
            except ValueError:
                continue
            plans.setdefault(p, t)
        todo.append((c, [(t, p) for p, t in plans.items()]))
    jobs = {(str(c.x.dtype).split(".")[-1], p) for c, cands in todo for _, p in cands}
    errors = backend.preload(sorted(jobs, key=lambda j: (j[0], j[1].params)), dev, args.workers)
    compile_s = time.perf_counter() - started
    print(f"compiled {len(jobs)} kernels in {compile_s:.1f} s ({len(errors)} failed)", flush=True)

    rows = []
    for c, cands in todo:
        kw = c.kw
        dtype = str(c.x.dtype).split(".")[-1]
        ref = fused.plan_run(fused._CUPY, c.x.float(), c.fu, c.fd, c.b.float(), kw["up"], kw["down"],
                             kw["padding"], kw["gain"], kw["slope"], kw["clamp"])
        scale = max(1.0, ref.abs().max().item())
        kd = 1 if c.fd is None else c.fd.shape[0]
        out = output_size(c.x.shape[2], c.x.shape[3], c.fu.shape[0], kd, kw["up"], kw["down"], kw["padding"])
        row: dict[str, Any] = {"where": c.where, "dtype": dtype, "input": list(c.x.shape),
                               "key": kind_key(dtype, kw["up"], c.fu.shape[0], kw["down"], kd,
                                               0 if c.fd is None else c.fd.ndim, out),
                               "candidates": []}
        over = time.perf_counter() - started > args.budget_s
        for t, p in cands:
            cand: dict[str, Any] = {"tuning": (t.as_dict() if t else "default"), "plan": p.name(dtype),
                                    "uv": p.uv, "smem_kb": round(p.smem_bytes / 1024, 1)}
            row["candidates"].append(cand)
            if over and t is not None:
                cand["skipped"] = "over --budget-s"
                continue
            if p.name(dtype) in errors:
                cand["error"] = errors[p.name(dtype)]
                continue
            tol = (1e-4 if c.x.dtype == torch.float32 else H2_TOL if p.uv & H2 else 2e-3) * scale
            try:
                def run(p: TilePlan = p) -> torch.Tensor:
                    return tile_run(backend, c.x, c.fu, c.fd, c.b, plan=p, **kw)
                got = run()
                err = (got.float() - ref).abs().max().item()
                cand["max_err"] = err
                if not err <= tol:
                    cand["error"] = f"max error {err:.3g} over {tol:.3g}"
                    continue
                cand["ms"] = round(_graph_ms(run, args.reps, args.replays), 4)
            except Exception as exc:   # report the candidate, go on with the others
                cand["error"] = f"{type(exc).__name__}: {str(exc)[:500]}"
        timed = [x for x in row["candidates"] if "ms" in x]
        if timed:
            best = min(timed, key=lambda x: x["ms"])
            row["best"] = best
            row["default_ms"] = next((x.get("ms") for x in row["candidates"] if x["tuning"] == "default"), None)
            row["old_ms"] = next((x.get("ms") for x in row["candidates"]
                                  if x["tuning"] == Tuning(32, 256, 4, 0).as_dict()), None)
            if any(_is_h2(x) for x in row["candidates"]):   # the half2 variant's best beside the float one
                for label, pick in (("h2", True), ("float", False)):
                    got = [x for x in timed if _is_h2(x) == pick]
                    if got:
                        row[f"{label}_best"] = min(got, key=lambda x: x["ms"])
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "candidates"}), flush=True)
    return rows


def _is_h2(cand: dict[str, Any]) -> bool:
    """Whether a candidate ran the half2 variant (its plan's ``uv`` has bit 4, ``H2``)."""
    return cand["uv"] & H2 != 0


def table(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """The plan table of the winners: ``{key@size: tuning}`` (a default winner: the default
    plan's own tuning, written out so that the file alone says what runs)."""
    out = {}
    for r in rows:
        best = r.get("best")
        if best is not None:
            t = best["tuning"]
            out[r["key"]] = _default_tuning(r["key"]).as_dict() if t == "default" else t
    return out


def _default_tuning(key: str) -> Tuning:
    from flowml_gan.fused_tile import plan_table

    table = plan_table()
    for k in (key, key.split("@")[0], "*"):
        if k in table:
            return table[k]
    return Tuning()


def report(result: dict[str, Any]) -> list[str]:
    """The text table: per call the old kernel's, the default plan's and the best ms and plan,
    and the filtered_lrelu time of a frame per precision (each call times the layers it is)."""
    lines = [f"flr_sweep: {result['device']}, torch {result['torch']}, {result['date']}, "
             f"{result['seconds']} s (compile included)", "",
             f"{'call (precision layer, ...)':48} {'dtype':8} {'old ms':>8} {'default':>8} {'best':>8}  best"]
    tot: dict[str, dict[str, float]] = {}
    for r in result["rows"]:
        names = ", ".join(w.split(" ", 1)[-1] for w in r["where"])
        b = r.get("best")
        if b is None:
            lines.append(f"{names[:48]:48} {r['dtype']:8} no candidate ran: "
                         + "; ".join(str(c.get("error", c.get("skipped")))[:80] for c in r["candidates"][:2]))
            continue
        old, dflt = r.get("old_ms"), r.get("default_ms")
        for w in r["where"]:
            t = tot.setdefault(" ".join(w.split(" ")[:2]), {"old": 0.0, "default": 0.0, "best": 0.0})
            for k, v in (("old", old), ("default", dflt), ("best", b["ms"])):
                t[k] += v if v is not None else b["ms"]
        lines.append(f"{names[:48]:48} {r['dtype']:8} {(f'{old:8.3f}' if old else '       -')} "
                     f"{(f'{dflt:8.3f}' if dflt else '       -')} {b['ms']:8.3f}  {b['tuning']} {b['plan']}")
    h2 = [r for r in result["rows"] if r.get("h2_best") and r.get("float_best")]
    if h2:
        lines += ["", "half2 variants (uv 7, 15) against the best float plan, float16 calls:"]
        for r in h2:
            names = ", ".join(w.split(" ", 1)[-1] for w in r["where"])
            hb, fb = r["h2_best"], r["float_best"]
            lines.append(f"  {names[:46]:46} float {fb['ms']:7.3f}  half2 {hb['ms']:7.3f} "
                         f"({fb['ms'] / hb['ms']:.2f}x, max err {hb.get('max_err', 0):.3g})  {hb['tuning']}")
    lines += ["", "filtered_lrelu ms a frame (the fused calls, captured):"]
    for name, t in tot.items():
        lines.append(f"  {name:16} old {t['old']:7.2f}  default {t['default']:7.2f}  best {t['best']:7.2f}")
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=["sg3-r"], choices=("sg3-r", "sg3-t"))
    ap.add_argument("--resolution", type=int, default=1024)
    ap.add_argument("--precision", nargs="+", default=["fp32", "mixed"], choices=("fp32", "mixed"))
    ap.add_argument("--reps", type=int, default=10, help="calls in one captured graph")
    ap.add_argument("--replays", type=int, default=5)
    ap.add_argument("--workers", type=int, default=16, help="NVRTC compiles at a time")
    ap.add_argument("--budget-s", type=float, default=150.0,
                    help="stop trying candidates after this many seconds (defaults kept)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("flr_sweep needs a CUDA GPU")
    from flowml_gan.fused import fused_unavailable

    why = fused_unavailable()
    if why:
        raise SystemExit(f"flr_sweep: the CuPy kernels are unavailable: {why}")
    started = time.perf_counter()
    torch.backends.cudnn.allow_tf32 = False
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    rows = []
    with torch.no_grad(), torch.cuda.stream(side):   # one stream: the modules, warm-up and captures
        calls = []
        for config in args.configs:
            calls += network_calls(config, args.resolution, args.precision, "cuda")
        rows = sweep(calls, args)
    torch.cuda.synchronize()
    plans = table(rows)
    result = {"device": torch.cuda.get_device_name(), "date": time.strftime("%Y-%m-%d %H:%M"),
              "torch": torch.__version__, "configs": args.configs, "resolution": args.resolution,
              "seconds": round(time.perf_counter() - started, 1), "plans": plans, "rows": rows}
    lines = report(result)
    print("\n".join(lines))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "plans.json").write_text(json.dumps(result, indent=1))
    (args.out / "plans.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
