"""Batching over time: a source's ``batch: K`` gives K consecutive frames a tick.

A source that batches (``capture.pattern``, ``capture.video``) emits ``image`` as
``(K, 3, H, W)`` and a ``frames`` output saying which frames they are, ``frames_record``:
``{index: the first one's index, count: K, t: [each one's time in seconds]}`` (a source may add
keys of its own, e.g. ``pts``). The last tick of a finite stream may have fewer frames. One
tick then carries K frames through the scheduler, so its per-tick cost is paid once for K.

Batches are for offline graphs: a live graph (the newest frame wins) would be held back a
whole batch, so ``refuse_live_batch`` refuses ``batch`` > 1 there, at setup and on a live
change of the parameter.
"""

from __future__ import annotations

from typing import Any, Sequence

from .node import NodeError

FRAMES_KEYS = frozenset({"index", "count", "t"})
"""The keys of a batching source's ``frames`` record (what ``video.clip input: frames`` reads)."""

LIVE_BATCH = ("batch: {k} stacks {k} frames a tick for offline graphs, but this graph runs live (latest "
              "frame wins, where a batch would hold frames back); set batch: 1, or run it offline "
              "(`mode: offline` in the graph, or flowml run --offline)")


def refuse_live_batch(mode: str, batch: int) -> None:
    """Raise ``NodeError`` if a live graph (``mode``) asks for ``batch`` > 1 frames a tick.

    Call it in ``setup`` with the params' batch and in ``on_params`` with the new one (the
    runtime then keeps the old params)."""
    if mode == "live" and batch > 1:
        raise NodeError(LIVE_BATCH.format(k=batch))


def frames_record(index: int, times: Sequence[float], **extra: Any) -> dict[str, Any]:
    """``{index, count, t, **extra}`` for ``len(times)`` frames from frame ``index`` on."""
    return {"index": index, "count": len(times), "t": list(times), **extra}
