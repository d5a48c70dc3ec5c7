"""``flowml run --watch``: edit the graph file (and the files its nodes read) while it runs.

A thread polls the graph file's inode, mtime and size, so an editor that saves by writing a
new file and renaming it over the old one is seen as well as one that writes in place. A
change is acted on once the file has stood still for ``settle`` seconds (an editor or an
exporter may write in several steps) and only if the text really changed:

- valid: ``Scheduler.request_reload`` swaps it in at the next tick start; unchanged nodes keep
  their instance and loaded models, a param edit is a live param change, except an edit of a
  param that needs a rebuild (``flowml.parammeta.rebuild_fields``: a model's ``path``, an
  input file, a non-live param), which builds that node anew; the result (kept, built,
  removed) is printed. A new node that fails in ``setup`` is printed and the old graph
  runs on.
- invalid: every error is printed, the running graph goes on, and the next save is tried.

The files that nodes' input-file params name (``Field(file="input")``: a model, an image, a
``python.function``'s source file), relative to the graph file, are polled the same way; when
one changes, the nodes that name it are built anew (the file is read again) and everything else
is kept. Output-file params (``file="output"``: a recording, written frames) are never watched:
a node's own writes must not rebuild it. A param without file metadata is not watched either.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, Callable

from ..fsutil import from_graph
from ..graph.errors import GraphErrors
from ..graph.resolved import ValidatedGraph
from ..parammeta import file_fields, rebuild_fields

__all__ = ["GraphWatcher", "files_named_by", "rebuilt_by_edit"]

log = logging.getLogger("flowml.control")

Stamp = tuple[int, int, int]  # inode, mtime_ns, size


def _stamp(path: Path) -> Stamp | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def files_named_by(graph: ValidatedGraph) -> dict[Path, set[str]]:
    """Existing regular files that an input-file param (``file="input"``) of a node names
    (absolute, or relative to the graph file), each with the ids of the nodes that name it."""
    out: dict[Path, set[str]] = {}
    base = graph.directory
    own = graph.path.resolve()
    for nid, rn in graph.nodes.items():
        for name in file_fields(type(rn.params), "input"):
            value = getattr(rn.params, name)
            if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
                continue
            text = str(value)
            if len(text) > 4096 or "\n" in text:
                continue
            p = from_graph(text, base)
            try:
                if p.is_file() and p.resolve() != own:
                    out.setdefault(p.resolve(), set()).add(nid)
            except OSError:
                continue
    return out


def rebuilt_by_edit(old: ValidatedGraph, new: ValidatedGraph) -> set[str]:
    """Nodes of both graphs, of the same type, whose edit changed a param that needs a rebuild
    (``flowml.parammeta.rebuild_fields``: a model's ``path``, a non-live param)."""
    out = set()
    for nid, rn in new.nodes.items():
        before = old.nodes.get(nid)
        if before is None or before.type.cls is not rn.type.cls:
            continue  # new, or of another type: built anyway
        fields = rebuild_fields(type(rn.params))
        if any(getattr(before.params, f) != getattr(rn.params, f) for f in fields):
            out.add(nid)
    return out


class GraphWatcher:
    """Polls ``path`` and the files its nodes name; reloads the running graph of ``sched``.

    ``load(path, text)`` validates a graph text (``load_graph`` with the registry); ``say``
    prints a line for the user.
    """

    def __init__(self, path: str | os.PathLike[str], sched: Any,
                 load: Callable[[str, str], ValidatedGraph], say: Callable[[str], None], *,
                 interval: float = 0.2, settle: float = 0.15, reload_timeout: float = 30.0):
        self.path = Path(path)
        self.sched, self.load, self.say = sched, load, say
        self.interval, self.settle, self.reload_timeout = interval, settle, reload_timeout
        self.reloads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="flowml-watch", daemon=True)
        self._text = self._read() or ""
        self._seen: Stamp | None = _stamp(self.path)
        self._files: dict[Path, tuple[Stamp | None, set[str]]] = {}
        self._track_files(sched.graph)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    # -- polling ------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._poll()
            except Exception:  # the watcher must never take the graph down
                log.exception("--watch: checking for changes failed")

    def _poll(self) -> None:
        stamp = _stamp(self.path)
        if stamp is not None and stamp != self._seen and self._settled(self.path, stamp):
            self._seen = _stamp(self.path)
            text = self._read()
            if text is not None and text != self._text:
                self._text = text
                self._graph_changed(text)
                return
        changed = self._changed_files()
        if changed:
            self._files_changed(changed)

    def _settled(self, path: Path, stamp: Stamp) -> bool:
        """Wait until ``path`` stands still for ``settle`` seconds."""
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if self._stop.wait(self.settle):
                return False
            now = _stamp(path)
            if now == stamp:
                return True
            if now is None:  # renamed away mid-save: try again next poll
                return False
            stamp = now
        return True

    def _read(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError):
            return None

    # -- the graph file -----------------------------------------------------------------------
    def _graph_changed(self, text: str) -> None:
        name = self.path.name
        try:
            graph = self.load(str(self.path), text)
        except GraphErrors as errors:
            for e in errors.errors:
                self.say(str(e))
            n = len(errors.errors)
            self.say(f"{name}: {n} error{'s' if n != 1 else ''}; the running graph goes on "
                     "unchanged (fix and save again)")
            return
        self._reload(graph, rebuilt_by_edit(self.sched.graph, graph), f"{name} changed")

    def _reload(self, graph: ValidatedGraph, rebuild: tuple[str, ...] | set[str], why: str) -> None:
        fut = self.sched.request_reload(graph, rebuild=rebuild)
        try:
            result = fut.result(timeout=self.reload_timeout)
        except FutureTimeout:
            self.say(f"{why}: waiting for the next frame to reload")
            return
        except Exception as exc:  # NodeFailed: the old graph runs on
            self.say(f"{why}: reload failed: {exc}; the running graph goes on unchanged")
            detail = getattr(exc, "detail", lambda: "")()
            if detail:
                self.say(detail.rstrip())
            return
        self.reloads += 1
        self._track_files(graph)
        parts = [f"{k} {', '.join(result[k])}" for k in ("built", "removed") if result.get(k)]
        kept = len(result.get("kept", []))
        self.say(f"{why}: reloaded ({kept} node{'s' if kept != 1 else ''} kept"
                 + ("; " + "; ".join(parts) if parts else "") + ")")

    # -- files the nodes read -------------------------------------------------------------------
    def _track_files(self, graph: ValidatedGraph) -> None:
        old = self._files
        self._files = {p: (old[p][0] if p in old else _stamp(p), nodes)
                       for p, nodes in files_named_by(graph).items()}

    def _changed_files(self) -> dict[Path, set[str]]:
        changed = {}
        for p, (seen, nodes) in list(self._files.items()):
            stamp = _stamp(p)
            if stamp is not None and stamp != seen and self._settled(p, stamp):
                self._files[p] = (_stamp(p), nodes)
                changed[p] = nodes
        return changed

    def _files_changed(self, changed: dict[Path, set[str]]) -> None:
        nodes = set().union(*changed.values())
        names = ", ".join(p.name for p in changed)
        try:  # the file as it is now, if valid; else the running graph as it is
            graph = self.load(str(self.path), self._text)
        except GraphErrors:
            graph = dataclasses.replace(self.sched.graph)
        nodes &= set(graph.nodes)
        if nodes:
            self._reload(graph, nodes, f"{names} changed: rebuilding {', '.join(sorted(nodes))}")
