"""The live parts of a node in a graph file: expression-valued params and smoothing.

In a graph file a param may follow an expression instead of holding a value::

    fx: {type: image.color, params: {gain: {expr: "1 + 0.5*sin(t*0.7)"}}, smooth: {gain: 0.2}}

Validation (``validate.py``) uses the helpers here to

- take the expressions out of a node's params (``split_expressions``), check their syntax and
  put their value at ``t = 0`` in their place, so the param's own pydantic field checks it;
- check the names in ``smooth:`` (``check_smooth``) and the ``node.name`` references of the
  expressions (``check_references``), once every node is resolved.

This module, like the whole graph layer, imports no torch.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from ..ports import ANY, JSON, SCALAR
from .expr import Expression, ExprError, parse_expression
from .yaml_source import YamlPath

__all__ = ["LiveParams", "split_expressions", "part_name", "check_smooth", "check_references",
           "is_expression", "StartValues", "numeric_fields", "allow_expressions_in_schema"]

EXPR_KEY = "expr"
Problem = tuple[YamlPath, str]  # (path relative to the node's params / smooth, message)


def is_expression(value: Any) -> bool:
    """``{expr: ...}``: a mapping whose only key is ``expr``."""
    return isinstance(value, Mapping) and list(value) == [EXPR_KEY]


@dataclass
class LiveParams:
    """A node's params with each expression replaced by its value at ``t = 0``."""

    values: dict[str, Any]
    expressions: dict[str, str] = field(default_factory=dict)
    parsed: dict[str, Expression] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def note(self, param: str) -> str:
        """Words to add to a validation error of ``param`` when it is an expression."""
        if param not in self.expressions:
            return ""
        return f" (the value of expression {self.expressions[param]!r} at t=0)"


def split_expressions(params: Mapping[str, Any], model: type[BaseModel],
                      start: "StartValues | None" = None) -> LiveParams:
    """Find the ``{expr: "..."}`` params of a node whose params model is ``model``; parse each
    and evaluate it at ``t = 0`` (other nodes' values from ``start``). A param whose field takes
    a mapping itself (``dict``, ``Any``, a model) keeps ``{expr: ...}`` as its plain value."""
    live = LiveParams(dict(params))
    for name, value in params.items():
        if name in model.model_fields and isinstance(value, list):
            _split_parts(live, name, value, model, start)
        if not is_expression(value) or name not in model.model_fields:
            continue
        if _takes_mapping(model.model_fields[name].annotation):
            continue
        text = value[EXPR_KEY]
        try:
            parsed = parse_expression(text)
            value = parsed.evaluate(0.0, 0, start or _zero)
            live.values[name] = _as_runtime_would(value, model.model_fields[name].annotation)
        except ExprError as exc:
            where = f" (column {exc.col})" if exc.col > 0 else ""
            live.problems.append(((name, EXPR_KEY), f"param {name!r}: bad expression: {exc.message}{where}"))
            live.values.pop(name)
            continue
        live.expressions[name] = text
        live.parsed[name] = parsed
    return live


def part_name(param: str, index: int, key: str) -> str:
    """The name of a part of a list param (``edits/0/value``): its address is the param's
    address and ``/<index>/<key>``."""
    return f"{param}/{index}/{key}"


def _split_parts(live: LiveParams, name: str, items: list[Any], model: type[BaseModel],
                 start: "StartValues | None") -> None:
    """The ``{expr: ...}`` values of the parts of a list param (``parts=`` in its metadata:
    ``edits: [{name: w, value: {expr: "sin(t)"}}]``), each replaced by its value at t = 0."""
    from ..parammeta import param_meta

    parts = param_meta(model, name).parts
    if not parts:
        return
    out = list(items)
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            continue
        for key in parts:
            if key not in item or not is_expression(item[key]):
                continue
            text = item[key][EXPR_KEY]
            try:
                parsed = parse_expression(text)
                value = parsed.evaluate(0.0, 0, start or _zero)
            except ExprError as exc:
                where = f" (column {exc.col})" if exc.col > 0 else ""
                live.problems.append(((name, i, key, EXPR_KEY),
                                      f"param '{name}[{i}].{key}': bad expression: {exc.message}{where}"))
                continue
            out[i] = {**out[i], key: value}
            live.expressions[part_name(name, i, key)] = text
            live.parsed[part_name(name, i, key)] = parsed
    live.values[name] = out


def _as_runtime_would(value: Any, annotation: Any) -> Any:
    """An expression's number for an ``int`` param is rounded, as the store rounds it while the
    graph runs (so the strict check at validation sees what the node will get)."""
    if isinstance(value, float) and value == value and abs(value) != float("inf") and _int_field(annotation):
        return round(value)
    return value


def _int_field(annotation: Any) -> bool:
    if annotation is int:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _int_field(typing.get_args(annotation)[0])
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return len(args) == 1 and _int_field(args[0])
    return False


def _zero(node: str, name: str) -> float:
    return 0.0


def _takes_mapping(annotation: Any) -> bool:
    if annotation is Any or annotation is object:
        return True
    origin = typing.get_origin(annotation)
    if origin in (dict, typing.Mapping) or annotation is dict:
        return True
    if isinstance(annotation, type) and issubclass(annotation, (BaseModel, dict)):
        return True
    return any(_takes_mapping(a) for a in typing.get_args(annotation)
               if origin is typing.Union or type(annotation).__name__ == "UnionType")


def numeric_fields(model: type[BaseModel]) -> set[str]:
    """Params that can be smoothed: numbers, and fixed or variable tuples/lists of numbers."""
    out = set()
    for name, f in model.model_fields.items():
        if _numeric(f.annotation):
            out.add(name)
    return out


def _numeric(tp: Any) -> bool:
    if tp is bool:
        return False
    if tp in (int, float):
        return True
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (tuple, list):
        inner = [a for a in args if a is not Ellipsis]
        return bool(inner) and all(_numeric(a) for a in inner)
    if origin is typing.Union or type(tp).__name__ == "UnionType":  # Optional[float]
        inner = [a for a in args if a is not type(None)]
        return len(inner) == 1 and _numeric(inner[0])
    return False


def check_smooth(smooth: float | Mapping[str, float] | None, model: type[BaseModel],
                 type_name: str) -> list[Problem]:
    """Every name in ``smooth: {param: seconds}`` must be a numeric param of the type."""
    if smooth is None or not isinstance(smooth, Mapping):
        return []
    names = list(model.model_fields)
    numeric = numeric_fields(model)
    problems: list[Problem] = []
    for name in smooth:
        if name not in model.model_fields:
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; params of {type_name}: {', '.join(names)}"
            problems.append(((name,), f"smooth: unknown param {name!r}{hint}"))
        elif name not in numeric:
            problems.append(((name,), f"smooth: param {name!r} is not a number (or a vector of "
                                      "numbers), so it cannot be smoothed; remove it"))
    return problems


class NodeView(typing.Protocol):
    """What reference checks need of a resolved node (``ResolvedNode`` fits)."""

    id: str
    type: Any
    ports: Any
    expressions: dict[str, str]


def check_references(nodes: Mapping[str, NodeView], all_ids: Iterable[str]) -> list[tuple[str, str, str]]:
    """``(node id, param, message)`` for each ``node.name`` in an expression that names no
    param and no number-carrying output of a node. ``all_ids`` are the ids in the file (a
    node that failed to resolve is not reported again)."""
    ids = set(all_ids)
    problems = []
    for nid, rn in nodes.items():
        for param, text in rn.expressions.items():
            for ref_node, name in sorted(parse_expression(text).refs):
                message = _reference_problem(ref_node, name, nodes, ids)
                if message:
                    problems.append((nid, param, f"param {param!r}: expression {text!r}: {message}"))
    return problems


def _reference_problem(node: str, name: str, nodes: Mapping[str, NodeView], ids: set[str]) -> str | None:
    if node not in ids:
        close = difflib.get_close_matches(node, sorted(ids), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else f"; nodes: {', '.join(sorted(ids))}"
        return f"{node}.{name}: no node {node!r}{hint}"
    rn = nodes.get(node)
    if rn is None:  # that node has errors of its own
        return None
    params = list(rn.type.cls.Params.model_fields)
    outputs = {o.name: o for o in rn.ports.outputs}
    if name in params:
        return None
    if name in outputs:
        kind = outputs[name].type
        if kind in (SCALAR, JSON, ANY):
            return None
        return (f"{node}.{name} is a {kind} output; an expression can read only params and "
                "scalar outputs")
    close = difflib.get_close_matches(name, params + list(outputs), n=1, cutoff=0.6)
    hint = f"; did you mean {node}.{close[0]}?" if close else (
        f"; params: {', '.join(params) or 'none'}; outputs: {', '.join(outputs) or 'none'}")
    return f"{node}.{name}: node {node!r} has no param or output {name!r}{hint}"


class StartValues:
    """Other nodes' values at ``t = 0``, for checking an expression when the graph loads: a
    param written as a number in the file, else its type's default if a number, else 0."""

    def __init__(self, raw_nodes: Any, registry: Any):
        self.raw = raw_nodes if isinstance(raw_nodes, Mapping) else {}
        self.registry = registry

    def __call__(self, node: str, name: str) -> Any:
        raw = self.raw.get(node)
        if not isinstance(raw, Mapping):
            return 0.0
        params = raw.get("params")
        value = params.get(name) if isinstance(params, Mapping) else None
        if _plain_number(value):
            return value
        info = self.registry.get(raw.get("type")) if isinstance(raw.get("type"), str) else None
        f = info.cls.Params.model_fields.get(name) if info is not None else None
        if f is not None and not f.is_required():
            default = f.get_default(call_default_factory=True)
            if _plain_number(default):
                return default
        return 0.0


def _plain_number(v: Any) -> bool:
    if isinstance(v, (int, float)):
        return True
    return isinstance(v, (list, tuple)) and bool(v) and all(isinstance(x, (int, float)) for x in v)


EXPRESSION_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": [EXPR_KEY],
    "properties": {EXPR_KEY: {"type": "string", "description": (
        "an expression of t (seconds), frame, math functions and node.param, "
        "e.g. \"0.5 + 0.5*sin(t*0.7)\"")}},
}


def allow_expressions_in_schema(params_schema: dict[str, Any], model: type[BaseModel]) -> None:
    """Let each param of a JSON Schema of ``model`` also be ``{expr: "..."}`` (in place).
    ``if``/``then``/``else`` rather than ``anyOf``, so that editors still report a plain value's
    own problem ("80 is greater than the maximum of 64")."""
    for name, prop in params_schema.get("properties", {}).items():
        f = model.model_fields.get(name)
        if f is None or _takes_mapping(f.annotation):
            continue
        top = {k: prop[k] for k in ("title", "description", "default") if k in prop}
        params_schema["properties"][name] = {
            **top, "if": {"type": "object", "required": [EXPR_KEY]},
            "then": EXPRESSION_SCHEMA, "else": prop}
