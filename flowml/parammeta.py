"""Param metadata: what a node's param may do while the graph runs.

Every param of a node's ``Params`` model carries a ``ParamMeta``; a plugin author sets it with
``flowml.Field``, which is pydantic's ``Field`` with three more keywords::

    class Params(flowml.Params):
        path: str = Field(description="the model file", file="input", rebuild=True)
        device: str = Field("cpu", live=False)
        gain: float = Field(1.0, ge=0)           # live, applied through on_params
        edits: list[dict] = Field([], in_place=True, parts=("value",))

- ``live`` (default True): the param may change while the graph runs, from OSC, OSCQuery,
  an expression, smoothing, a preset recall. ``live=False``: it changes only in the graph file;
  the store refuses a live change ("changes only in the graph file; it rebuilds the node"),
  and an edit of the graph file rebuilds the node.
- ``rebuild`` (default False): a change (live or in the graph file) builds the node anew (a
  new instance, ``setup`` again, the old one torn down) instead of calling ``on_params``; for
  params that ``setup`` reads, like a model's ``path``.
- ``file``: ``"input"`` for a file the node reads. ``--watch`` polls it and rebuilds the nodes
  that read it when it changes. A changed *value* of an input-file param also rebuilds the node
  (the node must read the other file, and ``setup`` is where it reads it), so ``file="input"``
  implies ``rebuild``. ``"output"`` for a file (or a file name pattern) the node writes: never
  watched, and a value that comes live must resolve inside the folder the graph file set for it
  (see ``flowml.control.paths``); values written in the graph file itself are trusted.

- ``in_place`` (default False): ``on_params`` applies a change by writing, in place, into
  tensors the node's work reads (a weight edit copied into the weight's own storage); it does
  not change what the node computes, only the numbers it computes with. A node captured as a
  CUDA graph (``cuda_graph: true``) keeps replaying the same graph across such changes: the
  capture leaves in-place params out of its key and its settling (``flowml.gpu.capture``).
  ``on_params`` runs with the node's CUDA stream current, so its writes queue after the frames
  before and ahead of the next one. A param with ``in_place`` must not need a rebuild.
- ``parts``: for a list of mappings (``edits: [{name, op, value}]``), the keys of each item
  that are live params of their own, at ``<prefix>/<node>/<param>/<i>/<key>`` (OSC, OSCQuery,
  presets), and that may follow an expression in the graph file
  (``value: {expr: "sin(t)"}``). A change of a part is a change of the whole param.

So ``rebuild_fields`` is every field with ``rebuild=True``, ``live=False`` or ``file="input"``.
A plain pydantic ``Field`` (or no ``Field``) gets the defaults: live, ``on_params``, no file.
The metadata is kept in the field's ``json_schema_extra`` under ``"x-flowml"`` (only what
differs from the defaults), so ``flowml schema`` shows it; ``Annotated[str, ParamMeta(...)]``
works too. This module imports pydantic only (no torch).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Literal

import pydantic
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

__all__ = ["FileRole", "ParamMeta", "Field", "param_meta", "rebuild_fields", "file_fields",
           "in_place_fields", "SCHEMA_KEY"]

FileRole = Literal["input", "output"]
SCHEMA_KEY = "x-flowml"
_ROLES = ("input", "output")


@dataclass(frozen=True)
class ParamMeta:
    """What a param may do while the graph runs (see the module docstring)."""

    live: bool = True
    """May change while running (OSC, expressions, presets); False: only in the graph file
    (a change there rebuilds the node)."""
    rebuild: bool = False
    """A change rebuilds the node (new instance, setup) instead of calling ``on_params``."""
    file: FileRole | None = None
    """``"input"``: a file the node reads (watched by ``--watch``; a change rebuilds the node);
    ``"output"``: a file it writes (never watched; live values confined to the graph's folder)."""
    in_place: bool = False
    """Applied by ``on_params`` in place to tensors the node's (captured) work reads; does not
    change the work itself, so a captured CUDA graph stays valid and is not captured again."""
    parts: tuple[str, ...] = ()
    """For a list of mappings: the item keys that are live params of their own
    (``<param>/<i>/<key>``), each of which may follow an expression."""

    def __post_init__(self) -> None:
        if self.file is not None and self.file not in _ROLES:
            raise ValueError(f"file must be 'input', 'output' or None, got {self.file!r}")
        if self.in_place and self.needs_rebuild:
            raise ValueError("in_place=True is for params applied by on_params; it cannot be "
                             "combined with rebuild=True, live=False or file='input'")
        object.__setattr__(self, "parts", tuple(self.parts))

    @property
    def needs_rebuild(self) -> bool:
        """Does a change of this param build the node anew?"""
        return self.rebuild or not self.live or self.file == "input"

    def as_schema(self) -> dict[str, Any]:
        """The entries that differ from the defaults, as stored under ``x-flowml``."""
        out: dict[str, Any] = {}
        if not self.live:
            out["live"] = False
        if self.rebuild:
            out["rebuild"] = True
        if self.file is not None:
            out["file"] = self.file
        if self.in_place:
            out["in_place"] = True
        if self.parts:
            out["parts"] = list(self.parts)
        return out

    def tag(self) -> str:
        """A short tag for listings: ``in-file``, ``out-file``, ``rebuild``, ``not live``."""
        parts = []
        if self.file:
            parts.append(f"{'in' if self.file == 'input' else 'out'}-file")
        if not self.live:
            parts.append("not live")
        elif self.rebuild and self.file != "input":  # an input file rebuilds anyway
            parts.append("rebuild")
        if self.in_place:
            parts.append("in-place")
        return ",".join(parts)


DEFAULT = ParamMeta()


def Field(default: Any = PydanticUndefined, *, live: bool = True, rebuild: bool = False,
          file: FileRole | None = None, in_place: bool = False, parts: tuple[str, ...] = (),
          **kwargs: Any) -> Any:
    """pydantic's ``Field`` with flowml's param metadata (``live``, ``rebuild``, ``file``,
    ``in_place``, ``parts``)."""
    meta = ParamMeta(live=bool(live), rebuild=bool(rebuild), file=file, in_place=bool(in_place),
                     parts=tuple(parts))
    extra = kwargs.pop("json_schema_extra", None)
    entries = meta.as_schema()
    if entries:
        if extra is None:
            extra = {SCHEMA_KEY: entries}
        elif isinstance(extra, dict):
            extra = {**extra, SCHEMA_KEY: entries}
        else:  # a callable: keep it, add ours after it
            user = extra

            def extra(schema: dict[str, Any], *args: Any) -> None:
                user(schema, *args)
                schema[SCHEMA_KEY] = entries
    return pydantic.Field(default, json_schema_extra=extra, **kwargs)


def _meta_of(field: FieldInfo) -> ParamMeta:
    for m in field.metadata:
        if isinstance(m, ParamMeta):
            return m
    extra = field.json_schema_extra
    if isinstance(extra, dict):
        entries = extra.get(SCHEMA_KEY)
        if isinstance(entries, dict):
            return _from_entries(entries)
    elif callable(extra):  # a callable json_schema_extra (ours wraps the user's)
        schema: dict[str, Any] = {}
        try:
            extra(schema)
        except Exception:
            return DEFAULT
        entries = schema.get(SCHEMA_KEY)
        if isinstance(entries, dict):
            return _from_entries(entries)
    return DEFAULT


def _from_entries(entries: dict[str, Any]) -> ParamMeta:
    return ParamMeta(live=bool(entries.get("live", True)), rebuild=bool(entries.get("rebuild", False)),
                     file=entries.get("file"), in_place=bool(entries.get("in_place", False)),
                     parts=tuple(entries.get("parts", ())))


def param_meta(model: type[BaseModel], name: str) -> ParamMeta:
    """The metadata of param ``name`` of a params model (defaults for a plain field); raises
    KeyError for a name the model does not have."""
    fields = model.model_fields
    if name not in fields:
        raise KeyError(f"{model.__name__} has no param {name!r} (params: {', '.join(fields)})")
    return _meta_of(fields[name])


_REBUILD: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def rebuild_fields(model: type[BaseModel]) -> frozenset[str]:
    """The params whose change builds the node anew: ``rebuild=True``, ``live=False`` or
    ``file="input"``. Kept per model class (the scheduler asks at every param change; a
    class's fields do not change once it is made)."""
    fields = model.model_fields
    kept = _REBUILD.get(model)
    if kept is not None and kept[0] is fields:
        return kept[1]
    names = frozenset(n for n, f in fields.items() if _meta_of(f).needs_rebuild)
    _REBUILD[model] = (fields, names)
    return names


def file_fields(model: type[BaseModel], role: FileRole) -> tuple[str, ...]:
    """The params that name a file of ``role`` (``"input"`` or ``"output"``), in order."""
    if role not in _ROLES:
        raise ValueError(f"role must be 'input' or 'output', got {role!r}")
    return tuple(n for n, f in model.model_fields.items() if _meta_of(f).file == role)


def live_fields(model: type[BaseModel]) -> frozenset[str]:
    """The params that may change while the graph runs."""
    return frozenset(n for n, f in model.model_fields.items() if _meta_of(f).live)


def in_place_fields(model: type[BaseModel]) -> frozenset[str]:
    """The params that ``on_params`` applies in place to tensors the node's work reads
    (``in_place=True``): a captured CUDA graph of the node stays valid when they change."""
    return frozenset(n for n, f in model.model_fields.items() if _meta_of(f).in_place)
