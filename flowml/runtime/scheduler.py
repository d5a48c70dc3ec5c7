"""The scheduler: runs a validated graph tick by tick (docs/architecture.md shows the path).

Inside a tick, nodes are visited in topological order on one dispatch thread, and each node's
*policy* (``runtime.policies``) decides how its call runs: inline on the dispatcher, on the
node's worker thread (``blocking`` types), every N ticks, or sample-and-hold (``hold: true``).
At most ``max_in_flight`` ticks are unfinished at once (a tick finishes when the last call
made for it has returned and the GPU work it enqueued is done: ``runtime.completion``). Live
mode: the newest source frame wins, frames the graph could not start are dropped and counted,
a worker node that is behind skips frames. Offline mode: every frame, in order; the source
waits (back-pressure) and nothing is dropped, so the output is deterministic.

Parameter changes (``set_params``, OSC, expressions) are validated when they arrive and handed
to the nodes together at the start of the next tick; each call carries the params of its tick
and the node switches to them on its own thread (never half-way through a frame). A change of
a param that needs a rebuild (``flowml.parammeta``) builds that node anew instead.

Every call into node code goes through one error boundary (``node_runtime.guarded``), and the
graph's ``on_error`` applies to every phase. ``run()`` ends by stopping and joining the clock,
draining the ticks in flight (their GPU work included) and then returns; ``teardown()``
finishes the workers and tears the nodes down; every wait is bounded.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal

from ..graph.resolved import ValidatedGraph
from ..graph.spec import RateClock as RateClockSpec
from ..gpu.device import resolve_device
from ..node import NO_VALUE, EndOfStream, NodeContext, Params, Tick
from ..parammeta import rebuild_fields
from .clock import InlineSource, RateClock, SourceFailure, SourceFrame, SourcePump
from .completion import Completion
from .edges import NoInput, Produced, absent, resolve
from .interpreter import graph_running
from .node_runtime import NodeFailed, NodeRuntime, guarded
from .placement import place
from .policies import Inline, OnWorker, make_policy
from .stats import GraphStats, NodeStats
from .ticks import TickRun
from .workers import SerialWorker

log = logging.getLogger("flowml")

Mode = Literal["live", "offline"]

GIL_SWITCH_S = 0.0005
"""While a graph runs, Python hands the GIL between threads every 0.5 ms instead of 5 ms, so
that a thread coming back from C code (a decoder, a copy, a CUDA wait) does not wait long
for the dispatcher to let go of the GIL (H200: a decode + model chain ran at 88 instead of
76 fps). 0.1 ms was tried on H100 hosts: over three runs of a decode-bound chain (medians of
3 interleaved rounds each) 0.1 / 0.5 / 5 ms gave 116 / 106 / 107, 98.7 / 112 / 96 and
110 / 118 / 141 fps, so no setting wins there; docs/benchmarks.md."""

INLINE_CAPTURE_SOURCES = True
"""Live graphs read a clock source that ``captures_in_background`` on the dispatcher
(``clock.InlineSource``), not on a clock thread. H200, 2026-12-01, 1080p frames in pinned
memory, a 16.8 ms model: the tick started 0.07 - 0.11 ms sooner after the frame came, and
latency p50 fell by 0.11 and 0.32 ms in two ``flowml bench`` runs (by 0.03 - 0.12 ms in five
rounds of ``benchmarks/latency_probe.py``); only this way did both runs meet model + 1 ms."""

STOP_WAIT_S = 5.0
"""The longest any one step of stopping waits: joining the clock thread, draining the ticks in
flight, finishing a node's worker. A step still blocked then (user code that never returns) is
left behind with a warning; a node whose thread is still in its code is not torn down under it."""

ParamRefused = Callable[[str, Params, Params, NodeFailed], None]
"""Hook ``(node id, refused params, params in effect, why)``, called on the dispatcher."""


@dataclass
class RunResult:
    reason: str                      # "end of stream" | "frames" | "duration" | "stopped" | "error"
    stats: GraphStats
    error: NodeFailed | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Scheduler:
    """Builds the nodes of a validated graph and runs it. Use as a context manager, or call
    ``setup()`` / ``run()`` / ``teardown()`` yourself."""

    def __init__(self, graph: ValidatedGraph, *, mode: Mode | None = None, device: str | None = None,
                 max_in_flight: int | None = None, on_error: str | None = None,
                 gpu_timing: bool = False):
        self.graph = graph
        spec = graph.spec
        self.mode: Mode = mode or self._auto_mode()
        self.device = device or spec.device
        self.max_in_flight = max_in_flight or spec.max_in_flight
        self.on_error = on_error or spec.on_error
        self.order = list(graph.order)
        self.clock_id = graph.clock if isinstance(graph.clock, str) else None
        self.nodes: dict[str, NodeRuntime] = {}
        self.stats = GraphStats()
        self.before_tick: list[Callable[[Tick], None]] = []
        self.after_tick: list[Callable[[Tick, Mapping[str, Any]], None]] = []  # outputs by node
        self.param_refused: list[ParamRefused] = []
        self.teardown_failures: list[NodeFailed] = []
        self._pending_params: dict[str, dict[str, Any]] = {}
        # node -> (the params validated against, the changes, the result): what set_params
        # validated, taken as it is at the tick start when the node still has those params
        self._validated: dict[str, tuple[Params, dict[str, Any], Params]] = {}
        self._params_lock = threading.Lock()
        self._refusals: deque[tuple[str, Params, Params, NodeFailed]] = deque()
        self._slots = threading.BoundedSemaphore(self.max_in_flight)
        self._stop = threading.Event()
        self._failure: NodeFailed | None = None
        self._clock: RateClock | SourcePump | InlineSource | None = None
        self._stuck: set[str] = set()  # nodes whose thread was still in their code at stop
        self._is_setup = False
        self._running = False
        self._reload: tuple[ValidatedGraph, Future, frozenset[str]] | None = None
        self._reload_lock = threading.Lock()
        self.gpu_timing = gpu_timing
        self._lanes: Any = None        # gpu.lanes.LanePool, made when a node is on CUDA
        self._copy_streams: dict[str, Any] = {}
        self._completion: Completion | None = None  # made with the lanes: GPU ticks end there
        self._skip_if: dict[str, tuple[tuple[str, str], ...]] = {}  # see _index
        self._absent: dict[str, Produced] = {}
        self._tail: SerialWorker | None = None  # offline: the rest of ticks waiting on a worker
        self._tail_from: int | None = None      # lowest position a queued tail starts at

    # -- building ---------------------------------------------------------------------------
    def _auto_mode(self) -> Mode:
        if self.graph.spec.mode != "auto":
            return self.graph.spec.mode  # type: ignore[return-value]
        clock = self.graph.clock
        if isinstance(clock, RateClockSpec):
            return "live"
        node = self.graph.nodes[clock]
        return "live" if node.type.cls.is_live(node.params) else "offline"

    def setup(self) -> None:
        """Instantiate every node and run its ``setup``; on failure (or Ctrl-C) tear down the
        ones built, then raise."""
        try:
            for nid in self.order:
                self._install(self._make_node(nid, self.graph))
            self._place()
        except BaseException:
            self.teardown()
            raise
        self._index()
        self._is_setup = True

    def _index(self) -> None:
        """What a tick needs to skip a node cheaply: for each node whose policy runs it every
        tick (inline or on its worker, no every/hold), its required inputs ``(node, port)``,
        and its all-``NO_VALUE`` outputs (made once)."""
        self._skip_if, self._absent = {}, {}
        for nid, nrt in self.nodes.items():
            self._absent[nid] = absent([p.name for p in nrt.ports.outputs])
            if type(nrt.policy) not in (Inline, OnWorker):
                continue
            rn = self.graph.nodes[nid]
            needed = tuple((src.node, src.port) for port, src in rn.inputs.items()
                           if not getattr(nrt.ports.input(port), "optional", False))
            if needed:
                self._skip_if[nid] = needed

    def _install(self, nrt: NodeRuntime) -> None:
        self.nodes[nrt.id] = nrt
        self.stats.nodes[nrt.id] = nrt.stats

    def _make_node(self, nid: str, graph: ValidatedGraph) -> NodeRuntime:
        """Instantiate one node of ``graph`` and run its ``setup`` (raises NodeFailed)."""
        rn = graph.nodes[nid]
        cls = rn.type.cls
        device = guarded(nid, rn.type.name, "setup", lambda: resolve_device(rn.spec.device, self.device))
        ctx = NodeContext(nid, rn.type.name, device, graph.directory, self.mode,
                          is_clock=nid == graph.clock, log=logging.getLogger(f"flowml.{nid}"),
                          stopping=self._stop, wired=_wired(graph, nid))
        node = guarded(nid, rn.type.name, "setup", lambda: cls(rn.params, ctx))
        nrt = NodeRuntime(nid, node, rn.ports, NodeStats(rn.type.name), rn.spec.every,
                          rn.spec.hold and self.mode == "live", on_refused=self._refused)
        if device.startswith("cuda"):
            if self._lanes is None:
                from ..gpu.lanes import LanePool

                self._lanes = LanePool()
            if rn.spec.cuda_graph:
                from ..gpu.capture import CapturedCall

                nrt.captured = CapturedCall(lambda inputs: node.process(**inputs), nid,
                                            also=lambda: ctx.wired)  # a rewiring captures again
        else:
            nrt.host_ports = frozenset(p.name for p in rn.ports.inputs)  # CPU node: all host
        guarded(nid, rn.type.name, "setup", lambda: node.setup(ctx))
        nrt.policy = self._policy_for(nrt, graph)
        return nrt

    def _policy_for(self, nrt: NodeRuntime, graph: ValidatedGraph, old: Any = None) -> Any:
        rn = graph.nodes[nrt.id]
        return make_policy(nrt, blocking=rn.type.cls.is_blocking(rn.params), hold=nrt.hold, every=nrt.every,
                           live=self.mode == "live", is_clock=nrt.id == graph.clock,
                           on_failure=self._worker_failed, old=old, pure=rn.type.cls.is_pure(rn.params))

    def _place(self) -> None:
        if self._lanes is not None:
            place(self.nodes, self.graph, self._lanes, self.device, self.gpu_timing)
            if self._completion is None:
                self._completion = Completion(self._tick_finished, self._gpu_failed,
                                              dispatcher_books=self.mode == "offline")

    def _copy_stream(self, device: str):
        import torch

        if device not in self._copy_streams:
            self._copy_streams[device] = torch.cuda.Stream(torch.device(device))
        return self._copy_streams[device]

    def teardown(self) -> None:
        """Finish the workers' queued calls, then ``teardown`` every node (reverse order).
        Failures are logged and kept in ``teardown_failures``."""
        if self._tail is not None:
            self._tail.close(STOP_WAIT_S)
            self._tail, self._tail_from = None, None
        for nid in reversed(list(self.nodes)):
            self._close(self.nodes[nid])
        self.nodes.clear()
        if self._completion is not None:
            if not self._completion.close(STOP_WAIT_S):
                log.warning("GPU work of a frame still not done after %.0f s", STOP_WAIT_S)
            self._completion = None
        self._is_setup = False

    def _close(self, nrt: NodeRuntime) -> None:
        """Finish a node's worker (bounded) and tear it down, unless its code is still running."""
        finished = nrt.policy.close(STOP_WAIT_S) if nrt.policy is not None else True
        if not finished or nrt.id in self._stuck:
            log.warning("node '%s' (%s) is still busy after %.0f s; not torn down under it",
                        nrt.id, nrt.type_name, STOP_WAIT_S)
            return
        try:
            nrt.guard("teardown", nrt.node.teardown)
        except NodeFailed as failure:
            log.error("%s", failure)
            self.teardown_failures.append(failure)

    def __enter__(self) -> "Scheduler":
        self.setup()
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    # -- live parameters --------------------------------------------------------------------
    def set_params(self, node_id: str, changes: dict[str, Any]) -> Params:
        """Validate ``changes`` to one node's params now (raises pydantic.ValidationError or
        KeyError) and queue them for the start of the next tick. Returns the params as they
        will be."""
        rn = self.graph.nodes[node_id]
        with self._params_lock:
            merged = {**self._pending_params.get(node_id, {}), **changes}
            nrt = self.nodes.get(node_id)
            current = nrt.params if nrt is not None else rn.params
            new = _revalidated(current, merged)
            self._pending_params[node_id] = merged
            self._validated[node_id] = (current, merged, new)
        return new

    def params_of(self, node_id: str) -> Params:
        """The params the node runs with from its next call on."""
        return self.nodes[node_id].params  # type: ignore[return-value]

    def _apply_params(self) -> None:
        with self._params_lock:
            pending, self._pending_params = self._pending_params, {}
            validated, self._validated = self._validated, {}
        for nid, changes in pending.items():
            nrt = self.nodes.get(nid)
            if nrt is None:
                continue  # a reload removed the node
            old = nrt.params
            base, merged, new = validated.get(nid, (None, None, None))
            try:
                if base is not old or merged is not changes:  # validated on other params
                    new = _revalidated(old, changes)
            except Exception as exc:  # validated on arrival; only a race could get here
                log.error("node '%s': params not applied: %s", nid, exc)
                continue
            if any(getattr(old, k) != getattr(new, k) for k in rebuild_fields(type(old))):
                self._rebuild(nid, new, old)
            else:
                nrt.params = new

    def _rebuild(self, nid: str, new: Params, old: Params) -> None:
        """A change to a param that needs a new instance: build the node with ``new`` through
        the reload path; on failure the old instance runs on and the change is refused."""
        rn = self.graph.nodes[nid]
        self._tail_idle()  # a node is rebuilt only when no tail runs it
        try:
            ports = guarded(nid, rn.type.name, "setup", lambda: rn.type.cls.ports(new))
            if ports != rn.ports:
                raise NodeFailed(nid, rn.type.name, ValueError(
                    "this change would change the node's ports: edit the graph file instead"),
                    phase="setup")
        except NodeFailed as why:
            self._refused(nid, new, old, why)
            return
        edited = dataclasses.replace(self.graph, nodes={**self.graph.nodes,
                                                        nid: dataclasses.replace(rn, params=new)})
        fut: Future = Future()
        with self._reload_lock:
            queued, self._reload = self._reload, (edited, fut, frozenset({nid}))
        self._apply_reload()
        if queued is not None:  # an edit of the file waiting for this tick goes next
            with self._reload_lock:
                self._reload = queued
            self._apply_reload()
        exc = fut.exception()
        if isinstance(exc, NodeFailed):
            self._refused(nid, new, old, exc)

    def _refused(self, nid: str, refused: Params, kept: Params, why: NodeFailed) -> None:
        """A node did not take a param change (any thread): reported at the next tick start."""
        self._refusals.append((nid, refused, kept, why))

    def _deliver_refusals(self) -> None:
        while self._refusals:
            nid, refused, kept, why = self._refusals.popleft()
            log.error("%s; param change refused, node '%s' keeps its params", why, nid)
            for hook in self.param_refused:
                try:
                    hook(nid, refused, kept, why)
                except Exception:
                    log.exception("param_refused hook failed (the graph goes on)")

    # -- editing while running --------------------------------------------------------------
    def request_reload(self, graph: ValidatedGraph, rebuild: Iterable[str] = ()) -> Future:
        """Swap in an edited, validated graph at the next tick start.

        Nodes whose type, ports, device and rebuild-params (``parammeta.rebuild_fields``) are
        unchanged keep their instance (and loaded models); their params change as a live change
        would (``on_params``). Other nodes are built anew; removed nodes are torn down. If a new
        node fails in ``setup``, nothing changes and the future's exception says why. The
        future's result is a dict with the node ids ``kept``, ``built`` and ``removed``. When
        the graph is not running it applies at once. Nodes named in ``rebuild`` are built anew
        even if unchanged (a file they read changed).
        """
        fut: Future = Future()
        with self._reload_lock:
            self._reload = (graph, fut, frozenset(rebuild))
            now = not self._running
        if now:
            self._apply_reload()
            self._apply_params()  # what the reload changed, at once too
        return fut

    def _apply_reload(self) -> None:
        with self._reload_lock:
            pending, self._reload = self._reload, None
        if pending is None:
            return
        new, fut, rebuild = pending
        if not self._is_setup:
            self.graph, self.order = new, list(new.order)
            self.clock_id = new.clock if isinstance(new.clock, str) else None
            fut.set_result({"kept": [], "built": [], "removed": []})
            return
        old = self.graph
        kept = [n for n in new.order if n in self.nodes and n not in rebuild
                and _same_instance(old.nodes[n], new.nodes[n])]
        fresh: dict[str, NodeRuntime] = {}
        try:
            for nid in new.order:
                if nid not in kept:
                    fresh[nid] = self._make_node(nid, new)
        except NodeFailed as failure:  # the old graph runs on, untouched
            for nrt in fresh.values():
                self._close(nrt)
            fut.set_exception(failure)
            return
        clock_changed = new.clock != old.clock or (isinstance(new.clock, str) and new.clock in fresh)
        if clock_changed and self._clock is not None:  # stop reading before the source goes
            self._stop_clock()
        replaced = [n for n in self.nodes if n not in kept]
        for nid in replaced:
            self._close(self.nodes.pop(nid))
        for nid in kept:
            nrt, rn = self.nodes[nid], new.nodes[nid]
            nrt.every, nrt.hold = rn.spec.every, rn.spec.hold and self.mode == "live"
            nrt.policy = self._policy_for(nrt, new, old=nrt.policy)
            nrt.node.ctx.wired = _wired(new, nid)  # a rewiring: the same node, told between ticks
            if rn.params != old.nodes[nid].params:
                self.set_params(nid, rn.params.model_dump())
        self.stats.nodes = {}
        for nid in new.order:
            self._install(self.nodes.get(nid) or fresh[nid])
        self.nodes = {nid: self.nodes[nid] for nid in new.order}
        self.graph, self.order = new, list(new.order)
        self.clock_id = new.clock if isinstance(new.clock, str) else None
        self._place()  # placement is recomputed for every node, kept ones included
        self._index()
        if clock_changed and self._clock is not None:
            self._clock = self._make_clock()
            self._clock.start()
        fut.set_result({"kept": kept, "built": list(fresh),
                        "removed": [n for n in replaced if n not in new.nodes]})

    # -- running ----------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the run loop to stop after the current tick (safe from signal handlers)."""
        self._stop.set()
        if self._clock:
            self._clock.stop()

    def run(self, frames: int | None = None, duration: float | None = None) -> RunResult:
        """Run until the clock source ends, ``frames`` ticks were started, ``duration`` seconds
        passed, ``stop()`` was called, or a node failed under ``on_error: stop``. Returns after
        the clock is stopped and joined and the ticks in flight are done."""
        if not self._is_setup:
            self.setup()
        with graph_running(GIL_SWITCH_S):  # faster GIL hand-over, setup's objects frozen (interpreter.py)
            with self._reload_lock:
                self._running = True
            try:
                return self._run(frames, duration)
            finally:
                with self._reload_lock:
                    self._running = False
                self._apply_reload()  # one asked for while the last tick ran

    def _run(self, frames: int | None, duration: float | None) -> RunResult:
        self._clock = self._make_clock()
        self._clock.start()
        self.stats.started = time.perf_counter()
        reason, index = "stopped", 0
        try:
            while not self._stop.is_set():
                if frames is not None and index >= frames:
                    reason = "frames"
                    break
                if duration is not None and self.stats.elapsed() >= duration:
                    reason = "duration"
                    break
                if not self._acquire_slot():
                    break
                frame = self._next_frame()
                if frame is None:
                    self._slots.release()
                    reason = "stopped" if self._stop.is_set() else "end of stream"
                    break
                if isinstance(frame, SourceFailure):
                    self._slots.release()
                    self._source_failed(frame.error, index)
                    continue
                if not self._run_tick(frame, index):
                    reason = "end of stream"
                    break
                index += 1
        finally:
            stopped_at = time.perf_counter()
            if reason == "duration":  # the take ended when its time ran out, however late the loop saw it
                stopped_at = min(stopped_at, self.stats.started + duration)
            for nrt in self.nodes.values():
                nrt.node.ctx.stopped_at = stopped_at
            self._stop_clock()
            self._drain()
            self._deliver_refusals()
            self.stats.ended = time.perf_counter()
        if self._failure is not None:
            return RunResult("error", self.stats, self._failure)
        return RunResult(reason, self.stats)

    def _stop_clock(self) -> None:
        """Stop the clock and wait (bounded) until its thread is out of the source's code."""
        clock = self._clock
        if clock is None:
            return
        clock.stop()
        if not clock.join(STOP_WAIT_S) and self.clock_id is not None:
            self._stuck.add(self.clock_id)
        self.stats.source_drops += clock.drops
        clock.drops = 0

    def _make_clock(self) -> RateClock | SourcePump | InlineSource:
        live = self.mode == "live"
        if self.clock_id is None:
            return RateClock(self.graph.clock.fps, live)  # type: ignore[union-attr]
        nrt = self.nodes[self.clock_id]
        nrt.defer_upload = True

        def read() -> tuple[Produced, float | None]:
            produced = nrt.call({}, Tick(nrt.stats.calls, 0.0), params=nrt.params)
            return produced, produced.stamp

        keep_going = self.on_error == "skip"
        if live and INLINE_CAPTURE_SOURCES and type(nrt.node).captures_in_background:
            return InlineSource(read, keep_going=keep_going)
        return SourcePump(read, live=live, capacity=self.max_in_flight, keep_going=keep_going)

    def _acquire_slot(self) -> bool:
        if self._completion is not None:
            self._completion.poll()  # offline: book the ticks whose GPU work is done (completion.py)
        if self._slots.acquire(blocking=False):
            return True
        with self._waiting():
            while not self._stop.is_set():
                if self._slots.acquire(timeout=0.05):
                    return True
        return False

    def _next_frame(self) -> SourceFrame | SourceFailure | None:
        """The clock's next frame; the completion thread books ticks only if this waits (an
        offline rate clock never does: handing the tick in and back each tick put two GIL
        hand-overs into the next tick's calls, which ``dispatcher_books`` is there to avoid)."""
        clock = self._clock
        if clock.ready():  # type: ignore[union-attr]
            return clock.next()  # type: ignore[union-attr]
        with self._waiting():
            return clock.next()  # type: ignore[union-attr]

    def _waiting(self):
        """Around a wait of the dispatcher: the completion thread books GPU ticks meanwhile."""
        return self._completion.waiting() if self._completion is not None else nullcontext()

    def _drain(self) -> None:
        """Wait (bounded) for every unfinished tick (all slots back: their calls returned and
        their GPU work done), then free the slots."""
        deadline = time.perf_counter() + STOP_WAIT_S
        got = 0
        with self._waiting():
            for _ in range(self.max_in_flight):
                if self._slots.acquire(timeout=max(0.0, deadline - time.perf_counter())):
                    got += 1
        if got < self.max_in_flight:
            log.warning("%d frame(s) still in flight after %.0f s; stopping without them",
                        self.max_in_flight - got, STOP_WAIT_S)
        for _ in range(got):
            self._slots.release()

    def _source_failed(self, error: BaseException, index: int) -> None:
        failure = error if isinstance(error, NodeFailed) else NodeFailed(
            self.clock_id or "clock", "source", error, index)
        self._node_failed(failure)

    def _worker_failed(self, error: BaseException) -> None:
        if isinstance(error, NodeFailed):
            self._node_failed(error)
        else:  # not from node code (those are NodeFailed): a bug of ours, said as one
            log.error("a worker call failed outside node code: %r", error)

    def _node_failed(self, failure: NodeFailed) -> None:
        if getattr(failure, "reported", False):  # seen by its consumer and by its tick
            return
        failure.reported = True  # type: ignore[attr-defined]
        if self.on_error == "stop":
            if self._failure is None:
                self._failure = failure
            self.stop()
        else:
            log.error("%s (frame skipped)", failure)

    def _run_tick(self, frame: SourceFrame, index: int) -> bool:
        """Dispatch one tick. False when a source ended (the tick is abandoned)."""
        tick = Tick(index, frame.t)
        self._deliver_refusals()
        if self._tail_from is not None and self._tail is not None and self._tail.backlog == 0:
            self._tail_from = None  # every tail is done: all nodes back on the dispatcher
        if self._reload is not None:
            self._tail_idle()  # nodes are replaced only when no tail runs them
            self._apply_reload()
        for hook in self.before_tick:
            try:
                hook(tick)
            except Exception:
                log.exception("before_tick hook failed (the graph goes on)")
        self._apply_params()
        self.stats.ticks += 1
        run = TickRun(tick, frame.arrived, self._tick_done, self._worker_failed)
        values: dict[str, Produced | Future] = {}
        ended = False
        try:
            if self._dispatch(run, values, frame, 0, None):
                return True  # the rest of the tick went to the tail thread
        except EndOfStream:
            ended = run.abandoned = True
        except NodeFailed as failure:
            run.failed = True
            self._node_failed(failure)
        self._finish_tick(run, values)
        return not ended

    def _dispatch(self, run: TickRun, values: dict[str, Produced | Future], frame: SourceFrame | None,
                  start: int, params: dict[str, Params] | None) -> bool:
        """Dispatch the tick's nodes from position ``start`` in order; True when the rest was
        handed to the tail thread instead (offline mode, see ``_hand_over``). ``params``: the
        tick's params of each node (a tail runs after the next ticks changed them)."""
        order, nodes, skip_if = self.order, self.nodes, self._skip_if
        tail_ok = params is None and self.mode == "offline"
        for pos in range(start, len(order)):
            nid = order[pos]
            if nid == self.clock_id and frame is not None:
                values[nid] = src = self._arrived(frame.outputs, run.tick.index)  # type: ignore[arg-type]
                if src.lane is not None:  # the source's GPU work for this frame
                    run.wait_for(src.ready_event())
                continue
            nrt = nodes[nid]
            needed = skip_if.get(nid)
            if needed is not None and _lacks(values, needed):  # NO_VALUE on a required input:
                nrt.stats.skipped += 1                          # skipped, nothing gathered
                values[nid] = self._absent[nid]
                continue
            gather = _Gather(self, nrt, values)
            if params is not None:
                gather.params = params.get(nid, nrt.params)
            elif tail_ok and nrt.policy.worker is None and (
                    (self._tail_from is not None and pos >= self._tail_from) or gather.pending):
                self._hand_over(run, values, pos)
                return True
            try:
                values[nid] = nrt.policy.dispatch(nrt, run, gather)
            except NoInput:  # raised by _gather, before the policy ran anything
                nrt.stats.skipped += 1
                values[nid] = self._absent[nid]
        return False

    def _hand_over(self, run: TickRun, values: dict[str, Produced | Future], pos: int) -> None:
        """Offline frame overlap: an inline node whose input is still being made on a worker
        (a CPU detector) would hold the dispatcher until it is done, and with it the next
        frame's work for that worker. Instead the rest of the tick, from ``pos``, runs on one
        serial *tail* thread with this tick's params, and the dispatcher starts the next tick.
        While a tail is queued every later tick hands over at ``pos`` at the latest, so each
        node still runs its frames in order, one at a time; hooks run at the tail's end."""
        if self._tail is None:
            self._tail = SerialWorker("tail")
        run.seal()  # the lanes used so far: the dispatcher goes on with the next tick on them
        self._tail_from = pos if self._tail_from is None else min(self._tail_from, pos)
        params = {nid: self.nodes[nid].params for nid in self.order[pos:]}

        def tail() -> None:
            try:
                self._dispatch(run, values, None, pos, params)  # type: ignore[arg-type]
            except EndOfStream:  # a non-clock source ended
                run.abandoned = True
                self.stop()
            except NodeFailed as failure:
                run.failed = True
                self._node_failed(failure)
            self._finish_tick(run, values)

        self._tail.submit(tail)

    def _tail_idle(self) -> None:
        """Wait (bounded) until no tail is queued or running."""
        if self._tail is not None and self._tail.backlog:
            try:
                self._tail.submit(lambda: None).result(STOP_WAIT_S)
            except Exception:
                log.warning("tail thread still busy after %.0f s", STOP_WAIT_S)
        self._tail_from = None

    def _finish_tick(self, run: TickRun, values: dict[str, Produced | Future]) -> None:
        if self.after_tick and not (run.failed or run.abandoned):
            ready = _Ready(values)
            for after in self.after_tick:
                try:
                    after(run.tick, ready)
                except Exception:
                    log.exception("after_tick hook failed (the graph goes on)")
        run.part_done()

    def _arrived(self, produced: Produced, index: int) -> Produced:
        """The clock source's frame, its host outputs uploaded here on the dispatcher."""
        nrt = self.nodes[self.clock_id]  # type: ignore[index]
        return nrt.upload(produced, index) if nrt.host_outputs else produced

    def _gather(self, nrt: NodeRuntime, values: dict[str, Produced | Future], rn: Any = None
                ) -> tuple[dict[str, Any], list, list]:
        """The node's inputs, the CUDA events it must wait on, and the inputs from other lanes.

        A GPU consumer waits on the events of the values it received from other lanes. A host
        consumer gets GPU values as downloads into pinned memory, which a worker-thread node
        waits for on its own thread, an inline one right here. A required input with no value
        this tick (``NO_VALUE``) raises ``NoInput``: the node is skipped; an optional one is
        given as None. ``rn``: the node as the tick's graph has it (the call may run on a
        worker thread, after a reload swapped ``self.graph``)."""
        rn = rn or self.graph.nodes[nrt.id]
        inputs: dict[str, Any] = {p.name: None for p in nrt.ports.inputs}
        waits: list = []
        foreign: list = []
        for port, src in rn.inputs.items():
            produced = resolve(values[src.node])  # raises the producer's NodeFailed
            values[src.node] = produced
            value = produced.outputs.get(src.port)
            if value is NO_VALUE:
                wanted = nrt.ports.input(port)
                if wanted is None or not wanted.optional:
                    raise NoInput(port)
                inputs[port] = None
                continue
            if port in nrt.host_ports:
                if produced.lane is not None:
                    value = self._download(value, produced, nrt, port)
                    if not nrt.policy.worker:
                        value = value.wait()
            elif nrt.gpu is not None and produced.lane is not nrt.gpu.lane:
                foreign.append(port)
                event = produced.ready_event()
                if event is not None:
                    waits.append(event)
            inputs[port] = value
        return inputs, waits, foreign

    def _download(self, value: Any, produced: Produced, nrt: NodeRuntime, port: str):
        from ..gpu.transfer import start_download

        stream = self._copy_stream(str(produced.lane.device))
        event = produced.ready_event()
        return start_download(value, [event] if event is not None else [], stream,
                              port in nrt.uint8_ports, nrt.uint8_ports.get(port))

    def _tick_done(self, run: TickRun) -> None:
        """The tick's last call has returned (any thread). It is finished here, or, when it
        left GPU work behind (``run.ends``), once that is done (``runtime.completion``)."""
        if run.ends and self._completion is not None:
            self._completion.done(run)
        else:
            self._tick_finished(run)

    def _tick_finished(self, run: TickRun) -> None:
        """Book a finished tick (failed ones too) and free its slot."""
        if not run.abandoned:
            self.stats.tick_done(time.perf_counter() - run.arrived, ok=not run.failed)
        self._slots.release()

    def _gpu_failed(self, run: TickRun, error: BaseException) -> None:
        """Waiting on a tick's GPU work raised (a CUDA error, on the completion thread)."""
        self._node_failed(NodeFailed("(gpu)", "cuda", error, run.tick.index, phase="GPU work"))


class _Gather:
    """Collects one node's inputs for one tick (``Scheduler._gather``), on the dispatcher or,
    when ``pending`` (a producer still runs on its worker thread), on the node's own worker."""

    __slots__ = ("sched", "nrt", "values", "rn", "params")

    def __init__(self, sched: Scheduler, nrt: NodeRuntime, values: dict[str, Produced | Future]):
        self.sched, self.nrt, self.values = sched, nrt, values
        self.rn = sched.graph.nodes[nrt.id]
        self.params: Params | None = None  # the tick's params, where they differ from nrt.params

    def __call__(self) -> tuple[dict[str, Any], list, list]:
        return self.sched._gather(self.nrt, self.values, self.rn)

    @property
    def pending(self) -> bool:
        return any(isinstance(v := self.values.get(src.node), Future) and not v.done()
                   for src in self.rn.inputs.values())

    @property
    def sources(self) -> tuple[Produced | Future | None, ...]:
        """What each input's producer handed on this tick, in the inputs' order."""
        values = self.values
        return tuple(values.get(src.node) for src in self.rn.inputs.values())


def _lacks(values: dict[str, Produced | Future], needed: tuple[tuple[str, str], ...]) -> bool:
    """Does a finished producer give ``NO_VALUE`` on one of these ``(node, port)`` inputs?"""
    for node, port in needed:
        v = values.get(node)
        if v is not None and not isinstance(v, Future) and v.outputs.get(port) is NO_VALUE:
            return True
    return False


def _wired(graph: ValidatedGraph, node_id: str) -> frozenset[str]:
    """The outputs of ``node_id`` that some input of ``graph`` reads (``NodeContext.wired``)."""
    return frozenset(port for _, _, port in graph.consumers(node_id))


def _same_instance(old, new) -> bool:
    """Can a node instance built for ``old`` (a ResolvedNode) serve ``new``? Not when its
    type, ports or device changed, nor a param whose change needs a rebuild."""
    if not (old.type.cls is new.type.cls and old.ports == new.ports
            and old.spec.device == new.spec.device):
        return False
    return all(getattr(old.params, k) == getattr(new.params, k)
               for k in rebuild_fields(type(new.params)))


def _revalidated(params: Params, changes: dict[str, Any]) -> Params:
    """``params`` with ``changes``, validated: the fields as they are (no dump: a nested model
    stays an instance, accepted as is) under the changed ones."""
    return type(params).model_validate({**params.__dict__, **changes})


class _Ready(Mapping):
    """The tick's outputs by node for the after-tick hooks (``_outputs_of``), each node's made
    when a hook first reads it: a hook that reads one node (the param store reads the scalar
    outputs expressions use, often none) does not pay for every node's, every tick."""

    __slots__ = ("_values", "_made")

    def __init__(self, values: dict[str, Produced | Future]):
        self._values, self._made = values, {}

    def __getitem__(self, nid: str) -> dict[str, Any] | Future:
        made = self._made.get(nid)
        if made is None:
            made = self._made[nid] = _outputs_of(self._values[nid])
        return made

    def __iter__(self):
        return iter(self._values)

    def __contains__(self, nid: object) -> bool:   # without making the node's outputs
        return nid in self._values

    def __len__(self) -> int:
        return len(self._values)


def _outputs_of(value: Produced | Future) -> dict[str, Any] | Future:
    """A node's outputs for the after-tick hooks: now, or a future of them (worker nodes)."""
    if not isinstance(value, Future):
        return _present(value.outputs)
    out: Future = Future()

    def done(f: Future) -> None:
        if f.cancelled() or f.exception() is not None:
            out.cancel()
        else:
            out.set_result(_present(f.result().outputs))

    value.add_done_callback(done)
    return out


def _present(outputs: dict[str, Any]) -> dict[str, Any]:
    """The outputs that have a value this tick (``NO_VALUE`` ones left out)."""
    return {k: v for k, v in outputs.items() if v is not NO_VALUE}
