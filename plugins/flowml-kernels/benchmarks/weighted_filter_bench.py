"""WeightedFilter on the GPU: CuPy kernels vs the unfold reference, and vs memory bandwidth.

    python plugins/flowml-kernels/benchmarks/weighted_filter_bench.py [--iters 20] [--size 1920 1080]
    python plugins/flowml-kernels/benchmarks/weighted_filter_bench.py --sweep [--out sweep.json]
    python plugins/flowml-kernels/benchmarks/weighted_filter_bench.py --sweep --channels 32 \
        --plans 'mma_|smem_32x8_cb4|smem_16x8_cb8' [--dtypes float16]
    python plugins/flowml-kernels/benchmarks/weighted_filter_bench.py --sweep --channels 32 \
        --plans 'pf_|^smem_32x8_cb4$|^smem_16x8_cb8$|^smem_32x4_cb8$|^l1_32x8_cb4$|^mma_c16_g4_w8$'
    python plugins/flowml-kernels/benchmarks/weighted_filter_bench.py --sweep --channels 32 \
        --dtypes float16 --plans '^h2w_|^h2_h_smem_16x8_cb8$'
    python plugins/flowml-kernels/benchmarks/weighted_filter_bench.py --sweep --channels 32 \
        --dtypes float16 --plans '^h2r_|^h2_h_smem_16x8_cb8$|^h2w_p4_16x8_cb8$'

Cases: 1920x1080, batch 1, C in {3, 32}, N in {5, 9}, float32 and float16, gather. ``gbps``
counts the bytes a kernel must move at least: the forward reads x and w and writes out,
``(2C + N*N) * H * W`` elements; the backward twice that (grad_x: g, w -> gx; grad_w: g, x ->
gw). ``of_copy`` is that rate over a device-to-device copy measured in the same run (bytes read
plus written over time). Two clocks: ``ms`` CUDA events around one call (what an idle GPU waits
for, host launch overhead included when the kernel is shorter than it) and ``gpu_ms`` the call
captured ``GRAPH_CALLS`` times in a CUDA graph, replayed (the kernel alone).

Default mode: the selected forward plan and the backward against the reference; one JSON
document on stdout. ``--sweep``: every forward plan of ``flowml_kernels.plans.PLANS`` for each
case, checked against the reference (max abs error) before it is timed, then a table (ms, gpu
ms, speed-up over the reference, % of copy), the best plan per case and a ``FORWARD_TABLE`` to
paste into ``plans.py``; JSON to ``--out`` (and the table next to it as ``.txt``). Kernels
compile in parallel first (NVRTC; CuPy's disk cache keeps them). ``--channels``, ``--kernels``,
``--dtypes`` pick the cases, ``--plans`` (a regular expression, searched in the names) the plans
(the third line above: the prefetching ``pf_*`` plans against their plain twins; the fourth:
the float16 weights-once ``h2w_*`` plans against the table's fp16 choice; the fifth: the
float16 register-row ``h2r_*`` plans against the table's fp16 C=32 plans).
Needs a GPU and CuPy.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import re
import sys
import time
from pathlib import Path

import torch

from flowml.bench.loops import gpu_ms as timed  # median ms from CUDA events, after 3 warm-ups
from flowml_kernels import cupy_backend, plans
from flowml_kernels.reference import filter_ref

GRAPH_CALLS = 10
TOL = {torch.float32: 1e-4, torch.float16: 3e-3}   # max abs error, outputs in [0, 1]
SWEEP_SECONDS = 160                                 # stop timing plans after this (budget)


def copy_gbps(iters: int) -> float:
    """Device-to-device copy bandwidth, GB/s of bytes read plus written (1 GiB buffers)."""
    src = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    ms = timed(lambda: dst.copy_(src), iters)
    del src, dst
    return 2 * (1 << 30) / ms / 1e6


def graph_ms(fn, iters: int) -> float:
    """GPU ms of one ``fn()``: ``GRAPH_CALLS`` calls captured in a CUDA graph, replayed
    (median over ``iters // 4 + 3`` replays); no host launch cost in it."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()                                        # warm (compiled already)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=side):
        for _ in range(GRAPH_CALLS):
            fn()
    ms = timed(graph.replay, max(3, iters // 4)) / GRAPH_CALLS
    del graph
    return ms


def _inputs(c: int, n: int, dtype: torch.dtype, w_: int, h: int):
    x = torch.rand(1, c, h, w_, device="cuda", dtype=dtype)
    w = torch.softmax(torch.randn(1, n * n, h, w_, device="cuda"), 1).to(dtype)
    return x, w


def _rate(nbytes: int, ms: float, copy: float) -> dict:
    gbps = nbytes / ms / 1e6
    return {"gbps": round(gbps, 1), "of_copy": round(gbps / copy, 3)}


def case(c: int, n: int, dtype: torch.dtype, w_: int, h: int, iters: int, copy: float) -> dict:
    """Default mode: the selected forward plan, the backward, the reference."""
    x, w = _inputs(c, n, dtype, w_, h)
    g = torch.rand_like(x)
    fwd_bytes = (2 * c + n * n) * h * w_ * x.element_size()
    plan = cupy_backend.forward_plan(x, w, n, False)
    row: dict = {"C": c, "N": n, "dtype": str(dtype).removeprefix("torch."), "H": h, "W": w_,
                 "plan": plan.name}

    def cupy_bwd():
        cupy_backend.filter_cuda(g, w, n, True)
        cupy_backend.wgrad_cuda(g, x, n)

    xr, wr = x.clone().requires_grad_(True), w.clone().requires_grad_(True)

    def ref_bwd():
        torch.autograd.grad(filter_ref(xr, wr, n, False), (xr, wr), g)

    fwd = lambda: cupy_backend.filter_cuda(x, w, n, False)  # noqa: E731
    for name, fn, nbytes, graphed in (("forward_cupy", fwd, fwd_bytes, True),
                                      ("backward_cupy", cupy_bwd, 2 * fwd_bytes, True),
                                      ("forward_ref", lambda: filter_ref(x, w, n, False), fwd_bytes, False),
                                      ("backward_ref", ref_bwd, 2 * fwd_bytes, False)):
        try:
            ms = timed(fn, iters)
            entry = {"ms": round(ms, 4), **_rate(nbytes, ms, copy)}
            if graphed:
                gms = graph_ms(fn, iters)
                entry.update(gpu_ms=round(gms, 4), gpu_of_copy=_rate(nbytes, gms, copy)["of_copy"])
            row[name] = entry
        except torch.cuda.OutOfMemoryError:
            row[name] = "out of memory"
            torch.cuda.empty_cache()
    for pas in ("forward", "backward"):
        cu, ref = row.get(f"{pas}_cupy"), row.get(f"{pas}_ref")
        if isinstance(cu, dict) and isinstance(ref, dict):
            row[f"{pas}_speedup"] = round(ref["ms"] / cu["ms"], 2)
            row[f"{pas}_speedup_gpu"] = round(ref["ms"] / cu["gpu_ms"], 2)
    return row


def _compile_all(jobs: list[tuple[plans.ForwardPlan, str, int, int]]) -> dict:
    """Compile every (plan, dtype, N, C) kernel in threads; {job: error text} of failures."""
    def one(job):
        plan, dtype, n, c = job
        k = cupy_backend.plan_kernel(plan, dtype, n, c)
        (k.compile() if hasattr(k, "compile") else k.kernel)

    errors = {}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = {pool.submit(one, j): j for j in jobs}
        for f in concurrent.futures.as_completed(futures):
            if f.exception() is not None:
                errors[futures[f]] = f"{type(f.exception()).__name__}: {f.exception()}"[:2000]
    for job in list(errors):            # once more, one at a time: a thread-safety slip is not a failure
        try:
            one(job)
            del errors[job]
        except Exception:
            pass
    return errors


def chosen_plans(pattern: str | None) -> dict[str, plans.ForwardPlan]:
    """The ``PLANS`` whose names ``pattern`` (a regular expression) matches; all for None."""
    if pattern is None:
        return dict(plans.PLANS)
    chosen = {k: p for k, p in plans.PLANS.items() if re.search(pattern, k)}
    if not chosen:
        raise SystemExit(f"--plans {pattern!r} matches no plan; plans: {', '.join(plans.PLANS)}")
    return chosen


def sweep_case(c: int, n: int, dtype: torch.dtype, w_: int, h: int, iters: int, copy: float,
               compile_errors: dict, deadline: float,
               chosen: dict[str, plans.ForwardPlan] | None = None) -> dict:
    """Every plan for one case: error against the reference, then ms and gpu ms."""
    dname = str(dtype).removeprefix("torch.")
    x, w = _inputs(c, n, dtype, w_, h)
    nbytes = (2 * c + n * n) * h * w_ * x.element_size()
    ref32 = filter_ref(x.float(), w.float(), n, False)
    ref_ms = timed(lambda: filter_ref(x, w, n, False), max(5, iters // 2))
    row: dict = {"C": c, "N": n, "dtype": dname, "H": h, "W": w_,
                 "selected": cupy_backend.forward_plan(x, w, n, False).name,
                 "reference": {"ms": round(ref_ms, 4), **_rate(nbytes, ref_ms, copy)}, "plans": {}}
    for name, plan in (plans.PLANS if chosen is None else chosen).items():
        why = plan.unsupported(dname, n, c)
        err_text = compile_errors.get((plan, dname, n, c))
        if why or err_text:
            row["plans"][name] = {"skipped": why or f"compile failed: {err_text}"}
            continue
        if time.monotonic() > deadline:
            row["plans"][name] = {"skipped": f"sweep time budget ({SWEEP_SECONDS} s) spent"}
            continue
        fn = lambda: cupy_backend.filter_cuda(x, w, n, False, plan=plan)  # noqa: E731
        try:
            err = (fn().float() - ref32).abs().max().item()
            entry: dict = {"max_abs_err": float(f"{err:.3g}")}
            if not err <= TOL[dtype]:                   # NaN too
                entry["wrong"] = f"max abs error {err:.3g} > {TOL[dtype]}"
            else:
                ms, gms = timed(fn, iters), graph_ms(fn, iters)
                entry.update(ms=round(ms, 4), gpu_ms=round(gms, 4),
                             speedup=round(ref_ms / ms, 2), speedup_gpu=round(ref_ms / gms, 2),
                             of_copy=_rate(nbytes, ms, copy)["of_copy"],
                             gpu_of_copy=_rate(nbytes, gms, copy)["of_copy"])
        except Exception as e:  # one broken plan must not end the sweep
            entry = {"failed": f"{type(e).__name__}: {e}"[:500]}
        row["plans"][name] = entry
    timed_ = {k: v for k, v in row["plans"].items() if "gpu_ms" in v}
    if timed_:
        row["best"] = min(timed_, key=lambda k: timed_[k]["gpu_ms"])
        row["best_eager"] = min(timed_, key=lambda k: timed_[k]["ms"])
    del x, w, ref32
    torch.cuda.empty_cache()
    return row


def table(rows: list[dict]) -> str:
    """The sweep as text: one line a plan and case, the best marked, then a FORWARD_TABLE."""
    lines = [f"{'C':>3} {'N':>2} {'dtype':8} {'plan':21} {'ms':>8} {'gpu ms':>8} {'x ref':>6} "
             f"{'x ref gpu':>9} {'copy%':>6} {'gpu copy%':>9}  note"]
    for r in rows:
        lines.append(f"{r['C']:>3} {r['N']:>2} {r['dtype']:8} {'reference':21} "
                     f"{r['reference']['ms']:8.4f} {'':>8} {'':>6} {'':>9} "
                     f"{100 * r['reference']['of_copy']:5.1f}%")
        for name, e in r["plans"].items():
            if "gpu_ms" in e:
                mark = " <- best" if name == r.get("best") else ""
                mark += " (selected)" if name == r["selected"] else ""
                lines.append(f"{r['C']:>3} {r['N']:>2} {r['dtype']:8} {name:21} {e['ms']:8.4f} "
                             f"{e['gpu_ms']:8.4f} {e['speedup']:6.2f} {e['speedup_gpu']:9.2f} "
                             f"{100 * e['of_copy']:5.1f}% {100 * e['gpu_of_copy']:8.1f}%  "
                             f"err {e['max_abs_err']}{mark}")
            else:
                lines.append(f"{r['C']:>3} {r['N']:>2} {r['dtype']:8} {name:21} "
                             f"{e.get('skipped') or e.get('wrong') or e.get('failed')}")
    lines.append("")
    lines.append("best plan per case (by gpu ms; by eager ms):")
    for r in rows:
        lines.append(f"  C={r['C']} N={r['N']} {r['dtype']}: {r.get('best')} ; {r.get('best_eager')}"
                     f" (selected now: {r['selected']})")
    lines.append("")
    lines.append("FORWARD_TABLE from this sweep (paste into flowml_kernels/plans.py; C <= 4 from")
    lines.append("the C = 3 cases, above from C = 32; N up to 5 from N = 5, up to 9 from N = 9):")
    lines.append(suggest(rows))
    return "\n".join(lines)


def suggest(rows: list[dict]) -> str:
    """A ``FORWARD_TABLE`` literal from the best plans (N = 15 entries kept as they are)."""
    out: dict = {}
    for dtype, by_c in plans.FORWARD_TABLE.items():
        out[dtype] = {cmax: dict(by_n) for cmax, by_n in by_c.items()}
    for r in rows:
        if not r.get("best") or r["dtype"] not in out:
            continue
        cmax = plans.BIG if r["C"] > 4 else 4
        out[r["dtype"]].setdefault(cmax, {})[r["N"]] = r["best"]
    text = ["FORWARD_TABLE: dict[str, dict[int, dict[int, str]]] = {"]
    for dtype, by_c in out.items():
        text.append(f"    {dtype!r}: {{")
        for cmax in sorted(by_c):
            entries = ", ".join(f"{n}: {by_c[cmax][n]!r}" for n in sorted(by_c[cmax]))
            text.append(f"        {'BIG' if cmax == plans.BIG else cmax}: {{{entries}}},")
        text.append("    },")
    text.append("}")
    return "\n".join(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--size", type=int, nargs=2, default=(1920, 1080), metavar=("W", "H"))
    ap.add_argument("--channels", type=int, nargs="+", default=(3, 32))
    ap.add_argument("--kernels", type=int, nargs="+", default=(5, 9))
    ap.add_argument("--dtypes", nargs="+", default=("float32", "float16"),
                    choices=("float32", "float16"))
    ap.add_argument("--sweep", action="store_true", help="time every forward plan per case")
    ap.add_argument("--plans", metavar="REGEX",
                    help="sweep only the plans whose names match (re.search), e.g. 'mma_|smem_'")
    ap.add_argument("--out", type=Path, help="JSON file to write (the sweep's table next to it)")
    args = ap.parse_args(argv)
    why = cupy_backend.unavailable()
    if why:
        print(f"weighted_filter_bench needs a GPU and CuPy: {why}", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    copy = copy_gbps(args.iters)
    dtypes = tuple(getattr(torch, d) for d in args.dtypes)
    cases = [(c, n, dt) for c in args.channels for n in args.kernels for dt in dtypes]
    doc = {"device": torch.cuda.get_device_name(),
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "torch": torch.__version__, "cupy": __import__("cupy").__version__,
           "copy_gbps": round(copy, 1), "mode": "gather", "raw_pointers": cupy_backend.RAW_POINTERS}
    if not args.sweep:
        doc["cases"] = [case(c, n, dt, *args.size, args.iters, copy) for c, n, dt in cases]
        doc["raw_pointers"] = cupy_backend.RAW_POINTERS
        text = json.dumps(doc, indent=1)
        print(text)
        if args.out:
            args.out.write_text(text)
        return 0
    names = {torch.float32: "float32", torch.float16: "float16"}
    chosen = chosen_plans(args.plans)
    doc["plans"] = args.plans
    jobs = sorted({(p, names[dt], n, c) for c, n, dt in cases for p in chosen.values()
                   if p.unsupported(names[dt], n, c) is None}, key=lambda j: (j[0].name, j[1:]))
    errors = _compile_all(jobs)
    doc["compile_s"] = round(time.monotonic() - t0, 1)
    deadline = time.monotonic() + SWEEP_SECONDS
    doc["cases"] = [sweep_case(c, n, dt, *args.size, args.iters, copy, errors, deadline, chosen)
                    for c, n, dt in cases]
    doc["raw_pointers"] = cupy_backend.RAW_POINTERS
    doc["seconds"] = round(time.monotonic() - t0, 1)
    doc["suggested_table"] = suggest(doc["cases"])
    text = table(doc["cases"])
    print(f"{doc['device']}, {doc['date']}, copy {doc['copy_gbps']} GB/s, compile "
          f"{doc['compile_s']} s, total {doc['seconds']} s, raw pointers {doc['raw_pointers']}")
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=1))
        args.out.with_suffix(".txt").write_text(text + "\n")
        print(f"wrote {args.out} and {args.out.with_suffix('.txt')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
