"""OSC over UDP: a socket read on its own thread, packets checked, queued and handed on as units.

A *unit* is what one datagram holds: a single message, or every message of a bundle (nested
bundles flattened). The handler gets one unit at a time and queues its changes together, so
the messages of a bundle show in the same tick. A bundle stamped with a time in the future is
held until then (at most ``MAX_DELAY`` seconds ahead, at most ``MAX_HELD`` bundles and
``MAX_HELD_BYTES`` bytes at once; more are refused).

Hostile or sloppy input costs bounded work and cannot hold the thread, or the GIL, for long:

- the thread drains what waits in the socket (up to ``DRAIN_MAX`` datagrams) into an inbox
  of at most ``INBOX_MAX`` entries (``INBOX_BYTES`` bytes, and no more than take about
  ``INBOX_WAIT`` seconds to handle at the recent cost per entry): of several plain messages
  to one address only the newest is kept (moved to the back), and when the inbox is full the
  oldest entry is dropped (counted in ``dropped``). So a burst cannot build a backlog: a
  message sent after it is handled within about ``INBOX_WAIT`` seconds of work.
- each datagram is read by ``read_packet``, which checks OSC 1.0's layout as it goes:
  a length not a multiple of 4, a truncated argument, an unknown type tag, a bundle element
  that overruns, more than ``MAX_MESSAGES`` messages or ``MAX_NESTING`` levels of bundles:
  refused whole, never half-applied.
- handling runs in slices of ``SLICE`` seconds; between slices the thread sleeps ``PAUSE``
  seconds, so the graph's threads get the GIL at least that often even under a flood.
- python-osc (used here to build messages) keeps its log records off stderr (counted in
  ``suppressed``); problems are reported once per address by the handler.

What the kernel could not buffer is lost, as UDP is. A sender above ``FLOOD_RATE`` messages a
second is logged once. Nothing that arrives can stop the thread.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import socket
import struct
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

from pythonosc.osc_message_builder import OscMessageBuilder

__all__ = ["OscUdpServer", "OscUnit", "build_message", "parse_datagram", "read_packet",
           "check_packet", "MalformedPacket", "Inbox"]

log = logging.getLogger("flowml.control")

DRAIN_MAX = 4096
INBOX_MAX = 256
INBOX_BYTES = 4 << 20
INBOX_WAIT = 0.03
SLICE = 0.002
PAUSE = 0.002
FLOOD_RATE = 5000.0
MAX_DELAY = 60.0
MAX_HELD = 256
MAX_HELD_BYTES = 4 << 20
MAX_MESSAGES = 128
MAX_NESTING = 4
CONTROL_PREFIX = "/flowml/"
_BUNDLE = b"#bundle\x00"
_NTP_EPOCH = 2208988800  # seconds from 1900 (NTP) to 1970 (Unix)
_FIXED = {"i": ">i", "f": ">f", "h": ">q", "d": ">d", "t": ">Q", "c": ">I", "r": ">I", "m": ">4B"}
_IMPULSE = object()
_CONSTANT = {"T": True, "F": False, "N": None, "I": _IMPULSE}  # 'I' (impulse) carries no value


class MalformedPacket(ValueError):
    """A datagram that is not OSC, or not all of it."""


@dataclass(frozen=True)
class OscUnit:
    """The messages of one datagram, who sent them, and when they are due (None: now)."""

    messages: tuple[tuple[str, tuple[Any, ...]], ...]
    sender: Any
    bundle: bool = False
    due: float | None = None
    size: int = 0


def check_packet(data: bytes) -> int:
    """Check that ``data`` is one whole OSC 1.0 message or bundle; return how many messages
    it holds. Raises MalformedPacket saying what is wrong. Cost: linear in ``len(data)``."""
    return len(read_packet(data)[0])


def read_packet(data: bytes) -> tuple[list[tuple[str, tuple[Any, ...]]], float | None]:
    """The messages of one datagram and, for a bundle, its time (seconds since the epoch;
    None: now). The whole layout is checked as it is read, and nothing is handed on before
    the end, so a packet is taken whole or refused whole (MalformedPacket). Strings are found
    with ``bytes.find`` and numbers read with ``struct``: no Python loop per byte (python-osc's
    reader walks strings a byte at a time, 5-10 ms for a 60 KB string)."""
    if len(data) % 4:
        raise MalformedPacket(f"{len(data)} bytes is not a multiple of 4: a truncated or "
                              "padded-wrong OSC packet")
    out: list[tuple[str, tuple[Any, ...]]] = []
    stamp = _read(data, 0, len(data), 0, out)
    return out, stamp


def _read(data: bytes, start: int, end: int, depth: int, out: list) -> float | None:
    if data.startswith(_BUNDLE, start):
        if depth >= MAX_NESTING:
            raise MalformedPacket(f"bundles nested more than {MAX_NESTING} deep")
        i = start + 16
        if i > end:
            raise MalformedPacket("a bundle without its time tag")
        (ntp,) = struct.unpack_from(">Q", data, start + 8)
        while i < end:
            if i + 4 > end:
                raise MalformedPacket("a bundle element without its size")
            (size,) = struct.unpack_from(">i", data, i)
            i += 4
            if size <= 0 or size % 4 or i + size > end:
                raise MalformedPacket(f"a bundle element of size {size} at byte {i - 4} does not "
                                      f"fit the {end - start} bytes of its bundle")
            _read(data, i, i + size, depth + 1, out)
            if len(out) > MAX_MESSAGES:
                raise MalformedPacket(f"a bundle of more than {MAX_MESSAGES} messages; at most "
                                      f"{MAX_MESSAGES} per packet")
            i += size
        return _seconds(ntp)
    if start >= end or data[start] != 0x2F:  # '/'
        raise MalformedPacket("not an OSC message or bundle (an address starts with '/')")
    address, i = _string(data, start, end, "the address")
    if i == end:
        out.append((address, ()))  # no type tags: a message without arguments
        return None
    if data[i] != 0x2C:  # ','
        raise MalformedPacket("the type tags do not start with ','")
    tags, i = _string(data, i, end, "the type tags")
    args: list[Any] = []
    stack = [args]
    for tag in tags[1:]:
        fmt = _FIXED.get(tag)
        if fmt is not None:
            size = struct.calcsize(fmt)
            if i + size > end:
                raise MalformedPacket(f"the packet ends inside an argument of type {tag!r} (truncated)")
            unpacked = struct.unpack_from(fmt, data, i)
            i += size
            value: Any = unpacked if tag == "m" else unpacked[0]
            if tag == "c":
                value = chr(value & 0x10FFFF)
            elif tag == "t":
                value = _seconds(value)
        elif tag in "sS":
            value, i = _string(data, i, end, "a string argument")
        elif tag == "b":
            if i + 4 > end:
                raise MalformedPacket("a blob without its size")
            (n,) = struct.unpack_from(">i", data, i)
            if n < 0 or i + 4 + n > end:
                raise MalformedPacket(f"a blob of {n} bytes does not fit the packet (truncated)")
            value = data[i + 4:i + 4 + n]
            i += 4 + n + (-n % 4)
        elif tag in _CONSTANT:
            value = _CONSTANT[tag]
            if value is _IMPULSE:
                continue
        elif tag == "[":
            stack.append([])
            stack[-2].append(stack[-1])
            continue
        elif tag == "]":
            if len(stack) < 2:
                raise MalformedPacket("a ']' without its '[' in the type tags")
            stack.pop()
            continue
        else:
            raise MalformedPacket(f"unknown OSC type tag {tag!r}; flowml reads "
                                  "i h f d s S b T F N I t c r m [ ]")
        stack[-1].append(value)
    if len(stack) != 1:
        raise MalformedPacket("a '[' without its ']' in the type tags")
    if i != end:
        raise MalformedPacket(f"{end - i} bytes after the last argument: the type tags and the "
                              "arguments do not agree")
    out.append((address, tuple(args)))
    return None


def _seconds(ntp: int) -> float | None:
    """An OSC time tag as seconds since the epoch; None for 'immediately' (1) or 0."""
    return None if ntp <= 1 else (ntp >> 32) - _NTP_EPOCH + (ntp & 0xFFFFFFFF) / 2**32


def _string(data: bytes, start: int, end: int, what: str) -> tuple[str, int]:
    """The string at ``start`` and where what follows it starts."""
    nul = data.find(b"\x00", start, end)
    if nul < 0:
        raise MalformedPacket(f"{what} is not terminated (truncated)")
    n = nul - start + 1  # with its terminating zero, padded to a multiple of 4
    padded = start + n + (-n % 4)
    if padded > end:
        raise MalformedPacket(f"{what} is not padded to 4 bytes (truncated)")
    try:
        return data[start:nul].decode("utf-8"), padded
    except UnicodeDecodeError as exc:
        raise MalformedPacket(f"{what} is not UTF-8 text: {exc.reason} at byte "
                              f"{start + exc.start}") from None


def parse_datagram(data: bytes, sender: Any = None) -> OscUnit:
    """One datagram as a unit, taken whole or refused whole; raises MalformedPacket."""
    try:
        messages, stamp = read_packet(data)
    except MalformedPacket as exc:
        raise MalformedPacket(f"malformed OSC packet ({len(data)} bytes): {exc}") from None
    due = stamp if stamp is not None and stamp > time.time() else None
    return OscUnit(tuple(messages), sender, data.startswith(_BUNDLE), due, len(data))


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


class Inbox:
    """Datagrams waiting to be handled: bounded in count, bytes and handling time,
    newest-wins per address.

    A plain message (not a bundle, not ``/flowml/...``) replaces one waiting for the same
    address and moves to the back; anything else gets a place of its own. When full, the
    oldest entry is dropped. "Full" is ``max_entries``, ``max_bytes``, or as many entries as
    take ``max_wait`` seconds to handle at the recent cost per entry (``note_cost``), but never
    fewer than ``min_entries``: so what arrives waits at most about ``max_wait``, whether the
    backlog is of cheap messages or costly ones. Used by one thread only."""

    def __init__(self, max_entries: int = INBOX_MAX, max_bytes: int = INBOX_BYTES,
                 max_wait: float = INBOX_WAIT, min_entries: int = 16):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.max_wait, self.min_entries = max_wait, min_entries
        self._q: OrderedDict[Any, tuple[bytes, Any]] = OrderedDict()
        self._bytes = 0
        self._seq = itertools.count()
        self.dropped = 0
        self.cost = 20e-6  # seconds to handle one entry, a moving average
        self._limit = max_entries

    def __len__(self) -> int:
        return len(self._q)

    def note_cost(self, seconds: float) -> None:
        """How long handling one entry took (updates the time-based limit)."""
        self.cost += 0.1 * (seconds - self.cost)
        self._limit = max(self.min_entries, min(self.max_entries, int(self.max_wait / max(self.cost, 1e-7))))

    def put(self, data: bytes, sender: Any) -> None:
        key: Any = None
        if data[:1] == b"/":
            nul = data.find(b"\x00", 0, 1024)
            address = data[:nul] if nul > 0 else b""
            if address and not address.startswith(b"/flowml/"):
                key = address
        if key is None:
            key = next(self._seq)
        old = self._q.pop(key, None)
        if old is not None:
            self._bytes -= len(old[0])
        self._q[key] = (data, sender)
        self._bytes += len(data)
        while len(self._q) > self._limit or self._bytes > self.max_bytes:
            _, (gone, _) = self._q.popitem(last=False)
            self._bytes -= len(gone)
            self.dropped += 1

    def get(self) -> tuple[bytes, Any] | None:
        if not self._q:
            return None
        _, item = self._q.popitem(last=False)
        self._bytes -= len(item[0])
        return item


class _QuietPythonOsc(logging.Filter):
    """Keeps python-osc's own records (logged on the root logger) off stderr; counts them."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if "pythonosc" in record.pathname:
            self.count += 1
            return False
        return True


_quiet = _QuietPythonOsc()


def _install_quiet() -> None:
    root = logging.getLogger()
    if _quiet not in root.filters:
        root.addFilter(_quiet)


class OscUdpServer:
    """Listens on ``host:port`` (0: any free port, see ``port`` after ``start``).

    ``on_unit(unit)`` is called on the server thread for each unit; ``on_malformed(sender,
    reason)`` for each datagram that is not (all) OSC or cannot be held. Exceptions from
    either are logged, never raised.
    """

    def __init__(self, host: str, port: int, on_unit: Callable[[OscUnit], None],
                 on_malformed: Callable[[Any, str], None], *, rcvbuf: int = 4 << 20):
        self.host, self.port = host, port
        self.on_unit, self.on_malformed = on_unit, on_malformed
        self.rcvbuf = rcvbuf
        self.received = 0
        self.handled = 0
        self.inbox = Inbox()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._held: list[tuple[float, int, OscUnit]] = []
        self._held_bytes = 0
        self._seq = itertools.count()
        self._rates: dict[Any, tuple[float, int]] = {}
        self._flooding: set[Any] = set()
        self._failed_once = False
        self._dropped_said = 0

    @property
    def dropped(self) -> int:
        """Datagrams dropped from a full inbox (the oldest go first)."""
        return self.inbox.dropped

    @property
    def suppressed(self) -> int:
        """python-osc log records kept off stderr (in this process)."""
        return _quiet.count

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
        _install_quiet()
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
            more_due = False
            try:
                more_due = self._release_due()
                if self._wait(sock, now=more_due):
                    self._drain(sock)
                self._handle_slice()
                self._say_dropped()
            except Exception:  # never let the thread die
                self._failed("OSC: the receive loop failed")
            if more_due or len(self.inbox):
                time.sleep(PAUSE)  # more to do: let the graph's threads have the GIL first

    def _wait(self, sock: socket.socket, now: bool = False) -> bool:
        """Wait for a datagram (not at all when work is waiting); True when one came."""
        timeout = 0.0 if now or len(self.inbox) else self._timeout()
        try:
            sock.settimeout(timeout)
            data, sender = sock.recvfrom(65535)
        except (socket.timeout, BlockingIOError):
            return False
        except OSError:  # e.g. ICMP port unreachable from an earlier reply; closed on stop
            return False
        self._accept(data, sender)
        return True

    def _drain(self, sock: socket.socket) -> None:
        sock.settimeout(0.0)  # take what is already there, without waiting for more
        for _ in range(DRAIN_MAX):
            try:
                data, sender = sock.recvfrom(65535)
            except OSError:  # BlockingIOError: nothing more waiting
                return
            self._accept(data, sender)

    def _accept(self, data: bytes, sender: Any) -> None:
        self.received += 1
        self._count(sender)
        self.inbox.put(data, sender)

    def _handle_slice(self) -> None:
        deadline = time.perf_counter() + SLICE
        while not self._stop.is_set():
            item = self.inbox.get()
            if item is None:
                return
            t0 = time.perf_counter()
            self._handle(*item)
            now = time.perf_counter()
            self.inbox.note_cost(now - t0)
            if now > deadline:
                return

    def _handle(self, data: bytes, sender: Any) -> None:
        self.handled += 1
        try:
            unit = parse_datagram(data, sender)
        except MalformedPacket as exc:
            self._safe(self.on_malformed, sender, str(exc))
            return
        if unit.due is None:
            self._deliver(unit)
            return
        if len(self._held) >= MAX_HELD or self._held_bytes + unit.size > MAX_HELD_BYTES:
            self._safe(self.on_malformed, sender,
                       f"{len(self._held)} bundles ({self._held_bytes} bytes) already wait for their "
                       f"time; at most {MAX_HELD} ({MAX_HELD_BYTES} bytes): this one is refused")
            return
        due = min(unit.due, time.time() + MAX_DELAY)
        self._held_bytes += unit.size
        heapq.heappush(self._held, (due, next(self._seq), unit))

    def _timeout(self) -> float:
        if not self._held:
            return 0.25
        return max(0.001, min(0.25, self._held[0][0] - time.time()))

    def _release_due(self) -> bool:
        """Deliver the held bundles that are due, for at most a slice; True if more are due."""
        now, deadline = time.time(), time.perf_counter() + SLICE
        while self._held and self._held[0][0] <= now:
            if time.perf_counter() > deadline:
                return True
            _, _, unit = heapq.heappop(self._held)
            self._held_bytes -= unit.size
            self._deliver(unit)
        return False

    def _deliver(self, unit: OscUnit) -> None:
        self._safe(self.on_unit, unit)

    def _safe(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            self._failed("OSC: handler failed")

    def _failed(self, what: str) -> None:
        """A bug, not bad input: the traceback once, then one line at debug level."""
        if not self._failed_once:
            self._failed_once = True
            log.exception("%s (further failures are logged at debug level)", what)
        else:
            log.debug(what, exc_info=True)

    def _say_dropped(self) -> None:
        if self.inbox.dropped and not self._dropped_said:
            self._dropped_said = self.inbox.dropped
            log.warning("OSC: input comes faster than it can be handled; dropping the oldest "
                        "waiting messages (the newest value per address is kept)")

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
