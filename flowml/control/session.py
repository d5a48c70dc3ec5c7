"""``ControlSession``: everything that controls a running graph, started and stopped together.

``flowml run`` makes one from the graph's ``osc:`` section and its own flags::

    session = ControlSession(sched, ControlSettings.resolve(graph.spec.osc, osc_port=...),
                             graph_path=path, load=..., say=print)
    session.start()          # before sched.run(): sockets are bound, errors raised here
    try:
        sched.run()
    finally:
        session.stop()

The param store (expressions, smoothing, presets) is always on; OSC in, OSCQuery, stats out
and ``--watch`` are on when asked for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..graph.resolved import ValidatedGraph
from .addresses import normalize_prefix
from .discovery import Advertiser
from .dispatch import Dispatcher, Replier
from .osc_out import OscSender, StatsPublisher, parse_target
from .osc_server import OscUdpServer, parse_datagram, MalformedPacket
from .oscquery import OscQueryServer
from .presets import PresetBank, presets_path
from .report import Reporter
from .store import ParamStore
from .watch import GraphWatcher

__all__ = ["ControlSession", "ControlSettings"]

log = logging.getLogger("flowml.control")


@dataclass
class ControlSettings:
    """What to start. ``osc`` False: no OSC server (expressions and smoothing still run)."""

    osc: bool = False
    host: str = "127.0.0.1"
    port: int = 9000
    reply: tuple[str, int] | None = None
    prefix: str = ""
    oscquery_port: int | None = None
    send: list[tuple[str, int]] = field(default_factory=list)
    stats: float = 0.0
    watch: bool = False
    mdns: bool = True                   # advertise OSCQuery over mDNS where OSCQuery is on
    allow_origins: list[str] = field(default_factory=list)  # web pages beyond local ones

    @classmethod
    def resolve(cls, spec: Any = None, *, osc_port: int | None = None, osc_host: str | None = None,
                oscquery_port: int | None = None, watch: bool = False) -> "ControlSettings":
        """From a graph's ``osc:`` section (an ``OscSpec`` or None), overridden by CLI flags.
        OSC is on when the graph has an ``osc:`` section or a port is given. Raises
        ValueError for a bad ``host:port``."""
        s = cls(watch=watch)
        if spec is not None:
            s.osc = True
            s.host, s.port, s.prefix = spec.host, spec.port, normalize_prefix(spec.prefix)
            s.reply = parse_target(spec.reply) if spec.reply else None
            s.oscquery_port = spec.oscquery_port
            s.send = [parse_target(t) for t in spec.send]
            s.stats = spec.stats
            s.mdns = getattr(spec, "mdns", True)
            s.allow_origins = list(getattr(spec, "allow_origins", []) or [])
        if osc_port is not None:
            s.osc, s.port = True, osc_port
        if osc_host is not None:
            s.osc, s.host = True, osc_host
        if oscquery_port is not None:
            s.osc, s.oscquery_port = True, oscquery_port
        return s


class ControlSession:
    """The param store plus the servers and threads the settings ask for."""

    def __init__(self, sched: Any, settings: ControlSettings, *, graph_path: str | Path | None = None,
                 load: Callable[[str, str], ValidatedGraph] | None = None,
                 say: Callable[[str], None] = print, name: str | None = None):
        self.sched, self.settings, self.say = sched, settings, say
        self.graph_path = Path(graph_path) if graph_path else None
        self.name = name or sched.graph.spec.name or (self.graph_path.stem if self.graph_path else "flowml")
        self.load = load
        self.udp: OscUdpServer | None = None
        self.replier = Replier(self._send_udp, settings.reply)
        self.reporter = Reporter(self.replier)
        self.store = ParamStore(sched, settings.prefix, self.reporter)
        self.presets = PresetBank(presets_path(self.graph_path)) if self.graph_path else None
        self.dispatcher = Dispatcher(self.store, self.reporter, self.replier, self.presets)
        self.oscquery: OscQueryServer | None = None
        self.stats: StatsPublisher | None = None
        self.sender: OscSender | None = None
        self.watcher: GraphWatcher | None = None
        self.advertiser: Advertiser | None = None
        self._started = False
        self._graph_seen: Any = None
        self._osc_started: Any = None
        self._osc_said: Any = None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Hook the store into the scheduler and start what the settings ask for. Raises
        OSError (a port in use) with a message that says what to do; nothing is left running."""
        s = self.settings
        self.sched.before_tick.append(self.store.before_tick)
        self.sched.after_tick.append(self.store.after_tick)
        getattr(self.sched, "param_refused", []).append(self.store.node_refused)
        self.sched.before_tick.append(self._after_reload)
        self._graph_seen = self.store.graph
        self._osc_started = self._osc_said = getattr(self.store.graph.spec, "osc", None)
        self._started = True
        try:
            if s.osc:
                self.udp = OscUdpServer(s.host, s.port, self.dispatcher.handle, self.dispatcher.malformed)
                self.udp.start()
            if s.oscquery_port is not None:
                self.oscquery = OscQueryServer(
                    self.store, s.host, s.oscquery_port, osc_host=s.host,
                    osc_port=self.udp.port if self.udp else s.port, name=self.name,
                    on_osc=self._osc_from_websocket, allow_origins=s.allow_origins)
                self.oscquery.start()
                if s.mdns:
                    self.advertiser = Advertiser(self.name, s.host, self.oscquery.port,
                                                 self.udp.port if self.udp else None)
                    self.advertiser.start()
            targets = s.send or ([s.reply] if s.reply else [])
            if s.stats > 0 and targets:
                self.sender = OscSender(targets)
                self.stats = StatsPublisher(lambda: self.sched.stats, self.sender, s.stats)
                self.stats.start()
            if s.watch:
                if self.graph_path is None or self.load is None:
                    raise ValueError("--watch needs the graph file's path and a loader")
                self.watcher = GraphWatcher(self.graph_path, self.sched, self.load, self.say)
                self.watcher.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every thread and close every socket; unhook the store. Safe to call twice."""
        for part in (self.advertiser, self.watcher, self.stats, self.oscquery, self.udp):
            if part is not None:
                try:
                    part.stop()
                except Exception as exc:
                    log.debug("stopping %s: %s", type(part).__name__, exc)
        if self.sender is not None:
            self.sender.close()
        self.watcher = self.stats = self.oscquery = self.udp = self.sender = None
        self.advertiser = None
        if self._started:
            for hooks, fn in ((self.sched.before_tick, self.store.before_tick),
                              (self.sched.before_tick, self._after_reload),
                              (self.sched.after_tick, self.store.after_tick),
                              (getattr(self.sched, "param_refused", []), self.store.node_refused)):
                if fn in hooks:
                    hooks.remove(fn)
            self._started = False

    def __enter__(self) -> "ControlSession":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def describe(self) -> list[str]:
        """One line per running part, for the user."""
        lines = []
        if self.udp is not None:
            reply = f", errors to {self.settings.reply[0]}:{self.settings.reply[1]}" \
                if self.settings.reply else ", errors answered to the sender"
            lines.append(f"OSC on udp {self.udp.host}:{self.udp.port}, {len(self.store.params)} "
                         f"params at {self.settings.prefix or ''}/<node>/<param>{reply}")
        if self.oscquery is not None:
            lines.append(f"OSCQuery on http://{self.oscquery.host}:{self.oscquery.port}/")
        if self.advertiser is not None:
            where = "every interface" if self.advertiser.host in ("0.0.0.0", "", "::") else self.advertiser.host
            lines.append(f"mDNS: advertising '{self.advertiser.name}' (_oscjson._tcp, _osc._udp) on {where}")
        if self.stats is not None and self.sender is not None:
            lines.append("stats to " + ", ".join(f"{h}:{p}" for h, p in self.sender.targets))
        if self.watcher is not None:
            lines.append(f"watching {self.watcher.path.name} for changes")
        return lines

    # -- reloads ------------------------------------------------------------------------------
    def _after_reload(self, tick: Any) -> None:
        """Scheduler hook after the store's: when a ``--watch`` reload swapped the graph in,
        tell OSCQuery clients (PATH_CHANGED) and say that an edited ``osc:`` section needs a
        restart. Never raises."""
        graph = self.store.graph
        if graph is self._graph_seen:
            return
        self._graph_seen = graph
        try:
            if self.oscquery is not None:
                self.oscquery.tree_may_have_changed()
            now = getattr(graph.spec, "osc", None)
            if now != self._osc_said and now != self._osc_started:
                self._osc_said = now
                name = self.graph_path.name if self.graph_path else "the graph file"
                self.say(f"{name}: the osc: section changed; it takes effect when flowml is "
                         "restarted (ports, prefix, reply, mDNS and allowed origins stay as they "
                         "were started)")
        except Exception as exc:  # a hook must not stop the graph
            log.debug("after reload: %s", exc)

    # -- plumbing -----------------------------------------------------------------------------
    def _send_udp(self, address: str, args: list[Any], target: tuple[str, int]) -> None:
        if self.udp is not None:
            self.udp.send(address, args, target)

    def _osc_from_websocket(self, data: bytes, client: Any) -> None:
        try:
            unit = parse_datagram(data, client)
        except MalformedPacket as exc:
            self.reporter.error("(websocket packet)", str(exc), client)
            return
        self.dispatcher.handle(unit)
