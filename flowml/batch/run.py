"""``run_batch``: the whole batch (inputs, checks, resume, a driver, the summary) as a function,
for ``flowml batch`` and for programs and tests that drive it themselves."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rich.console import Console

from .inputs import BatchUsageError, expand_inputs, make_items, parse_set
from .ledger import Ledger, Summary
from .manifest import Manifest, finished_inputs
from .progress import BatchProgress
from .runner import FileResult, check_bindings, check_distinct_outputs, load_batch_graph

__all__ = ["BatchConfig", "Stopper", "run_batch", "default_manifest"]


@dataclass
class BatchConfig:
    graph: str
    inputs: list[str]
    sets: list[str] = field(default_factory=list)
    workers: int = 1
    local: bool = False
    retries: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    ray_address: str | None = None
    device: str | None = None
    rebuild: list[str] = field(default_factory=list)
    manifest: str | None = None
    resume: bool = False
    cwd: str = field(default_factory=os.getcwd)
    verbose: bool = False


class Stopper:
    """Ctrl-C for a batch: ``request()`` (safe in a signal handler, or from any thread) calls
    every registered stop function once."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._calls: list[Callable[[], None]] = []

    def on_stop(self, fn: Callable[[], None]) -> None:
        self._calls.append(fn)
        if self.event.is_set():
            fn()

    def request(self) -> None:
        if self.event.is_set():
            return
        self.event.set()
        for fn in list(self._calls):
            fn()


def default_manifest(graph: str, cwd: str) -> str:
    return os.path.join(cwd, f"{Path(graph).stem}.batch.jsonl")


class _Tee:
    def __init__(self, progress: BatchProgress, on_result: Callable[[FileResult], None] | None):
        self.progress, self.on_result = progress, on_result

    def finished(self, result: FileResult) -> None:
        self.progress.finished(result)
        if self.on_result is not None:
            self.on_result(result)

    def note(self, text: str) -> None:
        self.progress.note(text)


def run_batch(cfg: BatchConfig, console: Console, *, stopper: Stopper | None = None,
              on_result: Callable[[FileResult], None] | None = None) -> Summary:
    """Check everything that can be checked before any worker starts (raises
    ``BatchUsageError``, or ``flowml.graph.GraphErrors`` for a bad graph file), then run.
    Raises ImportError when Ray is wanted and not installed."""
    stopper = stopper or Stopper()
    cwd = os.path.abspath(cfg.cwd)
    graph_path = os.path.join(cwd, cfg.graph) if not os.path.isabs(cfg.graph) else cfg.graph
    if cfg.workers < 1:
        raise BatchUsageError("--workers must be 1 or more")
    if cfg.local and cfg.workers != 1:
        raise BatchUsageError("--local runs one worker in this process: use --workers 1, or drop --local")
    if cfg.retries < 0:
        raise BatchUsageError("--retries must be 0 or more")
    inputs = expand_inputs(cfg.inputs, Path(cwd))
    bindings = [parse_set(s) for s in cfg.sets]
    graph, _ = load_batch_graph(graph_path)
    items = make_items(inputs, bindings)
    check_bindings(graph, bindings, items[0])
    check_distinct_outputs(graph, items, cwd)
    if cfg.local:
        from .runner import FileRunner

        runner = FileRunner(graph_path, device=cfg.device, rebuild=cfg.rebuild, cwd=cwd)
    else:
        from .ray_driver import import_ray

        import_ray()  # ImportError now, before the manifest is touched
    manifest_path = cfg.manifest or default_manifest(graph_path, cwd)
    manifest_path = manifest_path if os.path.isabs(manifest_path) else os.path.join(cwd, manifest_path)
    done = finished_inputs(manifest_path, inputs) if cfg.resume else set()
    todo = [it for it in items if it.input not in done]
    with Manifest(manifest_path) as manifest, BatchProgress(console, len(items), len(done),
                                                           Path(graph_path).stem) as progress:
        ledger = Ledger(todo, manifest, retries=cfg.retries, reporter=_Tee(progress, on_result),
                        skipped=len(done))
        stopper.on_stop(ledger.stop)
        if not todo:
            workers = 0  # every input was done before: no worker, no Ray to start
        elif cfg.local:
            from .local import run_local

            stopper.on_stop(runner.stop)
            run_local(runner, ledger)
            workers = 1
        else:
            from .ray_driver import RayOptions, run_ray

            workers = run_ray(RayOptions(graph_path, cfg.workers, cfg.cpus_per_worker, cfg.gpus_per_worker,
                                         cfg.ray_address, cfg.device, tuple(cfg.rebuild), cwd, cfg.verbose),
                              ledger)
        summary = ledger.close()
        summary.workers = workers
    return summary
