"""Run the benchmark scenarios and write results: JSON, a markdown table, a latency plot."""

from __future__ import annotations

import datetime as dt
import json
import platform
import tempfile
from pathlib import Path
from typing import Any

import torch


def device_name() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    return f"CPU ({platform.processor() or platform.machine()}), torch {torch.__version__}"


def run(names: list[str], out: Path, log=print) -> dict[str, Any]:
    from .scenarios import SCENARIOS

    torch.backends.cudnn.benchmark = True
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"device": device_name(), "date": dt.date.today().isoformat(),
                               "cpu_count": __import__("os").cpu_count(), "scenarios": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            log(f"[bench] {name} ...")
            try:
                if name == "overhead" and not torch.cuda.is_available():
                    r = SCENARIOS[name](Path(tmp), ticks=500, device="cpu")
                else:
                    r = SCENARIOS[name](Path(tmp))
            except Exception as exc:  # one failing scenario must not lose the others
                r = {"error": f"{type(exc).__name__}: {exc}"}
            results["scenarios"][name] = r
            log(f"[bench] {name}: " + json.dumps({k: v for k, v in r.items() if k != "latencies_ms"},
                                                 default=str))
    (out / "bench.json").write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    (out / "bench.md").write_text(markdown(results), encoding="utf-8")
    _plot_latency(results, out / "latency.png")
    return results


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items())
    return str(v)


def markdown(results: dict[str, Any]) -> str:
    lines = [f"### {results['date']} on {results['device']}", ""]
    for name, r in results["scenarios"].items():
        lines.append(f"**{name}**" + (f" (target {r['target']}: {'met' if r.get('met') else 'NOT met'})"
                                      if "target" in r else ""))
        lines.append("")
        lines.append("| figure | value |")
        lines.append("| --- | --- |")
        for k, v in r.items():
            if k in ("target", "met", "latencies_ms"):
                continue
            lines.append(f"| {k} | {_fmt(v)} |")
        lines.append("")
    return "\n".join(lines)


def _plot_latency(results: dict[str, Any], path: Path) -> None:
    lat = results["scenarios"].get("latency", {}).get("latencies_ms")
    if not lat:
        return
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    ax[0].plot(lat, lw=0.8)
    ax[0].set(xlabel="frame", ylabel="latency ms", title="host in -> host out, 1080p, live")
    ax[1].hist(lat, bins=40)
    ax[1].set(xlabel="latency ms", ylabel="frames", title=results["device"][:40])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
