"""CUDA lanes: each GPU node runs on a stream; edges between streams carry CUDA events.

A *lane* is a CUDA stream plus the book-keeping of the nodes that run on it. A node whose
only input comes from a GPU node that feeds nobody else shares that producer's lane: work on
one stream is ordered by CUDA itself, so such a chain needs no events at all. Every other GPU
node gets a lane of its own (from a small pool per device), waits on the events of the inputs
it receives from other lanes and records one event after its work, unless its only consumer
shares its lane (``runtime.placement`` decides, on every build and reload; ``runtime.edges``
records a late event when a value meets a consumer placement did not foresee).

Nothing here blocks the host: the dispatcher enqueues and moves on.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch


@dataclass
class Lane:
    """A CUDA stream and the GPU-time events of the nodes that ran on it."""

    device: torch.device
    stream: torch.cuda.Stream
    timings: dict[str, deque] = field(default_factory=dict)
    _spare: deque = field(default_factory=deque, repr=False, compare=False)  # end events to reuse
    _spare_timing: deque = field(default_factory=deque, repr=False, compare=False)  # harvested pairs

    def record_now(self) -> torch.cuda.Event:
        """An event marking the end of everything queued on this lane so far."""
        event = torch.cuda.Event()
        event.record(self.stream)
        return event

    def end_event(self) -> torch.cuda.Event:
        """Like ``record_now``, for a host thread to wait on: a blocking-sync event (its
        ``synchronize()`` sleeps in the driver instead of spinning a core), reused from the
        ones handed back with ``recycle`` (any thread)."""
        try:
            event = self._spare.pop()
        except IndexError:
            event = torch.cuda.Event(blocking=True)
        event.record(self.stream)
        return event

    def recycle(self, event: torch.cuda.Event) -> None:
        """Hand back an ``end_event`` that has passed and that nobody waits on any more."""
        self._spare.append(event)

    def timing_pair(self) -> tuple[torch.cuda.Event, torch.cuda.Event]:
        """Two timing events for a call's start and end, reused from the pairs ``harvest``
        has read (making and destroying two CUDA events each call cost a GPU tick's host
        several microseconds)."""
        try:
            return self._spare_timing.pop()
        except IndexError:
            return torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def harvest(self, node_id: str) -> list[float]:
        """Milliseconds of the node's finished calls since the last harvest (no host sync);
        their events go back to the pool of ``timing_pair``."""
        q = self.timings.get(node_id)
        out = []
        while q and q[0][1].query():
            pair = q.popleft()
            out.append(pair[0].elapsed_time(pair[1]))
            self._spare_timing.append(pair)
        return out


class LanePool:
    """Streams per device, handed out round-robin (CUDA runs at most a few dozen concurrently)."""

    def __init__(self, streams_per_device: int = 8):
        self.size = streams_per_device
        self._lanes: dict[torch.device, list[Lane]] = {}
        self._next: dict[torch.device, int] = {}

    def new_lane(self, device: torch.device) -> Lane:
        lanes = self._lanes.setdefault(device, [])
        i = self._next.get(device, 0)
        self._next[device] = i + 1
        if len(lanes) < self.size:
            lanes.append(Lane(device, torch.cuda.Stream(device)))
        return lanes[i % self.size]


def iter_tensors(value: Any) -> Iterable[torch.Tensor]:
    """The tensors inside an edge value: a tensor, or a dict/list/tuple holding tensors."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from iter_tensors(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from iter_tensors(v)


def map_tensors(value: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, dict):
        return {k: map_tensors(v, fn) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(map_tensors(v, fn) for v in value)
    return value


_current = threading.local()


def use_stream(stream: torch.cuda.Stream) -> None:
    """Make ``stream`` current on this thread, skipping the call when it already is (the
    ``torch.cuda.stream`` context manager costs several microseconds per node)."""
    if getattr(_current, "stream", None) is not stream:
        torch.cuda.set_stream(stream)
        _current.stream = stream


@dataclass
class GpuCall:
    """How one node runs on its lane: which events to wait on and whether to record one."""

    node_id: str
    lane: Lane
    record_event: bool = True
    timing: bool = False

    def run(self, fn: Callable[[dict[str, Any]], Any], inputs: dict[str, Any],
            waits: Iterable[torch.cuda.Event], foreign: Iterable[str] = ()
            ) -> tuple[Any, torch.cuda.Event | None]:
        """Enqueue ``fn(inputs)`` on the lane after ``waits``; return its result and the event
        that marks its end (None when nobody needs it). ``foreign`` names the inputs made on
        another lane or device: only those are moved here and kept alive for this stream."""
        lane = self.lane
        stream = lane.stream
        use_stream(stream)
        for ev in waits:
            stream.wait_event(ev)
        for port in foreign:
            value = inputs[port] = map_tensors(inputs[port], self._to_lane_device)
            for t in iter_tensors(value):  # allocated on another stream: keep alive for ours
                if t.is_cuda:
                    t.record_stream(stream)
        if self.timing:
            start, end = lane.timing_pair()
            start.record(stream)
        result = fn(inputs)
        if self.timing:
            end.record(stream)
            lane.timings.setdefault(self.node_id, deque(maxlen=256)).append((start, end))
        elif self.record_event:
            end = torch.cuda.Event()
            end.record(stream)
        else:
            end = None
        return result, end

    def _to_lane_device(self, t: torch.Tensor) -> torch.Tensor:
        if t.device == self.lane.device:
            return t
        if t.device.type == "cuda":
            return peer_copy(t, self.lane.device)
        return upload(t, self.lane.device)


def upload(t: torch.Tensor, device: str | torch.device) -> torch.Tensor:
    """``t`` on ``device`` (itself if it is there), on the current stream, the host never
    waiting: a host tensor going to a GPU is pinned first (a copy from pageable memory makes
    CUDA wait for everything queued on the stream: the caller would stall on the GPU), then
    copied asynchronously; torch's pinned allocator keeps the buffer until the copy has run."""
    device = torch.device(device)
    if t.device == device:
        return t
    if t.device.type == "cpu" and device.type == "cuda" and not t.is_pinned():
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


_peer_streams: dict[tuple[int, int], torch.cuda.Stream] = {}


def peer_copy(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` (on one GPU) copied to ``device`` (another GPU), for a consumer whose stream is
    the current one on ``device``. Peer to peer where the GPUs allow it, else CUDA stages it
    through the host; nothing waits on the host either way.

    The copy runs on a copy stream of the source GPU kept for this pair of devices. Torch
    orders a copy between devices both ways against the destination's current stream (the
    copy waits for what the consumer's stream waited for: the producer's event; the consumer's
    stream then waits for the copy), so the order holds by CUDA events alone. What torch does
    not do is keep the source's memory for the copy: ``record_stream`` on the copy stream
    tells the caching allocator not to hand the block to the producer's next frame until the
    copy has read it (without it, the copy ran on whatever stream was current on the source
    device, and could read a buffer already reused)."""
    key = (t.device.index, device.index)
    stream = _peer_streams.get(key)
    if stream is None:
        stream = _peer_streams[key] = torch.cuda.Stream(t.device)
    t.record_stream(stream)
    with torch.cuda.stream(stream):
        return t.to(device, non_blocking=True)
