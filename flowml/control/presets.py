"""Presets: named snapshots of every param, kept in a YAML file beside the graph.

For ``show.yaml`` the file is ``show.presets.yaml``. Each preset maps node -> param -> value,
or ``{expr: "..."}`` for a param that follows an expression::

    "3":
      fx: {gain: 1.5, mode: warm}
      wobble: {angle: {expr: "10*sin(t)"}}

The file is plain YAML and may be edited by hand; it is re-read when it changes. Names are
strings (``3`` and ``"3"`` are the same preset). Saving rewrites the file atomically (write a
temporary file, rename it over), keeping the other presets.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import yaml

from ..fsutil import replace_file

__all__ = ["PresetBank", "presets_path", "PresetError"]

HEADER = ("# flowml presets of {graph}: /flowml/preset/save NAME writes one, "
          "/flowml/preset/recall NAME [seconds] applies it.\n"
          "# node -> param -> value, or {{expr: \"...\"}}. Safe to edit by hand.\n")


class PresetError(ValueError):
    """A preset that does not exist, or a presets file that cannot be read or written."""


def presets_path(graph_path: str | os.PathLike[str]) -> Path:
    """``dir/show.yaml`` -> ``dir/show.presets.yaml``."""
    p = Path(graph_path)
    return p.with_name(f"{p.stem}.presets.yaml")


def preset_name(name: Any) -> str:
    """The key a preset is stored under: ``3``, ``3.0`` and ``"3"`` are all ``"3"``."""
    if isinstance(name, float) and name.is_integer():
        name = int(name)
    text = str(name).strip()
    if not text:
        raise PresetError("a preset needs a name or number, e.g. /flowml/preset/save 1")
    return text


class PresetBank:
    """The presets file of one graph. Thread-safe."""

    def __init__(self, path: Path, graph_name: str = ""):
        self.path = path
        self.graph_name = graph_name or path.name.replace(".presets.yaml", ".yaml")
        self._lock = threading.Lock()
        self._cache: tuple[tuple[int, int], dict[str, Any]] | None = None

    def names(self) -> list[str]:
        return list(self._read())

    def get(self, name: Any) -> dict[str, dict[str, Any]]:
        key = preset_name(name)
        presets = self._read()
        if key not in presets:
            have = ", ".join(presets) if presets else "none yet"
            raise PresetError(f"no preset {key!r} in {self.path.name} (presets: {have}); "
                              f"save one with /flowml/preset/save {key}")
        snap = presets[key]
        if not isinstance(snap, dict):
            raise PresetError(f"preset {key!r} in {self.path.name} is not a mapping of nodes")
        return snap

    def save(self, name: Any, snapshot: dict[str, dict[str, Any]]) -> str:
        key = preset_name(name)
        with self._lock:
            presets = dict(self._read_locked())
            presets[key] = snapshot
            text = HEADER.format(graph=self.graph_name) + yaml.safe_dump(
                presets, sort_keys=False, default_flow_style=None, allow_unicode=True, width=100)
            self._write(text)
            self._cache = None
        return key

    def _read(self) -> dict[str, Any]:
        with self._lock:
            return self._read_locked()

    def _read_locked(self) -> dict[str, Any]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        stamp = (st.st_mtime_ns, st.st_size)
        if self._cache is not None and self._cache[0] == stamp:
            return self._cache[1]
        try:
            data = yaml.safe_load(self.path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise PresetError(f"cannot read {self.path}: {exc}") from None
        if not isinstance(data, dict):
            raise PresetError(f"{self.path} must map preset names to snapshots")
        presets = {preset_name(k): v for k, v in data.items()}
        self._cache = (stamp, presets)
        return presets

    def _write(self, text: str) -> None:
        try:
            fd, tmp = tempfile.mkstemp(prefix=".presets-", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            replace_file(tmp, self.path)
        except OSError as exc:
            raise PresetError(f"cannot write {self.path}: {exc}") from None
