"""The params both Zenoh nodes share (key, mode, endpoints, scouting) and the session they open."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import field_validator

import flowml
from flowml import Field, NodeError

ENDPOINT = re.compile(r"^[a-z][a-z0-9+-]*/\S+$")
KINDS = ("tensor", "image", "detections", "json")
Kind = Literal["tensor", "image", "detections", "json"]


class ZenohParams(flowml.Params):
    """Where samples go: a key expression and how this node joins the Zenoh network."""

    key: str = Field(min_length=1, description="Zenoh key expression, e.g. 'flowml/cam1/frames'",
                     rebuild=True)
    kind: Kind = Field("tensor", description="what travels: tensor, image, detections or json "
                       "(the node's port is named after it)", live=False)
    mode: Literal["peer", "client"] = Field("peer", description="Zenoh mode: peer (talks to peers "
                                            "directly) or client (through a router)", rebuild=True)
    connect: list[str] = Field([], description="endpoints to connect to, e.g. ['tcp/198.18.0.1:7447']",
                               rebuild=True)
    listen: list[str] = Field([], description="endpoints to listen on, e.g. ['tcp/0.0.0.0:7447']",
                              rebuild=True)
    scouting: bool = Field(False, description="multicast scouting (find peers on the LAN without "
                           "endpoints); off: only connect/listen", rebuild=True)
    config: dict[str, Any] = Field({}, description="more Zenoh config, by path, e.g. "
                                   "{'transport/shared_memory/enabled': false}", rebuild=True)

    @field_validator("key")
    @classmethod
    def _key(cls, key: str) -> str:
        import zenoh  # its own parser (8 ms to import): the error names the rule broken

        try:
            zenoh.KeyExpr(key)
        except zenoh.ZError as exc:
            raise ValueError(f"key {key!r} is not a Zenoh key expression ({_short(exc)}); write "
                             "chunks separated by '/', e.g. 'flowml/cam1/frames'") from None
        return key

    @field_validator("connect", "listen")
    @classmethod
    def _endpoints(cls, endpoints: list[str]) -> list[str]:
        for e in endpoints:
            if not ENDPOINT.match(e):
                raise ValueError(f"endpoint {e!r} must be <protocol>/<address>, e.g. 'tcp/198.18.0.1:7447'")
        return endpoints


def zenoh_config(p: ZenohParams):
    """A ``zenoh.Config`` from the params (raises ``NodeError`` naming the param at fault)."""
    import zenoh

    c = zenoh.Config()
    entries: list[tuple[str, str, Any]] = [
        ("mode", "mode", p.mode),
        ("scouting", "scouting/multicast/enabled", p.scouting),
        ("connect", "connect/endpoints", p.connect),
        ("listen", "listen/endpoints", p.listen),
    ]
    entries += [("config", path, value) for path, value in p.config.items()]
    for param, path, value in entries:
        if param in ("connect", "listen") and not value:
            continue  # Zenoh's own default (a peer listens on a free port of every interface)
        try:
            c.insert_json5(path, json.dumps(value))
        except zenoh.ZError as exc:
            raise NodeError(f"{param}: Zenoh refuses {path} = {json.dumps(value)}: {_short(exc)}") from None
    return c


def open_session(p: ZenohParams):
    """Open the node's own Zenoh session; ``NodeError`` saying which endpoint failed and why."""
    import zenoh

    config = zenoh_config(p)
    try:
        return zenoh.open(config)
    except zenoh.ZError as exc:
        where = f" (listen {p.listen}, connect {p.connect})" if p.listen or p.connect else ""
        raise NodeError(f"cannot open a Zenoh session{where}: {_short(exc)}") from None


def _short(exc: Exception) -> str:
    """Zenoh's message without the Rust source locations it appends."""
    return re.sub(r" at /\S+\.rs:\d+\.?", "", str(exc)).strip()
