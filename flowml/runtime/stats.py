"""Per-node and per-graph statistics: calls, time, drops, fps, latency percentiles."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


@dataclass
class NodeStats:
    """Counters of one node. Times are host (CPU) wall time spent in ``process``, in seconds."""

    type_name: str
    calls: int = 0
    held: int = 0      # ticks where the node did not run and its last output was reused
    drops: int = 0     # frames it did not get (live mode, it was behind)
    skipped: int = 0   # ticks where a required input had no value (flowml.NO_VALUE): not a drop
    errors: int = 0
    total_s: float = 0.0
    max_s: float = 0.0
    gpu_ms_total: float = 0.0   # filled by the GPU runtime from CUDA events
    gpu_calls: int = 0
    gpu_ms_recent: deque = field(default_factory=lambda: deque(maxlen=2000), repr=False)
    report: Callable[[], Mapping[str, Any] | None] | None = field(default=None, repr=False)
    """The node's ``Node.report``, read when the stats are shown or written."""

    def reported(self) -> dict[str, Any] | None:
        """What the node reports of itself; a report that raises says so instead."""
        if self.report is None:
            return None
        try:
            r = self.report()
        except Exception as exc:  # a stats view never takes the graph down
            return {"error": f"{type(exc).__name__}: {exc}"}
        return None if r is None else dict(r)

    def record(self, seconds: float) -> None:
        self.calls += 1
        self.total_s += seconds
        self.max_s = max(self.max_s, seconds)

    def as_dict(self) -> dict[str, Any]:
        d = {
            "type": self.type_name, "calls": self.calls, "held": self.held, "drops": self.drops,
            "skipped": self.skipped, "errors": self.errors,
            "mean_us": round(1e6 * self.total_s / self.calls, 1) if self.calls else None,
            "max_us": round(1e6 * self.max_s, 1),
        }
        if self.gpu_calls:
            d["gpu_mean_us"] = round(1000 * self.gpu_ms_total / self.gpu_calls, 1)
        reported = self.reported()
        if reported is not None:
            d["report"] = reported
        return d


@dataclass
class GraphStats:
    """Counters of the whole graph. A tick is *completed* when its last call has returned and
    the GPU work it enqueued is done (``runtime.completion``): ``fps``, ``recent_fps`` and the
    latencies (a frame's arrival to then) measure GPU completion, not the enqueue."""

    nodes: dict[str, NodeStats] = field(default_factory=dict)
    ticks: int = 0
    completed: int = 0
    failed: int = 0
    source_drops: int = 0
    started: float = field(default_factory=time.perf_counter)
    ended: float | None = None
    latencies: deque = field(default_factory=lambda: deque(maxlen=20000))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _recent: deque = field(default_factory=lambda: deque(maxlen=120), repr=False)

    def tick_done(self, latency_s: float, ok: bool = True) -> None:
        with self._lock:
            self.completed += ok
            self.failed += not ok
            if ok:
                self.latencies.append(latency_s)
                self._recent.append(time.perf_counter())

    def elapsed(self) -> float:
        return (self.ended or time.perf_counter()) - self.started

    def fps(self) -> float:
        """Average completed frames per second since the start."""
        e = self.elapsed()
        return self.completed / e if e > 0 else 0.0

    def recent_fps(self) -> float:
        """Frames per second over the last (up to) 120 completed frames."""
        with self._lock:
            r = list(self._recent)
        return (len(r) - 1) / (r[-1] - r[0]) if len(r) > 1 and r[-1] > r[0] else 0.0

    def latency_ms(self, q: float) -> float | None:
        with self._lock:
            lat = np.fromiter(self.latencies, float)
        return float(np.percentile(lat, q) * 1000) if lat.size else None

    def as_dict(self) -> dict[str, Any]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 3)

        return {
            "ticks": self.ticks, "completed": self.completed, "failed": self.failed,
            "source_drops": self.source_drops, "seconds": r(self.elapsed()), "fps": r(self.fps()),
            "latency_ms": {"p50": r(self.latency_ms(50)), "p99": r(self.latency_ms(99)),
                           "max": r(self.latency_ms(100))},
            "nodes": {k: v.as_dict() for k, v in self.nodes.items()},
        }


def stats_table(stats: GraphStats, title: str = "flowml"):
    """A rich Table of the current stats (for ``--stats``)."""
    from rich.table import Table

    p50, p99 = stats.latency_ms(50), stats.latency_ms(99)
    lat = f"latency p50 {p50:.1f} ms  p99 {p99:.1f} ms" if p50 is not None else "latency -"
    t = Table(title=f"{title}: {stats.completed} frames  {stats.recent_fps():.1f} fps  {lat}  "
                    f"dropped {stats.source_drops}", title_justify="left")
    for col in ("node", "type", "calls", "mean us", "max us", "gpu us", "held", "drops", "errors"):
        t.add_column(col, justify="left" if col in ("node", "type") else "right")
    reports = []
    for name, n in stats.nodes.items():
        d = n.as_dict()
        t.add_row(name, n.type_name, str(n.calls), str(d["mean_us"] or "-"), str(d["max_us"]),
                  str(d.get("gpu_mean_us", "-")), str(n.held), str(n.drops), str(n.errors))
        if "report" in d:
            reports.append(f"{name}: {report_line(d['report'])}")
    if reports:  # what nodes say of themselves (Node.report), one line each
        t.caption, t.caption_justify = "\n".join(reports), "left"
    return t


def report_line(report: Mapping[str, Any]) -> str:
    """``{"fps": 30.0, "latency_ms": {"p50": 2.1, "p99": 4.0}}`` -> ``fps 30.0  latency_ms p50 2.1 p99 4.0``
    (None values left out)."""
    parts = []
    for key, value in report.items():
        if isinstance(value, Mapping):
            inner = " ".join(f"{k} {v}" for k, v in value.items() if v is not None)
            if inner:
                parts.append(f"{key} {inner}")
        elif value is not None:
            parts.append(f"{key} {value}")
    return "  ".join(parts)
