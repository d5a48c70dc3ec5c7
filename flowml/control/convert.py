"""Param values <-> OSC arguments, and each param's OSC type tag.

Incoming arguments are turned into the Python value a param's pydantic field then checks:
one argument for a scalar, several for a vector (``/cam/size 1920 1080``), ``T``/``F`` (or
``0``/``1``) for a bool, ``N`` (nil) for None, a JSON string for a param that has no OSC
form (a dict, say). Ints are accepted for floats; pydantic rejects ``2.5`` for an int.
"""

from __future__ import annotations

import enum
import json
import math
import typing
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ..paraminfo import ParamInfo

__all__ = ["Kind", "ParamShape", "shape_of", "from_osc", "to_osc", "ConvertError"]


class ConvertError(ValueError):
    """OSC arguments that cannot be a value of the param; the message says what to send."""


class Kind(str, enum.Enum):
    FLOAT = "float"
    INT = "int"
    BOOL = "bool"
    STR = "str"
    VECTOR = "vector"   # a tuple/list of numbers (or of scalars of fixed types)
    OTHER = "other"     # no OSC form: sent and received as JSON text


@dataclass(frozen=True)
class ParamShape:
    """What a param looks like over OSC."""

    kind: Kind
    typetag: str            # OSC type tags, e.g. "f", "ii"; "" when the length is not fixed
    nullable: bool = False
    int_elements: bool = False  # a vector of ints: expressions and smoothing round
    fixed_length: bool = True

    @property
    def numeric(self) -> bool:
        return self.kind in (Kind.FLOAT, Kind.INT) or (
            self.kind == Kind.VECTOR and all(c in "if" for c in self.typetag))


def _scalar_tag(tp: Any) -> str | None:
    if tp is bool:
        return "T"
    if tp is int:
        return "i"
    if tp is float:
        return "f"
    if tp is str or (isinstance(tp, type) and issubclass(tp, (PurePath, enum.Enum))):
        return "s"
    if typing.get_origin(tp) is Literal:
        args = typing.get_args(tp)
        return "T" if all(isinstance(a, bool) for a in args) else (
            "i" if all(isinstance(a, int) for a in args) else "s")
    return None


def shape_of(f: FieldInfo, current: Any = None) -> ParamShape:
    """The OSC shape of a params model field (``current`` gives a variable vector's length)."""
    tp, nullable = f.annotation, False
    origin = typing.get_origin(tp)
    if origin is typing.Union or type(tp).__name__ == "UnionType":
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        nullable = len(inner) < len(typing.get_args(tp))
        if len(inner) != 1:
            return ParamShape(Kind.OTHER, "s", nullable)
        tp = inner[0]
        origin = typing.get_origin(tp)
    tag = _scalar_tag(tp)
    if tag is not None:
        kind = {"T": Kind.BOOL, "i": Kind.INT, "f": Kind.FLOAT, "s": Kind.STR}[tag]
        return ParamShape(kind, tag, nullable)
    if origin in (tuple, list):
        args = typing.get_args(tp)
        variable = origin is list or (len(args) == 2 and args[1] is Ellipsis)
        elems = [args[0]] if variable else list(args)
        tags = [_scalar_tag(a) for a in elems]
        if elems and all(t is not None for t in tags):
            ints = all(t == "i" for t in tags)
            if variable:
                n = len(current) if isinstance(current, (list, tuple)) else 0
                return ParamShape(Kind.VECTOR, tags[0] * n, nullable, ints, fixed_length=False)  # type: ignore[operator]
            return ParamShape(Kind.VECTOR, "".join(tags), nullable, ints)  # type: ignore[arg-type]
    return ParamShape(Kind.OTHER, "s", nullable)


def shape_for(model: type[BaseModel], name: str, current: Any = None) -> ParamShape:
    return shape_of(model.model_fields[name], current)


def from_osc(shape: ParamShape, args: list[Any] | tuple[Any, ...]) -> Any:
    """The value that ``args`` stand for (pydantic checks it next)."""
    if not args:
        want = shape.typetag or "a value"
        raise ConvertError(f"no value given; send {want}")
    if shape.kind == Kind.VECTOR:
        if len(args) == 1 and isinstance(args[0], str) and args[0].lstrip().startswith("["):
            return _json(args[0])
        if len(args) == 1 and args[0] is None and shape.nullable:
            return None
        if shape.fixed_length and len(args) != len(shape.typetag):
            raise ConvertError(f"takes {len(shape.typetag)} values ({shape.typetag}), got {len(args)}")
        return list(args)
    if len(args) != 1:
        raise ConvertError(f"takes one value ({shape.typetag}), got {len(args)}")
    value = args[0]
    if shape.kind == Kind.OTHER and isinstance(value, str):
        return _json(value, keep_text=True)
    if isinstance(value, float) and shape.kind == Kind.INT and not value.is_integer():
        raise ConvertError(f"takes an integer, got {value:g}")
    return value


def _json(text: str, keep_text: bool = False) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        if keep_text:
            return text
        raise ConvertError(f"not valid JSON: {text[:40]!r}") from None


def to_osc(value: Any) -> list[Any]:
    """OSC arguments for a value: vectors flattened, enums and paths as strings, dicts and
    other structures as JSON text, non-finite floats as they are."""
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, int) and not isinstance(value, bool) and not -2**31 <= value < 2**31:
            return [float(value)]
        return [value]
    if isinstance(value, PurePath):
        return [str(value)]
    if isinstance(value, (list, tuple)) and all(
            isinstance(v, (bool, int, float, str, enum.Enum)) for v in value):
        return [a for v in value for a in to_osc(v)]
    return [json.dumps(jsonable(value))]


def jsonable(value: Any) -> Any:
    """A JSON-able form of a param value (tuples as lists, enums and paths as strings)."""
    from pydantic_core import to_jsonable_python

    v = to_jsonable_python(value, fallback=str)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def range_of(info: ParamInfo, shape: ParamShape) -> list[dict[str, Any] | None]:
    """OSCQuery RANGE: one entry per type tag (None where nothing is known)."""
    if shape.kind == Kind.VECTOR or not shape.typetag:
        return [None] * len(shape.typetag)
    if info.choices:
        return [{"VALS": [jsonable(c) for c in info.choices]}]
    if info.min is None and info.max is None:
        return [None]
    r: dict[str, Any] = {}
    if info.min is not None:
        r["MIN"] = info.min
    if info.max is not None:
        r["MAX"] = info.max
    return [r]
