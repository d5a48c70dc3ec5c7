"""``flowml batch --workers 1 --local``: the batch loop in this process, no Ray at all."""

from __future__ import annotations

from .ledger import Ledger
from .runner import FileRunner

__all__ = ["run_local"]


def run_local(runner: FileRunner, ledger: Ledger) -> None:
    """Every pending input through ``runner``, one after the other, until done or stopped
    (``ledger.stop()`` must also call ``runner.stop()``, which ends the input running now)."""
    try:
        while (job := ledger.next_job()) is not None:
            ledger.finished(job, runner.run(job.item, job.attempt))
    finally:
        runner.close()
