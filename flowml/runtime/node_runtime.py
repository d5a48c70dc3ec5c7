"""A node instance as the scheduler runs it: one call, timed, on its CUDA lane if it has one."""

from __future__ import annotations

import time
import traceback
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from ..node import EndOfStream, Node, NodeError, Tick, normalize_outputs
from ..ports import Ports
from .edges import Produced, host_ready
from .stats import NodeStats
from .workers import SerialWorker


class NodeFailed(Exception):
    """A node raised while setting up or processing; names the node, its type and the frame."""

    def __init__(self, node_id: str, type_name: str, error: BaseException, tick: int | None = None,
                 phase: str = "process"):
        self.node_id, self.type_name, self.error, self.tick = node_id, type_name, error, tick
        where = f" on frame {tick}" if tick is not None else f" in {phase}"
        msg = str(error) if isinstance(error, NodeError) else f"{type(error).__name__}: {error}"
        super().__init__(f"node '{node_id}' ({type_name}) failed{where}: {msg}")

    def detail(self) -> str:
        """The user-code traceback, except for NodeError, whose message says it all."""
        if isinstance(self.error, NodeError):
            return ""
        return "".join(traceback.format_exception(self.error, limit=-4))


@dataclass
class NodeRuntime:
    """A node instance and what the scheduler keeps about it."""

    id: str
    node: Node
    ports: Ports
    stats: NodeStats
    every: int = 1
    hold: bool = False
    worker: SerialWorker | None = None
    gpu: Any = None          # gpu.lanes.GpuCall for nodes on a CUDA device
    captured: Any = None     # gpu.capture.CapturedCall with cuda_graph: true
    last: Produced | Future | None = None
    busy: Future | None = None
    host_ports: frozenset = frozenset()   # inputs wanted in host memory
    uint8_ports: frozenset = frozenset()  # ... as (B, H, W, C) uint8
    host_outputs: frozenset = frozenset()  # outputs returned as host uint8 frames, uploaded here
    defer_upload: bool = False  # the clock source: the dispatcher uploads, not the clock thread

    def __post_init__(self) -> None:
        ins = self.ports.inputs
        self.uint8_ports = frozenset(p.name for p in ins if p.uint8)
        self.host_ports = frozenset(p.name for p in ins if p.host or p.uint8)
        self.host_outputs = frozenset(p.name for p in self.ports.outputs if p.host)

    @property
    def is_sink(self) -> bool:
        return not self.ports.outputs

    def call(self, inputs: dict[str, Any], tick: Tick, waits: list = (),  # type: ignore[assignment]
             foreign: list = ()) -> Produced:  # type: ignore[assignment]
        """Run ``process`` once (for a GPU node: on its CUDA lane after ``waits``; ``foreign``
        inputs come from another lane) and time it; raise NodeFailed naming this node."""
        self.node.ctx.tick = tick
        t0 = time.perf_counter()
        try:
            if self.host_ports:
                inputs = host_ready(inputs, self.uint8_ports)
            if self.gpu is None:
                result, event = self._process(inputs), None
            else:
                result, event = self.gpu.run(self._process, inputs, waits, foreign)
            outputs, stamp = normalize_outputs(self.node, self.ports, result)
        except EndOfStream:
            raise
        except Exception as exc:
            self.stats.errors += 1
            raise NodeFailed(self.id, self.node.type_name, exc, tick.index) from exc
        self.stats.record(time.perf_counter() - t0)
        if self.gpu is not None and self.gpu.timing:
            for ms in self.gpu.lane.harvest(self.id):
                self.stats.gpu_ms_total += ms
                self.stats.gpu_calls += 1
                self.stats.gpu_ms_recent.append(ms)
        produced = Produced(outputs, event, self.gpu.lane if self.gpu else None, stamp)
        if self.host_outputs and not self.defer_upload:
            produced = self.upload(produced)
        return produced

    def upload(self, produced: Produced) -> Produced:
        """Host uint8 frames among the outputs -> ``(1, C, H, W)`` float images on the node's
        device (on its CUDA lane, with an event for the consumers)."""
        from ..gpu.transfer import image_from_host

        outputs = dict(produced.outputs)
        if self.gpu is None:
            for name in self.host_outputs & outputs.keys():
                outputs[name] = image_from_host(_as_numpy(outputs[name]), self.node.ctx.device)
            return Produced(outputs, None, None, produced.stamp)
        uploads = {n: _as_numpy(outputs[n]) for n in self.host_outputs & outputs.keys()}
        result, event = self.gpu.run(
            lambda _: {n: image_from_host(a, self.node.ctx.device) for n, a in uploads.items()},
            {}, [], ())
        outputs.update(result)
        return Produced(outputs, event or produced.event, self.gpu.lane, produced.stamp)

    def _process(self, inputs: dict[str, Any]) -> Any:
        if self.captured is not None:
            return self.captured(inputs, self.node.params)
        return self.node.process(**inputs)


def _as_numpy(frame: Any):
    """A host frame given as a numpy array or a CPU tensor, as numpy (no copy)."""
    return frame.numpy() if hasattr(frame, "numpy") and not hasattr(frame, "__array_interface__") else frame
