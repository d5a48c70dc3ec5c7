"""EDGEMATRIX-format action rules: read from JSON or YAML, checked with ``file:line:col`` errors.

A rules file is a list of rules (or a mapping with a ``rules`` list)::

    [{"rule_name": "hit", "and": [{"key": "probability", "operator": ">=", "value": 20}],
      "or": [], "action": {"action_name": "record", "duration_in_seconds": 5,
                           "max_duration_in_seconds": 60}}]

A rule matches a record (a dict of metadata) when every condition of ``and`` holds and, if
``or`` is not empty, at least one of ``or`` does. A condition compares ``record[key]`` with
``value`` by ``operator``: ``> >= < <= == !=``. Numbers compare as numbers; a string value
(``"N/A"``, a class name) only with ``==`` / ``!=``. A key the record lacks, or a value of the
other kind (a number against ``"N/A"``), makes the condition false: a missing key never matches,
with ``!=`` neither. Every problem of a file is reported at once. Torch-free (used when a graph
is validated).
"""

from __future__ import annotations

import difflib
import math
import operator
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import Any, Callable, Mapping

from flowml.graph.errors import GraphError, GraphErrors
from flowml.graph.yaml_source import SourceMap, YamlPath, load_yaml

from .jsonmarks import load_json

__all__ = ["Condition", "Rule", "load_rules", "parse_rules", "OPERATORS"]

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne,
}
RULE_KEYS = ("rule_name", "and", "or", "action")
CONDITION_KEYS = ("key", "operator", "value")
DURATIONS = ("duration_in_seconds", "max_duration_in_seconds")
MAX_BYTES = 1 << 20


def _number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class Condition:
    key: str
    operator: str
    value: float | int | str
    where: str = ""  # "file:line:col" of its key, for messages

    def holds(self, record: Mapping[str, Any]) -> bool:
        if self.key not in record:
            return False
        got = record[self.key]
        if _number(self.value):
            if not _number(got) or (isinstance(got, float) and math.isnan(got)):
                return False
        elif not isinstance(got, str):
            return False
        return OPERATORS[self.operator](got, self.value)


@dataclass(frozen=True)
class Rule:
    name: str
    all: tuple[Condition, ...]
    any: tuple[Condition, ...]
    action: dict[str, Any] = field(default_factory=dict)
    line: int = 0
    where: str = ""  # "file:line:col" of the rule, for messages

    def matches(self, record: Mapping[str, Any]) -> bool:
        return all(c.holds(record) for c in self.all) and (
            not self.any or any(c.holds(record) for c in self.any))

    @property
    def conditions(self) -> tuple[Condition, ...]:
        return self.all + self.any


def load_rules(path: Path, shown_as: str | None = None) -> list[Rule]:
    """The rules in ``path`` (``.json``, or YAML for any other suffix). Raises ``GraphErrors``
    with every problem at its line and column, naming the file as ``shown_as`` (default: path)."""
    name = shown_as or str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise GraphErrors.single(name, "no such rules file") from None
    except OSError as exc:
        raise GraphErrors.single(name, f"cannot read the rules file: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise GraphErrors.single(name, f"the rules file is larger than {MAX_BYTES:,} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise GraphErrors.single(name, "not UTF-8 text; save the rules file as UTF-8") from None
    return parse_rules(text, name, json=path.suffix.lower() == ".json")


def parse_rules(text: str, name: str, *, json: bool) -> list[Rule]:
    """The rules in ``text`` (JSON or YAML); raises ``GraphErrors`` listing every problem."""
    doc = load_json(text, name) if json else load_yaml(text, name)
    check = _Check(name, doc.marks)
    check.errors.extend(doc.errors)
    rules = check.file(doc.data)
    if check.errors:
        raise GraphErrors(check.errors)
    return rules


class _Check:
    def __init__(self, name: str, marks: SourceMap):
        self.name, self.marks = name, marks
        self.errors: list[GraphError] = []

    def report(self, path: YamlPath, message: str, *, key: bool = False) -> None:
        mark = self.marks.key(path) if key else self.marks.value(path)
        self.errors.append(GraphError(self.name, mark.line, mark.col, message))

    def line(self, path: YamlPath) -> tuple[int, str]:
        mark = self.marks.value(path)
        return mark.line, f"{self.name}:{mark.line}:{mark.col}"

    def file(self, data: Any) -> list[Rule]:
        base: YamlPath = ()
        if isinstance(data, dict) and set(data) == {"rules"}:
            data, base = data["rules"], ("rules",)
        if not isinstance(data, list):
            self.report(base, "a rules file is a list of rules (or a mapping with a `rules` list), "
                        f"not a {_kind(data)}")
            return []
        rules = [r for i, item in enumerate(data) if (r := self.rule(item, base + (i,))) is not None]
        seen: dict[str, int] = {}
        for i, rule in enumerate(rules):
            if rule.name in seen:
                self.report(base + (i, "rule_name"), f"rule_name {rule.name!r} is used twice "
                            f"(first at line {seen[rule.name]}); rule names must be unique")
            seen.setdefault(rule.name, rule.line)
        return rules

    def rule(self, item: Any, at: YamlPath) -> Rule | None:
        if not isinstance(item, dict):
            self.report(at, f"a rule is a mapping with rule_name, and, or, action; not a {_kind(item)}")
            return None
        before = len(self.errors)
        self.unknown_keys(item, at, RULE_KEYS, "rule")
        name = item.get("rule_name")
        if not isinstance(name, str) or not name.strip():
            if "rule_name" in item:
                self.report(at + ("rule_name",), "rule_name must be a non-empty string")
            else:
                self.report(at, "this rule has no rule_name; add one, e.g. \"rule_name\": \"person_seen\"")
            name = "?"
        conds = {}
        for part in ("and", "or"):
            value = item.get(part, [])
            if not isinstance(value, list):
                self.report(at + (part,), f"`{part}` is a list of conditions, not a {_kind(value)}")
                value = []
            checked = [self.condition(c, at + (part, i)) for i, c in enumerate(value)]
            conds[part] = [c for c in checked if c is not None]
        if not item.get("and") and not item.get("or") and len(self.errors) == before:
            self.report(at, f"rule {name!r} has no condition: add one to `and` or `or`")
        action = item.get("action", {})
        if "action" not in item:
            pass  # no action: its events go to the actions that take every event (action: "*")
        elif not isinstance(action, dict):
            self.report(at + ("action",), f"action is a mapping with action_name, not a {_kind(action)}")
            action = {}
        else:
            self.action(action, at + ("action",))
        if len(self.errors) > before:
            return None
        line, where = self.line(at)
        return Rule(name, tuple(conds["and"]), tuple(conds["or"]), dict(action), line, where)

    def condition(self, item: Any, at: YamlPath) -> Condition | None:
        if not isinstance(item, dict):
            self.report(at, "a condition is a mapping {key, operator, value}, e.g. "
                        f'{{"key": "probability", "operator": ">=", "value": 20}}; not a {_kind(item)}')
            return None
        before = len(self.errors)
        self.unknown_keys(item, at, CONDITION_KEYS, "condition")
        for k in CONDITION_KEYS:
            if k not in item:
                self.report(at, f"this condition has no `{k}`; a condition is {{key, operator, value}}")
        key, op, value = item.get("key"), item.get("operator"), item.get("value")
        if "key" in item and (not isinstance(key, str) or not key):
            self.report(at + ("key",), "key must be a non-empty string (a metadata key, e.g. probability)")
        if "operator" in item and op not in OPERATORS:
            close = ([str(op)[::-1]] if str(op)[::-1] in OPERATORS else
                     difflib.get_close_matches(str(op), list(OPERATORS), n=1, cutoff=0.3))
            hint = f"; did you mean {close[0]!r}?" if close else ""
            self.report(at + ("operator",), f"unknown operator {op!r}; use one of {' '.join(OPERATORS)}{hint}")
        if "value" in item:
            if not (_number(value) or isinstance(value, str)):
                self.report(at + ("value",), f"value must be a number or a string (e.g. 20, \"N/A\"), not {_kind(value)}")
            elif isinstance(value, float) and not math.isfinite(value):
                self.report(at + ("value",), "value must be a finite number")
            elif isinstance(value, str) and op in (">", ">=", "<", "<="):
                self.report(at + ("value",), f"operator {op!r} compares numbers, but the value is the "
                            f"string {value!r}; use a number, or == / !=")
        if len(self.errors) > before:
            return None
        return Condition(key, op, value, self.line(at + ("key",))[1])

    def action(self, action: dict, at: YamlPath) -> None:
        name = action.get("action_name")
        if not isinstance(name, str) or not name:
            self.report(at, "action needs an action_name (e.g. record, osc, http, log)",
                        key=True)
        for k in DURATIONS:
            if k in action and not (_number(action[k]) and action[k] >= 0 and math.isfinite(action[k])):
                self.report(at + (k,), f"{k} must be a number of seconds >= 0, not {action[k]!r}")
        if _number(action.get("max_duration_in_seconds")) and action["max_duration_in_seconds"] <= 0:
            self.report(at + ("max_duration_in_seconds",), "max_duration_in_seconds must be more than 0")

    def unknown_keys(self, item: dict, at: YamlPath, allowed: tuple[str, ...], what: str) -> None:
        for k in item:
            if k not in allowed:
                close = difflib.get_close_matches(str(k), allowed, n=1, cutoff=0.5)
                hint = f"did you mean {close[0]!r}?" if close else f"a {what} has {', '.join(allowed)}"
                self.report(at + (k,), f"unknown key {k!r} in a {what}; {hint}", key=True)


def _kind(value: Any) -> str:
    return {dict: "mapping", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__)
