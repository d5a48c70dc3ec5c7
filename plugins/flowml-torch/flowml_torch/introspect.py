"""What a loaded model takes: its arguments, and the attributes that can be set on it.

BGMv2's TorchScript files are steered at run time through plain attributes of the top-level
module (``model.backbone_scale = 0.25``, ``model.refine_mode = "sampling"``); ``torch.model``
exposes them as the ``attributes`` param, checked here against what the module really has.
"""

from __future__ import annotations

import inspect
from typing import Any, Union

from flowml.lazy import lazy_import
torch = lazy_import("torch")

from flowml import NodeError

Scalar = Union[bool, int, float, str]
_SCALARS = (bool, int, float, str)


def arguments(model: Any) -> list[tuple[str, bool]] | None:
    """``[(name, required), ...]`` of the model's forward arguments (``self`` left out), or None
    when they cannot be read."""
    if isinstance(model, torch.jit.ScriptModule):
        try:
            schema = model.forward.schema
        except Exception:
            return None
        return [(a.name, not a.has_default_value()) for a in schema.arguments[1:]]
    try:
        sig = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return None
    params = [p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind == p.VAR_POSITIONAL for p in sig.parameters.values()):
        return None
    return [(p.name, p.default is p.empty) for p in params]


def describe_arguments(args: list[tuple[str, bool]]) -> str:
    return "(" + ", ".join(n if req else f"{n}=..." for n, req in args) + ")"


def settable(model: Any) -> dict[str, Scalar]:
    """The top-level attributes of a TorchScript module that hold a bool, int, float or str
    (``training`` and private names left out), with their current values. Empty for others."""
    if not isinstance(model, torch.jit.ScriptModule):
        return {}
    try:
        named = torch._C._jit_debug_module_iterators(model._c)["named_attributes"]
    except Exception:  # a private API: should it go, only the check of unknown names is lost
        return {}
    return {name: value for name, value in named
            if isinstance(value, _SCALARS) and name != "training" and not name.startswith("_")}


def apply_attributes(model: Any, wanted: dict[str, Scalar], shown_as: str) -> None:
    """Set ``wanted`` on ``model``'s top level, converting ints to floats where the attribute is
    a float. Raises NodeError naming unknown attributes (listing the settable ones) or a value
    of the wrong type; nothing is set then."""
    if not wanted:
        return
    if not isinstance(model, torch.jit.ScriptModule):
        raise NodeError(f"attributes {sorted(wanted)}: model {shown_as} is a torch.export program, "
                        "whose attributes were fixed when it was exported; set them before exporting, "
                        "or use a TorchScript (.pt) file")
    have = settable(model)
    known = set(have) if have else {n for n in wanted if model._c.hasattr(n)}
    unknown = sorted(set(wanted) - known)
    if unknown:
        listing = ", ".join(f"{k}={v!r}" for k, v in sorted(have.items())) or "none"
        raise NodeError(f"model {shown_as} has no settable attribute {', '.join(map(repr, unknown))}; "
                        f"its settable attributes are: {listing}")
    values = {name: _coerce(name, value, have.get(name, getattr(model, name)), shown_as)
              for name, value in wanted.items()}
    for name, value in values.items():
        setattr(model, name, value)


def _coerce(name: str, value: Scalar, current: Any, shown_as: str) -> Scalar:
    kind = type(current)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if type(value) is not kind:
        raise NodeError(f"attribute {name!r} of model {shown_as} is a {kind.__name__} "
                        f"(now {current!r}); got {value!r}")
    return value
