"""A tick ends when its GPU work is done (runtime.completion), shown on the CPU: the end events
here are host-side stand-ins with the two methods the completion path uses of a CUDA event
(``query``, ``synchronize``), handed out by a stand-in lane as ``Lane.end_event`` would."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

from flowml.node import EndOfStream, Tick
from flowml.runtime.clock import RateClock, SourcePump
from flowml.runtime.completion import Completion
from flowml.runtime.edges import Produced
from flowml.runtime.scheduler import Scheduler
from flowml.runtime.ticks import TickRun

WAIT_S = 10.0  # a bound on waiting for a thread, never a timing claim


class HostEvent:
    """Passes when ``fire()`` is called; ``synchronize`` blocks until then."""

    def __init__(self, error: BaseException | None = None):
        self._fired = threading.Event()
        self.error = error

    def fire(self) -> None:
        self._fired.set()

    def query(self) -> bool:
        return self._fired.is_set()

    def synchronize(self) -> None:
        if not self._fired.wait(WAIT_S):
            raise AssertionError("test event never fired")
        if self.error is not None:
            raise self.error


class HostLane:
    """Hands out HostEvents as end events and keeps the ones recycled."""

    def __init__(self):
        self.recorded: list[HostEvent] = []
        self.recycled: list[HostEvent] = []

    def end_event(self) -> HostEvent:
        self.recorded.append(HostEvent())
        return self.recorded[-1]

    def recycle(self, event: HostEvent) -> None:
        self.recycled.append(event)


class Book:
    """The finish/failed callbacks of a Completion: which ticks, on which thread."""

    def __init__(self):
        self.finished: list[tuple[int, bool, str]] = []
        self.errors: list[BaseException] = []
        self.cv = threading.Condition()

    def finish(self, run: TickRun) -> None:
        with self.cv:
            self.finished.append((run.tick.index, run.failed, threading.current_thread().name))
            self.cv.notify_all()

    def failed(self, run: TickRun, error: BaseException) -> None:
        self.errors.append(error)

    def wait_for(self, n: int) -> None:
        with self.cv:
            assert self.cv.wait_for(lambda: len(self.finished) >= n, WAIT_S), self.finished


def tick_run(i: int, completion: Completion) -> TickRun:
    return TickRun(Tick(i, 0.0), 0.0, completion.done, lambda exc: None)


def test_a_tick_is_finished_only_after_its_events_pass_and_in_hand_in_order():
    book = Book()
    completion = Completion(book.finish, book.failed)
    lane = HostLane()
    runs = [tick_run(i, completion) for i in range(3)]
    for run in runs:
        run.used(lane)
        run.used(lane)  # one end event a lane and part, however many calls used it
        run.part_done()  # the dispatch returned: the end events are recorded now
    assert len(lane.recorded) == 3 and book.finished == []  # enqueued is not done
    lane.recorded[1].fire()  # tick 1's GPU work is done, tick 0's not yet
    lane.recorded[0].fire()
    lane.recorded[2].fire()
    book.wait_for(3)
    assert [(i, failed) for i, failed, _ in book.finished] == [(0, False), (1, False), (2, False)]
    assert {name for *_, name in book.finished} == {"flowml-gpu-done"}
    assert lane.recycled == lane.recorded and all(r.ends == [] for r in runs)
    assert completion.close(WAIT_S)


def test_a_tick_whose_events_passed_is_finished_on_the_spot():
    book = Book()
    completion = Completion(book.finish, book.failed)
    run = tick_run(0, completion)
    source = HostEvent()
    source.fire()
    run.wait_for(source)  # a source's own event: waited for, never recycled
    run.part_done()
    assert book.finished == [(0, False, threading.current_thread().name)]  # no thread hop
    assert run.ends == []
    assert completion.close(WAIT_S)


def test_a_worker_part_waits_on_its_own_lane_and_the_last_part_hands_the_tick_in():
    book = Book()
    completion = Completion(book.finish, book.failed)
    dispatch_lane, worker_lane = HostLane(), HostLane()
    run = tick_run(7, completion)
    run.add_part()  # a worker call of the tick
    run.used(dispatch_lane)
    run.part_done()  # the dispatch: one end event on its lane
    fut: Future = Future()
    fut.set_result(Produced({}, None, worker_lane))
    run.part_done(fut)  # the worker call returned: an end event on its lane, then handed in
    assert len(dispatch_lane.recorded) == len(worker_lane.recorded) == 1
    worker_lane.recorded[0].fire()
    assert book.finished == []  # still waiting for the dispatch's GPU work
    dispatch_lane.recorded[0].fire()
    book.wait_for(1)
    assert book.finished[0][:2] == (7, False)
    assert completion.close(WAIT_S)


def test_a_failed_wait_still_finishes_the_tick_as_failed():
    book = Book()
    completion = Completion(book.finish, book.failed)
    run = tick_run(3, completion)
    bad = HostEvent(RuntimeError("CUDA error: an illegal memory access was encountered"))
    run.wait_for(bad)
    run.part_done()
    bad.fire()
    book.wait_for(1)
    assert book.finished[0][:2] == (3, True)  # booked as failed: its slot comes back
    assert [str(e) for e in book.errors] == ["CUDA error: an illegal memory access was encountered"]
    assert completion.close(WAIT_S)


def test_close_finishes_the_ticks_handed_in_first():
    book = Book()
    completion = Completion(book.finish, book.failed)
    run = tick_run(0, completion)
    event = HostEvent()
    run.wait_for(event)
    run.part_done()
    threading.Timer(0.05, event.fire).start()
    assert completion.close(WAIT_S)
    assert [i for i, *_ in book.finished] == [0]
    late = tick_run(1, completion)  # a call that outlived the close: booked, not lost
    late.wait_for(HostEvent())
    late.part_done()
    assert [i for i, *_ in book.finished] == [0, 1]


def test_a_cpu_graph_has_no_completion_thread(graph):
    g = graph("""
        flowml: 1
        clock: src
        max_in_flight: 2
        nodes:
          src: {type: test.counter, params: {frames: 20}}
          add: {type: test.add, inputs: {value: src/value}}
          rec: {type: test.record, inputs: {value: add/value}}
    """)
    with Scheduler(g) as sched:
        result = sched.run()
        assert sched._completion is None
    assert result.ok and result.stats.completed == 20
    assert not any(t.name == "flowml-gpu-done" for t in threading.enumerate())


def test_offline_the_dispatcher_books_ticks_whose_events_passed_when_it_comes_around():
    book = Book()
    completion = Completion(book.finish, book.failed, dispatcher_books=True)
    lane = HostLane()
    runs = [tick_run(i, completion) for i in range(3)]
    for run in runs:
        run.used(lane)
        run.part_done()
    lane.recorded[0].fire()
    lane.recorded[1].fire()
    assert book.finished == [] and completion.backlog == 3  # nobody looked yet
    completion.poll()  # the dispatcher comes around: the passed ones, oldest first, here
    me = threading.current_thread().name
    assert book.finished == [(0, False, me), (1, False, me)] and completion.backlog == 1
    completion.poll()  # tick 2's work is still running: it waits
    assert len(book.finished) == 2
    lane.recorded[2].fire()
    completion.poll()
    assert book.finished[2] == (2, False, me)
    assert lane.recycled == lane.recorded
    assert completion.close(WAIT_S)


def test_while_the_dispatcher_waits_the_thread_books_waiting_and_new_ticks():
    book = Book()
    completion = Completion(book.finish, book.failed, dispatcher_books=True)
    lane = HostLane()
    first, second = tick_run(0, completion), tick_run(1, completion)
    first.used(lane)
    first.part_done()  # waits in the list
    with completion.waiting():  # the dispatcher blocks (no slot): nothing may wait on it
        second.used(lane)
        second.part_done()  # done meanwhile (a worker's last call): straight to the thread
        for event in lane.recorded:
            event.fire()
        book.wait_for(2)
    assert [i for i, *_ in book.finished] == [0, 1]
    assert {name for *_, name in book.finished} == {"flowml-gpu-done"}
    assert completion.close(WAIT_S)


def test_close_hands_the_waiting_ticks_to_the_thread():
    book = Book()
    completion = Completion(book.finish, book.failed, dispatcher_books=True)
    run = tick_run(0, completion)
    event = HostEvent()
    run.wait_for(event)
    run.part_done()
    assert book.finished == []
    threading.Timer(0.05, event.fire).start()
    assert completion.close(WAIT_S)
    assert [i for i, *_ in book.finished] == [0]


def test_the_dispatcher_waits_for_a_frame_only_when_the_clock_has_none_ready(graph):
    # waiting() hands the ticks to the completion thread: an offline rate clock, whose next
    # frame is always there, must not enter it each tick (two GIL hand-overs a tick)
    g = graph("""
        flowml: 1
        clock: {fps: 60}
        mode: offline
        nodes:
          src: {type: test.counter, params: {frames: 1000}}
          add: {type: test.add, inputs: {value: src/value}}
    """)
    with Scheduler(g) as sched:  # inline nodes only: every tick is done when it returns
        waits = []
        inner = sched._waiting
        sched._waiting = lambda: waits.append(1) or inner()
        result = sched.run(frames=30)
    assert result.ok and result.stats.completed == 30
    assert len(waits) == 1  # the drain's; not one a tick


def test_clocks_say_whether_their_next_frame_is_ready():
    offline = RateClock(1000.0, live=False)
    offline.start()
    assert all(offline.ready() and offline.next() is not None for _ in range(5))
    live = RateClock(0.2, live=True)
    live.start()
    assert live.ready()            # tick 0 is due at once
    assert live.next() is not None
    assert not live.ready()        # tick 1 in five seconds
    live.stop()
    assert live.ready() and live.next() is None
    frames = iter(range(3))

    def read():
        try:
            return {"value": next(frames)}, None
        except StopIteration:
            raise EndOfStream from None

    pump = SourcePump(read, live=False, capacity=4)
    assert not pump.ready()        # nothing read yet (the thread is not started)
    pump.start()
    deadline = time.monotonic() + WAIT_S
    while not pump.ready() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert pump.ready() and pump.next().outputs == {"value": 0}
    pump.stop()
    assert pump.join(WAIT_S)
