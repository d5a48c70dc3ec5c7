"""The example graphs that ship in flowml's wheel (package data ``flowml.examples``, from the
repository's graphs/ folder): list them, copy one into a folder of the user's, build the
models it uses there.

In the repository a graph sits in graphs/ and names the files beside it as ``../models/X``
and ``../out/X``; a copy sits in the chosen folder itself, so ``../`` is dropped from its
paths: ``DIR/NAME.yaml`` reads ``DIR/models/X`` and writes ``DIR/out/X``. Folders next to
the graphs (``kernels/``) are copied with a graph that names them.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Callable

PACKAGE = "flowml.examples"
_UP = re.compile(r"(?<![\w./])\.\./")              # "../models/x" -> "models/x"
_MODEL = re.compile(r"(?<![\w./])models/([\w.+-]+)")  # model files a copied graph names


class ExampleError(Exception):
    """A name that is not a packaged example, or a folder that cannot be written."""


def _root() -> Traversable:
    return resources.files(PACKAGE)


def names() -> list[str]:
    """The packaged example graphs, sorted: ``["demo", "matting", ...]``."""
    return sorted(p.name[:-5] for p in _root().iterdir() if p.name.endswith(".yaml"))


def text(name: str) -> str:
    """The graph file of the example ``name`` as shipped (paths relative to graphs/)."""
    entry = _root() / f"{name}.yaml"
    if not entry.is_file():
        import difflib

        near = difflib.get_close_matches(name, names(), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ExampleError(f"no example graph {name!r}{hint}; `flowml examples` lists them: "
                           f"{', '.join(names())}")
    return entry.read_text(encoding="utf-8")


def summary(name: str) -> str:
    """The first sentence of the graph's opening comment: what it shows."""
    words: list[str] = []
    for line in text(name).splitlines():
        if not line.startswith("#") or not line.strip("# "):
            break
        words.extend(line.lstrip("#").split())
    sentence = " ".join(words)
    end = re.search(r"\.(\s|$)", sentence)
    return (sentence[:end.start()] if end else sentence).rstrip(":;,")


def models_used(graph_text: str) -> list[str]:
    """Model file names a (copied) graph reads from ``models/``, in order of appearance."""
    seen: dict[str, None] = {}
    for m in _MODEL.finditer(_uncommented(graph_text)):
        seen.setdefault(m.group(1).rstrip("."), None)
    return list(seen)


def _uncommented(graph_text: str) -> str:
    """The graph without its comments (they name build scripts and alternatives, not what the
    graph reads)."""
    return "\n".join(line.split(" #")[0] for line in graph_text.splitlines()
                     if not line.lstrip().startswith("#"))


def models_of(name: str) -> list[str]:
    """Model file names the example ``name`` reads (from ``models/`` beside its copy)."""
    return models_used(_UP.sub("", text(name)))


@dataclass
class Copied:
    """What ``copy`` wrote: the graph, side folders, models built, models it cannot build."""

    graph: Path
    folders: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    built: list[Path] = field(default_factory=list)
    present: list[Path] = field(default_factory=list)
    not_buildable: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def copy(name: str, dest: Path, build_models: bool = True,
         say: Callable[[str], None] = lambda line: None, registry: Any = None) -> Copied:
    """Write the example ``name`` as ``dest/NAME.yaml`` (paths relative to ``dest``), copy the
    folders it names, and (``build_models``) build the models it reads into ``dest/models``
    unless they are there already: flowml's own and those the plugins of ``registry`` (default:
    the installed ones) register."""
    from .models import build_model, builders
    from .plugins import load_registry

    graph_text = _UP.sub("", text(name))
    dest = Path(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        graph = dest / f"{name}.yaml"
        graph.write_text(graph_text, encoding="utf-8")
    except OSError as exc:
        raise ExampleError(f"cannot write the example into {dest}: {exc}") from exc
    done = Copied(graph)
    for entry in _root().iterdir():  # folders and files beside the graphs that it names
        if entry.name.startswith("__") or entry.name.endswith(".yaml"):
            continue
        after = "/" if entry.is_dir() else r"(?![\w.-])"
        named = r"(?<![\w./-])" + re.escape(entry.name) + after
        if not re.search(named, _uncommented(graph_text)):
            continue
        if entry.is_dir():
            done.folders.append(_copy_tree(entry, dest / entry.name))
        else:
            with entry.open("rb") as fin, open(dest / entry.name, "wb") as fout:
                shutil.copyfileobj(fin, fout)
            done.files.append(dest / entry.name)
    models = models_used(graph_text)
    if models and registry is None:
        registry = load_registry()
    known = builders(registry)
    for model in models:
        path = dest / "models" / model
        if model not in known:
            done.not_buildable.append(model)
        elif path.exists():
            done.present.append(path)
        elif not build_models:
            done.skipped.append(model)
        else:
            say(f"building {path}")
            done.built.extend(build_model(model, dest / "models", registry))
    return done


def _copy_tree(src: Traversable, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for entry in src.iterdir():
        if entry.name == "__pycache__":
            continue
        if entry.is_dir():
            _copy_tree(entry, dest / entry.name)
        else:
            with entry.open("rb") as fin, open(dest / entry.name, "wb") as fout:
                shutil.copyfileobj(fin, fout)
    return dest
