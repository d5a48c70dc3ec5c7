"""Reporting bad control input: logged once per address, answered on OSC, rate-limited.

A bad message never raises out of the control layer; it ends here. The first problem at an
address is logged as a warning with its reason; later ones at that address are logged at debug
level only, so a controller stuck on a bad value cannot flood the log. At most
``max_warnings`` such warnings are logged per ``warning_window`` seconds (then one line says
how many were kept back), so a fuzzer sending to thousands of addresses cannot either. Each problem is also
answered as ``/flowml/error <address> <reason>`` through ``reply``, at most
``per_address_rate`` times a second per address and ``total_rate`` times a second in all.
Addresses and reasons are shortened to ``MAX_ADDRESS`` / ``MAX_REASON`` characters, and at
most ``max_addresses`` addresses are remembered, so hostile input cannot grow memory or the log.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

__all__ = ["Reporter", "ERROR_ADDRESS", "shorten"]

ERROR_ADDRESS = "/flowml/error"
MAX_ADDRESS = 120  # longer addresses are reported (and counted) by their first characters
MAX_REASON = 400
log = logging.getLogger("flowml.control")


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit - 30]}... ({len(text)} characters)"

Reply = Callable[[str, list[Any], Any], None]  # (address, args, target or None)


class Reporter:
    """Logs and answers problems with control input. Thread-safe."""

    def __init__(self, reply: Reply | None = None, *, per_address_rate: float = 10.0,
                 total_rate: float = 200.0, max_addresses: int = 1000,
                 max_warnings: int = 20, warning_window: float = 10.0):
        self.reply = reply
        self.max_warnings, self.warning_window = max_warnings, warning_window
        self.unlogged = 0  # first problems at an address not logged as warnings (over the cap)
        self._warn_window = (-1e9, 0, 0)  # (start, warnings in it, kept back in it)
        self.per_address_rate, self.total_rate = per_address_rate, total_rate
        self.max_addresses = max_addresses
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._sent: dict[str, tuple[float, float]] = {}  # address -> (window start, sent in it)
        self._total = (0.0, 0.0)
        self._overflowed = False

    def error(self, address: str, reason: str, target: Any = None) -> None:
        """A problem with input at ``address``; ``target`` is who to answer (None: the
        default reply address). Long addresses and reasons are shortened."""
        address, reason = shorten(address, MAX_ADDRESS), shorten(reason, MAX_REASON)
        with self._lock:
            first = address not in self.counts
            if first and len(self.counts) >= self.max_addresses:
                if not self._overflowed:
                    self._overflowed = True
                    log.warning("OSC: more than %d different bad addresses; not logging new ones",
                                self.max_addresses)
                first = False
            else:
                self.counts[address] = self.counts.get(address, 0) + 1
            send = self._may_send(address)
            summary = self._may_warn() if first else None
            if first and summary is None:
                first = False
        if summary:
            log.warning("OSC: %d more bad messages at new addresses were not logged in the last "
                        "%g s (they were answered on /flowml/error; debug logging shows them)",
                        summary, self.warning_window)
        if first:
            log.warning("OSC %s: %s", address, reason)
        else:
            log.debug("OSC %s: %s", address, reason)
        if send and self.reply is not None:
            try:
                self.reply(ERROR_ADDRESS, [address, reason], target)
            except Exception as exc:  # the answer must not fail the handling
                log.debug("cannot send %s: %s", ERROR_ADDRESS, exc)

    def _may_warn(self) -> int | None:
        """None: over this window's cap of warnings. Else 0, or how many were kept back in
        the last window (to be said once). Called under the lock."""
        now = time.monotonic()
        start, n, kept = self._warn_window
        said = 0
        if now - start >= self.warning_window:
            start, n, said, kept = now, 0, kept, 0
        if n >= self.max_warnings:
            self._warn_window = (start, n, kept + 1)
            self.unlogged += 1
            return None
        self._warn_window = (start, n + 1 + (said > 0), kept)
        return said

    def _may_send(self, address: str) -> bool:
        now = time.monotonic()
        start, n = self._total
        if now - start >= 1.0:
            start, n = now, 0.0
        if n >= self.total_rate:
            self._total = (start, n)
            return False
        a_start, a_n = self._sent.get(address, (now, 0.0))
        if now - a_start >= 1.0:
            a_start, a_n = now, 0.0
        if a_n >= self.per_address_rate:
            return False
        if len(self._sent) > self.max_addresses:
            self._sent.clear()
        self._sent[address] = (a_start, a_n + 1)
        self._total = (start, n + 1)
        return True
