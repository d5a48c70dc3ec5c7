"""File operations that behave the same on Linux, macOS and Windows (for flowml and plugins).

``replace_file``: ``os.replace`` (atomic: readers see the old file or the new one, never half
of one). On Windows it fails with PermissionError while another process has the destination
open without delete sharing (an image viewer, TouchDesigner's Movie File In TOP reading a
still, an editor holding a preset file), so there it is tried again for a bounded time.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

__all__ = ["replace_file", "from_graph"]


def from_graph(path: str | os.PathLike, graph_dir: Path) -> Path:
    """A path as a graph file names it (``~`` expanded), relative ones taken from the graph
    file's folder ``graph_dir``; for validation-time checks of a node's file params (a running
    node has ``NodeContext.resolve``)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else Path(graph_dir) / p


def replace_file(src: str | os.PathLike, dst: str | os.PathLike, *, timeout_s: float = 0.25) -> None:
    """Move ``src`` over ``dst`` atomically. On Windows a destination held open by another
    process is retried until ``timeout_s``; then the PermissionError is raised, naming ``dst``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            os.replace(src, dst)
            return
        except PermissionError as exc:
            if sys.platform != "win32" or time.monotonic() >= deadline:
                raise PermissionError(exc.errno, f"cannot replace {Path(dst)} (is it open in another "
                                      f"program?): {exc.strerror}", str(dst)) from exc
            time.sleep(0.01)
