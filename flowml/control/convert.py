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
import struct
import typing
from dataclasses import dataclass
from functools import cached_property
from pathlib import PurePath
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ..paraminfo import Bounds, ParamInfo, element_types, unwrap

__all__ = ["Kind", "ParamShape", "shape_of", "from_osc", "to_osc", "osc_tag", "type_of", "range_of",
           "ConvertError"]


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

    @cached_property  # read for each param stepped, each tick
    def numeric(self) -> bool:
        return self.kind in (Kind.FLOAT, Kind.INT) or (
            self.kind == Kind.VECTOR and all(c in "if" for c in self.typetag))


def _value_tag(values: tuple[Any, ...]) -> str | None:
    """The one OSC tag that every value of a Literal or an enum has, else None."""
    if values and all(isinstance(v, bool) for v in values):
        return "T"
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "i"
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "f"
    if values and all(isinstance(v, str) for v in values):
        return "s"
    return None


def _scalar_tag(tp: Any) -> str | None:
    tp, _, nullable = unwrap(tp)
    if nullable:
        return None  # tuple[int | None, int]: no fixed OSC form
    if typing.get_origin(tp) is Literal:
        return _value_tag(tuple(a.value if isinstance(a, enum.Enum) else a for a in typing.get_args(tp)))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _value_tag(tuple(m.value for m in tp))
    if tp is bool:
        return "T"
    if tp is int:
        return "i"
    if tp is float:
        return "f"
    if tp is str or (isinstance(tp, type) and issubclass(tp, PurePath)):
        return "s"
    return None


_KINDS = {"T": Kind.BOOL, "i": Kind.INT, "f": Kind.FLOAT, "s": Kind.STR}


def shape_of(f: FieldInfo, current: Any = None) -> ParamShape:
    """The OSC shape of a params model field, whatever way its type is written (``Annotated``
    at any depth, ``Optional``, ``Literal``, enums); ``current`` gives a variable vector's
    length."""
    tp, _, nullable = unwrap(f.annotation)
    tag = _scalar_tag(tp)
    if tag is not None:
        return ParamShape(_KINDS[tag], tag, nullable)
    elems = element_types(tp)
    if elems:
        tags = [_scalar_tag(e) for e in elems]
        if all(t is not None for t in tags):
            ints = all(t == "i" for t in tags)
            origin, args = typing.get_origin(tp), typing.get_args(tp)
            if origin is list or (len(args) == 2 and args[1] is Ellipsis):
                n = len(current) if isinstance(current, (list, tuple)) else 0
                return ParamShape(Kind.VECTOR, tags[0] * n, nullable, ints, fixed_length=False)  # type: ignore[operator]
            return ParamShape(Kind.VECTOR, "".join(tags), nullable, ints)  # type: ignore[arg-type]
    return ParamShape(Kind.OTHER, "s", nullable)


def shape_for(model: type[BaseModel], name: str, current: Any = None) -> ParamShape:
    return shape_of(model.model_fields[name], current)


def osc_tag(value: Any) -> str:
    """The OSC type tag a Python argument travels as (as python-osc and liblo decode it)."""
    if value is True:
        return "T"
    if value is False:
        return "F"
    if value is None:
        return "N"
    if isinstance(value, int):
        return "i"
    if isinstance(value, float):
        return "f"
    if isinstance(value, str):
        return "s"
    if isinstance(value, (bytes, bytearray)):
        return "b"
    return "?"


_WANT = {"T": "T or F (or the int 0 or 1)", "i": "an int (i)", "f": "a valid number (f or i)",
         "s": "a string (s)"}


def _strict(tag: str, value: Any, where: str = "") -> Any:
    """``value`` if it is an OSC argument of the kind ``tag`` stands for, else ConvertError.
    No text to number, no bool to number: a toggle sent to ``/*/*`` must not set an int."""
    if tag == "T":
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):  # 0/1, or 0.0/1.0 from a CHOP
            return bool(value)
    elif tag == "i":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)  # TouchDesigner's OSC Out CHOP sends every number as f
        if isinstance(value, float):
            raise ConvertError(f"{where}takes an integer, got {value:g}")
    elif tag == "f":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
    elif tag == "s":
        if isinstance(value, str):
            return value
    else:
        return value
    raise ConvertError(f"{where}takes {_WANT[tag]}, got {osc_tag(value)} {_show(value)}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def from_osc(shape: ParamShape, args: list[Any] | tuple[Any, ...]) -> Any:
    """The value that ``args`` stand for (pydantic checks it next). Each argument must be of
    the param's OSC type: ints for floats are fine, text for numbers and T/F for ints are not."""
    if not args:
        want = shape.typetag or "a value"
        raise ConvertError(f"no value given; send {want}")
    if len(args) == 1 and args[0] is None:
        if shape.nullable:
            return None
        if shape.kind != Kind.OTHER:
            raise ConvertError(f"takes {shape.typetag or 'a value'}, got N (nil); this param cannot be empty")
    if shape.kind == Kind.VECTOR:
        if len(args) == 1 and isinstance(args[0], str) and args[0].lstrip().startswith("["):
            parsed = _json(args[0])
            if not isinstance(parsed, list):
                raise ConvertError(f"not a JSON list: {args[0][:40]!r}")
            args = parsed
        if shape.fixed_length and len(args) != len(shape.typetag):
            raise ConvertError(f"takes {len(shape.typetag)} values ({shape.typetag}), got "
                               f"{len(args)} ({''.join(osc_tag(a) for a in args)})")
        tags = shape.typetag if shape.fixed_length else (shape.typetag[:1] or "") * len(args)
        if not tags:  # a variable vector that is empty now: the field decides
            return list(args)
        return [_strict(t, a, f"[{i}] ") for i, (t, a) in enumerate(zip(tags, args))]
    if len(args) != 1:
        raise ConvertError(f"takes one value ({shape.typetag}), got {len(args)} "
                           f"({''.join(osc_tag(a) for a in args)})")
    value = args[0]
    if shape.kind == Kind.OTHER:
        return _json(value, keep_text=True) if isinstance(value, str) else value
    return _strict(shape.typetag, value)


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


def type_of(shape: ParamShape, value: Any) -> str:
    """OSCQuery TYPE: the tags the param's value goes out as (``ii`` for a size, ``T``/``F``
    for a bool as it is now, ``s`` for JSON text)."""
    if shape.kind == Kind.OTHER:
        return "s"
    if value is None:  # an empty optional param: what it takes when set
        return shape.typetag or "N"
    return "".join(osc_tag(a) for a in to_osc(value))


def range_of(info: ParamInfo, shape: ParamShape, typetag: str | None = None) -> list[dict[str, Any] | None]:
    """OSCQuery RANGE: one entry per type tag (None where nothing is known). An exclusive
    bound (``gt=0``) is given as the nearest value the param takes in its OSC type: the next
    int, or the next 32-bit float (what ``f`` carries)."""
    tags = shape.typetag if typetag is None else typetag
    if shape.kind == Kind.VECTOR:
        elems = list(info.elements)
        if elems and not shape.fixed_length:
            elems = elems[:1] * len(tags)
        return [_range(b, t) for b, t in zip(elems, tags)] + [None] * (len(tags) - len(elems))
    if shape.kind == Kind.OTHER or not tags:
        return [None] * len(tags)
    return [_range(info.bounds, tags[0])]


def _range(b: Bounds, tag: str) -> dict[str, Any] | None:
    if b.choices:
        return {"VALS": [jsonable(c) for c in b.choices]}
    if tag not in "if" or (b.min is None and b.max is None):
        return None
    r: dict[str, Any] = {}
    if b.min is not None:
        r["MIN"] = _inside(b.min, b.min_exclusive, tag, up=True)
    if b.max is not None:
        r["MAX"] = _inside(b.max, b.max_exclusive, tag, up=False)
    return r


def _inside(bound: float, exclusive: bool, tag: str, up: bool) -> float | int:
    """The value nearest ``bound`` on its allowed side that an OSC ``tag`` can carry."""
    if tag == "i":
        n = math.ceil(bound) if up else math.floor(bound)
        if exclusive and n == bound:
            n += 1 if up else -1
        return int(n)
    if not math.isfinite(bound) or abs(bound) >= 3.4e38:
        return bound  # beyond what a float32 carries: as declared
    f = float(struct.unpack(">f", struct.pack(">f", float(bound)))[0])  # as float32
    toward = math.inf if up else -math.inf
    while (f < bound or (exclusive and f == bound)) if up else (f > bound or (exclusive and f == bound)):
        f = _next_f32(f, toward)
    return f


def _next_f32(x: float, toward: float) -> float:
    import numpy as np

    return float(np.nextafter(np.float32(x), np.float32(toward), dtype=np.float32))
