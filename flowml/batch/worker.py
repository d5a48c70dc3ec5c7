"""The Ray actor of ``flowml batch``: one per worker, holding one ``FileRunner``.

It loads the graph (and, with the first input, its models) once and runs it once per input.
Only an ``Item`` (paths, param values) goes in and a ``FileResult`` (paths, numbers, an error
text) comes out: frames stay inside the worker, never in Ray's object store. Two calls may
run at once (``max_concurrency=2``) so that ``stop`` reaches a worker in the middle of ``run``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from typing import Any

from .inputs import Item
from .runner import FileRunner

__all__ = ["BatchWorker"]


class BatchWorker:
    def __init__(self, graph: str, device: str | None, rebuild: list[str], cwd: str,
                 verbose: bool = False):
        logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(message)s")
        logging.getLogger("flowml").setLevel(logging.DEBUG if verbose else logging.WARNING)
        self.runner = FileRunner(graph, device=device, rebuild=rebuild, cwd=cwd,
                                 worker=f"{socket.gethostname()}:{os.getpid()}")

    def ping(self) -> str:
        """The worker's name, ``host:pid`` (its process id, for a test that kills it)."""
        return self.runner.worker

    def run(self, item: dict[str, Any], attempt: int) -> dict[str, Any]:
        return dataclasses.asdict(self.runner.run(Item(**item), attempt))

    def stop(self) -> None:
        self.runner.stop()

    def close(self) -> None:
        self.runner.close()
