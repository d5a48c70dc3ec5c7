"""The driver's bookkeeping, shared by the Ray and the local driver: which inputs are still to
do, retries, worker crashes, and the manifest line written once an input is finished.

Only the driver writes the manifest, one line per finished input (done, or failed after its
last try); a try that will be retried, and an input stopped by Ctrl-C, write nothing, so
``--resume`` does them again.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from .inputs import Item
from .manifest import Manifest
from .runner import FileResult

__all__ = ["Job", "Ledger", "Reporter", "Summary", "MAX_CRASHES"]

MAX_CRASHES = 3
"""An input whose run took down this many workers is reported failed instead of re-queued."""


class Reporter(Protocol):
    """What the drivers tell the user (``progress.BatchProgress``)."""

    def finished(self, result: FileResult) -> None: ...
    def note(self, text: str) -> None: ...


@dataclass
class Job:
    item: Item
    attempt: int = 1
    crashes: int = 0


@dataclass
class Summary:
    """The totals of a batch run (``flowml batch`` prints them as a table)."""

    total: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0             # done by an earlier run (--resume)
    not_finished: int = 0        # stopped (Ctrl-C) before they were done
    frames: int = 0
    seconds: float = 0.0         # wall time of this run
    retries: int = 0
    restarts: int = 0            # workers replaced after their process died
    workers: int = 0
    interrupted: bool = False
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def files_per_minute(self) -> float:
        return 60.0 * self.done / self.seconds if self.seconds > 0 else 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (
            "total", "done", "failed", "skipped", "not_finished", "frames", "seconds", "retries",
            "restarts", "workers", "interrupted", "failures")} | {
            "files_per_minute": round(self.files_per_minute, 2), "fps": round(self.fps, 2)}


class Ledger:
    """Pending jobs, retries and the manifest. Used from the driver's thread only, except
    ``stop`` (a signal handler) and ``stopping``."""

    def __init__(self, items: list[Item], manifest: Manifest, *, retries: int, reporter: Reporter,
                 skipped: int = 0):
        self.pending: deque[Job] = deque(Job(it) for it in items)
        self.manifest = manifest
        self.retries = retries
        self.reporter = reporter
        self.summary = Summary(total=len(items) + skipped, skipped=skipped)
        self._stop = threading.Event()
        self._t0 = time.perf_counter()

    # -- stopping -----------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def next_job(self) -> Job | None:
        if self.stopping or not self.pending:
            return None
        return self.pending.popleft()

    # -- outcomes ------------------------------------------------------------------------------
    def finished(self, job: Job, result: FileResult) -> None:
        """A worker returned ``result`` for ``job``: retry it, or write its line."""
        if result.status == "stopped":
            return
        if result.status == "failed" and result.retry and job.attempt <= self.retries and not self.stopping:
            self.summary.retries += 1
            self.reporter.note(f"retrying {result.input} (try {job.attempt + 1} of "
                               f"{self.retries + 1}): {_first_line(result.error)}")
            self.pending.append(Job(job.item, job.attempt + 1, job.crashes))
            return
        self._write(result)

    def crashed(self, job: Job, why: str, worker: str = "") -> None:
        """The worker running ``job`` died: run it again elsewhere, unless it keeps killing
        workers."""
        self.summary.restarts += 1
        crashes = job.crashes + 1
        if crashes < MAX_CRASHES and not self.stopping:
            self.reporter.note(f"worker {worker or '?'} died running {job.item.input} ({why}); "
                               "a new worker takes it again")
            self.pending.appendleft(Job(job.item, job.attempt, crashes))
            return
        if self.stopping:
            return
        self._write(FileResult(job.item.input, job.item.index, "failed", attempts=job.attempt,
                               error=f"the worker died {crashes} times running this input: {why}",
                               worker=worker))

    def _write(self, result: FileResult) -> None:
        self.manifest.append(result.as_dict())
        s = self.summary
        if result.status == "done":
            s.done += 1
            s.frames += result.frames
        else:
            s.failed += 1
            s.failures.append({"input": result.input, "error": result.error})
        self.reporter.finished(result)

    def close(self, in_flight: int = 0) -> Summary:
        s = self.summary
        s.seconds = round(time.perf_counter() - self._t0, 3)
        s.not_finished = s.total - s.skipped - s.done - s.failed
        s.interrupted = self.stopping
        return s


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


Callback = Callable[[FileResult], None]
