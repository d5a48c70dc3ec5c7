"""``data.queue``: the sink of a ``VideoLoader``'s graph, handing batches to the training loop.

It runs on a worker thread of its own (``blocking``) and puts each batch, with an event
recorded on its CUDA stream after the producer's work, into the loader's bounded queue; a
full queue holds the graph back (offline mode: nothing is dropped), and the wait gives up
when the graph stops, so it never blocks a shutdown.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

import flowml
from flowml import TENSOR, Field, Input, Node, NodeError, Ports

QUEUES: dict[str, queue.Queue] = {}
"""Loader queues by key; a ``VideoLoader`` adds its own while an epoch runs."""
_lock = threading.Lock()


def open_queue(key: str, size: int) -> queue.Queue:
    with _lock:
        QUEUES[key] = q = queue.Queue(maxsize=size)
    return q


def close_queue(key: str) -> None:
    with _lock:
        QUEUES.pop(key, None)


class QueueSink(Node):
    """Puts each tick's inputs (a batch) into a ``VideoLoader``'s queue, with a CUDA event."""

    type_name = "data.queue"
    blocking = True

    class Params(flowml.Params):
        queue: str = Field(description="key of the loader's queue (set by VideoLoader)", live=False)
        names: list[str] = Field(description="the inputs, one a tensor of the batch", live=False)

    @classmethod
    def ports(cls, params: "QueueSink.Params") -> Ports:
        return Ports(tuple(Input(n, TENSOR, "a batch tensor") for n in params.names), ())

    def setup(self, ctx: flowml.NodeContext) -> None:
        with _lock:
            self.q = QUEUES.get(self.params.queue)
        if self.q is None:
            raise NodeError("data.queue belongs to flowml.data.VideoLoader's graphs; it has no queue "
                            f"{self.params.queue!r} here")

    def process(self, **batch: Any) -> None:
        event = None
        if any(getattr(t, "is_cuda", False) for t in batch.values()):
            import torch

            event = torch.cuda.Event()
            event.record(torch.cuda.current_stream())
        item = (batch, event)
        while True:
            try:
                self.q.put(item, timeout=0.05)
                return
            except queue.Full:
                if self.ctx.stopping.is_set():
                    return


@flowml.hookimpl
def register_node_types(register):
    register(QueueSink)
