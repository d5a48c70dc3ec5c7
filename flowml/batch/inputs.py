"""The inputs of a batch run and the ``--set node.param=TEMPLATE`` values made from them.

``expand_inputs(["videos/**/*.mp4", "extra.mp4"])``: a pattern with glob characters is
expanded (``**`` matches folders recursively, sorted, hidden files left out); a plain path is
kept even if it does not exist, so that a missing file is reported per file, not as a usage
error. A pattern that matches nothing is a usage error.

A template is a ``str.format`` string over the fields of one input::

    {input}   the input's absolute path            /data/videos/a/clip.mp4
    {stem}    its name without the last suffix     clip
    {name}    its name                             clip.mp4
    {parent}  the name of its folder               a
    {index}   its place in the (sorted) inputs     0, 1, ... ({index:04d} works too)

``{{`` and ``}}`` are literal braces (a node's own pattern: ``'out/{stem}_{{index:05d}}.png'``
gives ``out/clip_{index:05d}.png``). No torch import here.
"""

from __future__ import annotations

import glob
import os
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

__all__ = ["Binding", "BatchUsageError", "Item", "expand_inputs", "fields_of", "is_url",
           "parse_set"]

FIELDS = ("input", "stem", "name", "parent", "index")
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_MAGIC = re.compile(r"[*?[]")


class BatchUsageError(ValueError):
    """A bad ``--inputs`` or ``--set``; the message says what to write instead."""


def is_url(text: str) -> bool:
    return bool(_URL.match(text))


def expand_inputs(patterns: Iterable[str], cwd: Path | None = None) -> list[str]:
    """Every input, once, as an absolute path (URLs as given), in the order the patterns
    give them (each pattern's matches sorted)."""
    base = Path(cwd or os.getcwd())
    seen: dict[str, None] = {}
    for pattern in patterns:
        if is_url(pattern):
            seen.setdefault(pattern, None)
            continue
        full = os.path.expanduser(pattern)
        full = full if os.path.isabs(full) else str(base / full)
        if not _MAGIC.search(pattern):
            seen.setdefault(os.path.normpath(full), None)
            continue
        matches = sorted(p for p in glob.glob(full, recursive=True) if os.path.isfile(p))
        if not matches:
            raise BatchUsageError(f"--inputs {pattern!r} matches no file (relative patterns are "
                                  f"read from {base}; quote the pattern so the shell leaves ** alone)")
        for m in matches:
            seen.setdefault(os.path.normpath(m), None)
    if not seen:
        raise BatchUsageError("no inputs: give --inputs 'videos/**/*.mp4' (a glob, a path or a URL)")
    return list(seen)


def fields_of(input_: str, index: int) -> dict[str, Any]:
    """The template fields of one input (see the module docstring)."""
    if is_url(input_):
        tail = input_.rstrip("/").rsplit("/", 1)[-1] or "stream"
        p = Path(tail)
        return {"input": input_, "stem": p.stem, "name": p.name, "parent": "", "index": index}
    p = Path(input_)
    return {"input": str(p), "stem": p.stem, "name": p.name, "parent": p.parent.name, "index": index}


@dataclass(frozen=True)
class Binding:
    """``--set node.param=template``: one param of one node, made per input."""

    node: str
    param: str
    template: str

    @property
    def per_input(self) -> bool:
        """Does the value change from input to input (it names a field)?"""
        return any(name for _, name, _, _ in string.Formatter().parse(self.template) if name)

    def render(self, fields: dict[str, Any]) -> str:
        try:
            return self.template.format_map(fields)
        except KeyError as exc:
            raise BatchUsageError(f"--set {self.node}.{self.param}={self.template!r}: unknown field "
                                  f"{{{exc.args[0]}}}; fields are {', '.join('{' + f + '}' for f in FIELDS)}"
                                  " (write {{ and }} for literal braces)") from None
        except (ValueError, IndexError) as exc:
            raise BatchUsageError(f"--set {self.node}.{self.param}={self.template!r}: {exc} "
                                  "(write {{ and }} for literal braces)") from None


def parse_set(text: str) -> Binding:
    """``node.param=value`` -> a Binding (its template checked against the fields)."""
    key, eq, value = text.partition("=")
    node, dot, param = key.strip().partition(".")
    if not eq or not dot or not node or not param:
        raise BatchUsageError(f"--set {text!r}: write node.param=value, e.g. --set src.path={{input}}")
    b = Binding(node, param, value)
    b.render(fields_of("/x/y/example.mp4", 0))  # a bad field or format fails now, not per file
    return b


@dataclass(frozen=True)
class Item:
    """One input of the batch and the param values made for it (small, JSON-able)."""

    index: int
    input: str
    params: dict[str, dict[str, str]]  # node id -> param -> rendered value

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "input": self.input, "params": self.params}


def make_items(inputs: list[str], bindings: list[Binding]) -> list[Item]:
    items = []
    for i, inp in enumerate(inputs):
        f = fields_of(inp, i)
        params: dict[str, dict[str, str]] = {}
        for b in bindings:
            params.setdefault(b.node, {})[b.param] = b.render(f)
        items.append(Item(i, inp, params))
    return items
