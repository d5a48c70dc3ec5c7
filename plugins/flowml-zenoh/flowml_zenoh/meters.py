"""What a Zenoh node reports in ``--stats`` and ``--stats-json``: counts, latency, throughput."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from flowml.lazy import lazy_import

np = lazy_import("numpy")


class Meter:
    """Samples and bytes over time, and per-sample latencies in seconds (the last ``keep``)."""

    def __init__(self, keep: int = 20_000):
        self.samples = 0
        self.bytes = 0
        self.first: float | None = None  # time.perf_counter() of the first sample
        self.last: float | None = None
        self._latency: dict[str, deque] = {}
        self._keep = keep
        self._lock = threading.Lock()

    def count(self, nbytes: int) -> None:
        now = time.perf_counter()
        with self._lock:
            self.samples += 1
            self.bytes += nbytes
            self.first = now if self.first is None else self.first
            self.last = now

    def latency(self, name: str, seconds: float) -> None:
        with self._lock:
            self._latency.setdefault(name, deque(maxlen=self._keep)).append(seconds)

    def as_dict(self) -> dict[str, Any]:
        """``samples``, ``bytes``, ``fps`` and ``mb_per_s`` (between the first and the last
        sample), and ``<name>_ms`` ``{p50, p99, max}`` for each latency kept."""
        with self._lock:
            span = (self.last - self.first) if self.first is not None and self.last is not None else 0.0
            d: dict[str, Any] = {"samples": self.samples, "bytes": self.bytes}
            rate = (self.samples - 1) / span if span > 0 else None
            d["fps"] = None if rate is None else round(rate, 2)
            d["mb_per_s"] = None if rate is None else round(rate * self.bytes / self.samples / 1e6, 2)
            for name, values in self._latency.items():
                a = np.fromiter(values, float) * 1000
                d[f"{name}_ms"] = {"p50": round(float(np.percentile(a, 50)), 3),
                                   "p99": round(float(np.percentile(a, 99)), 3),
                                   "max": round(float(a.max()), 3)} if a.size else None
        return d
