"""A JSON Schema (draft 2020-12) of graph files, so that editors autocomplete and check them.

The top level comes from ``GraphSpec``; each node gets, through an ``if``/``then`` on its
``type``, that type's params schema and its input port names. With the VS Code YAML extension,
write the schema to a file (``flowml schema > flowml.schema.json``) and start the graph file with::

    # yaml-language-server: $schema=flowml.schema.json
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ..ports import Ports
from .live import allow_expressions_in_schema
from .resolved import TypeInfo
from .spec import NODE_ID_PATTERN, GraphSpec

__all__ = ["graph_json_schema", "TypeCatalog"]

DRAFT = "https://json-schema.org/draft/2020-12/schema"
_ID = NODE_ID_PATTERN.strip("^$")
_REFERENCE = {"type": "string", "pattern": f"^{_ID}/[^/]+$"}


class TypeCatalog(Protocol):
    """What the schema needs of the registry (``plugins.Registry`` fits): every type by name."""

    @property
    def types(self) -> Mapping[str, TypeInfo]: ...


def graph_json_schema(registry: TypeCatalog) -> dict[str, Any]:
    """The JSON Schema of graph files whose nodes are the types in ``registry``."""
    schema = GraphSpec.model_json_schema()
    defs: dict[str, Any] = schema["$defs"]
    types = sorted(registry.types.values(), key=lambda t: t.name)
    node = defs["NodeSpec"]
    if types:
        node["properties"]["type"]["anyOf"] = [_type_choice(t) for t in types]
        node["allOf"] = [_type_rule(t, defs) for t in types]
    schema["properties"]["nodes"]["propertyNames"] = {
        "pattern": NODE_ID_PATTERN, "description": "node id: letters, digits, '_' and '-'"}
    return {"$schema": DRAFT, "title": "flowml graph", **schema}


def _type_choice(info: TypeInfo) -> dict[str, Any]:
    return {"const": info.name, "description": _describe(info)}


def _describe(info: TypeInfo) -> str:
    import inspect

    text = inspect.getdoc(info.cls) if info.cls.__doc__ else ""  # the first paragraph, whole
    doc = " ".join((text or "").strip().split("\n\n")[0].split())
    return f"{doc} (plugin {info.plugin})" if doc else f"plugin {info.plugin}"


def _type_rule(info: TypeInfo, defs: dict[str, Any]) -> dict[str, Any]:
    """``if type == name then params and inputs follow that type``."""
    then: dict[str, Any] = {"properties": {"params": _params_ref(info, defs)}}
    inputs = _inputs_schema(info)
    if inputs is not None:
        then["properties"]["inputs"] = inputs
        if inputs.get("required"):
            then["required"] = ["inputs"]
    return {"if": {"properties": {"type": {"const": info.name}}, "required": ["type"]},
            "then": then}


def _params_ref(info: TypeInfo, defs: dict[str, Any]) -> dict[str, Any]:
    """Put the type's params schema (and its own ``$defs``) in ``defs``; return a ``$ref``."""
    prefix = f"{info.name}."
    try:
        params = info.cls.Params.model_json_schema(ref_template=f"#/$defs/{prefix}{{model}}")
    except Exception:  # a field with no JSON form: say what we can
        return {"type": "object", "description": f"params of {info.name}"}
    for name, sub in params.pop("$defs", {}).items():
        defs[prefix + name] = sub
    allow_expressions_in_schema(params, info.cls.Params)  # a param may be {expr: "..."}
    params["title"] = f"{info.name} params"
    params.setdefault("description", f"params of {info.name}")
    defs[prefix + "params"] = params
    return {"$ref": f"#/$defs/{prefix}params"}


def _inputs_schema(info: TypeInfo) -> dict[str, Any] | None:
    """The inputs of the type with default params; None if those cannot be built. Ports that
    depend on params are listed but do not close the set."""
    try:
        ports: Ports = info.cls.ports(info.cls.Params())
    except Exception:
        return None
    fixed = ports == Ports(tuple(info.cls.inputs), tuple(info.cls.outputs))
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {p.name: {**_REFERENCE, "description": _port_doc(p)} for p in ports.inputs},
        "additionalProperties": False if fixed else _REFERENCE,
    }
    required = [p.name for p in ports.inputs if not p.optional]
    if fixed and required:
        schema["required"] = required
    return schema


def _port_doc(port: Any) -> str:
    text = f"{port.type} input" + (", optional" if port.optional else "")
    return f"{text}: {port.doc}" if port.doc else text
