"""``flowml batch`` on Ray: one actor per worker, inputs handed out one at a time.

The driver (this process) owns the queue and the manifest. Each worker is a ``BatchWorker``
actor asking for ``cpus_per_worker`` CPUs and ``gpus_per_worker`` GPUs (a fraction shares a
GPU: four workers at 0.25 on one GPU). A worker gets its next input as soon as it returns the
last one, so a slow file holds up only its own worker. What travels through Ray is an
``Item`` and a ``FileResult``: paths and numbers, never frames.

- a failed input is retried (``Ledger``), on whichever worker is free;
- a worker whose process dies (``RayActorError``) is killed for good and replaced by a new
  actor, and its input is queued again at the front (``MAX_CRASHES``);
- ``ledger.stop()`` (Ctrl-C) asks every busy worker to stop; what they return in
  ``STOP_WAIT_S`` is kept (a finished input is written, a stopped one is not), the rest are
  killed. Their outputs stay staged, never renamed into place.

``address`` None starts a local Ray (no dashboard, a small object store) and shuts it down at
the end; ``"auto"`` or ``host:port`` joins a running cluster (every node must see the graph
file and the inputs at the same paths, and have flowml and the graph's plugins installed).
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any

from .ledger import Job, Ledger
from .runner import FileResult
from .worker import BatchWorker

__all__ = ["RayOptions", "run_ray", "RAY_ENV", "BatchError"]

STOP_WAIT_S = 30.0
START_TIMEOUT_S = 300.0
OBJECT_STORE_BYTES = 100 * 1024 * 1024  # only paths and small results pass through it
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0"}
"""Set (unless already set) before Ray is imported: no usage stats, worker logs as they are."""


class BatchError(RuntimeError):
    """The batch cannot go on (no worker starts); the message says why and what to change."""


@dataclass
class RayOptions:
    graph: str
    workers: int = 2
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    address: str | None = None
    device: str | None = None
    rebuild: tuple[str, ...] = ()
    cwd: str = "."
    verbose: bool = False


def import_ray():
    for k, v in RAY_ENV.items():
        os.environ.setdefault(k, v)
    import ray  # ImportError: the caller says how to install it

    return ray


def run_ray(opts: RayOptions, ledger: Ledger) -> int:
    """Run the ledger's inputs on Ray; returns how many workers took part."""
    ray = import_ray()
    own = not ray.is_initialized()
    if own:
        quiet = dict(log_to_driver=opts.verbose, logging_level=logging.INFO if opts.verbose else logging.WARNING)
        if opts.address:
            ray.init(address=opts.address, **quiet)
        else:
            need = math.ceil(opts.workers * opts.cpus_per_worker)
            ray.init(num_cpus=max(need, os.cpu_count() or 1), include_dashboard=False,
                     object_store_memory=OBJECT_STORE_BYTES, **quiet)
    try:
        return _Pool(ray, opts, ledger).run()
    finally:
        if own:
            ray.shutdown()


class _Pool:
    def __init__(self, ray: Any, opts: RayOptions, ledger: Ledger):
        self.ray, self.opts, self.ledger = ray, opts, ledger
        self.actor_class = ray.remote(BatchWorker)
        self.starting: dict[Any, Any] = {}   # ping ref -> actor
        self.idle: list[Any] = []
        self.inflight: dict[Any, tuple[Any, Job]] = {}  # run ref -> (actor, job)
        self.names: dict[Any, str] = {}      # actor -> "host:pid"
        self.started = 0
        self.failed_starts = 0
        self.last_start_error = ""

    def spawn(self) -> None:
        o = self.opts
        actor = self.actor_class.options(
            num_cpus=o.cpus_per_worker, num_gpus=o.gpus_per_worker, max_concurrency=2,
            max_restarts=0, max_task_retries=0,
        ).remote(o.graph, o.device, list(o.rebuild), o.cwd, o.verbose)
        self.starting[actor.ping.remote()] = actor

    def run(self) -> int:
        ray, ledger = self.ray, self.ledger
        for _ in range(min(self.opts.workers, len(ledger.pending)) or 0):
            self.spawn()
        t_start = time.monotonic()
        stop_deadline: float | None = None
        try:
            while True:
                self._hand_out()
                if not self.inflight and (ledger.stopping or not ledger.pending):
                    break
                if ledger.stopping and stop_deadline is None:
                    stop_deadline = time.monotonic() + STOP_WAIT_S
                    for actor, _ in self.inflight.values():
                        actor.stop.remote()
                if stop_deadline is not None and time.monotonic() > stop_deadline:
                    break
                if not self.idle and not self.inflight and not self.starting:
                    raise BatchError(f"no worker is left to run the inputs: {self.last_start_error}")
                if (self.starting and not self.names and not self.inflight
                        and time.monotonic() - t_start > START_TIMEOUT_S):
                    raise BatchError(self._no_room())
                ready, _ = ray.wait([*self.starting, *self.inflight], num_returns=1, timeout=0.2)
                for ref in ready:
                    if ref in self.starting:
                        self._started(ref)
                    else:
                        self._returned(ref)
        finally:
            for actor in [*self.idle, *self.starting.values(), *(a for a, _ in self.inflight.values())]:
                ray.kill(actor, no_restart=True)
        return self.started

    def _hand_out(self) -> None:
        while self.idle and not self.ledger.stopping:
            job = self.ledger.next_job()
            if job is None:
                return
            actor = self.idle.pop()
            self.inflight[actor.run.remote(job.item.as_dict(), job.attempt)] = (actor, job)

    def _started(self, ref: Any) -> None:
        actor = self.starting.pop(ref)
        try:
            self.names[actor] = self.ray.get(ref)
            self.started += 1
            self.idle.append(actor)
        except self.ray.exceptions.RayError as exc:  # the graph or a plugin does not load there
            self.failed_starts += 1
            self.last_start_error = _short(exc)
            self.ledger.reporter.note(f"a worker did not start: {self.last_start_error}")
            self.ray.kill(actor, no_restart=True)
            if self.failed_starts <= 2 * self.opts.workers and not self.ledger.stopping:
                self.spawn()

    def _returned(self, ref: Any) -> None:
        actor, job = self.inflight.pop(ref)
        ray = self.ray
        try:
            result = FileResult(**ray.get(ref))
        except ray.exceptions.RayActorError as exc:  # its process died (killed, segfault, OOM)
            ray.kill(actor, no_restart=True)
            self.ledger.crashed(job, _short(exc), self.names.pop(actor, ""))
            if not self.ledger.stopping:
                self.spawn()
            return
        except ray.exceptions.RayError as exc:
            result = FileResult(job.item.input, job.item.index, "failed", error=_short(exc),
                                attempts=job.attempt, worker=self.names.get(actor, ""))
        self.ledger.finished(job, result)
        self.idle.append(actor)

    def _no_room(self) -> str:
        o = self.opts
        return (f"no worker started in {START_TIMEOUT_S:.0f} s: each asks for {o.cpus_per_worker:g} CPU and "
                f"{o.gpus_per_worker:g} GPU, the cluster has {self.ray.available_resources()} free; "
                "lower --workers, --cpus-per-worker or --gpus-per-worker")


def _short(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:500]
