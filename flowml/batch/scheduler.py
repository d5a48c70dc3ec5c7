"""The scheduler of a batch worker: flowml's ``Scheduler``, run again and again, one input per
``run``, with ``release`` to tear some nodes down between runs (the next ``request_reload``
builds them again with the next input's params)."""

from __future__ import annotations

from typing import Iterable

from ..runtime.node_runtime import NodeFailed
from ..runtime.scheduler import Scheduler

__all__ = ["BatchScheduler"]


class BatchScheduler(Scheduler):
    def release(self, node_ids: Iterable[str]) -> list[NodeFailed]:
        """Tear these nodes down now, between runs (each wait bounded as in ``teardown``), so
        that a sink closes its file; returns the teardown failures (a file not closed)."""
        before = len(self.teardown_failures)
        for nid in reversed(list(node_ids)):
            nrt = self.nodes.pop(nid, None)
            if nrt is not None:
                self._close(nrt)
        # the finished run's clock was stopped and joined; a reload (which restarts a clock it
        # finds when the clock source is rebuilt) must not start it again before the next run
        # makes its own, or two pumps would read the same source
        self._clock = None
        return self.teardown_failures[before:]
