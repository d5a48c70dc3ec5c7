"""Outputs written under a temporary name and moved into place only when the file succeeded.

Works for any param marked ``file="output"`` (``flowml.parammeta``), whatever the node does
with it, so no node type is special-cased: the value's last part is kept and its folder is
swapped for a staging folder beside the final one::

    out/clip.mp4                ->  out/.clip.mp4.flowml-part-3f2a9c1d/clip.mp4
    out/clip  (a folder)        ->  out/.clip.flowml-part-3f2a9c1d/clip
    out/clip_{index:05d}.png    ->  out/.clip_{index:05d}.png.flowml-part-.../clip_{index:05d}.png

``commit()`` moves what the node wrote there into the final folder with ``os.replace`` (a
rename on the same file system: a reader sees the old file or the whole new one, never a
part; a folder is merged entry by entry), then removes the staging folder. ``discard()``
removes it with whatever a failed or stopped run left. A run killed hard leaves only a hidden
``.NAME.flowml-part-*`` folder; the next stage of the same output removes such leftovers.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

__all__ = ["Staging"]

PART = ".flowml-part-"


class Staging:
    """The staged outputs of one run of one input."""

    def __init__(self) -> None:
        self._token = uuid.uuid4().hex[:8]
        self._dirs: list[tuple[Path, Path]] = []  # (staging folder, final folder)
        self.finals: list[str] = []

    def stage(self, final: str) -> str:
        """The value to give the node instead of the absolute path ``final``."""
        target = Path(final)
        parent, name = target.parent, target.name
        parent.mkdir(parents=True, exist_ok=True)
        for old in parent.glob(f".{glob_escape(name)}{PART}*"):  # left by a killed run
            shutil.rmtree(old, ignore_errors=True)
        folder = parent / f".{name}{PART}{self._token}"
        folder.mkdir()
        self._dirs.append((folder, parent))
        self.finals.append(str(target))
        return str(folder / name)

    def commit(self) -> list[str]:
        """Move every staged entry into its final folder; the final paths that exist now."""
        for folder, parent in self._dirs:
            for entry in sorted(folder.iterdir()):
                _move(entry, parent / entry.name)
            folder.rmdir()
        self._dirs.clear()
        return [f for f in self.finals if os.path.exists(f)]

    def discard(self) -> None:
        for folder, _ in self._dirs:
            shutil.rmtree(folder, ignore_errors=True)
        self._dirs.clear()


def _move(src: Path, dst: Path) -> None:
    if src.is_dir() and not src.is_symlink() and dst.is_dir():
        for entry in sorted(src.iterdir()):  # merge into a folder an earlier run made
            _move(entry, dst / entry.name)
        src.rmdir()
    else:
        os.replace(src, dst)


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)
