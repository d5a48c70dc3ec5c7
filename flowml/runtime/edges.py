"""What travels from one node to the next inside a tick, and how a consumer gets it.

Every node call yields a ``Produced``: its outputs, the device they are on, and (for GPU
nodes) the CUDA event that marks their end plus the lane they ran on. A consumer on another
lane waits on the event on the GPU; a host consumer (a CPU node, or a port marked
``host=True``) gets an asynchronous download into pinned memory, which a worker-thread sink
waits for on its own thread, so the dispatcher never blocks on the GPU.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import torch

from ..gpu.transfer import Download, to_uint8_bhwc


@dataclass
class Produced:
    """One node's outputs for one tick."""

    outputs: dict[str, Any]
    event: Any = None    # torch.cuda.Event recorded after the work, or None
    lane: Any = None     # gpu.lanes.Lane the work ran on, or None
    stamp: float | None = None


def resolve(value: Produced | Future) -> Produced:
    """A producer's result; waits when it runs on a worker thread (re-raises its failure)."""
    return value.result() if isinstance(value, Future) else value


def host_ready(inputs: dict[str, Any], uint8_ports: frozenset = frozenset()) -> dict[str, Any]:
    """Host values for a node that wants them: waits (on the calling thread) for downloads,
    and gives ``uint8_ports`` as ``(B, H, W, C)`` uint8 tensors whatever device made them."""
    out = dict(inputs)
    for k, v in inputs.items():
        if isinstance(v, Download):
            v = out[k] = v.wait()
        if k in uint8_ports and v is not None and v.dtype != torch.uint8:
            out[k] = to_uint8_bhwc(v).cpu()
    return out
