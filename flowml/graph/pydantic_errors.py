"""Pydantic validation errors, placed in the document they came from.

A pydantic error's ``loc`` mixes keys of the data with names of union members
(``("clock", "RateClock", "fps")``). ``issues()`` walks the loc against the data to find the
path of the offending value in the file, and folds the errors of one union into the ones
that matter. The helpers below read field names and descriptions off a model by path, for
"did you mean" hints and "missing" messages.
"""

from __future__ import annotations

import difflib
import types
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from .yaml_source import YamlPath

__all__ = ["Issue", "issues", "model_at", "field_names", "field_description", "show", "dotted"]

MISSING = "missing"
EXTRA = "extra_forbidden"


@dataclass(frozen=True)
class Issue:
    """One problem found by pydantic, at ``path`` in the validated data.

    For ``missing`` the path ends with the absent key; for ``extra_forbidden`` with the
    unknown key. ``at_key`` says whether the key (rather than the value) is to blame.
    """

    path: YamlPath
    kind: str
    message: str
    value: Any = None
    at_key: bool = False


def issues(exc: ValidationError, data: Any) -> list[Issue]:
    """The errors of ``exc`` (raised validating ``data``), placed and de-duplicated."""
    placed: list[tuple[Issue, YamlPath | None]] = []
    for err in exc.errors():
        path, union_at, key_error = _place(err["loc"], data, err["type"])
        at_key = key_error or err["type"] in (MISSING, EXTRA)
        placed.append((Issue(path, err["type"], _message(err), err.get("input"), at_key), union_at))
    return _drop_misspelt(_fold_unions(placed, data))


def _place(loc: tuple[Any, ...], data: Any, kind: str) -> tuple[YamlPath, YamlPath | None, bool]:
    """``(path in data, path where a union member name was skipped, is a dict-key error)``."""
    path: list[str | int] = []
    union_at: YamlPath | None = None
    current = data
    for i, part in enumerate(loc):
        if part == "[key]":
            return tuple(path), union_at, True
        if _holds(current, part):
            current = current[part]
        elif kind == MISSING and i == len(loc) - 1:
            current = None
        else:  # the name of a union member, not a key of the data
            union_at = tuple(path) if union_at is None else union_at
            continue
        path.append(part)
    return tuple(path), union_at, False


def _holds(container: Any, part: Any) -> bool:
    """Whether ``part`` is a key of the mapping or an index of the list ``container``."""
    if isinstance(container, dict):
        return part in container
    return isinstance(container, list) and isinstance(part, int) and 0 <= part < len(container)


def _message(err: Any) -> str:
    if err["type"] in ("model_type", "model_attributes_type", "dict_type"):
        return "Input should be a mapping"
    return str(err["msg"])


def _fold_unions(placed: list[tuple[Issue, YamlPath | None]], data: Any) -> list[Issue]:
    """One report per failed union: the complaints from inside a mapping if a member looked
    inside it (a model member given a mapping), else one "should be A or B" message."""
    result: list[Issue] = []
    groups: dict[YamlPath, list[Issue]] = {}
    for issue, union_at in placed:
        if union_at is None:
            result.append(issue)
        else:
            groups.setdefault(union_at, []).append(issue)
    for at, group in groups.items():
        deeper = [i for i in group if len(i.path) > len(at)]
        result.extend(deeper or [_either(at, group, data)])
    return result


def _drop_misspelt(found: list[Issue]) -> list[Issue]:
    """Leave out "missing 'nodes'" when "unknown key 'nodez'" already says it."""
    unknown = {(i.path[:-1], str(i.path[-1])) for i in found if i.kind == EXTRA and i.path}

    def misspelt(issue: Issue) -> bool:
        parent, name = issue.path[:-1], str(issue.path[-1])
        return any(p == parent and difflib.get_close_matches(u, [name], cutoff=0.6)
                   for p, u in unknown)

    return [i for i in found if not (i.kind == MISSING and i.path and misspelt(i))]


def _either(at: YamlPath, group: list[Issue], data: Any) -> Issue:
    """One issue for a union no member of which took the value. Members that took its type
    but not its value (a number out of range) say more than those of another type."""
    fitting = [i for i in group if not i.kind.endswith(("_type", "_parsing"))]
    wants = [i.message.removeprefix("Input should be ").split(", unable to")[0]
             for i in fitting or group]
    message = "Input should be " + " or ".join(dict.fromkeys(wants))
    return Issue(at, "union", message, _value_at(data, at))


def _value_at(data: Any, path: YamlPath) -> Any:
    for part in path:
        data = data[part]
    return data


# -- reading a model by path -------------------------------------------------------------------

def _unwrap(annotation: Any) -> list[Any]:
    """The alternatives of an annotation: ``A | B | None`` -> ``[A, B]``; strips Annotated."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [alt for arg in get_args(annotation) for alt in _unwrap(arg)
                if alt is not type(None)]
    return [annotation]


def _step(annotation: Any, part: str | int) -> Any:
    """The annotation of ``part`` inside a value annotated ``annotation`` (None: unknown)."""
    for alt in _unwrap(annotation):
        if isinstance(alt, type) and issubclass(alt, BaseModel):
            field = alt.model_fields.get(str(part))
            if field is not None:
                return field.annotation
        elif get_origin(alt) is dict and len(get_args(alt)) == 2:
            return get_args(alt)[1]
        elif get_origin(alt) in (list, tuple, set, frozenset) and get_args(alt):
            args = get_args(alt)
            if get_origin(alt) is tuple and isinstance(part, int) and part < len(args) \
                    and args[-1] is not Ellipsis:
                return args[part]
            return args[0]
    return None


def model_at(model: type[BaseModel], path: YamlPath) -> type[BaseModel] | None:
    """The model that validates the mapping at ``path`` inside ``model``'s data, if any."""
    annotation: Any = model
    for part in path:
        annotation = _step(annotation, part)
    for alt in _unwrap(annotation):
        if isinstance(alt, type) and issubclass(alt, BaseModel):
            return alt
    return None


def field_names(model: type[BaseModel], path: YamlPath) -> list[str]:
    """The keys allowed in the mapping at ``path`` (empty when unknown)."""
    found = model_at(model, path)
    return list(found.model_fields) if found else []


def field_description(model: type[BaseModel], path: YamlPath) -> str | None:
    """The ``description`` of the field at ``path``, if it has one."""
    parent = model_at(model, path[:-1]) if path else None
    field = parent.model_fields.get(str(path[-1])) if parent else None
    return field.description if field else None


# -- showing values and paths ------------------------------------------------------------------

def show(value: Any, limit: int = 40) -> str:
    """A value as the user wrote it in YAML, cut to ``limit`` characters."""
    if value is None or isinstance(value, bool):
        text = {None: "null", True: "true", False: "false"}[value]
    elif isinstance(value, (dict, list)):
        try:
            text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
        except yaml.YAMLError:
            text = repr(value)
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def dotted(path: YamlPath) -> str:
    """``("osc", "port")`` -> ``osc.port``; ``("size", 1)`` -> ``size[1]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text
