"""Scheduling policies: how and when the scheduler runs one node's calls.

Each node has one policy object, made from its type and spec when it is built and again on
every reload (``make_policy``):

- ``Inline``: on the dispatcher, every tick (the default; a GPU node only enqueues work there,
  and notes its lane on the tick, which ends when that work is done: ``runtime.completion``).
- ``OnWorker``: on the node's own thread, in order (``blocking`` types: file and network I/O,
  feature matching). Every call is a part of its tick, so ``max_in_flight`` bounds what is
  queued. When a producer of its inputs is itself still running on a worker, the inputs are
  collected on this node's thread too (it waits there), so a chain of worker nodes (classify
  -> rules -> actions) never holds the dispatcher, which goes on with the next tick. Live
  mode: a frame that would wait behind a call still running is not queued: a sink skips it,
  a node with outputs hands out its last outputs; either is counted in the node's ``drops``. Offline: nothing is dropped; the slots hold the source back.
- ``SampleAndHold`` (``hold: true``, live mode): started whenever it is free; every tick sees
  its last finished outputs, so a slow estimator never bounds the frame rate.
- ``EveryN`` wraps any of them (``every: N``): runs on every Nth tick, holds its outputs between.
- ``OnChange`` wraps ``Inline`` for a ``pure`` node type: it runs only when its params or one
  of its producers' outputs changed since its last call; else it hands on its last outputs.

A policy decides whether a node runs *before* its inputs are gathered, so a dropped frame costs
nothing (no download, no conversion). Each call carries the params of the tick it was
dispatched in and the node switches to them on its own thread (``NodeRuntime.call``): a param
change is never queued as work, and never counts as backlog.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from concurrent.futures import Future
from typing import Any, Callable

from .edges import NOTHING, NoInput, Produced, absent
from .node_runtime import NodeRuntime
from .ticks import TickRun
from .workers import SerialWorker

Gather = Callable[[], tuple[dict[str, Any], list, list]]
"""Collects a node's inputs: ``(inputs, events to wait on, ports from other lanes)``. Its
``pending`` attribute, where it has one, says that a producer is still running on a worker
thread (collecting would wait for it)."""


class Policy(ABC):
    """Runs a node's call for one tick. ``dispatch`` returns what its consumers get: a
    ``Produced``, or a ``Future`` of one when the call runs on a worker thread."""

    worker: SerialWorker | None = None

    @abstractmethod
    def dispatch(self, nrt: NodeRuntime, run: TickRun, gather: Gather) -> Produced | Future:
        """Run (or skip, or hand out the last outputs of) ``nrt``'s call for ``run``'s tick."""

    def busy(self) -> bool:
        """Is a call of this node still queued or running?"""
        return self.worker is not None and self.worker.backlog > 0

    def close(self, timeout: float | None) -> bool:
        """Finish queued calls and stop the worker thread; False if it was still busy after
        ``timeout`` (a call blocked in user code)."""
        return self.worker.close(timeout) if self.worker is not None else True


class Inline(Policy):
    """On the dispatcher, in topological order."""

    def dispatch(self, nrt: NodeRuntime, run: TickRun, gather: Gather) -> Produced:
        inputs, waits, foreign = gather()
        produced = nrt.last = nrt.call(inputs, run.tick, waits, foreign,
                                       getattr(gather, "params", None) or nrt.params)
        if produced.lane is not None:  # GPU work enqueued: the tick ends when it is done
            run.used(produced.lane)
        return produced


class OnWorker(Policy):
    """On the node's own thread, in order; live mode drops what it cannot take at once."""

    def __init__(self, worker: SerialWorker, live: bool):
        self.worker, self.live = worker, live

    def dispatch(self, nrt: NodeRuntime, run: TickRun, gather: Gather) -> Produced | Future:
        assert self.worker is not None
        if self.live and self.worker.backlog > 0 and (nrt.is_sink or nrt.last is not None):
            nrt.stats.drops += 1
            return NOTHING if nrt.is_sink else nrt.last  # type: ignore[return-value]
        params, tick = getattr(gather, "params", None) or nrt.params, run.tick
        if getattr(gather, "pending", False):  # a producer is still on its worker: wait for
            job = lambda: _gather_and_call(nrt, gather, tick, params)  # noqa: E731  it on ours
        else:
            inputs, waits, foreign = gather()
            job = lambda: nrt.call(inputs, tick, waits, foreign, params)  # noqa: E731
        run.add_part()
        fut = self.worker.submit(job)
        fut.add_done_callback(run.part_done)
        if nrt.is_sink:
            return NOTHING
        nrt.last = fut
        return fut  # consumers wait on it in the scheduler's gather


def _gather_and_call(nrt: NodeRuntime, gather: Gather, tick: Any, params: Any) -> Produced:
    """On the node's worker: collect its inputs (waiting for producers on other workers, so
    the dispatcher need not), then call it; skipped as on the dispatcher when a required input
    has no value."""
    try:
        inputs, waits, foreign = gather()
    except NoInput:
        nrt.stats.skipped += 1
        return absent([p.name for p in nrt.ports.outputs])
    return nrt.call(inputs, tick, waits, foreign, params)


class SampleAndHold(Policy):
    """Started when free; hands out its last finished outputs (the first one is waited for)."""

    def __init__(self, worker: SerialWorker, on_failure: Callable[[BaseException], None]):
        self.worker, self.on_failure = worker, on_failure
        self._busy: Future | None = None

    def busy(self) -> bool:
        return self._busy is not None and not self._busy.done()

    def dispatch(self, nrt: NodeRuntime, run: TickRun, gather: Gather) -> Produced | Future:
        assert self.worker is not None
        if nrt.last is not None and self.busy():
            nrt.stats.held += 1
            return nrt.last
        inputs, waits, foreign = gather()
        params, tick = nrt.params, run.tick

        def job() -> Produced:
            nrt.last = nrt.call(inputs, tick, waits, foreign, params)
            return nrt.last

        first = nrt.last is None
        self._busy = self.worker.submit(job)
        if first:  # the very first result is waited for; a failure is raised right here
            return self._busy.result()
        self._busy.add_done_callback(self._done)
        nrt.stats.held += 1
        return nrt.last  # type: ignore[return-value]

    def _done(self, fut: Future) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            self.on_failure(fut.exception())  # type: ignore[arg-type]


class EveryN(Policy):
    """Runs ``inner`` on every Nth tick; in between its consumers get its last outputs."""

    def __init__(self, inner: Policy, n: int):
        self.inner, self.n = inner, n
        self.worker = inner.worker

    def busy(self) -> bool:
        return self.inner.busy()

    def dispatch(self, nrt: NodeRuntime, run: TickRun, gather: Gather) -> Produced | Future:
        if nrt.last is not None and run.tick.index % self.n:
            nrt.stats.held += 1
            return nrt.last
        return self.inner.dispatch(nrt, run, gather)


class OnChange(Policy):
    """Runs ``inner`` (``Inline``) for a ``pure`` node only when something it reads changed:
    its params, or what one of its producers handed this tick (another ``Produced`` than at
    its last call: the producer ran). Otherwise its consumers get its last outputs, and the
    node is not called. A call that raised leaves nothing to reuse: the next tick calls again."""

    def __init__(self, inner: Policy):
        self.inner = inner
        self._read: tuple | None = None  # the params and producers' values of the last call

    def dispatch(self, nrt: NodeRuntime, run: TickRun, gather: Gather) -> Produced | Future:
        read = (getattr(gather, "params", None) or nrt.params, *gather.sources)  # type: ignore[attr-defined]
        last = self._read
        if last is not None and nrt.last is not None and all(a is b for a, b in zip(read, last)):
            nrt.stats.held += 1
            return nrt.last
        self._read = None
        produced = self.inner.dispatch(nrt, run, gather)
        self._read = read
        return produced


def make_policy(nrt: NodeRuntime, *, blocking: bool, hold: bool, every: int, live: bool,
                is_clock: bool, on_failure: Callable[[BaseException], None],
                old: Policy | None = None, pure: bool = False) -> Policy:
    """The policy for a node; a worker thread the node already has (``old``) is kept."""
    policy: Policy
    if is_clock or not (blocking or hold):
        if old is not None and old.worker is not None:
            old.close(None)
        policy = OnChange(Inline()) if pure and not is_clock else Inline()
    else:
        worker = old.worker if old is not None and old.worker is not None else SerialWorker(nrt.id)
        policy = SampleAndHold(worker, on_failure) if hold else OnWorker(worker, live)
    return EveryN(policy, every) if every > 1 else policy

