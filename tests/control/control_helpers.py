"""Helpers for the live-control tests: a graph running on a thread with its control session,
liblo's ``oscsend`` / ``oscdump`` as the external peers, free loopback ports."""

from __future__ import annotations

import re
import socket
import subprocess
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from flowml.control import ControlSession, ControlSettings
from flowml.graph import load_graph
from flowml.runtime.scheduler import RunResult, Scheduler
from flowml.testing import need_executables

LOOPBACK = "127.0.0.1"


def wait_until(cond: Callable[[], Any], timeout: float = 5.0, every: float = 0.01) -> Any:
    """Poll ``cond`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {getattr(cond, '__name__', cond)}")
        time.sleep(every)


def save_as_editors_do(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as editors save: a finished file renamed over the old one
    (a plain rewrite can be read half-way: truncated, not yet written)."""
    tmp = path.with_name(path.name + ".saving")
    tmp.write_text(text)
    tmp.replace(path)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def need_liblo() -> None:
    need_executables("oscsend", "oscdump", missing=(
        "liblo-tools (oscsend, oscdump) are not installed; scripts/test.sh installs them"))


def oscsend(port: int, address: str, types: str = "", *values: Any) -> None:
    """Send one message with liblo's oscsend (a real, independent OSC client)."""
    need_liblo()
    args = ["oscsend", LOOPBACK, str(port), address]
    if types:
        args += [types, *map(str, values)]
    subprocess.run(args, check=True, timeout=5, capture_output=True)


@dataclass
class Dumped:
    """One message as oscdump printed it."""

    address: str
    types: str
    args: list[Any]


def parse_oscdump_line(line: str) -> Dumped | None:
    """``<timetag> <address> <types> <values...>`` -> Dumped (None for other lines)."""
    m = re.match(r"^\S+ (/\S*) (\S*) ?(.*)$", line.rstrip("\n"))
    if not m:
        return None
    address, types, rest = m.groups()
    args: list[Any] = []
    for t in types:
        rest = rest.lstrip(" ")
        if t == "s":
            sm = re.match(r'"(.*?)"(?= |$)', rest)
            if not sm:
                return None
            args.append(sm.group(1))
            rest = rest[sm.end():]
            continue
        token, _, rest = rest.partition(" ")
        if t in "ih":
            args.append(int(token))
        elif t in "fd":
            args.append(float(token))
        elif t in "TF":
            args.append(t == "T")
        elif t == "N":
            args.append(None)
        else:
            args.append(token)
    return Dumped(address, types, args)


class OscDump:
    """liblo's oscdump listening on a free port; ``messages`` fills as lines arrive."""

    def __init__(self) -> None:
        need_liblo()
        self.port = free_udp_port()
        self.messages: list[Dumped] = []
        self.lines: list[str] = []
        self._proc = subprocess.Popen(["oscdump", "-L", str(self.port)], stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_until(self._bound, timeout=5)

    def _bound(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind((LOOPBACK, self.port))
            except OSError:
                return True
        return self._proc.poll() is not None and pytest.fail("oscdump exited: " + "".join(self.lines))

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.lines.append(line)
            msg = parse_oscdump_line(line)
            if msg is not None:
                self.messages.append(msg)

    def wait_for(self, pred: Callable[[Dumped], bool], timeout: float = 5.0, n: int = 1) -> list[Dumped]:
        def found() -> list[Dumped] | None:
            hits = [m for m in list(self.messages) if pred(m)]
            return hits if len(hits) >= n else None
        return wait_until(found, timeout)

    def close(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()

    def __enter__(self) -> "OscDump":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Running:
    """A graph running on its own thread, with its control session."""

    sched: Scheduler
    session: ControlSession
    path: Path
    thread: threading.Thread
    result: list[RunResult] = field(default_factory=list)
    dispatched: list[tuple[int, float]] = field(default_factory=list)  # (tick, time before hooks)

    @property
    def osc_port(self) -> int:
        assert self.session.udp is not None
        return self.session.udp.port

    @property
    def store(self):
        return self.session.store

    def ticks(self) -> int:
        return self.sched.stats.ticks

    def wait_ticks(self, n: int, timeout: float = 5.0) -> None:
        start = self.ticks()
        wait_until(lambda: self.ticks() >= start + n, timeout)

    def stop(self) -> RunResult | None:
        self.sched.stop()
        self.thread.join(timeout=10)
        self.session.stop()
        if self.sched._is_setup:
            self.sched.teardown()
        return self.result[0] if self.result else None


class LiveGraphs:
    """Starts graphs from YAML text in a temporary folder; stops them all at the end."""

    def __init__(self, folder: Path, registry: Any):
        self.folder, self.registry = folder, registry
        self.running: list[Running] = []

    def write(self, text: str, name: str = "graph.yaml") -> Path:
        path = self.folder / name
        path.write_text(textwrap.dedent(text))
        return path

    def load(self, path: Path | str, text: str | None = None):
        return load_graph(path, self.registry, text=text)

    def start(self, text: str, *, osc: bool = True, oscquery: bool = False, watch: bool = False,
              reply: tuple[str, int] | None = None, say: Callable[[str], None] = print,
              name: str = "graph.yaml", mdns: bool = False, **sched_kw: Any) -> Running:
        path = self.write(text, name)
        graph = self.load(path)
        sched = Scheduler(graph, **sched_kw)
        settings = ControlSettings.resolve(graph.spec.osc, watch=watch,
                                           osc_port=0 if osc and graph.spec.osc is None else None,
                                           oscquery_port=0 if oscquery else None)
        if osc:
            settings.osc, settings.host = True, LOOPBACK
            if graph.spec.osc is None or graph.spec.osc.port == 9000:
                settings.port = 0
        if reply is not None:
            settings.reply = reply
        settings.mdns = mdns  # no mDNS announcements from tests (test_discovery_netns.py has its own)
        session = ControlSession(sched, settings, graph_path=path,
                                 load=lambda p, t: load_graph(p, self.registry, text=t), say=say)
        session.start()
        run = Running(sched, session, path, threading.Thread(target=lambda: None))
        sched.before_tick.insert(0, lambda tick: run.dispatched.append((tick.index, time.perf_counter())))
        sched.setup()
        run.thread = threading.Thread(target=lambda: run.result.append(sched.run()), daemon=True)
        run.thread.start()
        self.running.append(run)
        return run

    def stop_all(self) -> None:
        for run in self.running:
            try:
                run.stop()
            except Exception:
                pass
        self.running.clear()


def fps_over(run: "Running", seconds: float) -> float:
    """The graph's completed frames a second over the next ``seconds`` (measured, not nominal)."""
    t0, n0 = time.perf_counter(), run.sched.stats.completed
    time.sleep(seconds)
    return (run.sched.stats.completed - n0) / (time.perf_counter() - t0)


def osc_dgram(address: str, *args: Any) -> bytes:
    """One OSC message as bytes (python-osc's builder), to send from a raw UDP socket."""
    from pythonosc.osc_message_builder import OscMessageBuilder

    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def rss_mb() -> float:
    """This process's resident memory in MB (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6
