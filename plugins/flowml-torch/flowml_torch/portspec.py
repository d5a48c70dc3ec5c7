"""Ports named in params: ``["image", "mask:tensor", "count:scalar"]``.

A name may carry a port type after a colon (one of ``flowml.ports.BUILTIN_TYPES``). Without
one, a port called ``image`` is an ``IMAGE`` and any other a ``TENSOR``.
"""

from __future__ import annotations

import keyword

from flowml import IMAGE, TENSOR, PortType
from flowml.ports import BUILTIN_TYPES


def parse_port(spec: str) -> tuple[str, PortType]:
    """``"mask:tensor"`` -> ``("mask", TENSOR)``; raises ``ValueError`` saying what to write."""
    name, _, type_name = spec.partition(":")
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"port name {name!r} must be a Python identifier, e.g. 'image' or 'mask'")
    if not type_name:
        return name, IMAGE if name == "image" else TENSOR
    port_type = BUILTIN_TYPES.get(type_name)
    if port_type is None:
        raise ValueError(f"port {spec!r}: unknown type {type_name!r}; use one of {sorted(BUILTIN_TYPES)}")
    return name, port_type


def check_port_list(specs: list[str]) -> list[str]:
    """A pydantic field validator: every spec parses, names are unique, at least one."""
    names = [parse_port(s)[0] for s in specs]
    if not names:
        raise ValueError("name at least one port")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"port names must be unique; repeated: {duplicates}")
    return specs
