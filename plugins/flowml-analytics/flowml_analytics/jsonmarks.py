"""JSON with positions: the data of a JSON file plus where each key and value is written.

``json.loads`` reads the data (its syntax errors carry line and column); a second pass over
the same text, a small recursive walk that follows JSON's grammar, records the character
index of every key and value by path, in the ``SourceMap`` that flowml's YAML loader fills
for YAML files, so that one validator can point at either. It also finds duplicate keys,
which ``json.loads`` silently resolves to the last one.
"""

from __future__ import annotations

import json
import re
from json.decoder import scanstring
from json.scanner import NUMBER_RE

from flowml.graph.errors import GraphError, GraphErrors
from flowml.graph.yaml_compose import Positions
from flowml.graph.yaml_source import SourceMap, YamlDocument, YamlPath

__all__ = ["load_json"]

_WS = re.compile(r"[ \t\n\r]*")
_LITERALS = ("true", "false", "null", "NaN", "Infinity", "-Infinity")


def load_json(text: str, path: str) -> YamlDocument:
    """Parse ``text``; a syntax error raises ``GraphErrors`` at its line and column, a
    duplicate key is collected in ``errors``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GraphErrors.single(path, f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from None
    except RecursionError:
        raise GraphErrors.single(path, "invalid JSON: nested too deeply", 1, 1) from None
    walk = _Walk(text, path)
    walk.value(walk.skip(0), ())
    return YamlDocument(data, walk.marks, walk.errors)


class _Walk:
    def __init__(self, text: str, path: str):
        self.text, self.path = text, path
        self.marks = SourceMap(positions=Positions(text))
        self.errors: list[GraphError] = []

    def skip(self, i: int) -> int:
        return _WS.match(self.text, i).end()  # type: ignore[union-attr]

    def value(self, i: int, at: YamlPath) -> int:
        """Record the value starting at ``i`` (and its insides); return the index after it."""
        self.marks.values[at] = i
        c = self.text[i:i + 1]
        if c == "{":
            return self.object(i + 1, at)
        if c == "[":
            return self.array(i + 1, at)
        if c == '"':
            return scanstring(self.text, i + 1)[1]
        number = NUMBER_RE.match(self.text, i)
        if number:
            return number.end()
        for word in _LITERALS:
            if self.text.startswith(word, i):
                return i + len(word)
        raise AssertionError(f"unexpected JSON at {i}")  # json.loads accepted it: cannot be

    def object(self, i: int, at: YamlPath) -> int:
        seen: set[str] = set()
        i = self.skip(i)
        if self.text[i] == "}":
            return i + 1
        while True:
            key_at = i
            key, i = scanstring(self.text, i + 1)
            if key in seen:
                pos = self.marks.positions.at(key_at)
                self.errors.append(GraphError(self.path, pos.line, pos.col, f"duplicate key {key!r}"))
            seen.add(key)
            self.marks.keys[at + (key,)] = key_at
            i = self.skip(self.skip(i) + 1)  # past the colon
            i = self.skip(self.value(i, at + (key,)))
            if self.text[i] == "}":
                return i + 1
            i = self.skip(i + 1)  # past the comma

    def array(self, i: int, at: YamlPath) -> int:
        i = self.skip(i)
        if self.text[i] == "]":
            return i + 1
        index = 0
        while True:
            i = self.skip(self.value(i, at + (index,)))
            if self.text[i] == "]":
                return i + 1
            i, index = self.skip(i + 1), index + 1
