"""Where a CUDA node runs: its lane (stream), whether it records an event, CUDA-graph capture.

A chain link (a producer's only consumer, taking only that input, both inline on one device)
shares its producer's lane: CUDA orders work on one stream, so no event is needed between them.
"""

from __future__ import annotations

from typing import Any

from ..gpu.device import resolve_device
from ..graph.resolved import ValidatedGraph
from .node_runtime import NodeRuntime


def attach_gpu(nrt: NodeRuntime, built: dict[str, NodeRuntime], graph: ValidatedGraph,
               device: str, pool: Any, default_device: str, timing: bool) -> None:
    """Give a CUDA node its lane: its producer's, for an inline chain link; else a new one."""
    import torch

    from ..gpu.capture import CapturedCall
    from ..gpu.lanes import GpuCall

    rn = graph.nodes[nrt.id]
    lane = None
    srcs = list(rn.inputs.values())
    if len(srcs) == 1 and inline_link(srcs[0].node, nrt.id, graph, default_device):
        producer = built.get(srcs[0].node)
        if producer is not None and producer.gpu is not None:
            lane = producer.gpu.lane
    if lane is None or lane.device != torch.device(device):
        lane = pool.new_lane(torch.device(device))
    consumers = graph.consumers(nrt.id)
    private = len(consumers) == 1 and inline_link(nrt.id, consumers[0][0], graph, default_device)
    nrt.gpu = GpuCall(nrt.id, lane, record_event=not private, timing=timing)
    if rn.spec.cuda_graph:
        nrt.captured = CapturedCall(lambda inputs: nrt.node.process(**inputs), nrt.id)


def inline_link(producer: str, consumer: str, graph: ValidatedGraph, default_device: str) -> bool:
    """May ``consumer`` share ``producer``'s CUDA stream (no event between them)? Only when both
    run inline on the dispatcher, on one device, and this is the producer's only edge and the
    consumer's only input."""
    p, c = graph.nodes[producer], graph.nodes[consumer]
    return (producer != graph.clock and len(graph.consumers(producer)) == 1
            and len(c.inputs) == 1
            and not (p.type.cls.blocking or c.type.cls.blocking or p.spec.hold or c.spec.hold)
            and resolve_device(p.spec.device, default_device) == resolve_device(c.spec.device, default_device))
