"""YAML with positions: the data of a graph file, plus where each key and value is written.

Positions are addressed by a *path*, the keys (and list indexes) leading to a value, e.g.
``("nodes", "align", "params", "every")``. Lines and columns are 1-based.

The dialect is YAML 1.1 as PyYAML reads it, with two surprises removed: only ``true``/``false``
are booleans (``on``, ``off``, ``yes``, ``no`` stay strings, so a param ``mode: off`` is the
string ``"off"``) and dates stay strings. Mapping keys are always strings (``1:`` is ``"1"``).
Duplicate keys are errors; anchors, aliases and ``<<`` merge keys work.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import GraphError, GraphErrors
from .yaml_compose import ComposeError, Positions, compose

__all__ = ["YamlPath", "Mark", "SourceMap", "YamlDocument", "load_yaml", "MAX_ALIAS_VALUES"]

YamlPath = tuple[str | int, ...]

_BOOL = "tag:yaml.org,2002:bool"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2-like booleans and no implicit dates."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _TIMESTAMP)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))


@dataclass(frozen=True, order=True)
class Mark:
    """A position in the file, 1-based."""

    line: int
    col: int


@dataclass
class SourceMap:
    """Where each key and each value of a document is written, by path. Positions are kept
    as character indexes and turned into lines and columns only when asked for."""

    keys: dict[YamlPath, int] = field(default_factory=dict)
    values: dict[YamlPath, int] = field(default_factory=dict)
    positions: Positions = field(default_factory=lambda: Positions(""))

    def key(self, path: YamlPath) -> Mark:
        """Where the key of ``path`` is written, else that of its nearest written ancestor."""
        index = self._nearest(self.keys, path)
        return self.value(()) if index is None else self._mark(index)

    def value(self, path: YamlPath) -> Mark:
        """Where the value at ``path`` is written, else that of its nearest written ancestor."""
        index = self._nearest(self.values, path)
        return Mark(1, 1) if index is None else self._mark(index)

    def _mark(self, index: int) -> Mark:
        at = self.positions.at(index)
        return Mark(at.line, at.col)

    @staticmethod
    def _nearest(marks: dict[YamlPath, int], path: YamlPath) -> int | None:
        for end in range(len(path), -1, -1):
            if path[:end] in marks:
                return marks[path[:end]]
        return None


@dataclass
class YamlDocument:
    """A parsed file: plain Python data, its positions, and the non-fatal problems found."""

    data: Any
    marks: SourceMap
    errors: list[GraphError] = field(default_factory=list)


MAX_ALIAS_VALUES = 20_000
"""How many values aliases may add to a file beyond those written in it: this many, or four
times the values written if that is more (an alias bomb of a few hundred bytes would otherwise
expand to billions). Loading stays linear in the file's size."""


def load_yaml(text: str, path: str, *, key_names: Mapping[YamlPath, str] | None = None
              ) -> YamlDocument:
    """Parse one YAML document. A syntax error, a character YAML refuses, nesting deeper than
    ``MAX_DEPTH`` or aliases that expand past ``MAX_ALIAS_VALUES`` raise ``GraphErrors`` at
    their line and column; duplicate keys and unsupported tags are collected in
    ``YamlDocument.errors`` (parsing goes on). Time and memory are linear in ``text``.

    ``key_names`` says what the keys of the mapping at a path are called in messages,
    e.g. ``{("nodes",): "node id"}`` gives "duplicate node id 'x'" (default: "key").
    """
    positions = Positions(text)
    loader = _Loader("")  # resolves and constructs scalars; events come from ``compose``
    try:
        root, written = compose(text, loader)
        budget = written + max(MAX_ALIAS_VALUES, 4 * written)
        builder = _Builder(path, loader, key_names or {}, positions, budget)
        data = builder.build(root, ()) if root is not None else None
    except ComposeError as exc:
        at = positions.at(exc.index)
        raise GraphErrors.single(path, exc.message, at.line, at.col) from None
    except yaml.MarkedYAMLError as exc:
        raise GraphErrors([_syntax_error(path, exc, positions)]) from None
    except yaml.reader.ReaderError as exc:  # a character the parser refuses that we let by
        at = positions.at(max(0, exc.position))
        raise GraphErrors.single(path, f"character U+{exc.character if isinstance(exc.character, int) else ord(exc.character):04X} "
                                 "is not allowed in a YAML file; remove it", at.line, at.col) from None
    except yaml.YAMLError as exc:  # unmarked
        raise GraphErrors.single(path, f"invalid YAML: {exc}", 1, 1) from None
    finally:
        loader.dispose()
    return YamlDocument(data, builder.marks, list(dict.fromkeys(builder.errors)))


class _Builder:
    """Turns a composed YAML node tree into Python data, recording marks and problems."""

    def __init__(self, path: str, loader: _Loader, key_names: Mapping[YamlPath, str],
                 positions: Positions, budget: int):
        self.path = path
        self.loader = loader
        self.key_names = key_names
        self.positions = positions
        self.marks = SourceMap(positions=positions)
        self.errors: list[GraphError] = []
        self._open: set[int] = set()  # collections being built: guards recursive aliases
        self._seen: set[int] = set()  # collections built once: building one again expands an alias
        self._expanding: list[Node] = []  # aliased collections being expanded, outermost first
        self.budget = budget  # values left to build

    def mark(self, node: Node) -> Mark:
        at = self.positions.at(node.start_mark.index)
        return Mark(at.line, at.col)

    def error(self, node: Node, message: str) -> None:
        mark = self.mark(node)
        self.errors.append(GraphError(self.path, mark.line, mark.col, message))

    def build(self, node: Node, path: YamlPath) -> Any:
        self.budget -= 1
        if self.budget < 0:
            anchor = self._expanding[0] if self._expanding else node
            raise ComposeError(anchor.start_mark.index, "aliases expand this file to more values "
                               f"than the limit ({MAX_ALIAS_VALUES:,} beyond those written, or 4 "
                               "times them): the collection anchored here is copied too often; "
                               "write the values out or use fewer nested aliases")
        if path not in self.marks.values:
            self.marks.values[path] = node.start_mark.index
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        if id(node) in self._open:
            self.error(node, "an alias refers to a collection that contains it; "
                             "YAML graphs must not be recursive")
            return None
        again = id(node) in self._seen
        self._seen.add(id(node))
        if again:
            self._expanding.append(node)
        self._open.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                if not again:
                    self._check_tag(node, _SEQ)
                return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
            if not again:
                self._check_tag(node, _MAP)
            return self._mapping(node, path, report=not again)
        finally:
            self._open.discard(id(node))
            if again:
                self._expanding.pop()

    def _check_tag(self, node: Node, expected: str) -> None:
        if node.tag != expected:
            self.error(node, f"unsupported YAML tag {node.tag!r}; remove it")

    def _scalar(self, node: ScalarNode) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError:
            self.error(node, f"unsupported YAML tag {node.tag!r}; remove it")
        except Exception:  # an explicit tag on a value that does not fit it: "!!int abc"
            self.error(node, f"{node.value!r} is not a valid {node.tag.rpartition(':')[2]}")
        return None

    def _mapping(self, node: MappingNode, path: YamlPath, report: bool = True) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, (key_node, value_node) in self._entries(node, path, report=report).items():
            self.marks.keys[path + (key,)] = key_node.start_mark.index
            result[key] = self.build(value_node, path + (key,))
        return result

    def _entries(self, node: MappingNode, path: YamlPath, report: bool) -> dict[str, tuple[Node, Node]]:
        """``{key: (key node, value node)}`` with ``<<`` merges applied: keys written in the
        mapping win over merged ones, and earlier merges over later ones. Problems are
        reported where the mapping is written (``report``), not again where it is merged."""
        entries: dict[str, tuple[Node, Node]] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            key = None if key_node.tag == _MERGE else self._key(key_node, report)
            if key_node.tag == _MERGE:
                merges.append(value_node)
            elif key is not None and key in entries:
                if report:
                    self._duplicate(key_node, entries[key][0], key, path)
            elif key is not None:
                entries[key] = (key_node, value_node)
        for mapping in (m for source in merges for m in self._merge_sources(source, report)):
            if id(mapping) in self._open:
                self.error(mapping, "a '<<' merge refers to a mapping that contains it")
                continue
            self._open.add(id(mapping))
            for key, entry in self._entries(mapping, path, report=False).items():
                entries.setdefault(key, entry)
            self._open.discard(id(mapping))
        return entries

    def _duplicate(self, again: Node, first: Node, key: str, path: YamlPath) -> None:
        at, first_at = self.mark(again), self.mark(first)
        where = f"line {first_at.line}" + (f", column {first_at.col}" if first_at.line == at.line else "")
        noun = self.key_names.get(path, "key")
        self.error(again, f"duplicate {noun} {key!r} (first at {where})")

    def _key(self, node: Node, report: bool = True) -> str | None:
        if isinstance(node, ScalarNode):
            return str(node.value)
        if report:
            self.error(node, "a mapping key must be a plain name, not a list or a mapping")
        return None

    def _merge_sources(self, source: Node, report: bool) -> Iterator[MappingNode]:
        items = source.value if isinstance(source, SequenceNode) else [source]
        for item in items:
            if isinstance(item, MappingNode):
                yield item
            elif report:
                self.error(item, "a '<<' merge key takes a mapping or a list of mappings")


_HINTS = {
    "'\\t'": "indent with spaces, not tabs",
    "mapping values are not allowed here": "quote a value that contains ': ', or fix the indentation",
    "<block end>": "check the indentation",
    "found another document": "a graph file holds one YAML document; remove the second '---'",
    "found undefined alias": "define the anchor (&name) before using it (*name)",
}


def _syntax_error(path: str, exc: yaml.MarkedYAMLError, positions: Positions) -> GraphError:
    """A readable error for a YAML syntax error, at the problem's position."""
    mark = exc.problem_mark or exc.context_mark
    message = f"invalid YAML: {_what_went_wrong(exc, positions)}"
    hint = next((h for needle, h in _HINTS.items() if needle in message), None)
    if hint:
        message += f"; {hint}"
    at = positions.at(mark.index) if mark is not None else None
    return GraphError(path, at.line if at else 1, at.col if at else 1, message)


def _what_went_wrong(exc: yaml.MarkedYAMLError, positions: Positions) -> str:
    problem, context = exc.problem or "", exc.context or ""
    if problem.startswith("but ") and context:  # "expected X" + "but found Y"
        return f"{context}, {problem}"
    if problem and context and exc.context_mark is not None:
        return f"{problem} ({context} at line {positions.at(exc.context_mark.index).line})"
    return problem or context or "not valid YAML"
