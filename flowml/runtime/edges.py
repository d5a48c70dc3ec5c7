"""What travels from one node to the next inside a tick, and how a consumer gets it.

Every node call yields a ``Produced``: its outputs, the lane (CUDA stream) they were made on,
and the CUDA event that marks their end. Stream order travels with the value (Holoscan's
lesson): a consumer on another lane waits on the event it *received*, a host consumer (a CPU
node, or a port marked ``host=True``) gets an asynchronous download that waits on it. Nothing
about ordering is decided from the topology: a producer that expected only a consumer on its
own lane records no event, and if another consumer turns up (a graph edited while it runs),
``ready_event`` records one on the producer's lane then, which marks the end of everything
queued there so far, the producer's work included. So a reload can never break stream order;
at worst it waits a little longer than it needs to.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Mapping

import torch

from ..gpu.transfer import Download, to_uint8_bhwc
from ..node import NO_VALUE


@dataclass
class Produced:
    """One node's outputs for one tick."""

    outputs: dict[str, Any]
    event: Any = None    # torch.cuda.Event recorded after the work, or None
    lane: Any = None     # gpu.lanes.Lane the work ran on, or None (host values)
    stamp: float | None = None

    def ready_event(self) -> Any:
        """The event a consumer off this value's lane waits on (None for host values): the
        producer's own, else one recorded now on its lane (see the module docstring)."""
        if self.event is None and self.lane is not None:
            self.event = self.lane.record_now()
        return self.event


NOTHING = Produced({})
"""What a sink, or a node that did not run, hands on: no outputs."""


class NoInput(Exception):
    """Raised while gathering a node's inputs: a required input has no value this tick
    (``flowml.NO_VALUE``), so the node is skipped and its outputs have no value either."""

    def __init__(self, port: str):
        super().__init__(port)
        self.port = port


def absent(names: list[str]) -> Produced:
    """The outputs of a node skipped for a tick: every port ``NO_VALUE``."""
    return Produced({n: NO_VALUE for n in names})


def resolve(value: Produced | Future) -> Produced:
    """A producer's result; waits when it runs on a worker thread (re-raises its failure)."""
    return value.result() if isinstance(value, Future) else value


def host_ready(inputs: dict[str, Any], uint8_ports: Mapping[str, int | None] = {}) -> dict[str, Any]:
    """Host values for a node that wants them: waits (on the calling thread) for downloads,
    and gives ``uint8_ports`` (port -> channels) as ``(B, H, W, C)`` uint8 tensors whatever
    device made them."""
    out = dict(inputs)
    for k, v in inputs.items():
        if isinstance(v, Download):
            v = out[k] = v.wait()
        if k in uint8_ports and v is not None and v is not NO_VALUE and v.dtype != torch.uint8:
            out[k] = to_uint8_bhwc(v, uint8_ports[k]).cpu()
    return out
