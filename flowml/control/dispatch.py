"""What received OSC means: param values, expressions, presets, queries.

Addresses (``<prefix>`` is the graph's ``osc.prefix``, empty by default):

- ``<prefix>/<node>/<param> v...``: set a value (a vector takes several arguments). A single
  string starting with ``=`` sets an expression instead (``/fx/gain "=1+sin(t)"``), except for
  a string param, which takes the string as it is.
- ``<prefix>/<node>/<param>/expr "text"``: follow an expression; ``""`` stops following it and
  keeps the current value. Sending a plain value to the param also stops the expression.
- ``/flowml/preset/save NAME``, ``/flowml/preset/recall NAME [seconds]``: presets (answered
  with ``/flowml/preset/saved NAME`` / ``/flowml/preset/recalled NAME``).
- ``/flowml/get [pattern]``: answered with ``<address> value...`` for each matching param.

Addresses may hold OSC 1.0 wildcards (at most ``addresses.MAX_PATTERN_LENGTH`` characters).
Every problem is reported (logged once per address, and answered as ``/flowml/error
<address> <reason>``); none is raised, and one bad message of a bundle does not stop the rest.
"""

from __future__ import annotations

import difflib
import logging
from typing import Any, Callable

from .addresses import is_pattern
from .convert import ConvertError, Kind, from_osc, to_osc
from .osc_server import OscUnit
from .presets import PresetBank, PresetError
from .report import Reporter
from .store import Change, ControlError, LiveParam, ParamStore

__all__ = ["Dispatcher", "Replier", "CONTROL_ADDRESSES"]

log = logging.getLogger("flowml.control")

SAVE, RECALL, GET = "/flowml/preset/save", "/flowml/preset/recall", "/flowml/get"
CONTROL_ADDRESSES = (SAVE, RECALL, GET)
EXPR_SUFFIX = "/expr"
SUGGEST_MAX = 200     # addresses longer than this get no "did you mean" (difflib's cost)
SUGGEST_AMONG = 2000  # nor do addresses of graphs with more params than this


def _last_per_address(messages: tuple[tuple[str, tuple[Any, ...]], ...]
                      ) -> list[tuple[str, tuple[Any, ...]]]:
    """The messages of a unit, of several plain ones to one address only the last (in the
    place of the last): they would replace each other in the same tick anyway."""
    if len(messages) < 2:
        return list(messages)
    last = {address: i for i, (address, _) in enumerate(messages)}
    return [m for i, m in enumerate(messages) if last[m[0]] == i or m[0].startswith("/flowml/")]


class Replier:
    """Sends answers: to the configured reply address if there is one, else to whoever sent
    the message being answered (or, for problems found at tick time, the last sender)."""

    def __init__(self, send_udp: Callable[[str, list[Any], tuple[str, int]], None],
                 reply_to: tuple[str, int] | None = None):
        self.send_udp, self.reply_to = send_udp, reply_to
        self.last_sender: Any = None

    def __call__(self, address: str, args: list[Any], target: Any = None) -> None:
        target = self.reply_to or target or self.last_sender
        if target is None:
            return
        if hasattr(target, "send_osc"):  # an OSCQuery websocket client
            target.send_osc(address, args)
        else:
            self.send_udp(address, args, target)


class Dispatcher:
    """Turns OSC units into checked, queued changes (``store.submit``) and answers."""

    def __init__(self, store: ParamStore, reporter: Reporter, replier: Replier,
                 presets: PresetBank | None = None):
        self.store, self.reporter, self.replier, self.presets = store, reporter, replier, presets

    def handle(self, unit: OscUnit) -> None:
        """All the changes of one unit are queued together (a bundle shows in one tick)."""
        if unit.sender is not None:
            self.replier.last_sender = unit.sender
        changes: list[Change] = []
        for address, args in _last_per_address(unit.messages):
            try:
                if address in CONTROL_ADDRESSES and not self.store.params.get(address):
                    self._control(address, list(args), unit.sender)
                else:
                    changes += self._changes(address, list(args), unit.sender)
            except (ControlError, ConvertError, PresetError) as exc:
                self.reporter.error(address, str(exc), unit.sender)
            except RecursionError:  # e.g. JSON nested thousands deep in a string argument
                self.reporter.error(address, "the value is nested too deeply to read (JSON "
                                    "deeper than Python's recursion limit?)", unit.sender)
            except Exception as exc:  # a value no check foresaw: refuse it, handle the rest
                self.reporter.error(address, f"cannot use this value: {type(exc).__name__}: "
                                    f"{exc}", unit.sender)
        self.store.submit(changes)

    def malformed(self, sender: Any, reason: str) -> None:
        host = sender[0] if isinstance(sender, tuple) and sender else _show(sender)
        self.reporter.error(f"(packet from {host})", reason, sender)  # logged once per host

    # -- params -------------------------------------------------------------------------------
    def _changes(self, address: str, args: list[Any], sender: Any) -> list[Change]:
        if address.endswith(EXPR_SUFFIX) and not self.store.match(address):
            targets = self.store.match(address[: -len(EXPR_SUFFIX)])
            if targets:
                return self._each(address, targets, sender, lambda lp: self._expr_change(lp, args))
        targets = self.store.match(address)
        if not targets:
            raise ControlError(self._unknown(address))
        return self._each(address, targets, sender, lambda lp: self._value_change(lp, args))

    def _each(self, address: str, targets: list[LiveParam], sender: Any,
              make: Callable[[LiveParam], Change]) -> list[Change]:
        """One change per matched param; a param that rejects it is reported, not the rest."""
        out = []
        for lp in targets:
            try:
                out.append(make(lp))
            except (ControlError, ConvertError) as exc:
                where = f"{lp.address}: " if lp.address != address else ""
                self.reporter.error(address, f"{where}{exc}", sender)
        return out

    def _value_change(self, lp: LiveParam, args: list[Any]) -> Change:
        if (len(args) == 1 and isinstance(args[0], str) and args[0].startswith("=")
                and lp.shape.kind not in (Kind.STR, Kind.OTHER)):
            return self._expr_change(lp, [args[0][1:]])
        return Change(lp.key, "value", self.store.check_value(lp, from_osc(lp.shape, args)))

    def _expr_change(self, lp: LiveParam, args: list[Any]) -> Change:
        if len(args) != 1 or not isinstance(args[0], str):
            raise ControlError('send one string: the expression, e.g. "0.5 + 0.5*sin(t)", '
                               'or "" to stop following one')
        if lp.shape.kind == Kind.OTHER:
            raise ControlError(f"a {lp.info.type} param cannot follow an expression")
        text = args[0].strip()
        if not text:
            return Change(lp.key, "fix")
        return Change(lp.key, "expr", expr=self.store.check_expression(lp, text))

    def _unknown(self, address: str) -> str:
        if is_pattern(address):
            return "no param matches this pattern; list them with `flowml params GRAPH`"
        if len(address) > SUGGEST_MAX or len(self.store.params) > SUGGEST_AMONG:
            return "no such param address; list them with `flowml params GRAPH`"
        close = difflib.get_close_matches(address, list(self.store.params), n=1, cutoff=0.7)
        hint = f"; did you mean {close[0]}?" if close else "; list them with `flowml params GRAPH`"
        return f"no such param address{hint}"

    # -- control ------------------------------------------------------------------------------
    def _control(self, address: str, args: list[Any], sender: Any) -> None:
        if address == GET:
            pattern = str(args[0]) if args else "*"
            found = self.store.match(pattern if pattern.startswith("/") else "/" + pattern) \
                if pattern != "*" else list(self.store.params.values())
            if not found:
                raise ControlError(f"no param matches {pattern!r}")
            for lp in found:
                self.replier(lp.address, to_osc(lp.value), sender)
            return
        if self.presets is None:
            raise ControlError("presets need a graph file")
        if not args:
            raise ControlError("send the preset's name or number, e.g. 1")
        if address == SAVE:
            key = self.presets.save(args[0], self.store.snapshot())
            log.info("saved preset %s in %s", key, self.presets.path.name)
            self.replier("/flowml/preset/saved", [key], sender)
            return
        fade = 0.0
        if len(args) > 1:
            if not isinstance(args[1], (int, float)) or isinstance(args[1], bool) or args[1] < 0:
                raise ControlError(f"the crossfade time is seconds >= 0, got {args[1]!r}")
            fade = float(args[1])
        snapshot = self.presets.get(args[0])
        for problem in self.store.recall(snapshot, fade):
            self.reporter.error(address, f"preset {args[0]}: {problem}", sender)
        log.info("recalled preset %s%s", args[0], f" over {fade:g} s" if fade else "")
        self.replier("/flowml/preset/recalled", [str(args[0])], sender)


def _show(sender: Any) -> str:
    return f"{sender[0]}:{sender[1]}" if isinstance(sender, tuple) and len(sender) >= 2 else str(sender)
