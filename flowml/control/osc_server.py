"""OSC over UDP: a socket read on its own thread, packets parsed and handed on as units.

A *unit* is what one datagram holds: a single message, or every message of a bundle (nested
bundles flattened). The handler gets one unit at a time and queues its changes together, so
the messages of a bundle show in the same tick. A bundle stamped with a time in the future is
held until then (at most ``MAX_DELAY`` seconds ahead).

Floods: the thread drains every datagram waiting in the socket at once (up to
``DRAIN_MAX``), and of several plain messages to the same address in one drain only the last
is handled: the last value wins and a flood costs one check per address per drain, not per
message. What the kernel could not buffer is lost, as UDP is. A sender above
``FLOOD_RATE`` messages a second is logged once. A malformed datagram is reported and skipped.
Nothing that arrives can stop the thread.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

__all__ = ["OscUdpServer", "OscUnit", "build_message", "parse_datagram", "MalformedPacket"]

log = logging.getLogger("flowml.control")

DRAIN_MAX = 2048
FLOOD_RATE = 5000.0
MAX_DELAY = 60.0
CONTROL_PREFIX = "/flowml/"


class MalformedPacket(ValueError):
    """A datagram that is not OSC."""


@dataclass(frozen=True)
class OscUnit:
    """The messages of one datagram, who sent them, and when they are due (None: now)."""

    messages: tuple[tuple[str, tuple[Any, ...]], ...]
    sender: Any
    bundle: bool = False
    due: float | None = None


def parse_datagram(data: bytes, sender: Any = None) -> OscUnit:
    """One datagram as a unit; raises MalformedPacket."""
    try:
        if OscBundle.dgram_is_bundle(data):
            bundle = OscBundle(data)
            stamp = bundle.timestamp
            due = stamp if stamp and stamp > time.time() else None
            return OscUnit(tuple(_flatten(bundle)), sender, True, due)
        if OscMessage.dgram_is_message(data):
            msg = OscMessage(data)
            return OscUnit(((msg.address, tuple(msg.params)),), sender)
    except Exception as exc:  # python-osc raises ParseError and, on odd input, others
        raise MalformedPacket(f"malformed OSC packet ({len(data)} bytes): {exc}") from None
    raise MalformedPacket(f"not an OSC message or bundle ({len(data)} bytes)")


def _flatten(bundle: OscBundle) -> list[tuple[str, tuple[Any, ...]]]:
    out = []
    for content in bundle:
        if isinstance(content, OscBundle):
            out += _flatten(content)
        else:
            out.append((content.address, tuple(content.params)))
    return out


def build_message(address: str, args: list[Any] | tuple[Any, ...]) -> bytes:
    """The datagram of one OSC message (ints beyond 32 bits are sent as 64-bit ``h``)."""
    b = OscMessageBuilder(address=address)
    for a in args:
        if isinstance(a, bool) or a is None:
            b.add_arg(a)
        elif isinstance(a, int):
            b.add_arg(a, "i" if -2**31 <= a < 2**31 else "h")
        elif isinstance(a, float):
            b.add_arg(a, "f")
        else:
            b.add_arg(str(a) if not isinstance(a, bytes) else a)
    return b.build().dgram


class OscUdpServer:
    """Listens on ``host:port`` (0: any free port, see ``port`` after ``start``).

    ``on_unit(unit)`` is called on the server thread for each unit; ``on_malformed(sender,
    reason)`` for each datagram that is not OSC. Exceptions from either are logged, never raised.
    """

    def __init__(self, host: str, port: int, on_unit: Callable[[OscUnit], None],
                 on_malformed: Callable[[Any, str], None], *, rcvbuf: int = 4 << 20):
        self.host, self.port = host, port
        self.on_unit, self.on_malformed = on_unit, on_malformed
        self.rcvbuf = rcvbuf
        self.received = 0
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._held: list[tuple[float, int, OscUnit]] = []
        self._seq = itertools.count()
        self._rates: dict[Any, tuple[float, int]] = {}
        self._flooding: set[Any] = set()

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Bind the socket (raises OSError with a clear message if the port is taken)."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        except OSError:
            pass
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot listen for OSC on {self.host}:{self.port}: {exc.strerror or exc}; "
                          "pick another port (--osc-port, or osc: {port: ...} in the graph; "
                          "0 takes any free port)") from None
        sock.settimeout(0.25)
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._loop, name="flowml-osc", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def send(self, address: str, args: list[Any], target: tuple[str, int]) -> None:
        """Send one message from the server's own port (so replies come from where the
        client sent to)."""
        if self._sock is not None:
            try:
                self._sock.sendto(build_message(address, args), target)
            except OSError as exc:
                log.debug("OSC send to %s failed: %s", target, exc)

    # -- the thread ---------------------------------------------------------------------------
    def _loop(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            self._release_due()
            try:
                sock.settimeout(self._timeout())
                first = sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            batch = [first]
            sock.settimeout(0.0)  # drain what is already there, without waiting for more
            while len(batch) < DRAIN_MAX:
                try:
                    batch.append(sock.recvfrom(65535))
                except OSError:  # BlockingIOError: nothing more waiting
                    break
            try:
                self._handle_batch(batch)
            except Exception:  # never let the thread die
                log.exception("OSC: handling a packet failed")

    def _timeout(self) -> float:
        if not self._held:
            return 0.25
        return max(0.001, min(0.25, self._held[0][0] - time.time()))

    def _release_due(self) -> None:
        now = time.time()
        while self._held and self._held[0][0] <= now:
            _, _, unit = heapq.heappop(self._held)
            self._deliver(unit)

    def _handle_batch(self, batch: list[tuple[bytes, Any]]) -> None:
        self.received += len(batch)
        plain: dict[str, OscUnit] = {}
        for data, sender in batch:
            self._count(sender)
            try:
                unit = parse_datagram(data, sender)
            except MalformedPacket as exc:
                self._safe(self.on_malformed, sender, str(exc))
                continue
            address = unit.messages[0][0] if unit.messages else ""
            if not unit.bundle and not address.startswith(CONTROL_PREFIX):
                plain.pop(address, None)  # the last one to an address wins, in arrival order
                plain[address] = unit
                continue
            for u in plain.values():
                self._deliver(u)
            plain.clear()
            if unit.due is not None:
                due = min(unit.due, time.time() + MAX_DELAY)
                heapq.heappush(self._held, (due, next(self._seq), unit))
            else:
                self._deliver(unit)
        for u in plain.values():
            self._deliver(u)

    def _deliver(self, unit: OscUnit) -> None:
        self._safe(self.on_unit, unit)

    @staticmethod
    def _safe(fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("OSC: handler failed")

    def _count(self, sender: Any) -> None:
        now = time.monotonic()
        start, n = self._rates.get(sender, (now, 0))
        if now - start >= 1.0:
            if n > FLOOD_RATE and sender not in self._flooding:
                self._flooding.add(sender)
                log.warning("OSC: %s sends %d messages a second; handling the last value per "
                            "address only", _show(sender), n)
            start, n = now, 0
        if len(self._rates) > 4096:
            self._rates.clear()
        self._rates[sender] = (start, n + 1)


def _show(sender: Any) -> str:
    return f"{sender[0]}:{sender[1]}" if isinstance(sender, tuple) and len(sender) >= 2 else str(sender)
