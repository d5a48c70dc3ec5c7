"""Errors in graph files: each names the file, line and column, and says what to do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, order=True)
class GraphError:
    """One problem in a graph file. ``line`` and ``col`` are 1-based (0 when unknown)."""

    path: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: error: {self.message}"


@dataclass(frozen=True, order=True)
class GraphNote:
    """A non-fatal remark on a valid graph (e.g. "needs a GPU, and this machine has none"):
    printed by ``flowml validate``, which still succeeds. Positions as in ``GraphError``."""

    path: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: note: {self.message}"


class GraphErrors(Exception):
    """All the problems found in one graph file, in file order."""

    def __init__(self, errors: list[GraphError]):
        self.errors = sorted(errors)
        super().__init__("\n".join(map(str, self.errors)))

    @classmethod
    def single(cls, path: str | Path, message: str, line: int = 0, col: int = 0) -> "GraphErrors":
        return cls([GraphError(str(path), line, col, message)])
