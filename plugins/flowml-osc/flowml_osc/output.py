"""``output.osc``: send a value to an OSC address, rate-limited."""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import field_validator

import flowml
from flowml import ANY, Field, Input, Node
from flowml.lazy import lazy_import

osc_out = lazy_import("flowml.control.osc_out")  # the OSC sender: imported when a graph runs

MAX_ELEMENTS = 64


class OscOutput(Node):
    """Send what arrives to an OSC address, at most ``rate`` messages a second.

    A number, bool or string is one argument; a list or tuple of them several arguments; a
    small tensor its elements; a dict one message per key, at ``<address>/<key>`` (so a
    classifier's ``{label: cat, score: 0.9}`` arrives as ``/cls/label "cat"`` and
    ``/cls/score 0.9``, ready for TouchDesigner's OSC In CHOP/DAT). Anything else is sent as
    JSON text. When values come faster than ``rate``, the latest one is sent at the next
    chance; ``on_change`` sends a value only when it differs from the last one sent. Values
    arrive in host memory, on the node's own thread.
    """

    type_name = "output.osc"
    inputs = (Input("value", ANY, "a scalar, a list of scalars, a small tensor or a JSON-able dict",
                    host=True),)
    blocking = True
    """On a worker thread of its own: on a GPU graph the scheduler downloads the value
    asynchronously (``host=True``) and the worker waits for the copy, so reading a CUDA
    tensor's elements never stalls the graph (no ``.tolist()`` on the dispatcher)."""

    class Params(flowml.Params):
        address: str = Field("/flowml/value", description="OSC address, e.g. /classifier")
        target: str = Field("127.0.0.1:9001", description="host:port to send to")
        rate: float = Field(30.0, gt=0, le=1000, description="most messages a second per address")
        on_change: bool = Field(False, description="send only values that changed")

        @field_validator("address")
        @classmethod
        def _address(cls, address: str) -> str:
            if not address.startswith("/") or any(c in address for c in " #*?[]{},"):
                raise ValueError("an OSC address starts with '/' and has no spaces or "
                                 "wildcards, e.g. /classifier/score")
            return address.rstrip("/") or "/"

        @field_validator("target")
        @classmethod
        def _target(cls, target: str) -> str:
            osc_out.parse_target(target)
            return target

    def setup(self, ctx: flowml.NodeContext) -> None:
        self._open()

    def _open(self) -> None:
        self.sender = osc_out.OscSender([osc_out.parse_target(self.params.target)])
        self.gate = osc_out.RateGate(self.params.rate)
        self.sent: dict[str, list[Any]] = {}

    def on_params(self, old: flowml.Params, new: flowml.Params) -> None:
        if (old.target, old.rate) != (new.target, new.rate):  # type: ignore[attr-defined]
            self.sender.close()
            self._open()

    def process(self, value: Any) -> None:
        for address, args in messages(self.params.address, value):
            if self.params.on_change and self.sent.get(address) == args:
                continue
            for due in self.gate.offer(address, args):
                self._send(*due)
        for due in self.gate.flush():
            self._send(*due)

    def _send(self, address: str, args: list[Any]) -> None:
        self.sender.send(address, args)
        self.sent[address] = args

    def teardown(self) -> None:
        for due in self.gate.flush():
            self._send(*due)
        self.sender.close()


def messages(address: str, value: Any) -> list[tuple[str, list[Any]]]:
    """The ``(address, args)`` messages that carry ``value``."""
    if value is None:
        return []
    if isinstance(value, dict):
        out = []
        base = address.rstrip("/")
        for key, v in value.items():
            out += messages(f"{base}/{key}", v)
        return out
    return [(address, _args(value))]


def _args(value: Any) -> list[Any]:
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):  # a tensor or array
        n = getattr(value, "numel", lambda: getattr(value, "size", 1))()
        if isinstance(n, int) and n <= MAX_ELEMENTS:
            value = value.tolist()
    if isinstance(value, (bool, int, float, str)):
        return [value if not (isinstance(value, float) and math.isnan(value)) else 0.0]
    if isinstance(value, (list, tuple)) and len(value) <= MAX_ELEMENTS and all(
            isinstance(v, (bool, int, float, str)) for v in value):
        return list(value)
    try:
        return [json.dumps(value)]
    except (TypeError, ValueError):
        return [str(value)]
