"""A node instance as the scheduler runs it, and the one error boundary around node code.

Every call into a node's code (``setup``, ``process``, the upload of its host frames,
``on_params``, ``teardown``) goes through ``guarded``: whatever it raises comes out as a
``NodeFailed`` naming the node, its type, the phase and the frame, and the graph's
``on_error`` decides what happens next. ``EndOfStream`` passes through: it is a source's
way of saying it is done, not an error.

Params travel with each call: the scheduler sets ``NodeRuntime.params`` (what the node should
run with) at a tick's start, each dispatched call carries the params of its tick, and the node
switches to them on the thread that runs it, right before ``process``. A param change is never
queued as work of its own. If ``on_params`` refuses the change, the node keeps its old params,
the refusal is handed to ``on_refused`` (the scheduler reports it) and the frame runs on.
"""

from __future__ import annotations

import time
import traceback
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, TypeVar

from .. import contracts
from ..node import NO_VALUE, EndOfStream, Node, NodeError, Params, Tick, normalize_outputs
from ..ports import Ports
from .edges import Produced, host_ready
from .stats import NodeStats

T = TypeVar("T")


class NodeFailed(Exception):
    """A node raised in one of its phases; names the node, its type, the phase and the frame."""

    def __init__(self, node_id: str, type_name: str, error: BaseException, tick: int | None = None,
                 phase: str = "process"):
        self.node_id, self.type_name, self.error, self.tick = node_id, type_name, error, tick
        self.phase = phase
        where = "" if phase == "process" else f" in {phase}"
        if tick is not None:
            where += f" on frame {tick}"
        msg = str(error) if isinstance(error, NodeError) else f"{type(error).__name__}: {error}"
        super().__init__(f"node '{node_id}' ({type_name}) failed{where}: {msg}")

    def detail(self) -> str:
        """The user-code traceback, except for NodeError, whose message says it all."""
        if isinstance(self.error, NodeError):
            return ""
        return "".join(traceback.format_exception(self.error, limit=-4))


def guarded(node_id: str, type_name: str, phase: str, fn: Callable[[], T],
            tick: int | None = None) -> T:
    """Run ``fn`` (a call into node code); anything it raises becomes a NodeFailed."""
    try:
        return fn()
    except (EndOfStream, NodeFailed):
        raise
    except Exception as exc:
        raise NodeFailed(node_id, type_name, exc, tick, phase) from exc


Refusal = Callable[[str, Params, Params, NodeFailed], None]
"""``(node_id, refused params, params kept, why)``: a param change a node did not take."""


@dataclass
class NodeRuntime:
    """A node instance and what the scheduler keeps about it."""

    id: str
    node: Node
    ports: Ports
    stats: NodeStats
    every: int = 1
    hold: bool = False
    policy: Any = None       # runtime.policies.Policy: how and when its calls run
    gpu: Any = None          # gpu.lanes.GpuCall for nodes on a CUDA device
    captured: Any = None     # gpu.capture.CapturedCall with cuda_graph: true
    last: Produced | Future | None = None
    host_ports: frozenset = frozenset()   # inputs wanted in host memory
    uint8_ports: Mapping[str, int | None] = field(default_factory=dict)  # ... as (B, H, W, C) uint8: port -> channels
    host_outputs: frozenset = frozenset()  # outputs returned as host uint8 frames, uploaded here
    defer_upload: bool = False  # the clock source: the dispatcher uploads, not the clock thread
    params: Params | None = None  # what the node is to run with from its next call on
    on_refused: Refusal | None = None
    own_lane: Any = None     # the lane this node got for itself (not borrowed from a producer)

    def __post_init__(self) -> None:
        ins = self.ports.inputs
        self.uint8_ports = {p.name: p.channels for p in ins if p.uint8}
        self.host_ports = frozenset(p.name for p in ins if p.host or p.uint8)
        self.host_outputs = frozenset(p.name for p in self.ports.outputs if p.host)
        if self.params is None:
            self.params = self.node.params
        self.stats.report = self.node.report  # what the node says of itself (--stats)

    @property
    def type_name(self) -> str:
        return self.node.type_name

    @property
    def device(self) -> str:
        return self.node.ctx.device

    @property
    def is_sink(self) -> bool:
        return not self.ports.outputs

    def guard(self, phase: str, fn: Callable[[], T], tick: int | None = None) -> T:
        return guarded(self.id, self.type_name, phase, fn, tick)

    def call(self, inputs: dict[str, Any], tick: Tick, waits: list = (),  # type: ignore[assignment]
             foreign: list = (), params: Params | None = None) -> Produced:  # type: ignore[assignment]
        """Run ``process`` once with ``params`` (for a GPU node: on its CUDA lane after
        ``waits``; ``foreign`` inputs come from another lane) and time it; raise NodeFailed."""
        if params is not None and params is not self.node.params:
            if self.gpu is not None:  # on_params runs on the node's stream: its in-place writes
                from ..gpu.lanes import use_stream  # (weight edits) queue after the frames

                use_stream(self.gpu.lane.stream)  # before and ahead of this one (a replay too)
            self.apply_params(params, tick.index)
        self.node.ctx.tick = tick
        t0 = time.perf_counter()
        try:
            if self.host_ports:
                inputs = host_ready(inputs, self.uint8_ports)
            versions = contracts.input_versions(inputs) if contracts.checking() else None
            if self.gpu is None:
                result, event = self._process(inputs), None
            else:
                result, event = self.gpu.run(self._process, inputs, waits, foreign)
            outputs, stamp = normalize_outputs(self.node, self.ports, result)
            if versions:  # --check: inputs are read-only (shared with other consumers)
                contracts.check_inputs_unchanged(self.type_name, versions, inputs)
        except EndOfStream:
            raise
        except Exception as exc:
            self.stats.errors += 1
            raise NodeFailed(self.id, self.type_name, exc, tick.index) from exc
        self.stats.record(time.perf_counter() - t0)
        if self.gpu is not None and self.gpu.timing:
            for ms in self.gpu.lane.harvest(self.id):
                self.stats.gpu_ms_total += ms
                self.stats.gpu_calls += 1
                self.stats.gpu_ms_recent.append(ms)
        produced = Produced(outputs, event, self.gpu.lane if self.gpu else None, stamp)
        if self.host_outputs and not self.defer_upload:
            produced = self.upload(produced, tick.index)
        return produced

    def apply_params(self, new: Params, tick: int | None = None) -> bool:
        """Switch the node to ``new`` (``on_params``), on the thread that runs it. On refusal
        the old params stay, ``on_refused`` hears of it, and False is returned."""
        old = self.node.params
        self.node.params = new
        try:
            self.guard("on_params", lambda: self.node.on_params(old, new), tick)
        except NodeFailed as why:
            self.node.params = old
            if self.params is new:
                self.params = old
            if self.on_refused is not None:
                self.on_refused(self.id, new, old, why)
            return False
        return True

    def upload(self, produced: Produced, tick: int | None = None) -> Produced:
        """Host uint8 frames among the outputs -> ``(1, C, H, W)`` float images on the node's
        device (on its CUDA lane, with an event for the consumers). Raises NodeFailed."""
        return self.guard("upload", lambda: self._upload(produced), tick)

    def _upload(self, produced: Produced) -> Produced:
        from ..gpu.transfer import image_from_host

        outputs = dict(produced.outputs)
        frames = [n for n in self.host_outputs & outputs.keys() if outputs[n] is not NO_VALUE]
        if self.gpu is None:
            for name in frames:
                outputs[name] = image_from_host(_as_numpy(outputs[name]), self.device)
            return Produced(outputs, None, None, produced.stamp)
        if not frames:
            return produced
        uploads = {n: _as_numpy(outputs[n]) for n in frames}
        result, event = self.gpu.run(
            lambda _: {n: image_from_host(a, self.device) for n, a in uploads.items()},
            {}, [], ())
        outputs.update(result)
        return Produced(outputs, event, self.gpu.lane, produced.stamp)

    def _process(self, inputs: dict[str, Any]) -> Any:
        if self.captured is not None:
            return self.captured(inputs, self.node.params)
        return self.node.process(**inputs)


def _as_numpy(frame: Any):
    """A host frame given as a numpy array or a CPU tensor, as numpy (no copy)."""
    return frame.numpy() if hasattr(frame, "numpy") and not hasattr(frame, "__array_interface__") else frame
