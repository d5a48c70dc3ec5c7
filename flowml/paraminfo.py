"""Describe a node's params for people and tools: ``flowml nodes``, ``flowml params``, OSCQuery."""

from __future__ import annotations

import enum
import typing
from dataclasses import dataclass
from typing import Any

import annotated_types as at
from pydantic import BaseModel
from pydantic_core import PydanticUndefined


@dataclass(frozen=True)
class ParamInfo:
    """One param: its name, a short type name, default, range and choices where it has them."""

    name: str
    type: str
    default: Any
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    description: str = ""
    required: bool = False

    def range_text(self) -> str:
        if self.choices:
            return "|".join(map(str, self.choices))
        if self.min is None and self.max is None:
            return ""
        return f"[{'' if self.min is None else self.min}, {'' if self.max is None else self.max}]"


def _type_name(tp: Any) -> tuple[str, tuple[Any, ...] | None]:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(tp)[0])
    if origin is typing.Literal:
        args = typing.get_args(tp)
        return type(args[0]).__name__, args
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "str", tuple(m.value for m in tp)
    if origin in (tuple, list):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        inner = ",".join(_type_name(a)[0] for a in args)
        return f"{origin.__name__}[{inner}]", None
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        names = [_type_name(a)[0] for a in args]
        optional = "?" if len(args) < len(typing.get_args(tp)) else ""
        return "|".join(names) + optional, None
    return getattr(tp, "__name__", str(tp)), None


def describe_params(model: type[BaseModel]) -> list[ParamInfo]:
    """``ParamInfo`` for each field of a pydantic params model, in declaration order."""
    out = []
    for name, f in model.model_fields.items():
        tname, choices = _type_name(f.annotation)
        lo = hi = None
        for m in f.metadata:
            if isinstance(m, (at.Ge, at.Gt)):
                lo = getattr(m, "ge", None) if isinstance(m, at.Ge) else m.gt
            if isinstance(m, (at.Le, at.Lt)):
                hi = getattr(m, "le", None) if isinstance(m, at.Le) else m.lt
            if isinstance(m, at.Interval):
                lo = m.ge if m.ge is not None else m.gt
                hi = m.le if m.le is not None else m.lt
        required = f.default is PydanticUndefined and f.default_factory is None
        default = None if required else f.get_default(call_default_factory=True)
        if isinstance(default, enum.Enum):
            default = default.value
        out.append(ParamInfo(name, tname, default, lo, hi, choices, f.description or "", required))
    return out
