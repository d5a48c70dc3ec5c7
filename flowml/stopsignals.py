"""Ctrl-C, SIGTERM (and Ctrl-Break on Windows) for the commands that run graphs: the first one
asks for a clean stop, a second one aborts (``KeyboardInterrupt``)."""

from __future__ import annotations

import signal
import sys
from typing import Callable


def install_stop_signals(stop: Callable[[], None], stopping: str) -> None:
    """Call ``stop()`` on the first signal, saying ``NAME: {stopping} (again to abort)`` on
    stderr; raise ``KeyboardInterrupt`` on the second."""
    count = 0

    def handler(signum, frame):
        nonlocal count
        count += 1
        if count > 1:
            raise KeyboardInterrupt
        print(f"\n{signal.Signals(signum).name}: {stopping} (again to abort)", file=sys.stderr)
        stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    if hasattr(signal, "SIGBREAK"):  # Windows: Ctrl-Break, and what process managers send there
        signal.signal(signal.SIGBREAK, handler)
