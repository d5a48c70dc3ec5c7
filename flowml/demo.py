"""``flowml demo``: the demo graph, ready to run from anywhere, with no download.

The graph (the packaged example ``demo``) and its model (``flowml.models.toon``, built on
the spot in a few seconds) go into a folder: the one given, or flowml's folder in the user's
cache (``user_cache_dir()/demo``). The run writes ``out/demo.mp4`` and ``out/demo.png`` there.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

from . import example_graphs

DEMO = "demo"
# node type -> the extra of flowml that installs the plugin providing it
NEEDS = {"capture.pattern": "std", "image.composite": "std", "output.image": "std",
         "torch.model": "torch", "output.video": "video"}


def user_cache_dir() -> Path:
    """flowml's folder in the user's cache: ``$FLOWML_CACHE`` if set; else
    ``%LOCALAPPDATA%\\flowml\\Cache`` on Windows, ``~/Library/Caches/flowml`` on macOS,
    ``$XDG_CACHE_HOME/flowml`` (``~/.cache/flowml``) elsewhere."""
    if os.environ.get("FLOWML_CACHE"):
        return Path(os.environ["FLOWML_CACHE"])
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "flowml" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "flowml"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "flowml"


def missing_plugins(registry) -> list[str]:
    """The extras (``flowml[...]``) whose node types the demo needs and this install lacks."""
    return sorted({extra for name, extra in NEEDS.items() if registry.get(name) is None})


def prepare(folder: Path | None, say: Callable[[str], None]) -> Path:
    """Write the demo graph into ``folder`` (default: the user cache), build its model there if
    it is missing; return the graph's path."""
    folder = (Path(folder) if folder is not None else user_cache_dir() / DEMO).absolute()
    copied = example_graphs.copy(DEMO, folder, say=say)
    return copied.graph
