"""``rules.match``: EDGEMATRIX-format action rules on metadata, with per-rule state, emitting events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flowml
from flowml import JSON, NO_VALUE, Field, Input, Node, NodeError, Output
from flowml.fsutil import from_graph
from flowml.graph.errors import GraphErrors

from .ruleset import Rule, load_rules

EVENT_KEYS = frozenset({"rule_name", "state", "since", "t", "frame", "tracker_id", "metadata", "action"})


class Rules(Node):
    """Action rules (EDGEMATRIX's format, a JSON or YAML file) on each tick's metadata.

    ``metadata``: a record (dict) or a list of records (e.g. one per track). A list is checked
    record by record, each keyed by its ``key`` field (``tracker_id``), so every track has its
    own state. ``extra`` (optional): a second node's metadata joined into those records first,
    so that one rule can name keys of both (``class`` from ``classify.join`` and
    ``tracking_duration_in_seconds`` from ``track.objects``): a list is joined by ``key`` (a
    record gets the fields of the ``extra`` record with the same ``tracker_id``; a record with
    none gets nothing), a dict is joined into every record; a key both have keeps the value of
    ``metadata``'s record. A rule that matches a record is *active* from that tick (``since``) until a tick
    where it does not match (or the record is gone); on every tick it matches, the node emits
    one event for it: ``{rule_name, state: "start" | "continue", since, t, frame, tracker_id,
    metadata: the record, action: the rule's action}``. Output ``events``: the list of this
    tick's events, or no value (``flowml.NO_VALUE``) when no rule matches, so actions downstream
    are not even called.

    Records that carry their own ``frame`` (and ``t``: ``classify.topk`` fed by ``video.clip``'s
    ``frames``) say which frame they belong to: a tick's list of them (n clips of a batched
    source) is taken one frame at a time, in order, each run of records with the same ``frame``
    as one step of the state above, its events stamped with that ``frame`` and ``t``; exactly
    what one frame a tick would give. Records without them belong to the tick's frame. The file is checked when the graph is validated: every mistake at its
    ``file:line:col``, and a rule on a key that the node feeding ``metadata`` does not emit (by
    its ``metadata_keys``) is an error there too. Runs on a worker thread, so the graph's thread
    never waits for the metadata (a classifier's GPU result) to arrive.
    """

    type_name = "rules.match"
    inputs = (Input("metadata", JSON, "a dict of metadata, or a list of them (one per track)"),
              Input("extra", JSON, "another node's metadata, joined in by `key` (a list) or into every record (a dict)",
                    optional=True))
    outputs = (Output("events", JSON, "list of {rule_name, state, since, t, frame, tracker_id, metadata, action}"),)
    blocking = True  # on a worker: waiting there for the classifier's result, not on the graph's thread

    class Params(flowml.Params):
        path: str = Field(file="input", rebuild=True, description=(
            "rules file, relative to the graph file: .json, or YAML (.yaml/.yml)"))
        key: str = Field("tracker_id", description="the field that tells the records of a list apart")

    @classmethod
    def metadata_keys(cls, params: flowml.Params) -> frozenset[str]:
        return EVENT_KEYS

    @classmethod
    def check_upstream(cls, params: flowml.Params, upstream: Any, graph_dir: Path) -> list[str]:
        path = from_graph(params.path, graph_dir)  # type: ignore[attr-defined]
        try:
            rules = load_rules(path, str(path))
        except GraphErrors as errors:
            return [str(e).replace(": error: ", ": ", 1) for e in errors.errors]
        keys, feeding = upstream.get("metadata"), "the node feeding `metadata`"
        if "extra" in upstream:
            extra = upstream["extra"]
            keys = None if keys is None or extra is None else keys | extra
            feeding = "the nodes feeding `metadata` and `extra`"
        if keys is None:
            return []
        return [f"{c.where}: rule {rule.name!r}: key {c.key!r} is not in the metadata of {feeding}; "
                f"{'they emit' if 'extra' in upstream else 'it emits'} {', '.join(sorted(keys)) or 'nothing'}"
                for rule in rules for c in rule.conditions if c.key not in keys]

    def setup(self, ctx: flowml.NodeContext) -> None:
        path = ctx.resolve(self.params.path)
        try:
            self.rules: list[Rule] = load_rules(path, str(path))
        except GraphErrors as errors:
            raise NodeError("rules file has mistakes:\n" + str(errors)) from None
        self.since: dict[tuple[str, Any], float] = {}

    def process(self, metadata: Any, extra: Any = None) -> Any:
        records = metadata if isinstance(metadata, list) else [metadata] if metadata is not None else []
        for record in records:
            if not isinstance(record, dict):
                raise NodeError(f"metadata must be a dict or a list of dicts, got a {type(record).__name__}")
        if extra is not None:
            records = join(records, extra, self.params.key)
        events: list[dict] = []
        for frame, t, group in self._frames(records):
            self._step(group, frame, t, events)
        return events if events else NO_VALUE

    def _frames(self, records: list[dict]) -> list[tuple[int, float, list[dict]]]:
        """``(frame, t, records)`` per run of records with the same ``frame`` (the tick's for
        records that carry none), in order; one empty step when there are no records."""
        tick = self.ctx.tick
        steps: list[tuple[int, float, list[dict]]] = []
        for record in records:
            frame = record.get("frame")
            frame = frame if isinstance(frame, int) and not isinstance(frame, bool) else tick.index
            if steps and steps[-1][0] == frame:
                steps[-1][2].append(record)
                continue
            t = record.get("t")
            t = float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) else tick.t
            steps.append((frame, t, [record]))
        return steps or [(tick.index, tick.t, [])]

    def _step(self, records: list[dict], frame: int, t: float, events: list[dict]) -> None:
        """One frame's records: events for the rules they match, the state of the others ended."""
        active = set()
        for record in records:
            tracker = record.get(self.params.key)
            for rule in self.rules:
                if not rule.matches(record):
                    continue
                state_key = (rule.name, tracker)
                active.add(state_key)
                started = state_key not in self.since
                since = self.since.setdefault(state_key, t)
                events.append({"rule_name": rule.name, "state": "start" if started else "continue",
                               "since": since, "t": t, "frame": frame, "tracker_id": tracker,
                               "metadata": record, "action": rule.action})
        for gone in set(self.since) - active:  # not matching, or its record is gone: inactive
            del self.since[gone]


def join(records: list[dict], extra: Any, key: str) -> list[dict]:
    """``records`` with ``extra``'s fields added: a dict's to every record; a list's record
    with the same ``key`` value to each record that has one (the first, if several). A field
    a record has already keeps its value."""
    if isinstance(extra, dict):
        return [{**extra, **record} for record in records]
    if not isinstance(extra, list) or not all(isinstance(e, dict) for e in extra):
        raise NodeError(f"extra must be a dict or a list of dicts (another node's metadata), got {extra!r:.200}")
    by_key: dict[Any, dict] = {}
    for e in extra:
        if e.get(key) is not None:
            by_key.setdefault(e[key], e)
    return [{**by_key[r[key]], **r} if r.get(key) in by_key else r for r in records]
