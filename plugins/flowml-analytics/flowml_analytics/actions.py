"""The light actions on rule events: ``action.log`` (JSON lines), ``action.osc``, ``action.http``.

Each takes the ``events`` list from ``rules`` and acts on the events whose action is its own
(``action: http`` matches ``{"action": {"action_name": "http"}}``; ``*``: every event), on
``start`` events only unless ``every: true`` (then on every tick a rule matches).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import flowml
from flowml import JSON, Field, Input, Node, NodeError

from .http_post import Poster


def wanted(events: Any, action: str, every: bool = True) -> Iterable[dict]:
    """The events of ``events`` (a list, None, or one event) for ``action``."""
    if events is None:
        return []
    items = events if isinstance(events, list) else [events]
    out = []
    for e in items:
        if not isinstance(e, dict):
            raise NodeError(f"events must be a list of dicts (from a rules node), got a {type(e).__name__}")
        name = (e.get("action") or {}).get("action_name")
        if (action == "*" or name == action) and (every or e.get("state") == "start"):
            out.append(e)
    return out


class _Action(Node):
    inputs = (Input("events", JSON, "list of rule events (from rules)"),)

    class Params(flowml.Params):
        action: str = Field("*", description="the action_name of the events to act on; * for all")
        every: bool = Field(False, description="act on every tick a rule matches, not only when it starts")

    def events(self, events: Any) -> Iterable[dict]:
        return wanted(events, self.params.action, self.params.every)


class LogAction(_Action):
    """Append each event to a JSON-lines file (one line per event, flushed at once)."""

    type_name = "action.log"
    blocking = True

    class Params(_Action.Params):
        path: str = Field("events.jsonl", file="output", rebuild=True, description="the .jsonl file, relative to the graph file")
        every: bool = Field(True, description="log every tick a rule matches, not only when it starts")

    def setup(self, ctx: flowml.NodeContext) -> None:
        path: Path = ctx.resolve(self.params.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("a", encoding="utf-8")

    def process(self, events: Any) -> None:
        for e in self.events(events):
            self.file.write(json.dumps(e, default=str) + "\n")
        self.file.flush()

    def teardown(self) -> None:
        if getattr(self, "file", None) is not None:
            self.file.close()


class OscAction(_Action):
    """Send an OSC message per event: ``address`` with ``rule_name, tracker_id, t, event JSON``
    (tracker_id -1 when there is none), by UDP through python-osc."""

    type_name = "action.osc"
    blocking = True

    class Params(_Action.Params):
        host: str = Field("127.0.0.1", rebuild=True, description="where to send")
        port: int = Field(9001, ge=1, le=65535, rebuild=True, description="UDP port")
        address: str = Field("/flowml/event", description="OSC address of the messages")

    def setup(self, ctx: flowml.NodeContext) -> None:
        from pythonosc.udp_client import SimpleUDPClient

        if not self.params.address.startswith("/"):
            raise NodeError(f"address {self.params.address!r} must start with '/'")
        self.client = SimpleUDPClient(self.params.host, self.params.port)

    def process(self, events: Any) -> None:
        for e in self.events(events):
            tracker = e.get("tracker_id")
            self.client.send_message(self.params.address, [
                str(e.get("rule_name")), int(tracker) if isinstance(tracker, int) else -1,
                float(e.get("t", 0.0)), json.dumps(e, default=str)])


class HttpAction(_Action):
    """POST each event as JSON to ``url``, from a background thread: a bounded queue (the
    oldest waiting event is dropped when it is full, and counted), each POST retried with
    exponential backoff; the graph never waits for the network."""

    type_name = "action.http"
    blocking = True  # it only queues; on a worker so that waiting for its events never holds the graph

    class Params(_Action.Params):
        url: str = Field(description="http(s) URL to POST to", rebuild=True)
        timeout: float = Field(5.0, gt=0, le=120, rebuild=True, description="seconds per attempt")
        retries: int = Field(3, ge=0, le=20, rebuild=True, description="attempts after the first")
        backoff: float = Field(0.5, ge=0, le=60, rebuild=True, description="first wait before a retry, doubled each time")
        queue: int = Field(100, ge=1, le=100_000, rebuild=True, description="events waiting at most")

    def setup(self, ctx: flowml.NodeContext) -> None:
        p = self.params
        if not p.url.startswith(("http://", "https://")):
            raise NodeError(f"url {p.url!r} must start with http:// or https://")
        self.poster = Poster(p.url, timeout=p.timeout, retries=p.retries, backoff=p.backoff,
                             capacity=p.queue, log=self.log)

    def process(self, events: Any) -> None:
        for e in self.events(events):
            self.poster.post(e)

    def teardown(self) -> None:
        if getattr(self, "poster", None) is not None:
            self.poster.close(timeout=2.0)

