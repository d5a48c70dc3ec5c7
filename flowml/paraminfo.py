"""Describe a node's params for people and tools: ``flowml nodes``, ``flowml params``, OSCQuery.

Types are read from the pydantic field whatever way they are written: ``Annotated`` at any
depth (``tuple[Annotated[int, Field(ge=1)], ...]``, ``Optional[Annotated[...]]``), constrained
types (``conint``), ``Literal``, enums. ``unwrap`` and ``bounds_of`` are shared with the OSC
conversion (``flowml.control.convert``) so that every surface tells the same story.
"""

from __future__ import annotations

import enum
import types
import typing
from dataclasses import dataclass
from typing import Any

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

__all__ = ["Bounds", "ParamInfo", "describe_params", "unwrap", "bounds_of"]


@dataclass(frozen=True)
class Bounds:
    """The range of one number (or the choices of one value); an exclusive bound (``gt``,
    ``lt``) is marked as such."""

    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False
    choices: tuple[Any, ...] | None = None

    @property
    def empty(self) -> bool:
        return self.min is None and self.max is None and not self.choices

    def text(self) -> str:
        """``[1, 16384]``, ``(0, 1]`` (exclusive below), ``a|b`` for choices, ``""`` for none."""
        if self.choices:
            return "|".join(map(str, self.choices))
        if self.min is None and self.max is None:
            return ""
        lo = "(" if self.min_exclusive else "["
        hi = ")" if self.max_exclusive else "]"
        return f"{lo}{'' if self.min is None else self.min}, {'' if self.max is None else self.max}{hi}"


@dataclass(frozen=True)
class ParamInfo:
    """One param: its name, a short type name, default, range and choices where it has them.
    A vector param (``tuple[int, int]``) has one ``Bounds`` per element in ``elements``."""

    name: str
    type: str
    default: Any
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    description: str = ""
    required: bool = False
    min_exclusive: bool = False
    max_exclusive: bool = False
    elements: tuple[Bounds, ...] = ()

    @property
    def bounds(self) -> Bounds:
        return Bounds(self.min, self.max, self.min_exclusive, self.max_exclusive, self.choices)

    def range_text(self) -> str:
        if self.elements and any(not b.empty for b in self.elements):
            texts = [b.text() or "any" for b in self.elements]
            if len(set(texts)) == 1:
                return f"{texts[0]} each"
            return " x ".join(texts)
        return self.bounds.text()


_UNION_TYPES = (typing.Union, types.UnionType)


def unwrap(tp: Any) -> tuple[Any, list[Any], bool]:
    """``(type, metadata, nullable)``: ``tp`` without its ``Annotated`` layers (their metadata
    collected) and without ``None`` in a union (``nullable`` then). A union of several other
    types is returned as it is."""
    meta: list[Any] = []
    nullable = False
    for _ in range(32):  # nesting depth is bounded in practice; this bounds it by construction
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            args = typing.get_args(tp)
            tp, meta = args[0], meta + list(args[1:])
        elif origin in _UNION_TYPES:
            args = typing.get_args(tp)
            inner = [a for a in args if a is not type(None)]
            if len(inner) < len(args):
                nullable = True
            if len(inner) != 1:
                return (typing.Union[tuple(inner)] if len(inner) > 1 else type(None)), meta, nullable
            tp = inner[0]
        elif isinstance(tp, typing.NewType):
            tp = tp.__supertype__
        else:
            break
    return tp, meta, nullable


def _flat(meta: list[Any]) -> list[Any]:
    out: list[Any] = []
    for m in meta:
        if isinstance(m, FieldInfo):  # Annotated[int, Field(ge=1)]
            out += _flat(list(m.metadata))
        else:
            out.append(m)
    return out


def bounds_of(tp: Any, meta: list[Any] = ()) -> Bounds:  # type: ignore[assignment]
    """The range of a scalar type with its constraints (``Ge``/``Gt``/``Le``/``Lt``/``Interval``
    from ``Field(...)``, ``Annotated`` or ``conint``), or its choices (``Literal``, enum)."""
    tp, inner, _ = unwrap(tp)
    lo = hi = None
    lo_x = hi_x = False
    for m in _flat(list(meta) + inner):
        if isinstance(m, at.Interval):
            parts = [p for p in (at.Ge(m.ge) if m.ge is not None else None,
                                 at.Gt(m.gt) if m.gt is not None else None,
                                 at.Le(m.le) if m.le is not None else None,
                                 at.Lt(m.lt) if m.lt is not None else None) if p is not None]
        else:
            parts = [m]
        for p in parts:
            if isinstance(p, at.Ge):
                lo, lo_x = p.ge, False
            elif isinstance(p, at.Gt):
                lo, lo_x = p.gt, True
            elif isinstance(p, at.Le):
                hi, hi_x = p.le, False
            elif isinstance(p, at.Lt):
                hi, hi_x = p.lt, True
    return Bounds(lo, hi, lo_x, hi_x, _choices(tp))


def _choices(tp: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(tp) is typing.Literal:
        return tuple(a.value if isinstance(a, enum.Enum) else a for a in typing.get_args(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tuple(m.value for m in tp)
    return None


def _type_name(tp: Any) -> str:
    tp, _, nullable = unwrap(tp)
    q = "?" if nullable else ""
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        values = [a.value if isinstance(a, enum.Enum) else a for a in typing.get_args(tp)]
        kinds = {type(v).__name__ for v in values}
        return (kinds.pop() if len(kinds) == 1 else "|".join(sorted(kinds))) + q
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        kinds = {type(m.value).__name__ for m in tp}
        return (kinds.pop() if len(kinds) == 1 else "str") + q
    if origin in (tuple, list):
        args = typing.get_args(tp)
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return f"tuple[{_type_name(args[0])},...]{q}"
        return f"{origin.__name__}[{','.join(_type_name(a) for a in args)}]{q}"
    if origin in _UNION_TYPES:
        return "|".join(_type_name(a) for a in typing.get_args(tp)) + q
    return getattr(tp, "__name__", str(tp)) + q


def element_types(tp: Any) -> list[Any] | None:
    """The element types of a tuple/list type (one for a variable-length one), else None."""
    tp, _, _ = unwrap(tp)
    origin = typing.get_origin(tp)
    if origin not in (tuple, list):
        return None
    args = typing.get_args(tp)
    if origin is list or (len(args) == 2 and args[1] is Ellipsis):
        return [args[0]] if args else None
    return list(args) or None


def describe_params(model: type[BaseModel]) -> list[ParamInfo]:
    """``ParamInfo`` for each field of a pydantic params model, in declaration order."""
    out = []
    for name, f in model.model_fields.items():
        b = bounds_of(f.annotation, list(f.metadata))
        elems = element_types(f.annotation)
        elements = tuple(bounds_of(e) for e in elems) if elems else ()
        required = f.default is PydanticUndefined and f.default_factory is None
        default = None if required else f.get_default(call_default_factory=True)
        if isinstance(default, enum.Enum):
            default = default.value
        out.append(ParamInfo(name, _type_name(f.annotation), default, b.min, b.max, b.choices,
                             f.description or "", required, b.min_exclusive, b.max_exclusive,
                             elements))
    return out
