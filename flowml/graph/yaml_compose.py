"""YAML text -> a tree of ``yaml.nodes``, bounded by construction.

PyYAML's own composer is recursive (a deeply nested file raises ``RecursionError``) and its
reader's errors carry no line. This composer reads the parser's events in a loop (libyaml's
parser when PyYAML has it, else PyYAML's), so that

- nesting deeper than ``MAX_DEPTH`` is an error at the collection that goes too deep;
- a file longer than ``MAX_CHARS`` or with a character YAML refuses (NUL, form feed, other
  control characters, lone surrogates) is an error at that character's line and column;
- an alias is the anchored node itself, never a copy (``_Builder`` caps what aliases expand to).

Positions are ``Positions.at(index)``: lines end at ``\\n``, ``\\r\\n`` or ``\\r`` only, as
editors count them (YAML 1.1 also breaks lines at U+0085, U+2028 and U+2029; editors do not).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.events import (AliasEvent, DocumentStartEvent, MappingEndEvent, MappingStartEvent,
                         ScalarEvent, SequenceEndEvent, SequenceStartEvent)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = ["MAX_CHARS", "MAX_DEPTH", "Positions", "ComposeError", "compose"]

MAX_CHARS = 16 * 1024 * 1024
"""The longest graph file read (characters): a 10,000-node graph is about 1 MB."""
MAX_DEPTH = 64
"""The deepest nesting of lists and mappings: a graph file needs about 6."""

_EventParser: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml where available
_BREAK = re.compile(r"\r\n|\r|\n")
# what YAML's reader refuses (PyYAML's Reader.NON_PRINTABLE)
_NON_PRINTABLE = re.compile("[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\U00010000-\U0010ffff]")
_NAMES = {0x00: "a NUL byte (U+0000): is this a binary file?", 0x0C: "a form feed (U+000C)",
          0x1B: "an escape character (U+001B)", 0x7F: "a delete character (U+007F)"}


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    col: int   # 1-based


class Positions:
    """Character index -> line and column as an editor shows them."""

    def __init__(self, text: str):
        self.starts = [0] + [m.end() for m in _BREAK.finditer(text)]

    def at(self, index: int) -> Position:
        line = bisect.bisect_right(self.starts, index) - 1
        return Position(line + 1, index - self.starts[line] + 1)


class ComposeError(Exception):
    """A problem that stops reading the file, at a character index."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index
        self.message = message


def check_characters(text: str) -> None:
    """Raise ``ComposeError`` for a file too long or holding a character YAML refuses."""
    if len(text) > MAX_CHARS:
        raise ComposeError(0, f"the graph file is {len(text):,} characters long; the limit is "
                              f"{MAX_CHARS:,} (is this a graph file?)")
    bad = _NON_PRINTABLE.search(text)
    if bad is not None:
        code = ord(bad.group())
        what = _NAMES.get(code) or (f"a lone surrogate (U+{code:04X})" if 0xD800 <= code <= 0xDFFF
                                    else f"a control character (U+{code:04X})")
        raise ComposeError(bad.start(), f"{what} is not allowed in a YAML file; remove it")


def compose(text: str, resolver: Any) -> tuple[Node | None, int]:
    """The root node of the one document in ``text`` and the number of nodes written in it.

    ``resolver`` gives the tags of untagged scalars (a PyYAML ``Resolver``). Raises
    ``ComposeError`` for the limits above, ``yaml.MarkedYAMLError`` for syntax errors (with
    PyYAML's own wording, which says more than libyaml's)."""
    check_characters(text)
    try:
        return _compose(text, resolver, _EventParser)
    except yaml.MarkedYAMLError:
        if _EventParser is yaml.SafeLoader:
            raise
        return _compose(text, resolver, yaml.SafeLoader)  # raises PyYAML's error


def _compose(text: str, resolver: Any, parser: Any) -> tuple[Node | None, int]:
    anchors: dict[str, Node] = {}
    stack: list[list[Any]] = []  # [collection node, pending mapping key or None]
    root: Node | None = None
    documents = count = 0
    for event in yaml.parse(text, Loader=parser):
        if isinstance(event, DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise ComposeError(event.start_mark.index, "invalid YAML: expected a single document in the stream, but found another "
                                   "document; a graph file holds one YAML document; remove the second '---'")
            continue
        if isinstance(event, (SequenceEndEvent, MappingEndEvent)):
            node = stack.pop()[0]
            node.end_mark = event.end_mark
            if not stack:
                root = node
            continue
        node = _node(event, resolver, anchors)
        if node is None:
            continue
        count += 1
        if isinstance(event, (SequenceStartEvent, MappingStartEvent)) and not isinstance(event, AliasEvent):
            _add(stack, node)
            if len(stack) >= MAX_DEPTH:
                raise ComposeError(event.start_mark.index, f"lists and mappings are nested more than "
                                   f"{MAX_DEPTH} deep here; a graph file needs far fewer levels")
            stack.append([node, None])
        elif stack:
            _add(stack, node)
        else:
            root = node
    return root, count


def _node(event: Any, resolver: Any, anchors: dict[str, Node]) -> Node | None:
    """The node an event starts (None for stream and document events)."""
    if isinstance(event, AliasEvent):
        if event.anchor not in anchors:
            raise yaml.composer.ComposerError(
                None, None, f"found undefined alias {event.anchor!r}", event.start_mark)
        return anchors[event.anchor]
    if isinstance(event, ScalarEvent):
        tag = event.tag
        if tag is None or tag == "!":
            tag = resolver.resolve(ScalarNode, event.value, event.implicit)
        node: Node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
    elif isinstance(event, SequenceStartEvent):
        tag = event.tag if event.tag not in (None, "!") else resolver.resolve(SequenceNode, None, event.implicit)
        node = SequenceNode(tag, [], event.start_mark, None, flow_style=event.flow_style)
    elif isinstance(event, MappingStartEvent):
        tag = event.tag if event.tag not in (None, "!") else resolver.resolve(MappingNode, None, event.implicit)
        node = MappingNode(tag, [], event.start_mark, None, flow_style=event.flow_style)
    else:
        return None
    if event.anchor is not None:
        anchors[event.anchor] = node  # a later anchor of the same name wins, as in PyYAML
    return node


def _add(stack: list[list[Any]], node: Node) -> None:
    """Put ``node`` in the collection being composed (as a key or value in a mapping)."""
    if not stack:
        return
    top = stack[-1]
    if isinstance(top[0], SequenceNode):
        top[0].value.append(node)
    elif top[1] is None:
        top[1] = (node,)
    else:
        top[0].value.append((top[1][0], node))
        top[1] = None
