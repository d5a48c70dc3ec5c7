"""A validated graph: what the runtime builds from. Produced by ``validate.load_graph``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

from ..ports import Ports
from .errors import GraphNote
from .spec import GraphSpec, NodeSpec, RateClock


class TypeInfo(Protocol):
    """What validation needs of a registered node type (``plugins.NodeType`` fits)."""

    name: str
    cls: Any  # a flowml.node.Node subclass: .Params (pydantic model), .ports(params), .live
    plugin: str


class PluginFailureInfo(Protocol):
    plugin: str
    error: str


class TypeLookup(Protocol):
    """What validation needs of the registry (``plugins.Registry`` fits)."""

    failures: Sequence[PluginFailureInfo]

    def get(self, name: str) -> TypeInfo | None: ...
    def suggest(self, name: str, n: int = 3) -> list[str]: ...


@dataclass(frozen=True)
class Source:
    """Where an input comes from: ``node/port``."""

    node: str
    port: str

    def __str__(self) -> str:
        return f"{self.node}/{self.port}"


@dataclass
class ResolvedNode:
    """One node, its type resolved and params validated."""

    id: str
    spec: NodeSpec
    type: TypeInfo
    params: Any  # an instance of type.cls.Params
    ports: Ports
    inputs: dict[str, Source] = field(default_factory=dict)  # input port -> source
    expressions: dict[str, str] = field(default_factory=dict)  # param -> expression text (live)
    line: int = 0   # where the node's id is written in the graph file (1-based; 0: unknown)
    col: int = 0

    @property
    def is_source(self) -> bool:
        return not self.ports.inputs


@dataclass
class ValidatedGraph:
    """A graph that passed every check; ``order`` is a topological order of node ids."""

    path: Path
    spec: GraphSpec
    nodes: dict[str, ResolvedNode]
    order: list[str]
    clock: str | RateClock  # a source node id, or a fixed rate
    notes: list[GraphNote] = field(default_factory=list)  # non-fatal remarks, in file order

    @property
    def directory(self) -> Path:
        return self.path.parent

    def where(self, node_id: str) -> str:
        """``file:line:col`` of a node, for errors at run time (as validation gives them)."""
        n = self.nodes.get(node_id)
        return f"{self.path}:{n.line if n else 0}:{n.col if n else 0}"

    def consumers(self, node_id: str) -> list[tuple[str, str, str]]:
        """``(consumer id, its input port, our output port)`` for each edge leaving ``node_id``."""
        return [(n.id, port, src.port) for n in self.nodes.values()
                for port, src in n.inputs.items() if src.node == node_id]
