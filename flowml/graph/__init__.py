"""Graph files: YAML -> validated graph, with errors that name file, line and column.

This package imports no torch and nothing of flowml but ``flowml.ports``, so that
``flowml validate`` stays fast. ``load_graph`` is the entry point::

    from flowml.graph import load_graph, GraphErrors

    try:
        graph = load_graph("graph.yaml", registry)
    except GraphErrors as errors:
        print(errors)          # one "graph.yaml:3:5: error: ..." line per problem
"""

from .errors import GraphError, GraphErrors, GraphNote
from .resolved import ResolvedNode, Source, TypeLookup, ValidatedGraph
from .schema import graph_json_schema
from .spec import NODE_ID_PATTERN, GraphSpec, NodeSpec, OscSpec, RateClock
from .validate import load_graph

__all__ = [
    "load_graph", "graph_json_schema", "GraphError", "GraphErrors", "GraphNote", "ValidatedGraph",
    "ResolvedNode", "Source", "TypeLookup", "GraphSpec", "NodeSpec", "OscSpec", "RateClock",
    "NODE_ID_PATTERN",
]
