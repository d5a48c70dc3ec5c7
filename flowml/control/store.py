"""The parameter store: every live param of a running graph, by address.

One store feeds OSC in, OSCQuery, expressions, smoothing and presets. Changes arrive on
other threads (``check_*`` validates them there, with the param's own pydantic field, so a bad
value is answered at once), are queued with ``submit``, and are applied together by
``before_tick``, the scheduler hook that runs at the start of each tick: all changes submitted
before a tick starts show in that tick, none half-way through one.

Each tick ``before_tick`` also evaluates the expressions, moves smoothed params and preset
crossfades a step, and hands what changed to ``Scheduler.set_params`` (which applies it right
after the hooks, before any node runs).

Per param: ``target`` is the value it is set to (or its expression's value), ``value`` what the
node has. With ``smooth: s`` a numeric param follows its target through a one-pole low-pass
reaching 95% of a jump in ``s`` seconds; a preset recalled with a crossfade moves numeric
params linearly from where they were. Expression, smoothing and fade results are rounded for
int params and clamped to the param's range; values sent over OSC are not clamped: out of
range is an error.

A param whose metadata names ``parts`` (a list of mappings, e.g. weight edits
``[{name, op, value}]``) also has one live param per part of each item, named
``<param>/<i>/<key>`` (address ``/<node>/edits/0/value``): it may follow an expression (from
the graph file: ``value: {expr: "sin(t)"}``, or over OSC), be smoothed with a global
``smooth:`` and be set on its own; a change of a part is handed to the node as a change of the
whole param (``_fold_parts``). Parts go by position: when the list's length or keys change, the
parts are made anew, each keeping its expression where its name still exists.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterable, Literal

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from ..graph.expr import Expression, ExprError, parse_expression
from ..graph.live import is_expression, part_name
from ..graph.resolved import ValidatedGraph
from ..node import Tick
from ..paraminfo import ParamInfo, describe_params
from ..parammeta import ParamMeta, param_meta
from ..ports import ANY, JSON, SCALAR
from .addresses import PatternError, compile_pattern, is_pattern, param_address
from .convert import Kind, ParamShape, jsonable, shape_of
from .paths import PathRefused, check_output_path
from .report import Reporter

__all__ = ["ParamStore", "LiveParam", "Change", "ControlError"]

log = logging.getLogger("flowml.control")


class ControlError(ValueError):
    """A change that cannot be made; the message is the reason sent back to the client."""


@dataclass
class Fade:
    """A preset crossfade in progress: from ``start`` (a level) over ``seconds``."""

    start: Any
    t0: float
    seconds: float


@dataclass
class LiveParam:
    """One param of one node, as the store keeps it."""

    node: str
    name: str
    address: str
    info: ParamInfo
    shape: ParamShape
    value: Any                      # what the node has (from the next tick start on)
    target: Any                     # what it is set to (an expression's last value)
    expr: Expression | None = None
    smooth: float = 0.0             # seconds; 0: changes jump
    level: Any = None               # continuous state of a numeric param (smoothing, fades)
    fade: Fade | None = None
    version: int = 0                # bumped each time ``value`` changes
    meta: ParamMeta = ParamMeta()   # live / rebuild / file (flowml.parammeta)
    part: tuple[str, int, str] | None = None  # (param, index, key) of a part of a list param

    @property
    def key(self) -> tuple[str, str]:
        return (self.node, self.name)

    def moving(self) -> bool:
        """True while the param must be updated every tick."""
        return (self.expr is not None or self.fade is not None
                or not _same(self.value, self.target))


@dataclass(frozen=True)
class Change:
    """A queued change of one param: a value, an expression, or back to a fixed value."""

    key: tuple[str, str]
    what: Literal["value", "expr", "fix"]
    value: Any = None
    expr: Expression | None = None
    fade: float = 0.0


_SAME = object()
NOT_LIVE = "changes only in the graph file; it rebuilds the node (edit the graph file instead)"


class ParamStore:
    """The live params of the graph ``sched`` runs (``sched.graph``, followed across reloads)."""

    def __init__(self, sched: Any, prefix: str = "", reporter: Reporter | None = None):
        self.sched = sched
        self.prefix = prefix
        self.reporter = reporter or Reporter()
        self.graph: ValidatedGraph = sched.graph
        self.params: dict[str, LiveParam] = {}          # address -> param
        self.by_key: dict[tuple[str, str], LiveParam] = {}
        self.listeners: list[Callable[[list[LiveParam]], None]] = []
        self.t, self.frame = 0.0, 0
        self._last_t: float | None = None
        self._pending: dict[tuple[str, str], Change] = {}  # the last change per param wins
        self._lock = threading.Lock()
        self._moving: set[tuple[str, str]] = set()
        self._order: tuple[frozenset, list] | None = None  # _moving and its step order
        self._outputs: dict[tuple[str, str], Any] = {}
        self._upcoming: dict[tuple[str, str], Any] = {}   # values computed in this tick so far
        self._rank: dict[tuple[str, str], int] = {}
        self._wanted_outputs: set[tuple[str, str]] = set()
        self._build(self.graph, carry=None)

    # -- building ---------------------------------------------------------------------------
    def _build(self, graph: ValidatedGraph, carry: dict[tuple[str, str], LiveParam] | None) -> None:
        params: dict[str, LiveParam] = {}
        old_graph = self.graph
        for nid in graph.order:
            rn = graph.nodes[nid]
            model: type[BaseModel] = rn.type.cls.Params
            smooth = rn.spec.smooth
            for info in describe_params(model):
                value = getattr(rn.params, info.name)
                shape = shape_of(model.model_fields[info.name], value)
                lp = LiveParam(nid, info.name, param_address(self.prefix, nid, info.name), info,
                               shape, value, value, meta=param_meta(model, info.name))
                text = rn.expressions.get(info.name)
                if text is not None and not lp.meta.live:
                    self.reporter.error(lp.address, f"expression {text!r} ignored: {NOT_LIVE}")
                elif text is not None:
                    lp.expr = parse_expression(text)
                if shape.numeric:
                    lp.smooth = float(smooth.get(info.name, 0.0) if isinstance(smooth, dict)
                                      else smooth or 0.0)
                    lp.level = _level(value)
                prev = carry.get(lp.key) if carry else None
                if prev is not None and _same_definition(old_graph, graph, lp.key):
                    lp.value, lp.target, lp.expr, lp.level, lp.fade = (
                        prev.value, prev.target, prev.expr, prev.level, prev.fade)
                    lp.version = prev.version
                elif prev is not None and lp.smooth and prev.level is not None:
                    lp.value, lp.level = prev.value, prev.level  # a file edit glides too
                params[lp.address] = lp
                for part in self._parts_of(lp, rn.expressions, smooth):
                    prev = carry.get(part.key) if carry else None
                    if prev is not None and _same_definition(old_graph, graph, part.key):
                        part.expr, part.fade = prev.expr, prev.fade
                    params[part.address] = part
        self.graph = graph
        self._index(params)
        self._moving = {lp.key for lp in params.values() if lp.moving()}
        self._update_wanted_outputs()

    def _index(self, params: dict[str, LiveParam]) -> None:
        """Take ``params`` (address -> param, in graph order) as the store's, with what is
        looked up from them every tick: by key, rank, and the parts of each list param."""
        self.params = params
        self.by_key = {lp.key: lp for lp in params.values()}
        self._rank = {key: i for i, key in enumerate(self.by_key)}
        self._order = None
        self._parts = defaultdict(list)
        for lp in params.values():
            if lp.part is not None:
                self._parts[(lp.node, lp.part[0])].append(lp)

    def _parts_of(self, parent: LiveParam, expressions: dict[str, str] | None = None,
                  smooth: Any = None) -> list[LiveParam]:
        """The live params of the parts of ``parent``'s items (its metadata's ``parts``)."""
        keys = parent.meta.parts
        items = parent.value
        if not keys or not isinstance(items, (list, tuple)):
            return []
        meta = ParamMeta(live=parent.meta.live, in_place=parent.meta.in_place)
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            for key in keys:
                if key not in item:
                    continue
                name, value = part_name(parent.name, i, key), item[key]
                what = f" ({item['name']})" if isinstance(item.get("name"), str) else ""
                info = ParamInfo(name, type(value).__name__, value,
                                 description=f"{key} of {parent.name}[{i}]{what}")
                shape = _part_shape(type(value), value)
                lp = LiveParam(parent.node, name, param_address(self.prefix, parent.node, name),
                               info, shape, value, value, meta=meta, part=(parent.name, i, key))
                text = (expressions or {}).get(name)
                if text is not None and meta.live:
                    lp.expr = parse_expression(text)
                if shape.numeric:
                    lp.smooth = float(smooth) if isinstance(smooth, (int, float)) else 0.0
                    lp.level = _level(value)
                out.append(lp)
        return out

    def _sync_parts(self, node: str, param: str) -> list[LiveParam]:
        """After ``param`` of ``node`` changed: its parts follow its new items (new parts when
        the list's shape changed, each keeping the expression of the part of the same name).
        Returns the parts kept whose value changed."""
        parent = self.by_key.get((node, param))
        if parent is None or not parent.meta.parts:
            return []
        parts = self._parts.get((node, param), [])
        items = parent.value if isinstance(parent.value, (list, tuple)) else []
        now = [(i, key) for i, item in enumerate(items)
               if isinstance(item, dict) for key in parent.meta.parts if key in item]
        if now == [lp.part[1:] for lp in parts]:  # the same parts: new values only
            changed = []
            for kept, (i, key) in zip(parts, now):
                value = items[i][key]
                if not _same(kept.value, value):
                    kept.value, kept.version = value, kept.version + 1
                    changed.append(kept)
                if kept.expr is None and kept.fade is None:
                    kept.target, kept.level = value, _level(value) if kept.level is not None else None
            return changed
        old = {lp.name: lp for lp in parts}
        new = self._parts_of(parent, smooth=None)
        for lp in new:
            prev = old.get(lp.name)
            if prev is not None:
                lp.expr, lp.smooth = prev.expr, prev.smooth
        for lp in old.values():
            self.params.pop(lp.address, None)
            self._moving.discard(lp.key)
        params: dict[str, LiveParam] = {}
        for address, lp in self.params.items():  # the parts right after their param
            params[address] = lp
            if lp is parent:
                params.update((p.address, p) for p in new)
        self._index(params)
        self._moving |= {lp.key for lp in new if lp.moving()}
        self._update_wanted_outputs()

    def _fold_parts(self, node: str, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` with the values of parts folded into their params' lists (what the
        node's params model takes); a param in ``values`` itself is the list they go into."""
        by_key, parts, out = self.by_key, [], {}
        for n, v in values.items():
            lp = by_key.get((node, n))
            if lp is not None and lp.part is not None:
                parts.append((n, lp.part))
            else:
                out[n] = v
        if not parts:
            return values
        lists: dict[str, list[Any]] = {}  # each list copied once, however many of its parts changed
        for name, (param, i, key) in parts:
            items = lists.get(param)
            if items is None:
                items = lists[param] = list(out.get(param, by_key[(node, param)].value))
            if i < len(items) and isinstance(items[i], dict):
                items[i] = {**items[i], key: values[name]}
        out.update(lists)
        return out

    def _value_in(self, params: Any, node: str, name: str) -> Any:
        """A param's value in ``params`` (a part: its item's value, None if it has none)."""
        lp = self.by_key.get((node, name))
        if lp is None or lp.part is None:
            return getattr(params, name)
        return _part_value(params, lp.part)

    def _update_wanted_outputs(self) -> None:
        wanted = set()
        for lp in self.by_key.values():
            if lp.expr is not None:
                wanted |= {r for r in lp.expr.refs if r not in self.by_key}
        self._wanted_outputs = wanted

    # -- lookup -----------------------------------------------------------------------------
    def match(self, pattern: str) -> list[LiveParam]:
        """The params whose address ``pattern`` matches (OSC 1.0 wildcards); raises
        ControlError for a malformed pattern."""
        params = self.params
        if not is_pattern(pattern):
            lp = params.get(pattern)
            return [lp] if lp is not None else []
        try:
            rx = compile_pattern(pattern)
        except PatternError as exc:
            raise ControlError(f"bad address pattern: {exc}") from None
        return [lp for a, lp in params.items() if rx.fullmatch(a)]

    def nodes(self) -> dict[str, list[LiveParam]]:
        """Params by node, in graph order."""
        out: dict[str, list[LiveParam]] = defaultdict(list)
        for lp in self.params.values():
            out[lp.node].append(lp)
        return out

    # -- checking (any thread) ----------------------------------------------------------------
    def check_value(self, lp: LiveParam, raw: Any) -> Any:
        """``raw`` as the param's field makes it (e.g. ``[1, 2]`` -> ``(1, 2)``); raises
        ControlError with pydantic's reason if the field rejects it, or if the param is not
        live (``live=False``: it changes only in the graph file)."""
        if not lp.meta.live:
            raise ControlError(NOT_LIVE)
        return self.check_values(lp.node, {lp.name: raw})[lp.name]

    def check_values(self, node: str, raw: dict[str, Any]) -> dict[str, Any]:
        """Several params of one node at once (checked together by its params model)."""
        rn = self.graph.nodes.get(node)
        if rn is None:
            raise ControlError(f"no node {node!r} in the running graph")
        model: type[BaseModel] = rn.type.cls.Params
        try:
            new = model.model_validate({**self._values_of(node), **self._fold_parts(node, raw)})
        except ValidationError as exc:
            raise ControlError(_reason(exc)) from None
        except Exception as exc:  # a plugin's own validator failed
            raise ControlError(f"{type(exc).__name__}: {exc}") from None
        out = {name: self._value_in(new, node, name) for name in raw}
        for name, value in out.items():
            problem = self.live_problem(node, name, value)
            if problem:
                raise ControlError(problem)
        return out

    def live_problem(self, node: str, name: str, value: Any) -> str | None:
        """Why ``value`` may not come live for ``node``'s param ``name`` (not live and not its
        current value; an output path outside the folder the graph file set), or None."""
        lp = self.by_key.get((node, name))
        rn = self.graph.nodes.get(node)
        if lp is None or rn is None:
            return None
        if not lp.meta.live and not _same(value, lp.value):
            return f"{lp.address}: {NOT_LIVE}"
        if lp.meta.file == "output":
            try:
                check_output_path(value, getattr(rn.params, name), self.graph.directory,
                                  where=f"node '{node}' param '{name}' ({lp.address})")
            except PathRefused as exc:
                return str(exc)
        return None

    def _values_of(self, node: str) -> dict[str, Any]:
        rn = self.graph.nodes[node]
        return {name: self.by_key[(node, name)].value if (node, name) in self.by_key
                else getattr(rn.params, name) for name in type(rn.params).model_fields}

    def check_expression(self, lp: LiveParam, text: str) -> Expression:
        """Parse ``text``, check what it reads, and check its value now with the field."""
        try:
            expr = parse_expression(text)
        except ExprError as exc:
            where = f" (column {exc.col})" if exc.col else ""
            raise ControlError(f"bad expression: {exc.message}{where}") from None
        for ref in sorted(expr.refs):
            problem = self._reference_problem(ref)
            if problem:
                raise ControlError(f"bad expression {text!r}: {problem}")
        try:
            value = self._coerce(lp, expr.evaluate(self.t, self.frame, self._ref))
        except ExprError as exc:
            raise ControlError(str(exc)) from None
        try:
            self.check_value(lp, value)
        except ControlError as exc:
            raise ControlError(f"expression {text!r} gives {value!r} now: {exc}") from None
        return expr

    def _reference_problem(self, ref: tuple[str, str]) -> str | None:
        node, name = ref
        rn = self.graph.nodes.get(node)
        if rn is None:
            return f"{node}.{name}: no node {node!r}"
        if ref in self.by_key:
            return None
        out = rn.ports.output(name)
        if out is not None and out.type in (SCALAR, JSON, ANY):
            return None
        return f"{node}.{name}: node {node!r} has no param or scalar output {name!r}"

    # -- queueing (any thread) ----------------------------------------------------------------
    def submit(self, changes: Iterable[Change]) -> None:
        """Queue checked changes; all of them show from the next tick start on, together."""
        changes = list(changes)
        if changes:
            with self._lock:
                for ch in changes:
                    self._pending.pop(ch.key, None)
                    self._pending[ch.key] = ch

    def set(self, address: str, value: Any) -> Any:
        """Check and queue one value (for code and tests); returns the value as checked."""
        lp = self.params.get(address)
        if lp is None:
            raise ControlError(f"unknown address {address}")
        v = self.check_value(lp, value)
        self.submit([Change(lp.key, "value", v)])
        return v

    # -- presets ------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every param's target (or ``{expr: text}``), JSON-able, by node."""
        out: dict[str, dict[str, Any]] = defaultdict(dict)
        for lp in self.params.values():
            if not lp.meta.live:  # changes only in the graph file: nothing to recall
                continue
            out[lp.node][lp.name] = {"expr": lp.expr.text} if lp.expr else jsonable(lp.target)
        with self._lock:  # changes queued for the next tick count as made
            pending = list(self._pending.values())
        for ch in pending:
            lp = self.by_key.get(ch.key)
            if lp is None:
                continue
            if ch.what == "value":
                out[lp.node][lp.name] = jsonable(ch.value)
            elif ch.what == "expr" and ch.expr is not None:
                out[lp.node][lp.name] = {"expr": ch.expr.text}
            else:
                out[lp.node][lp.name] = jsonable(lp.value)
        return dict(out)

    def recall(self, snapshot: dict[str, dict[str, Any]], fade: float = 0.0) -> list[str]:
        """Queue the values of a snapshot (a crossfade of ``fade`` seconds for numeric params);
        returns the problems (a node or param no longer in the graph, a value that no longer
        fits), each naming its address. The rest is applied."""
        problems: list[str] = []
        changes: list[Change] = []
        for node, values in snapshot.items():
            if not isinstance(values, dict):
                problems.append(f"{self.prefix}/{node}: not a mapping of params")
                continue
            if node not in self.graph.nodes:
                problems.append(f"{self.prefix}/{node}: no such node in the running graph")
                continue
            fixed: dict[str, Any] = {}
            for name, v in values.items():
                lp = self.by_key.get((node, name))
                if lp is None:
                    problems.append(f"{param_address(self.prefix, node, name)}: no such param")
                elif not lp.meta.live:  # kept in older preset files; only a change is a problem
                    if not _same(v, jsonable(lp.value)):
                        problems.append(f"{lp.address}: {NOT_LIVE}")
                elif is_expression(v) and lp.shape.kind != Kind.OTHER:
                    try:
                        changes.append(Change(lp.key, "expr", expr=self.check_expression(lp, v["expr"]),
                                              fade=fade))
                    except ControlError as exc:
                        problems.append(f"{lp.address}: {exc}")
                else:
                    fixed[name] = v
            try:
                checked = self.check_values(node, fixed) if fixed else {}
            except ControlError as exc:
                problems.append(f"{self.prefix}/{node}: {exc}")
                continue
            changes += [Change((node, n), "value", v, fade=fade) for n, v in checked.items()]
        self.submit(changes)
        return problems

    # -- the tick hooks (dispatch thread) -------------------------------------------------------
    def before_tick(self, tick: Tick) -> None:
        """Apply queued changes, step expressions, smoothing and fades; hand what changed to
        the scheduler. Never raises: problems are reported."""
        try:
            self._before_tick(tick)
        except Exception:  # a bug here must not stop the graph
            log.exception("live params: update failed (the graph goes on)")

    def _before_tick(self, tick: Tick) -> None:
        rebound = self.sched.graph is not self.graph
        if rebound:
            self._build(self.sched.graph, carry=self.by_key)
        dt = 0.0 if self._last_t is None else min(max(tick.t - self._last_t, 0.0), 1.0)
        self._last_t, self.t, self.frame = tick.t, tick.t, tick.index
        with self._lock:
            pending, self._pending = self._pending, {}
        for ch in pending.values():
            self._apply(ch, tick.t)
        updates: dict[str, dict[str, Any]] = defaultdict(dict)
        if rebound:  # keep live values over what the reload queued from the file
            for lp in self.by_key.values():
                if lp.part is None and not _same(lp.value, getattr(self.graph.nodes[lp.node].params, lp.name)):
                    updates[lp.node][lp.name] = lp.value
        order = self._step_order()
        self._upcoming = {}
        for key in order:
            lp = self.by_key.get(key)
            if lp is None:
                self._moving.discard(key)
                continue
            new = self._step(lp, dt, tick.t)
            if new is not _SAME:
                updates[lp.node][lp.name] = new
                self._upcoming[key] = new
        self._upcoming = {}
        changed = self._hand_over(self._screen(updates))
        for key in list(self._moving):
            lp = self.by_key.get(key)
            if lp is None or not lp.moving():
                self._moving.discard(key)
        if changed:
            for listener in self.listeners:
                try:
                    listener(changed)
                except Exception as exc:
                    log.debug("param listener failed: %s", exc)

    def after_tick(self, tick: Tick, values: Mapping[str, Any]) -> None:
        """Keep the scalar outputs that expressions read (the last finished frame's)."""
        try:
            self._after_tick(values)
        except Exception:  # a bug here must not stop the graph
            log.exception("live params: reading outputs failed (the graph goes on)")

    def _after_tick(self, values: Mapping[str, Any]) -> None:
        for key in list(self._wanted_outputs):
            out = values.get(key[0])
            if isinstance(out, Future):
                out.add_done_callback(lambda f, k=key: self._keep_output(k, f))
            elif isinstance(out, dict) and key[1] in out:
                self._outputs[key] = out[key[1]]

    def _keep_output(self, key: tuple[str, str], fut: Future) -> None:
        if not fut.cancelled() and fut.exception() is None:
            out = fut.result()
            if isinstance(out, dict) and key[1] in out:
                self._outputs[key] = out[key[1]]

    def _step_order(self) -> list[tuple[str, str]]:
        """The moving params in the order they step: plain values first, then expressions in
        graph order (an expression sees this tick's values of the params it reads, of an
        expression-valued one if it comes earlier). Sorted again only when the moving set, a
        param's expression (``_apply``, ``_screen``) or the params (``_index``) changed."""
        moving = frozenset(self._moving)
        if self._order is None or self._order[0] != moving:
            by_key, rank = self.by_key, self._rank
            self._order = (moving, sorted(moving, key=lambda k: (
                k in by_key and by_key[k].expr is not None, rank.get(k, -1))))
        return self._order[1]

    def _apply(self, ch: Change, t: float) -> None:
        lp = self.by_key.get(ch.key)
        if lp is None:
            return  # its node went away in a reload
        if ch.what == "value":
            lp.expr, lp.target = None, ch.value
        elif ch.what == "expr":
            lp.expr = ch.expr
        else:  # "fix": stop following the expression, keep the value
            lp.expr, lp.target = None, lp.value
        lp.fade = Fade(lp.level, t, ch.fade) if ch.fade > 0 and lp.level is not None else None
        self._order = None  # its expression may have come or gone
        if not lp.shape.numeric and ch.what == "value":
            lp.level = None
        self._update_wanted_outputs()
        self._moving.add(lp.key)

    def _step(self, lp: LiveParam, dt: float, t: float) -> Any:
        """The param's value for this tick, or _SAME."""
        if lp.expr is not None:
            try:
                value = lp.expr.evaluate(t, self.frame, self._ref)
                if (type(value) is float and lp.shape.kind is Kind.FLOAT and lp.level is not None
                        and lp.fade is None and not lp.smooth > 0):
                    # the usual case (a float following t), as the general path below has it
                    lp.target = lp.level = value = _clamp(value, lp.info)
                    return _SAME if value == lp.value else value
                lp.target = self._coerce(lp, value)
            except ExprError as exc:
                self.reporter.error(lp.address, str(exc))
                return _SAME
        goal = lp.target
        if lp.shape.numeric and lp.level is not None and _is_number_like(goal):
            if lp.fade is not None:
                a = 1.0 if lp.fade.seconds <= 0 else min(1.0, (t - lp.fade.t0) / lp.fade.seconds)
                lp.level = _mix(lp.fade.start, _level(goal), a)
                if a >= 1.0:
                    lp.fade = None
            elif lp.smooth > 0:
                k = 1.0 - math.exp(-3.0 * dt / lp.smooth)
                lp.level = _approach(lp.level, _level(goal), k)
            else:
                lp.level = _level(goal)
                if lp.expr is not None and not isinstance(goal, (list, tuple)):
                    # a number the expression's value was just coerced to: coercing its level
                    # (float(goal)) again gives it back
                    return _SAME if _same(goal, lp.value) else goal
            value = self._coerce(lp, lp.level)
        else:
            lp.fade = None
            value = goal
        return _SAME if _same(value, lp.value) else value

    def _screen(self, updates: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Drop (and report) values that may not come live: a non-live param, an output path
        outside its folder (e.g. from an expression); the param keeps its value."""
        for node, values in updates.items():
            for name in list(values):
                problem = self.live_problem(node, name, values[name])
                if problem:
                    del values[name]
                    lp = self.by_key[(node, name)]
                    self.reporter.error(lp.address, problem)
                    lp.expr, lp.target, lp.fade = None, lp.value, None
                    self._order = None
        return {node: values for node, values in updates.items() if values}

    def _hand_over(self, updates: dict[str, dict[str, Any]]) -> list[LiveParam]:
        """``set_params`` per node; if a node refuses the lot, each param is tried alone so
        that one bad value (an expression out of its range, say) does not hold up the rest."""
        changed: list[LiveParam] = []
        for node, values in updates.items():
            if not self._hand_over_group(node, values, changed) and len(values) > 1:
                for name, value in values.items():  # the singles made only when needed
                    self._hand_over_group(node, {name: value}, changed)
        return changed

    def _hand_over_group(self, node: str, group: dict[str, Any], changed: list[LiveParam]) -> bool:
        """``set_params`` of ``group``; False when refused (a single value: reported)."""
        folded = self._fold_parts(node, group)
        try:
            new = self.sched.set_params(node, folded)
        except Exception as exc:
            if len(group) == 1:
                self._refused(node, group, exc)
            return False
        by_key = self.by_key
        for name in group:
            lp = by_key[(node, name)]
            if lp.part is None:  # a part follows its list, below
                lp.value = getattr(new, name)
                lp.version += 1
                changed.append(lp)
        for name in folded:  # a list whose parts are live params: they follow it
            parent = by_key.get((node, name))
            if parent is not None and parent.meta.parts:
                if name not in group:
                    parent.value = getattr(new, name)
                    parent.version += 1
                    changed.append(parent)
                changed += self._sync_parts(node, name)
        return True

    def node_refused(self, node: str, refused: Any, kept: Any, why: Exception) -> None:
        """Scheduler hook: a node did not take a change (its ``on_params`` raised, or the
        rebuild the change needed failed). Each param it concerns is answered with the reason
        and goes back to the value the node kept."""
        reverted: list[LiveParam] = []
        for name in type(kept).model_fields:
            if _same(getattr(refused, name), getattr(kept, name)):
                continue
            lp = self.by_key.get((node, name))
            if lp is None:
                continue
            if lp.meta.parts:
                lp.value = getattr(kept, name)  # the parts follow it back
                self._sync_parts(node, name)
            self.reporter.error(lp.address, f"node refused {getattr(refused, name)!r}, keeps "
                                            f"{getattr(kept, name)!r}: {getattr(why, 'error', why)}")
            if _same(lp.value, getattr(refused, name)):
                lp.value = getattr(kept, name)
                lp.version += 1
                reverted.append(lp)
                if lp.expr is None:  # do not try again every tick
                    lp.target, lp.fade = lp.value, None
                    lp.level = _level(lp.value) if lp.level is not None else None
        for listener in self.listeners if reverted else ():
            try:
                listener(reverted)
            except Exception as exc:
                log.debug("param listener failed: %s", exc)

    def _refused(self, node: str, values: dict[str, Any], exc: Exception) -> None:
        reason = _reason(exc) if isinstance(exc, ValidationError) else str(exc)
        for name, value in values.items():
            lp = self.by_key[(node, name)]
            source = f"expression {lp.expr.text!r} gave {value!r}: " if lp.expr else ""
            self.reporter.error(lp.address, source + reason)
            if lp.expr is None:  # do not try again every tick
                lp.target, lp.fade = lp.value, None
                lp.level = _level(lp.value) if lp.level is not None else None

    def _ref(self, node: str, name: str) -> Any:
        if (node, name) in self._upcoming:
            return self._upcoming[(node, name)]
        lp = self.by_key.get((node, name))
        if lp is not None:
            return lp.value
        if (node, name) in self._outputs:
            return self._outputs[(node, name)]
        if node in self.graph.nodes:
            return 0.0  # an output before the first finished frame
        raise ExprError(f"{node}.{name}: no node {node!r} in the running graph")

    def _coerce(self, lp: LiveParam, value: Any) -> Any:
        """An expression's or a level's value in the param's own kind: ints rounded, numbers
        clamped to the range, vectors element-wise."""
        kind = lp.shape.kind
        try:
            if kind == Kind.FLOAT and _is_number(value):
                return _clamp(float(value), lp.info)
            if kind == Kind.INT and _is_number(value):
                return int(_clamp(round(value), lp.info))
            if kind == Kind.BOOL:
                return bool(value)
            if kind == Kind.VECTOR and isinstance(value, (list, tuple)):
                if lp.shape.int_elements:
                    return tuple(int(round(v)) if _is_number(v) else v for v in value)
                return tuple(value)
        except (OverflowError, ValueError) as exc:  # round(inf), round(nan)
            raise ExprError(f"cannot make {lp.info.type} of {value!r}: {exc}") from None
        return value


# -- helpers -------------------------------------------------------------------------------------

def _reason(exc: ValidationError) -> str:
    """The first error of a pydantic ValidationError, with the value it got."""
    err = exc.errors()[0]
    msg = err["msg"].removeprefix("Value error, ")
    inner = [str(p) for p in err["loc"][1:]]
    if inner:
        msg = f"at [{']['.join(inner)}]: {msg}"
    got = err.get("input")
    if err["type"] in ("missing", "extra_forbidden") or isinstance(got, dict):
        return msg
    return f"{msg} (got {got!r})"


def _same_definition(old: ValidatedGraph, new: ValidatedGraph, key: tuple[str, str]) -> bool:
    """Is the param written the same in both graph files (same type, value or expression)?"""
    node, name = key
    a, b = old.nodes.get(node), new.nodes.get(node)
    if a is None or b is None or a.type.cls is not b.type.cls:
        return False
    if a.expressions.get(name) != b.expressions.get(name):
        return False
    if a.expressions.get(name) is not None:
        return True
    if "/" in name:  # a part of a list param: param/index/key
        param, index, key = name.split("/")
        return _same(_part_value(a.params, (param, int(index), key)),
                     _part_value(b.params, (param, int(index), key)))
    return _same(getattr(a.params, name), getattr(b.params, name))


@lru_cache(maxsize=64)
def _part_field(kind: type) -> FieldInfo:
    return FieldInfo.from_annotation(kind)


def _part_shape(kind: type, value: Any) -> ParamShape:
    """The OSC shape of a part, from its value's type (a float: ``f``)."""
    return shape_of(_part_field(kind), value)


def _part_value(params: Any, part: tuple[str, int, str]) -> Any:
    param, i, key = part
    items = getattr(params, param, None)
    if isinstance(items, (list, tuple)) and i < len(items) and isinstance(items[i], dict):
        return items[i].get(key)
    return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    try:
        return bool(a == b)
    except Exception:
        return a is b


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float))  # bools too: they are ints


def _is_number_like(v: Any) -> bool:
    if isinstance(v, (list, tuple)):
        return all(_is_number(x) for x in v)
    return _is_number(v)


def _level(value: Any) -> Any:
    """The continuous form of a numeric value: a float, or a list of floats."""
    if isinstance(value, (list, tuple)):
        return [float(v) for v in value] if all(_is_number(v) for v in value) else None
    return float(value) if _is_number(value) else None


def _mix(a: Any, b: Any, x: float) -> Any:
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [p + (q - p) * x for p, q in zip(a, b)]
    if isinstance(a, float) and isinstance(b, float):
        return a + (b - a) * x
    return b


def _approach(level: Any, goal: Any, k: float) -> Any:
    """One low-pass step from ``level`` toward ``goal``; lands on it when close."""
    new = _mix(level, goal, k)
    if isinstance(new, list):
        return [g if abs(g - n) <= 1e-6 * max(1.0, abs(g)) else n for n, g in zip(new, goal)]
    return goal if abs(goal - new) <= 1e-6 * max(1.0, abs(goal)) else new


def _clamp(x: float, info: ParamInfo) -> float:
    """``x`` within the param's range; an exclusive bound (``gt``, ``lt``) gives the nearest
    value inside it (the next int, or the next float), which the field then accepts."""
    lo, hi = info.min, info.max
    if lo is not None and (x < lo or (info.min_exclusive and x <= lo)):
        return type(x)(_inside(lo, +1, isinstance(x, int)) if info.min_exclusive else lo)
    if hi is not None and (x > hi or (info.max_exclusive and x >= hi)):
        return type(x)(_inside(hi, -1, isinstance(x, int)) if info.max_exclusive else hi)
    return x


def _inside(bound: float, direction: int, integral: bool) -> float:
    if integral:
        return math.floor(bound) + 1 if direction > 0 else math.ceil(bound) - 1
    return math.nextafter(bound, direction * math.inf)
