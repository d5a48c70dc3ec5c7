"""OSC out: sending values to OSC targets (TouchDesigner's OSC In CHOP, say), rate-limited.

``OscSender`` sends from its own UDP socket to one or more ``host:port`` targets.
``RateGate`` lets a value through at most ``rate`` times a second per address, keeping the
latest one back so that the last value is sent when the gate opens again.
``StatsPublisher`` sends a running graph's stats a few times a second::

    /flowml/stats/fps f          frames per second (recent)
    /flowml/stats/latency_ms f   end-to-end latency, p50 (0 before the first frame)
    /flowml/stats/frames i       frames completed
    /flowml/stats/dropped i      source frames dropped
    /flowml/stats/node/<id>/mean_us f   mean host time of each node's process()
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

from .osc_server import build_message

__all__ = ["parse_target", "OscSender", "RateGate", "StatsPublisher"]

log = logging.getLogger("flowml.control")


def parse_target(text: str) -> tuple[str, int]:
    """``"host:port"`` (or ``"port"``, meaning 127.0.0.1) -> ``(host, port)``; ValueError
    saying what to write otherwise."""
    host, sep, port = str(text).strip().rpartition(":")
    if not sep:
        host, port = "127.0.0.1", str(text).strip()
    host = host.strip("[]") or "127.0.0.1"
    try:
        n = int(port)
    except ValueError:
        raise ValueError(f"OSC target {text!r}: write host:port, e.g. 127.0.0.1:9001") from None
    if not 0 < n < 65536:
        raise ValueError(f"OSC target {text!r}: port {n} is not in 1..65535")
    return host, n


class OscSender:
    """Sends OSC messages to fixed targets from one UDP socket. Thread-safe; never raises
    for a failed send (logged once per target)."""

    def __init__(self, targets: list[tuple[str, int]]):
        self.targets = list(targets)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._failed: set[tuple[str, int]] = set()

    def send(self, address: str, args: list[Any]) -> None:
        data = build_message(address, args)
        for target in self.targets:
            try:
                self._sock.sendto(data, target)
            except OSError as exc:
                if target not in self._failed:
                    self._failed.add(target)
                    log.warning("OSC: cannot send to %s:%s: %s", target[0], target[1], exc)

    def close(self) -> None:
        self._sock.close()


class RateGate:
    """At most ``rate`` sends a second per address; a value held back is sent by ``flush``
    (or the next ``offer``) once the address may send again."""

    def __init__(self, rate: float):
        self.period = 1.0 / rate if rate > 0 else 0.0
        self._last: dict[str, float] = {}
        self._held: dict[str, list[Any]] = {}
        self._lock = threading.Lock()

    def offer(self, address: str, args: list[Any]) -> list[tuple[str, list[Any]]]:
        """The messages to send now: this one if its address is free, else nothing (held)."""
        with self._lock:
            self._held[address] = args
            return self._due(time.monotonic(), only=address)

    def flush(self) -> list[tuple[str, list[Any]]]:
        """Held messages whose address may send again."""
        with self._lock:
            return self._due(time.monotonic())

    def _due(self, now: float, only: str | None = None) -> list[tuple[str, list[Any]]]:
        out = []
        for address in [only] if only else list(self._held):
            if address in self._held and now - self._last.get(address, -1e9) >= self.period:
                out.append((address, self._held.pop(address)))
                self._last[address] = now
        return out


class StatsPublisher:
    """Sends the stats of a running graph ``rate`` times a second on its own thread."""

    def __init__(self, stats_of: Any, sender: OscSender, rate: float):
        self.stats_of, self.sender, self.period = stats_of, sender, 1.0 / rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="flowml-osc-stats", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.publish()
            except Exception as exc:  # stats must never take anything down
                log.debug("OSC stats: %s", exc)

    def publish(self) -> None:
        s = self.stats_of()
        p50 = s.latency_ms(50)
        self.sender.send("/flowml/stats/fps", [float(s.recent_fps())])
        self.sender.send("/flowml/stats/latency_ms", [float(p50 or 0.0)])
        self.sender.send("/flowml/stats/frames", [int(s.completed)])
        self.sender.send("/flowml/stats/dropped", [int(s.source_drops)])
        for nid, n in list(s.nodes.items()):
            if n.calls:
                self.sender.send(f"/flowml/stats/node/{nid}/mean_us", [1e6 * n.total_s / n.calls])
