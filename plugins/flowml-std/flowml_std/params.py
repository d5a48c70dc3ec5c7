"""Param field types shared by several node types."""

from __future__ import annotations

from typing import Annotated

from flowml import Field

Pixels = Annotated[int, Field(ge=1, le=16384)]
Size = tuple[Pixels, Pixels]
"""``[width, height]`` in pixels (a YAML list of two integers)."""
