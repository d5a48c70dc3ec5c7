"""One rule set for graph files: what ``flowml validate`` accepts is what ``flowml schema`` allows.

A graph file is JSON-shaped data (YAML read as mappings, lists, strings, numbers, booleans
and null), and its JSON Schema comes from the same pydantic models that check it. So the
models check it as JSON, strictly: no string is taken for a number or a boolean
(``frames: "3"``, ``hold: "no"``), no number for a boolean (``cuda_graph: 1``), no boolean
for a number (``at_frame: false``), exactly as the schema an editor uses refuses them. What
JSON cannot write is still read as its value: a list for a tuple, a string for a path or a
choice.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["check_model"]

M = TypeVar("M", bound=BaseModel)


def check_model(model: type[M], data: Any) -> M:
    """``data`` validated by ``model`` as strict JSON; raises pydantic's ``ValidationError``."""
    return model.model_validate_json(json.dumps(data), strict=True)
