"""Per-track times for rules: first seen, last seen, duration, ended (EDGEMATRIX's keys)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

NOT_ENDED = "N/A"
KEYS = ("tracker_id", "first_seen_time", "last_seen_time", "tracking_duration_in_seconds",
        "tracking_ended_time")


@dataclass
class Lifetimes:
    """Times of the tracks a tracker holds, keyed by tracker id.

    ``update(t, seen, alive)`` each frame: ``seen`` are the ids matched to a detection at
    time ``t`` (seconds), ``alive`` every id the tracker still holds (matched or coasting).
    A track that was alive and no longer is has ended at ``t``. ``report()`` is one dict per
    alive track, plus each track that ended at this update (once, with its end time).
    """

    first: dict[int, float] = field(default_factory=dict)
    last: dict[int, float] = field(default_factory=dict)
    ended: dict[int, float] = field(default_factory=dict)

    def update(self, t: float, seen: Iterable[int], alive: Iterable[int]) -> None:
        self.ended = {}
        alive = set(alive)
        for tid in seen:
            self.first.setdefault(tid, t)
            self.last[tid] = t
            alive.add(tid)
        for tid in [k for k in self.first if k not in alive]:
            self.ended[tid] = t

    def end_all(self, t: float) -> None:
        """Every track ends at ``t`` (the tracker was replaced, the stream ended)."""
        self.update(t, (), ())

    def report(self) -> list[dict[str, Any]]:
        rows = [self._row(tid, self.ended.get(tid, NOT_ENDED)) for tid in sorted(self.first)]
        for tid in self.ended:  # reported once: forgotten now
            del self.first[tid], self.last[tid]
        return rows

    def _row(self, tid: int, ended: float | str) -> dict[str, Any]:
        first, last = self.first[tid], self.last[tid]
        return {"tracker_id": tid, "first_seen_time": first, "last_seen_time": last,
                "tracking_duration_in_seconds": round(last - first, 6),
                "tracking_ended_time": ended}
