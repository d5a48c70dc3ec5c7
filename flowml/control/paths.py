"""Output paths confined to the folder the graph file set for them.

A param marked ``file="output"`` names a file (or a file name pattern, or a folder) a node
writes. Its value in the graph file is trusted: whoever wrote the graph file chose where the
node writes. A value that comes live (OSC, OSCQuery, an expression, a preset recall) must
resolve inside the folder of the graph file's value (``recordings/take.mp4`` in the graph file:
``recordings/``; a bare name or no value: the graph file's folder); anything else is refused,
so a control surface cannot make a node write outside what the graph allows.

Paths are resolved as the node resolves them (relative to the graph file's folder), with
symlinks followed, and a ``{index:05d}``-style pattern is checked as written and as formatted.
Preset files are not param values: they are always ``<graph>.presets.yaml`` next to the graph.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["PathRefused", "allowed_folder", "check_output_path", "inside"]

MAX_PATH = 4096


class PathRefused(ValueError):
    """A live output path outside the folder the graph file set; the message says which."""


def _resolve(base: Path, value: str) -> Path:
    p = Path(os.path.expanduser(value))
    return Path(os.path.realpath(p if p.is_absolute() else base / p))


def allowed_folder(graph_value: Any, graph_dir: Path) -> Path:
    """The folder live values of an output param must stay in: the folder of the value the graph
    file gave (resolved against ``graph_dir``), or ``graph_dir`` itself when it gave none."""
    base = Path(os.path.realpath(graph_dir))
    if isinstance(graph_value, (str, os.PathLike)) and str(graph_value).strip():
        return _resolve(base, _formatted(str(graph_value))[0]).parent
    return base


def inside(path: Path, folder: Path) -> bool:
    """Is ``path`` ``folder`` or below it (both already resolved)?"""
    return path == folder or folder in path.parents


def _formatted(text: str) -> list[str]:
    """``text`` as written and, if it is a ``{index}`` pattern, as formatted for two indices."""
    out = [text]
    for index in (0, 123456789):
        try:
            name = text.format(index=index)
        except (KeyError, IndexError, ValueError, AttributeError, TypeError):
            break
        if name not in out:
            out.append(name)
    return out


def check_output_path(value: Any, graph_value: Any, graph_dir: Path, *, where: str) -> None:
    """Raise ``PathRefused`` unless the live ``value`` of an output param stays inside the folder
    the graph file's ``graph_value`` set. ``where`` names the node and param for the message.
    ``None`` or the graph file's own value is always allowed."""
    if value is None or value == graph_value:
        return
    if not isinstance(value, (str, os.PathLike)):
        return  # not a path: the field's own validation decides
    text = str(value)
    if len(text) > MAX_PATH or "\x00" in text:
        raise PathRefused(f"{where}: not a usable path (too long or has a NUL byte)")
    folder = allowed_folder(graph_value, graph_dir)
    base = Path(os.path.realpath(graph_dir))
    for candidate in _formatted(text):
        target = _resolve(base, candidate)
        if not inside(target, folder):
            raise PathRefused(
                f"{where}: {text!r} is outside {folder}, the folder the graph file set for it; "
                "a live change may only write there (name another folder in the graph file)")
