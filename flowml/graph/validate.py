"""Graph file -> ``ValidatedGraph``, with every problem in the file reported at once.

The checks run in layers, each on what the previous one left standing:

1. YAML: syntax (fatal), duplicate keys and duplicate node ids;
2. shape: the ``GraphSpec`` model (unknown keys, types, ranges) and node ids;
3. nodes: type known to the registry, params valid for the type's ``Params``, ports;
4. wiring: input names, ``node/port`` references, port types, unconnected inputs;
5. graph: cycles, the clock, a topological order.

Besides errors, a node type may give non-fatal notes on a valid graph through a classmethod
``validation_notes(params, graph_dir) -> list[str]`` (e.g. "needs a CUDA GPU; this machine has
none"); they land in ``ValidatedGraph.notes``, at the node's ``type``.

A node that fails a layer is left out of the next ones, so one mistake gives one error,
not a cascade; the rest of the graph is still checked.
"""

from __future__ import annotations

import difflib
import heapq
import os
import re
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..ports import Input, Ports, ports_problem
from .errors import GraphError, GraphErrors, GraphNote
from .live import LiveParams, StartValues, check_references, check_smooth, split_expressions
from .pydantic_errors import EXTRA, MISSING, Issue, dotted, field_description, field_names, issues, show
from .rules import check_model
from .resolved import PluginFailureInfo, ResolvedNode, Source, TypeInfo, TypeLookup, ValidatedGraph
from .spec import NODE_ID_PATTERN, GraphSpec, NodeSpec, RateClock
from .yaml_compose import MAX_CHARS, Positions
from .yaml_source import Mark, YamlDocument, YamlPath, load_yaml

__all__ = ["load_graph"]

_NODE_ID = re.compile(NODE_ID_PATTERN)
_RATE_EXAMPLE = "`clock: {fps: 30}`"
Edge = tuple[str, str, str]  # (source node, consumer node, consumer's input port)


def load_graph(path: str | os.PathLike[str], registry: TypeLookup, *,
               text: str | None = None) -> ValidatedGraph:
    """Read, parse and check a graph file against the node types of ``registry``.

    ``text`` is the file's content when the caller already has it (``path`` is then only
    used in messages). Raises ``GraphErrors`` listing every problem, in file order; messages
    name ``path`` as given.
    """
    name = str(path)
    if text is None:
        text = _read(Path(path), name)
    doc = load_yaml(text, name, key_names={("nodes",): "node id"})
    return _Validator(name, doc, registry).validate()


def _read(path: Path, name: str) -> str:
    """The file's text; a missing, unreadable, huge or non-UTF-8 file raises ``GraphErrors``
    (a bad byte at its line and column)."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_CHARS * 4 + 1)  # UTF-8: at most 4 bytes a character
    except FileNotFoundError:
        raise GraphErrors.single(name, "no such graph file") from None
    except IsADirectoryError:
        raise GraphErrors.single(name, "this is a folder, not a graph file") from None
    except OSError as exc:
        raise GraphErrors.single(name, f"cannot read the graph file: {exc.strerror or exc}") from None
    if len(data) > MAX_CHARS * 4:
        raise GraphErrors.single(name, f"the graph file is larger than {MAX_CHARS * 4:,} bytes "
                                 "(is this a graph file?)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = data[:exc.start].decode("utf-8-sig", errors="replace")
        at = Positions(before).at(len(before))
        binary = b"\0" in data[:8192]
        what = ("a binary file, not a graph file" if binary else "not UTF-8 text")
        raise GraphErrors.single(name, f"{what}: byte 0x{data[exc.start]:02X} cannot be read as "
                                 "UTF-8; save the file as UTF-8", at.line, at.col) from None


class _Validator:
    """The checks on one parsed file; problems accumulate in ``errors``."""

    def __init__(self, path: str, doc: YamlDocument, registry: TypeLookup):
        self.path = path
        self.data = doc.data
        self.marks = doc.marks
        self.registry = registry
        self.errors: list[GraphError] = list(doc.errors)
        self.notes: list[GraphNote] = []
        self.broken: set[str] = set()  # nodes with shape errors: they exist, but are not checked
        self.broken_params: set[str] = set()  # resolved for wiring checks only (bad params)
        self.clock_ok = True

    def validate(self) -> ValidatedGraph:
        spec = self.check_shape()
        if spec is None:
            raise GraphErrors(self.errors)
        self.spec_plugins = spec.plugins
        self.check_plugin_choices(spec)
        nodes = {i: r for i, n in spec.nodes.items() if (r := self.resolve(i, n)) is not None}
        self.check_expression_refs(spec, nodes)
        edges = self.check_wiring(spec, nodes)
        self.check_upstream(nodes)
        self.check_notes(nodes)
        cyclic = self.check_cycles(spec, edges)
        clock = self.check_clock(spec, nodes, cyclic)
        if self.errors or clock is None:
            raise GraphErrors(self.errors)
        return ValidatedGraph(Path(self.path), spec, nodes, _topological(spec, edges), clock,
                              notes=sorted(self.notes))

    # -- reporting ------------------------------------------------------------------------
    def report(self, mark: Mark, message: str) -> None:
        self.errors.append(GraphError(self.path, mark.line, mark.col, message))

    def at_key(self, *path: str | int) -> Mark:
        return self.marks.key(path)

    def at_value(self, *path: str | int) -> Mark:
        return self.marks.value(path)

    def report_issue(self, base: YamlPath, issue: Issue, message: str) -> None:
        """Report at the key when it is to blame or has no value, else at the value."""
        path = base + issue.path
        on_key = issue.at_key or issue.value is None
        self.report(self.marks.key(path) if on_key else self.marks.value(path), message)

    # -- 2. shape -------------------------------------------------------------------------
    def check_shape(self) -> GraphSpec | None:
        """The top-level model; returns a spec of the parts that passed (None: nothing did)."""
        if not isinstance(self.data, dict):
            self.report(self.at_value(), _not_a_graph(self.data))
            return None
        bad_ids = self.check_node_ids(self.data.get("nodes"))
        try:
            spec = check_model(GraphSpec, self.data)
        except ValidationError as exc:
            found = issues(exc, self.data)
            for issue in found:
                self.report_issue((), issue, _shape_message(issue))
            return self.salvage(found, bad_ids)
        return self.salvage([], bad_ids) if bad_ids else spec

    def check_node_ids(self, nodes: Any) -> set[str]:
        bad = {i for i in nodes if not _NODE_ID.fullmatch(i)} if isinstance(nodes, dict) else set()
        for node_id in bad:
            self.report(self.at_key("nodes", node_id), _bad_node_id(node_id))
        return bad

    def salvage(self, found: list[Issue], bad_ids: set[str]) -> GraphSpec | None:
        """A spec of what passed (defaults for the failed top-level keys, failed nodes left
        out and remembered in ``broken``) so the rest can be checked; None if no node passed."""
        in_nodes = [i.path for i in found if i.path[:1] == ("nodes",) and len(i.path) > 1]
        self.broken = bad_ids | {str(path[1]) for path in in_nodes}
        bad_keys = {i.path[0] for i in found if i.path and (i.path[0] != "nodes" or len(i.path) == 1)}
        self.clock_ok = "clock" not in bad_keys
        nodes = self.data.get("nodes") if "nodes" not in bad_keys else None
        kept = {k: v for k, v in nodes.items() if k not in self.broken} if isinstance(nodes, dict) else {}
        if not kept:
            return None
        data = {k: v for k, v in self.data.items() if k not in bad_keys}
        try:
            return check_model(GraphSpec, {**data, "flowml": 1, "nodes": kept})
        except ValidationError:  # cannot happen: every failing part was dropped
            return None

    # -- 3. nodes -------------------------------------------------------------------------
    def resolve(self, node_id: str, node: NodeSpec) -> ResolvedNode | None:
        """The node's type, params and ports, or None (reported) if any of them fails."""
        info = self.node_type(node_id, node)
        if info is None:
            return None
        missing = _unavailable(info)
        if missing:
            self.report(self.at_value("nodes", node_id, "type"),
                        f"node {node_id!r}: {info.name} cannot run here: {missing}")
            return None
        live, smooth_ok = self.check_live(node_id, info, node)
        params = None if live.problems else self.check_params(node_id, info, live.values, live)
        if params is not None:
            ports = self.node_ports(node_id, info, params)
        else:  # bad params: ports that do not depend on them still get their wiring checked
            ports = _fixed_ports(info.cls)
        if ports is None:
            return None
        if params is None or not smooth_ok:
            self.broken_params.add(node_id)
        mark = self.marks.key(("nodes", node_id))
        return ResolvedNode(node_id, node, info, params, ports, expressions=live.expressions,
                            line=mark.line, col=mark.col)

    def node_type(self, node_id: str, node: NodeSpec) -> TypeInfo | None:
        """The registered type the node names, from the plugin the graph chooses where
        several plugins register that name (else reported)."""
        owners = _owners(self.registry, node.type)
        if not owners:
            self.report(self.at_value("nodes", node_id, "type"), self.unknown_type(node_id, node.type))
            return None
        chosen = node.plugin or self.spec_plugins.get(node.type) or _configured(self.registry, node.type)
        if chosen is None and len(owners) > 1:
            conflict = getattr(self.registry, "conflict", None)
            message = conflict(node.type) if conflict else f"node type {node.type!r} is ambiguous"
            self.report(self.at_value("nodes", node_id, "type"), f"node {node_id!r}: {message}")
            return None
        if chosen is not None and chosen not in owners:
            if not node.plugin and node.type in self.spec_plugins:
                return None  # reported once, at the graph's `plugins:` entry
            where = ("nodes", node_id, "plugin") if node.plugin else ("nodes", node_id, "type")
            self.report(self.at_value(*where), f"node {node_id!r}: plugin {chosen!r} does not register "
                        f"{node.type!r}; it comes from {_either(owners)}")
            return None
        return self.registry.get(node.type, chosen) if chosen else self.registry.get(node.type)

    def check_plugin_choices(self, spec: GraphSpec) -> None:
        """Each ``plugins: {type: plugin}`` entry names a registered type and one of its plugins."""
        for name, plugin in spec.plugins.items():
            owners = _owners(self.registry, name)
            if not owners:
                close = _closest(name, self.registry.suggest(name))
                hint = f"; did you mean {_either(close)}?" if close else ""
                self.report(self.at_key("plugins", name), f"plugins: unknown node type {name!r}{hint}")
            elif plugin not in owners:
                self.report(self.at_value("plugins", name), f"plugins: plugin {plugin!r} does not "
                            f"register {name!r}; it comes from {_either(owners)}")

    def check_live(self, node_id: str, info: TypeInfo, node: NodeSpec) -> tuple[LiveParams, bool]:
        """Expression-valued params (parsed, replaced by their value at t=0; problems in
        ``live.problems``) and the names in ``smooth:`` (False if any is wrong); all reported.
        See ``live.py``."""
        model: type[BaseModel] = info.cls.Params
        live = split_expressions(node.params, model, StartValues(self.data.get("nodes"), self.registry))
        smooth = check_smooth(node.smooth, model, info.name)
        problems = [(("params", *rel), m) for rel, m in live.problems]
        problems += [(("smooth", *rel), m) for rel, m in smooth]
        for rel, message in problems:
            self.report(self.at_value("nodes", node_id, *rel), f"node {node_id!r}: {message}")
        return live, not smooth

    def unknown_type(self, node_id: str, type_name: str) -> str:
        message = f"node {node_id!r}: unknown node type {type_name!r}"
        close = _closest(type_name, self.registry.suggest(type_name))
        if close:
            message += f"; did you mean {_either(close)}?"
        if self.registry.failures:
            return message + " " + _failed_plugins(self.registry.failures)
        return message if close else message + "; run `flowml nodes` to list the installed types"

    def check_params(self, node_id: str, info: TypeInfo, params: dict[str, Any],
                     live: LiveParams | None = None) -> Any | None:
        model: type[BaseModel] = info.cls.Params
        base: YamlPath = ("nodes", node_id, "params")
        try:
            return check_model(model, params)
        except ValidationError as exc:
            for issue in issues(exc, params):
                message = _param_message(issue, model, info.name)
                if live is not None and issue.path:  # say so when the value came from an expression
                    message += live.note(str(issue.path[0]))
                self.report_issue(base, issue, f"node {node_id!r}: {message}")
        except Exception as exc:  # a bug in the plugin's own validators
            self.report(self.marks.key(base), f"node {node_id!r}: checking the params of {info.name} "
                        f"failed: {type(exc).__name__}: {exc} (a bug in plugin {info.plugin!r})")
        return None

    def node_ports(self, node_id: str, info: TypeInfo, params: Any) -> Ports | None:
        try:
            ports = info.cls.ports(params)
        except Exception as exc:  # ports computed from params: the params may not make sense
            self.report(self.at_key("nodes", node_id, "params"), f"node {node_id!r}: {info.name} "
                        f"cannot make its ports from these params: {type(exc).__name__}: {exc}")
            return None
        problem = ports_problem(info.cls, ports)
        if problem:
            self.report(self.at_value("nodes", node_id, "type"),
                        f"node {node_id!r}: {problem} (a bug in plugin {info.plugin!r})")
            return None
        return ports

    def check_expression_refs(self, spec: GraphSpec, nodes: dict[str, ResolvedNode]) -> None:
        """Each ``node.name`` that an expression reads must be a param or a scalar output."""
        for node_id, param, message in check_references(nodes, spec.nodes):
            self.report(self.at_value("nodes", node_id, "params", param, "expr"),
                        f"node {node_id!r}: {message}")

    # -- 4. wiring ------------------------------------------------------------------------
    def check_wiring(self, spec: GraphSpec, nodes: dict[str, ResolvedNode]) -> list[Edge]:
        """Check every input of every node; connect the good ones; return the graph's edges."""
        edges: list[Edge] = []
        for node_id, node in spec.nodes.items():
            own = nodes.get(node_id)
            for port, ref in node.inputs.items():
                dst = self.input_port(node_id, own, port)
                src = self.source(node_id, port, ref, spec, nodes)
                if src is None or (own is not None and dst is None):
                    continue  # no such source, or no such input: no edge
                edges.append((src.node, node_id, port))
                if own is not None and dst is not None and self.types_match(node_id, dst, src, nodes):
                    own.inputs[port] = src
            if own is not None:
                self.check_connected(own, nodes)
        return edges

    def input_port(self, node_id: str, own: ResolvedNode | None, port: str) -> Input | None:
        """The input port named ``port`` (reported if unknown); None too when ``own`` failed."""
        if own is None:
            return None
        found = own.ports.input(port)
        if found is None:
            names = [p.name for p in own.ports.inputs]
            message = f"node {node_id!r}: unknown input {port!r}"
            message += (_hint(port, names, f"inputs of {own.type.name}") if names
                        else f": {own.type.name} takes no inputs")
            self.report(self.at_key("nodes", node_id, "inputs", port), message)
        return found

    def source(self, node_id: str, port: str, ref: str, spec: GraphSpec,
               nodes: dict[str, ResolvedNode]) -> Source | None:
        """The ``node/port`` that ``ref`` names, if it parses and exists (else reported)."""
        where = self.at_value("nodes", node_id, "inputs", port)
        prefix = f"node {node_id!r}: input {port!r}: "
        src_id, slash, out = ref.partition("/")
        if not (slash and src_id and out) or "/" in out:
            self.report(where, prefix + f"{ref!r} is not of the form node/port"
                        + _ref_guess(ref, spec, nodes))
            return None
        if src_id not in spec.nodes:
            if src_id not in self.broken:
                self.report(where, prefix + f"no node {src_id!r}" + _hint(src_id, list(spec.nodes)))
            return None
        src = nodes.get(src_id)
        if src is not None and src.ports.output(out) is None:
            self.report(where, prefix + _no_output(src, out))
            return None
        return Source(src_id, out)

    def types_match(self, node_id: str, dst: Input, src: Source,
                    nodes: dict[str, ResolvedNode]) -> bool:
        producer = nodes.get(src.node)
        if producer is None:
            return False
        made = producer.ports.output(src.port)
        assert made is not None  # checked by source()
        if dst.type.accepts(made.type):
            return True
        fits = [f"{src.node}/{o.name}" for o in producer.ports.outputs if dst.type.accepts(o.type)]
        message = (f"node {node_id!r}: input {dst.name!r} takes {dst.type}, "
                   f"but {str(src)!r} gives {made.type}")
        message += f"; did you mean {_either(fits)}?" if fits else f"; connect an output of type {dst.type}"
        self.report(self.at_value("nodes", node_id, "inputs", dst.name), message)
        return False

    def check_connected(self, own: ResolvedNode, nodes: dict[str, ResolvedNode]) -> None:
        """Every required input must be connected (unless a misspelt input already says so)."""
        unknown = [name for name in own.spec.inputs if own.ports.input(name) is None]
        for port in own.ports.inputs:
            if port.optional or port.name in own.spec.inputs or _closest_of(port.name, unknown):
                continue
            message = f"node {own.id!r}: input {port.name!r} ({port.type}) is not connected"
            example = _example_source(port, own.id, nodes)
            message += (f"; connect it, e.g. `{port.name}: {example}`" if example
                        else f"; connect it to an output of type {port.type}")
            self.report(self.at_key("nodes", own.id, "inputs"), message)

    def check_upstream(self, nodes: dict[str, ResolvedNode]) -> None:
        """Each node's ``check_upstream`` against its producers' ``metadata_keys`` (e.g. a
        rule on a key that no producer emits); its messages are reported at the node."""
        for node_id, own in nodes.items():
            check = getattr(own.type.cls, "check_upstream", None)
            if check is None or own.params is None or node_id in self.broken_params:
                continue
            upstream = {port: self.keys_of(nodes.get(src.node)) for port, src in own.inputs.items()}
            try:
                problems = list(check(own.params, upstream, Path(self.path).resolve().parent))
            except Exception as exc:  # a bug in the plugin, not in the graph
                problems = [f"checking its inputs failed: {type(exc).__name__}: {exc} "
                            f"(a bug in plugin {own.type.plugin!r})"]
            for message in problems:
                self.report(self.at_key("nodes", node_id, "params"), f"node {node_id!r}: {message}")

    def check_notes(self, nodes: dict[str, ResolvedNode]) -> None:
        """Each node type's ``validation_notes(params, graph_dir)``: non-fatal remarks (what
        this machine lacks, a fallback taken), noted at the node's ``type``."""
        for node_id, own in nodes.items():
            give = getattr(own.type.cls, "validation_notes", None)
            if give is None or own.params is None or node_id in self.broken_params:
                continue
            where = self.at_value("nodes", node_id, "type")
            try:
                found = list(give(own.params, Path(self.path).resolve().parent))
            except Exception as exc:  # a bug in the plugin, not in the graph
                self.report(where, f"node {node_id!r}: its validation notes failed: "
                            f"{type(exc).__name__}: {exc} (a bug in plugin {own.type.plugin!r})")
                continue
            for message in found:
                self.notes.append(GraphNote(self.path, where.line, where.col,
                                            f"node {node_id!r} ({own.type.name}): {message}"))

    @staticmethod
    def keys_of(producer: ResolvedNode | None) -> frozenset[str] | None:
        """The metadata keys a producer declares (None: unknown, or it declares none)."""
        declare = getattr(producer.type.cls, "metadata_keys", None) if producer else None
        if declare is None or producer is None or producer.params is None:
            return None
        try:
            keys = declare(producer.params)
        except Exception:  # unknown rather than a false error; the producer's setup will say
            return None
        return None if keys is None else frozenset(keys)

    # -- 5. graph -------------------------------------------------------------------------
    def check_cycles(self, spec: GraphSpec, edges: list[Edge]) -> bool:
        """Report each cycle (one per group of nodes that feed each other); True if any."""
        cycles = _cycles(list(spec.nodes), edges)
        for cycle in cycles:
            closing = next(p for s, d, p in edges if s == cycle[-2] and d == cycle[0])
            self.report(self.at_value("nodes", cycle[0], "inputs", closing),
                        f"cycle: {' -> '.join(cycle)}; remove one of these connections")
        return bool(cycles)

    def check_clock(self, spec: GraphSpec, nodes: dict[str, ResolvedNode],
                    cyclic: bool) -> str | RateClock | None:
        """The clock: a rate, the source named by ``clock``, or the only source."""
        if isinstance(spec.clock, RateClock) or not self.clock_ok:
            return spec.clock
        sources = [i for i, n in nodes.items() if n.is_source]
        if spec.clock is not None:
            return self.named_clock(spec.clock, spec, nodes, sources)
        if len(sources) == 1:
            return sources[0]
        if len(sources) > 1:
            self.report(self.at_key("nodes"), f"several source nodes ({', '.join(sources)}) and "
                        f"no clock: say which one drives the ticks, e.g. `clock: {sources[0]}`, "
                        f"or set a rate, e.g. {_RATE_EXAMPLE}")
        elif len(nodes) == len(spec.nodes) and not self.broken and not cyclic:
            self.report(self.at_key("nodes"), "no source node (a node without inputs) to drive "
                        f"the ticks: set a rate, e.g. {_RATE_EXAMPLE}")
        return None

    def named_clock(self, clock: str, spec: GraphSpec, nodes: dict[str, ResolvedNode],
                    sources: list[str]) -> str:
        choices = f"a source node ({', '.join(sources)})" if sources else "a source node"
        if clock not in spec.nodes and clock not in self.broken:
            hint = (_hint(clock, sources or list(spec.nodes), None)
                    or f"; the clock is {choices} or a rate, e.g. {_RATE_EXAMPLE}")
            self.report(self.at_value("clock"), f"clock: no node {clock!r}{hint}")
        elif clock in nodes and not nodes[clock].is_source:
            self.report(self.at_value("clock"), f"clock: node {clock!r} is not a source (it has "
                        f"inputs); the clock is {choices} or a rate, e.g. {_RATE_EXAMPLE}")
        return clock


# -- messages ------------------------------------------------------------------------------------

def _either(names: Sequence[str]) -> str:
    """``'a'``, ``'a' or 'b'``, ``'a', 'b' or 'c'``."""
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _closest(name: str, candidates: Sequence[str]) -> list[str]:
    """The candidates nearly as close to ``name`` as the best one (a clear winner stands alone)."""
    score = {c: difflib.SequenceMatcher(None, name, c).ratio() for c in candidates}
    best = max(score.values(), default=0.0)
    return [c for c in candidates if score[c] >= best - 0.1]


def _closest_of(name: str, candidates: Sequence[str]) -> list[str]:
    return _closest(name, difflib.get_close_matches(name, candidates, n=3, cutoff=0.6))


def _hint(name: str, choices: Iterable[str], listing: str | None = "valid names") -> str:
    """``"; did you mean 'x'?"``, else ``"; <listing>: a, b, c"`` (nothing if no listing)."""
    choices = list(choices)
    close = _closest_of(name, choices)
    if close:
        return f"; did you mean {_either(close)}?"
    return f"; {listing}: {', '.join(choices)}" if listing and choices else ""


def _not_a_graph(data: Any) -> str:
    if data is None:
        return "the graph file is empty: start it with `flowml: 1` and a `nodes:` mapping"
    kind = "a list" if isinstance(data, list) else f"a single value ({show(data)})"
    return f"a graph file is a mapping with `flowml: 1` and `nodes:`, not {kind}"


def _bad_node_id(node_id: str) -> str:
    fixed = re.sub(r"[^A-Za-z0-9_\-]", "_", node_id)
    fixed = fixed if _NODE_ID.fullmatch(fixed) else "_" + fixed
    return (f"node id {node_id!r} is not valid: use letters, digits, '_' and '-', "
            f"starting with a letter or '_' (e.g. {fixed!r})")


def _shape_message(issue: Issue) -> str:
    """The message for a problem found by ``GraphSpec``."""
    path = issue.path
    glued = _glued_key(issue)
    if glued:
        return f"node {path[1]!r}: {glued}" if path[:1] == ("nodes",) and len(path) > 2 else glued
    if path[:1] == ("nodes",) and len(path) == 2 and issue.kind != EXTRA:
        return _node_not_a_mapping(str(path[1]), issue.value)
    if path == ("clock",) and issue.kind == "union":
        rate = f"{{fps: {issue.value}}}" if isinstance(issue.value, (int, float)) else "{fps: 30}"
        return (f"clock: write the id of a source node, or a rate like `clock: {rate}` "
                f"(got {show(issue.value)})")
    if path[:1] == ("nodes",) and len(path) > 1:
        return f"node {path[1]!r}: " + _field_message(issue, path[2:], NodeSpec)
    if path == ("flowml",):
        if issue.kind == MISSING:
            return "missing `flowml: 1` (the graph file format version) at the top of the file"
        return f"unsupported graph file format version {show(issue.value)}: write `flowml: 1`"
    if path == ("nodes",) and issue.kind == MISSING:
        return "missing `nodes:`, the mapping of node ids to nodes"
    if path == ("nodes",) and issue.kind == "too_short":
        return "`nodes:` is empty: add at least one node"
    if len(path) == 1 and issue.kind == EXTRA:
        name = str(path[0])
        return f"unknown top-level key {name!r}" + _hint(name, GraphSpec.model_fields, "valid keys")
    return _field_message(issue, path, GraphSpec)


def _glued_key(issue: Issue) -> str | None:
    """For ``{image:cam/image}`` or ``{image cam/image}``, which YAML reads as one key with no
    value: what was meant."""
    if issue.value is not None or issue.kind == MISSING or not issue.path:
        return None
    key = str(issue.path[-1])
    split = re.fullmatch(r"([A-Za-z_][\w\-]*)(?:\s*:\s*|\s+)(\S.*)", key)
    if split is None:
        return None
    return (f"{key!r} has no value; did you mean `{split[1]}: {split[2]}`? "
            "(YAML needs ': ' between a key and its value)")


def _node_not_a_mapping(node_id: str, value: Any) -> str:
    if isinstance(value, str):
        return f"node {node_id!r}: a node is a mapping; write `{node_id}: {{type: {value}}}`"
    return (f"node {node_id!r}: a node is a mapping like `{{type: ..., inputs: {{...}}, "
            f"params: {{...}}}}` (got {show(value)})")


def _field_message(issue: Issue, rel: YamlPath, model: type[BaseModel]) -> str:
    """A problem at ``rel`` in data validated by ``model``."""
    where = f"{dotted(rel[:-1])}: " if len(rel) > 1 else ""
    if issue.kind == EXTRA:
        name = str(rel[-1])
        return f"{where}unknown key {name!r}" + _hint(name, field_names(model, rel[:-1]), "valid keys")
    if issue.kind == MISSING:
        description = field_description(model, rel)
        return f"{where}missing required key {rel[-1]!r}" + (f": {description}" if description else "")
    label = f"input {rel[1]!r}: " if rel[:1] == ("inputs",) and len(rel) == 2 else (
        f"{dotted(rel)}: " if rel else "")
    return f"{label}{issue.message} (got {show(issue.value)})"


def _param_message(issue: Issue, model: type[BaseModel], type_name: str) -> str:
    """The message for a problem found by a node type's ``Params`` model."""
    rel = issue.path
    glued = _glued_key(issue)
    if glued:
        return glued
    name = str(rel[-1]) if rel else ""
    where = f"param {dotted(rel[:-1])!r}: " if len(rel) > 1 else ""
    noun = "key" if where else "param"
    if issue.kind == EXTRA:
        names = field_names(model, rel[:-1])
        listing = f"params of {type_name}" if not where else "valid keys"
        hint = _hint(name, names, listing) if names else f": {type_name} takes no params"
        return f"{where}unknown {noun} {name!r}{hint}"
    if issue.kind == MISSING:
        description = field_description(model, rel)
        return f"{where}missing required {noun} {name!r}" + (f": {description}" if description else "")
    label = f"param {dotted(rel)!r}" if rel else "params"
    return f"{label}: {issue.message} (got {show(issue.value)})"


def _failed_plugins(failures: Sequence[PluginFailureInfo]) -> str:
    if len(failures) == 1:
        failure = failures[0]
        return (f"(plugin {failure.plugin!r} failed to load: {failure.error}; "
                "run `flowml nodes` for details)")
    names = _either([f.plugin for f in failures]).replace(" or ", " and ")
    return f"(plugins {names} failed to load; run `flowml nodes` for details)"


def _no_output(src: ResolvedNode, out: str) -> str:
    names = [o.name for o in src.ports.outputs]
    message = f"node {src.id!r} has no output {out!r}"
    if not names:
        return message + f": {src.type.name} has no outputs"
    return message + _hint(out, names, None) + f" (outputs of {src.id!r}: {', '.join(names)})"


def _ref_guess(ref: str, spec: GraphSpec, nodes: dict[str, ResolvedNode]) -> str:
    """A guess at what a malformed ``node/port`` reference meant."""
    if ref in nodes:
        guesses = [f"{ref}/{o.name}" for o in nodes[ref].ports.outputs]
    elif ref in spec.nodes:
        return f"; write {ref + '/<output>'!r}"
    else:
        split = re.match(r"^([^./:\s]+)[.:\s]+([^./:\s]+)$", ref)
        guesses = [f"{split[1]}/{split[2]}"] if split and split[1] in spec.nodes else []
    return f"; did you mean {_either(guesses[:3])}?" if guesses else ""


def _example_source(port: Input, node_id: str, nodes: dict[str, ResolvedNode]) -> str | None:
    """An output that could feed ``port``: from a node before ``node_id`` in the file if any."""
    ids = list(nodes)
    before = ids[: ids.index(node_id)] if node_id in ids else ids
    for other in before + [i for i in ids if i not in before and i != node_id]:
        for out in nodes[other].ports.outputs:
            if port.type.accepts(out.type):
                return f"{other}/{out.name}"
    return None


# -- graph algorithms ------------------------------------------------------------------------------

def _successors(ids: list[str], edges: list[Edge]) -> dict[str, list[str]]:
    """Consumers of each node, in file order, restricted to ``ids``."""
    index = {n: i for i, n in enumerate(ids)}
    succ: dict[str, set[str]] = {n: set() for n in ids}
    for src, dst, _ in edges:
        if src in index and dst in index:
            succ[src].add(dst)
    return {n: sorted(s, key=index.__getitem__) for n, s in succ.items()}


def _groups(ids: list[str], succ: dict[str, list[str]]) -> list[set[str]]:
    """The strongly connected groups of two or more nodes, or of one node feeding itself
    (Tarjan's algorithm, iterative: linear in nodes and edges, no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[set[str]] = []
    for root in ids:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            nexts = succ[node]
            if i < len(nexts):
                work.append((node, i + 1))
                nxt = nexts[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if work:  # returning to the caller: pass our low link up
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1 or node in succ[node]:
                    groups.append(group)
    return groups


def _cycles(ids: list[str], edges: list[Edge]) -> list[list[str]]:
    """One shortest cycle per strongly connected group, each starting at its first node in
    the file: ``[a, b, c, a]`` means a feeds b feeds c feeds a."""
    succ = _successors(ids, edges)
    position = {n: i for i, n in enumerate(ids)}
    cycles = []
    for group in sorted(_groups(ids, succ), key=lambda g: min(position[n] for n in g)):
        start = min(group, key=position.__getitem__)
        cycles.append(_shortest_cycle(start, succ, group))
    return cycles


def _shortest_cycle(start: str, succ: dict[str, list[str]], group: set[str]) -> list[str]:
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in succ[node]:
            if nxt == start:
                chain = [node]
                while chain[-1] != start:
                    chain.append(parent[chain[-1]])
                return [*reversed(chain), start]
            if nxt in group and nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    raise AssertionError("no cycle through " + start)


def _topological(spec: GraphSpec, edges: list[Edge]) -> list[str]:
    """Kahn's algorithm; among the nodes ready to run, the one written first goes first."""
    ids = list(spec.nodes)
    succ = _successors(ids, edges)
    index = {n: i for i, n in enumerate(ids)}
    waiting = {n: 0 for n in ids}
    for consumers in succ.values():
        for c in consumers:
            waiting[c] += 1
    ready = [index[n] for n in ids if waiting[n] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        node = ids[heapq.heappop(ready)]
        order.append(node)
        for c in succ[node]:
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(ready, index[c])
    return order


def _owners(registry: TypeLookup, name: str) -> list[str]:
    """The plugins registering ``name`` (a registry without ``owners`` has one per name)."""
    owners = getattr(registry, "owners", None)
    if owners is not None:
        return owners(name)
    info = registry.get(name)
    return [info.plugin] if info is not None else []


def _configured(registry: TypeLookup, name: str) -> str | None:
    """The plugin the environment (``FLOWML_PLUGINS``) chooses for ``name``, if any."""
    chosen = getattr(registry, "configured", None)
    return chosen(name) if chosen is not None else None


def _fixed_ports(cls: Any) -> Ports | None:
    """The ports of a type whose ports do not depend on params (None for one whose do)."""
    owner = next((k for k in cls.__mro__ if "ports" in vars(k)), None)
    if owner is None or owner.__module__ != "flowml.node" or owner.__name__ != "Node":
        return None
    return Ports(tuple(cls.inputs), tuple(cls.outputs))


def _unavailable(info: TypeInfo) -> str | None:
    """Why this machine cannot run the type (wrong OS, missing package), from the type's own
    ``unavailable()``; None when it can."""
    check = getattr(info.cls, "unavailable", None)
    if check is None:
        return None
    try:
        return check()
    except Exception as exc:  # a bug in the plugin's own check
        return f"its availability check failed: {type(exc).__name__}: {exc} (a bug in plugin {info.plugin!r})"
