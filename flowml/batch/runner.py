"""Run one loaded graph over one input after another, keeping what need not change.

``FileRunner`` loads and validates the graph file once. For each input it re-binds only the
params ``--set`` names (``Item.params``), offline, to the end of the stream:

- the first input builds every node (``Scheduler.setup``); each later one goes through
  ``Scheduler.request_reload``, so nodes whose type and rebuild-params did not change keep
  their instance and loaded models (a ``torch.model`` loads once per worker);
- after each run the nodes whose params are bound (sources, sinks), and those named in
  ``rebuild``, are torn down at once, so a sink closes its file before it is committed;
- output-file params (``file="output"``) are staged (``staging.Staging``) and moved into
  place only when the run ended at the end of the stream with no error, teardown included.

An input whose bound nodes fail to build (a missing or corrupt file) leaves the other nodes
as they are. A run that failed or was stopped tears the whole scheduler down (its state is not
trusted again), so the next input on that worker loads the graph afresh. Nothing here imports Ray: the Ray actor and the
local loop both drive a ``FileRunner``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, ValidationError

from ..parammeta import file_fields, param_meta
from .inputs import Binding, BatchUsageError, Item, is_url
from .staging import Staging

log = logging.getLogger("flowml.batch")

__all__ = ["FileResult", "FileRunner", "check_bindings", "check_distinct_outputs", "load_batch_graph"]


@dataclass
class FileResult:
    """What one input gave: a manifest line (JSON-able; no frames, only paths and numbers)."""

    input: str
    index: int
    status: str                  # "done" | "failed" | "stopped"
    outputs: list[str] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0
    error: str | None = None
    retry: bool = True           # False: trying again cannot help (a missing input)
    attempts: int = 1
    worker: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("retry")
        return d


def load_batch_graph(path: str, registry: Any = None):
    """The validated graph (raises ``flowml.graph.GraphErrors``) and the registry."""
    from ..graph import load_graph
    from ..plugins import load_registry

    registry = registry or load_registry()
    return load_graph(path, registry), registry


def _coerce(model: type[BaseModel], current: BaseModel, name: str, value: str) -> BaseModel:
    """``current`` with ``name`` set from the text ``value``: as text first, else as YAML
    (``--set src.loop=true``, ``--set r.size=[64,48]``)."""
    import yaml

    base = current.model_dump()
    try:
        return model.model_validate({**base, name: value})
    except ValidationError as first:
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            raise first from None
        if isinstance(parsed, str) and parsed == value:
            raise
        return model.model_validate({**base, name: parsed})


def _file_role(graph, nid: str, param: str) -> str | None:
    return param_meta(graph.nodes[nid].type.cls.Params, param).file


def _absolute(value: str, cwd: str) -> str:
    """A file value given on the command line is read from the current folder, as the shell's
    paths are (a value in the graph file is read from the graph file's folder)."""
    if is_url(value):
        return value
    p = os.path.expanduser(value)
    return os.path.normpath(p if os.path.isabs(p) else os.path.join(cwd, p))


def check_bindings(graph, bindings: Iterable[Binding], first: Item | None = None) -> None:
    """Every ``--set`` names a node and a param of it, and (with ``first``) its value for the
    first input is valid; raises BatchUsageError saying what to write."""
    import difflib

    per_output: dict[str, Binding] = {}
    for b in bindings:
        if b.node not in graph.nodes:
            close = difflib.get_close_matches(b.node, list(graph.nodes), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f" (nodes: {', '.join(graph.nodes)})"
            raise BatchUsageError(f"--set {b.node}.{b.param}: {graph.path} has no node '{b.node}'{hint}")
        rn = graph.nodes[b.node]
        fields = rn.type.cls.Params.model_fields
        if b.param not in fields:
            close = difflib.get_close_matches(b.param, list(fields), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f" (params: {', '.join(fields)})"
            raise BatchUsageError(f"--set {b.node}.{b.param}: node '{b.node}' ({rn.type.name}) has no "
                                  f"param '{b.param}'{hint}")
        if _file_role(graph, b.node, b.param) == "output":
            per_output[f"{b.node}.{b.param}"] = b
    for key, b in per_output.items():
        if not b.per_input:
            raise BatchUsageError(f"--set {key}={b.template!r} writes the same output for every input; "
                                  f"name the input in it, e.g. --set {key}='out/{{stem}}.mp4'")
    for nid in graph.order:  # an output no --set binds would be written over by every input
        for name in graph.nodes[nid].type.cls.Params.model_fields:
            if _file_role(graph, nid, name) == "output" and f"{nid}.{name}" not in per_output:
                value = getattr(graph.nodes[nid].params, name)
                if isinstance(value, str) and value.strip() and not _is_name_param(graph, nid, name, value):
                    raise BatchUsageError(
                        f"{graph.where(nid)}: node '{nid}' writes {value!r} for every input; bind it "
                        f"per input, e.g. --set {nid}.{name}='out/{{stem}}{Path(value).suffix}'")
    if first is not None:
        for nid, values in first.params.items():
            rn = graph.nodes[nid]
            current = rn.params
            for name, value in values.items():
                try:
                    current = _coerce(type(current), current, name, value)
                except ValidationError as exc:
                    raise BatchUsageError(f"--set {nid}.{name}={value!r} (for {first.input}): "
                                          f"{_first_error(exc)}") from None


def check_distinct_outputs(graph, items: Iterable[Item], cwd: str) -> None:
    """No two inputs write the same output (``a/clip.mp4`` and ``b/clip.mp4`` with
    ``out/{stem}.mp4``): the second would replace the first, and their staging would clash."""
    seen: dict[str, str] = {}
    for item in items:
        for nid, values in item.params.items():
            for name, value in values.items():
                if _file_role(graph, nid, name) != "output" or _is_name_param(graph, nid, name, value):
                    continue
                path = _absolute(value, cwd)
                other = seen.setdefault(path, item.input)
                if other != item.input:
                    raise BatchUsageError(
                        f"--set {nid}.{name}: {other} and {item.input} would both write {path}; "
                        "tell them apart in the template, e.g. with {parent} or {index}")


def _is_name_param(graph, nid: str, name: str, value: str) -> bool:
    """Is this output param a file name inside the folder another one names? A node's first
    output param is where it writes; a later one whose value has no ``/`` (``output.images``'
    ``pattern`` after its ``dir``) is a name in there: not a path of its own, never staged."""
    outputs = file_fields(graph.nodes[nid].type.cls.Params, "output")
    return bool(outputs) and name != outputs[0] and "/" not in value and os.sep not in value


def _raised_at(trace: str) -> str:
    """`` (at "effects.py", line 3, in check)``: where the user's code raised, from a traceback."""
    frames = [ln.strip() for ln in trace.splitlines() if ln.strip().startswith("File ")]
    return f" (at {frames[-1][5:]})" if frames else ""


def _first_error(exc: ValidationError) -> str:
    e = exc.errors()[0]
    return e.get("msg", str(exc))


class FileRunner:
    """One graph, run once per input. Not thread-safe except ``stop``, which any thread (or
    a signal handler) may call."""

    def __init__(self, graph_path: str, *, device: str | None = None, rebuild: Iterable[str] = (),
                 cwd: str | None = None, worker: str = ""):
        self.graph_path = graph_path
        self.graph, self.registry = load_batch_graph(graph_path)
        self.device = device
        self.rebuild = frozenset(rebuild)
        self.cwd = cwd or os.getcwd()
        self.worker = worker or f"{os.uname().nodename}:{os.getpid()}"
        self._sched: Any = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        unknown = sorted(self.rebuild - set(self.graph.nodes))
        if unknown:
            raise BatchUsageError(f"--rebuild {', '.join(unknown)}: no such node in {graph_path}")

    # -- one input ----------------------------------------------------------------------------
    def run(self, item: Item, attempt: int = 1) -> FileResult:
        """Run the graph over ``item``; never raises for what the input or a node did."""
        t0 = time.perf_counter()
        res = FileResult(item.input, item.index, "failed", attempts=attempt, worker=self.worker)
        if self._stopping.is_set():
            res.status = "stopped"
            return res
        if not is_url(item.input) and not os.path.isfile(item.input):
            res.error = f"input file not found: {item.input}"
            res.retry = False
            return res
        staging = Staging()
        try:
            graph = self._bind(item, staging)
            released = [n for n in graph.order if n in item.params or n in self.rebuild]
            frames, error = self._run_graph(graph, released)
            if error is None and self._stopping.is_set():
                res.status = "stopped"
            elif error is None:
                res.outputs = staging.commit()
                res.status, res.frames = "done", frames
            else:
                res.error, res.frames = error, frames
        except BatchUsageError as exc:
            res.error, res.retry = str(exc), False
        except Exception as exc:  # a bug of ours, or of a node outside the error boundary
            res.error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-4)}"
            self._reset()
        finally:
            staging.discard()  # nothing is left after a commit; a failure's partial outputs go
            res.seconds = round(time.perf_counter() - t0, 3)
        return res

    def _bind(self, item: Item, staging: Staging):
        """The graph with this input's values (output files staged), validated."""
        import dataclasses

        g = self.graph
        nodes = dict(g.nodes)
        for nid, values in item.params.items():
            rn = nodes[nid]
            params = rn.params
            for name, value in values.items():
                role = _file_role(g, nid, name)
                if role == "input" or (role == "output" and not _is_name_param(g, nid, name, value)):
                    value = _absolute(value, self.cwd)
                if role == "output" and not _is_name_param(g, nid, name, value):
                    value = staging.stage(value)
                try:
                    params = _coerce(type(params), params, name, value)
                except ValidationError as exc:
                    raise BatchUsageError(f"{g.where(nid)}: --set {nid}.{name}={value!r}: "
                                          f"{_first_error(exc)}") from None
            nodes[nid] = dataclasses.replace(rn, params=params)
        return dataclasses.replace(g, nodes=nodes)

    def _run_graph(self, graph, released: list[str]) -> tuple[int, str | None]:
        """Build (or re-bind) and run to the end, then tear ``released`` down; (frames, error
        text or None)."""
        from ..runtime.node_runtime import NodeFailed
        from .scheduler import BatchScheduler

        with self._lock:
            fresh = self._sched is None
            if fresh:
                self._sched = BatchScheduler(graph, mode="offline", device=self.device)
        sched = self._sched
        try:
            if fresh:
                sched.setup()
            else:  # a node that fails to build here leaves the others as they were: kept
                exc = sched.request_reload(graph).exception()
                if exc is not None:
                    raise exc
        except NodeFailed as f:
            if fresh:  # setup tore down what it had built
                with self._lock:
                    self._sched = None
            return 0, f"{graph.where(f.node_id)}: {f}"
        if self._stopping.is_set():
            sched.stop()
        before = sched.stats.completed
        result = sched.run()
        frames = sched.stats.completed - before
        failures = sched.release(released)
        if result.error is not None or result.reason != "end of stream" or failures:
            f = result.error or (failures[0] if failures else None)
            self._reset()
            if f is None:
                return frames, None if self._stopping.is_set() else f"stopped early: {result.reason}"
            return frames, f"{graph.where(f.node_id)}: {f}{_raised_at(f.detail())}"
        return frames, None

    # -- stopping -----------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop the input running now (its outputs are not committed) and refuse later ones."""
        self._stopping.set()
        sched = self._sched
        if sched is not None:
            sched.stop()

    def _reset(self) -> None:
        with self._lock:
            sched, self._sched = self._sched, None
        if sched is not None:
            try:
                sched.teardown()
            except Exception:
                log.exception("teardown after a failed input failed")

    def close(self) -> None:
        self._reset()
