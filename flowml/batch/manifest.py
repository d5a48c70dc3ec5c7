"""The manifest of a batch run: one JSON line per finished input, appended and fsynced.

Each line is a ``FileResult`` (``input``, ``status`` done|failed, ``outputs``, ``frames``,
``seconds``, ``error``, ``attempts``, ``worker``, ``time``). Lines are only ever appended, by
the driver alone, each written whole and fsynced before the run goes on, so a run killed at
any moment leaves every line before the last whole (a torn last line is ignored on reading).
An input may have several lines (a failure, then a later run that did it): the last counts.

``--resume`` skips the inputs whose last line says done and whose outputs all exist.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterable

__all__ = ["Manifest", "read_manifest", "finished_inputs"]


class Manifest:
    """An append-only JSON-lines file; ``append`` returns once the line is on disk."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._repair_tail()

    def _repair_tail(self) -> None:
        """A line torn by a crash gets its newline, so the next line starts on its own."""
        size = os.fstat(self._fd).st_size
        if size == 0:
            return
        with open(self.path, "rb") as f:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                os.write(self._fd, b"\n")

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps({**record, "time": record.get("time") or time.strftime(
            "%Y-%m-%dT%H:%M:%S%z")}, separators=(",", ":"), default=str) + "\n"
        os.write(self._fd, line.encode())  # O_APPEND: one write, one whole line at the end
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "Manifest":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_manifest(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The last record of each input (by its ``input``); a torn or bad line is skipped."""
    last: dict[str, dict[str, Any]] = {}
    p = Path(path)
    if not p.exists():
        return last
    with p.open("rb") as f:
        for raw in f:
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("input"), str):
                last[rec["input"]] = rec
    return last


def finished_inputs(path: str | os.PathLike[str], inputs: Iterable[str]) -> set[str]:
    """Of ``inputs``, those whose last manifest line says done and whose outputs exist."""
    last = read_manifest(path)
    done = set()
    for inp in inputs:
        rec = last.get(inp)
        if rec and rec.get("status") == "done" and all(
                os.path.exists(o) for o in rec.get("outputs") or []):
            done.add(inp)
    return done
