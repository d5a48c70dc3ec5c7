"""Where each CUDA node runs: its lane (stream) and whether it records an event.

Recomputed for every node whenever the graph is built or reloaded (``place``), never kept
from an earlier topology. A chain link (a producer's only consumer, taking only that input,
both inline on one device) shares its producer's lane: CUDA orders work on one stream, so no
event is needed between them. Every other node has a lane of its own. Correctness does not
depend on this: consumers wait on the event of the value they receive (``edges.Produced``),
so this only decides where events can be left out.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..gpu.device import resolve_device
from ..graph.resolved import ValidatedGraph
from .node_runtime import NodeRuntime


def place(nodes: Mapping[str, NodeRuntime], graph: ValidatedGraph, pool: Any,
          default_device: str, timing: bool) -> None:
    """Give every CUDA node of ``graph`` its lane and event policy (in topological order).
    A kept node that moves to another lane has the new lane wait for its old one first, so
    its own state (buffers made on the old stream) stays in order."""
    from ..gpu.lanes import GpuCall

    for nid in graph.order:
        nrt = nodes[nid]
        if not nrt.device.startswith("cuda"):
            nrt.gpu = None
            continue
        lane = None
        srcs = list(graph.nodes[nid].inputs.values())
        if len(srcs) == 1 and inline_link(srcs[0].node, nid, graph, default_device):
            producer = nodes[srcs[0].node]
            if producer.gpu is not None:
                lane = producer.gpu.lane
        if lane is None or str(lane.device) != str(_torch_device(nrt.device)):
            if nrt.own_lane is None or str(nrt.own_lane.device) != str(_torch_device(nrt.device)):
                nrt.own_lane = pool.new_lane(_torch_device(nrt.device))
            lane = nrt.own_lane
        consumers = graph.consumers(nid)
        private = len(consumers) == 1 and inline_link(nid, consumers[0][0], graph, default_device)
        old = nrt.gpu.lane if nrt.gpu is not None else None
        if old is not None and old is not lane:
            lane.stream.wait_stream(old.stream)
        nrt.gpu = GpuCall(nid, lane, record_event=not private, timing=timing)


def inline_link(producer: str, consumer: str, graph: ValidatedGraph, default_device: str) -> bool:
    """May ``consumer`` share ``producer``'s CUDA stream (no event between them)? Only when both
    run inline on the dispatcher, on one device, and this is the producer's only edge and the
    consumer's only input."""
    p, c = graph.nodes[producer], graph.nodes[consumer]
    return (producer != graph.clock and len(graph.consumers(producer)) == 1
            and len(c.inputs) == 1
            and not (p.type.cls.is_blocking(p.params) or c.type.cls.is_blocking(c.params)
                     or p.spec.hold or c.spec.hold)
            and resolve_device(p.spec.device, default_device) == resolve_device(c.spec.device, default_device))


def _torch_device(device: str):
    import torch

    return torch.device(device)
