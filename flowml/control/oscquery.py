"""OSCQuery: the param tree over HTTP (and LISTEN over a websocket on the same port).

Follows the OSCQuery proposal (Vidvox, github.com/Vidvox/OSCQueryProposal):

- ``GET /`` -> the whole tree: containers (one per node) with ``FULL_PATH``, ``CONTENTS``,
  ``ACCESS: 0``, ``DESCRIPTION``; params with ``FULL_PATH``, ``TYPE`` (OSC type tags),
  ``VALUE`` (live: what the node has now), ``RANGE`` (``MIN``/``MAX`` or ``VALS``), ``ACCESS: 3``,
  ``CLIPMODE``, ``DESCRIPTION``.
- ``GET /fx/gain`` -> that part of the tree; ``GET /fx/gain?VALUE`` -> ``{"VALUE": [...]}``.
- ``GET /?HOST_INFO`` -> ``NAME``, ``OSC_IP``, ``OSC_PORT``, ``OSC_TRANSPORT: "UDP"``,
  ``EXTENSIONS``.
- A websocket on the same port: send ``{"COMMAND": "LISTEN", "DATA": "/fx/gain"}`` (or
  ``IGNORE``) and get each new value as a binary OSC message (at most one per tick); binary OSC
  sent over the websocket is handled like OSC over UDP, answered on the websocket.

Unknown paths answer 404, unknown attributes 400. The server runs an asyncio loop (the
``websockets`` library) on its own thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

from .convert import Kind, jsonable, range_of, to_osc
from .dispatch import GET, RECALL, SAVE
from .osc_server import build_message
from .store import LiveParam, ParamStore

__all__ = ["OscQueryServer", "build_tree"]

log = logging.getLogger("flowml.control")

ATTRIBUTES = ("FULL_PATH", "CONTENTS", "TYPE", "VALUE", "RANGE", "ACCESS", "DESCRIPTION",
              "CLIPMODE")
EXTENSIONS = {"ACCESS": True, "VALUE": True, "RANGE": True, "DESCRIPTION": True, "TAGS": False,
              "CLIPMODE": True, "UNIT": False, "CRITICAL": False, "EXTENDED_TYPE": False,
              "OVERLOADS": False, "HTML": False, "LISTEN": True, "PATH_CHANGED": False,
              "PATH_RENAMED": False, "PATH_ADDED": False, "PATH_REMOVED": False}


def _container(path: str, description: str = "") -> dict[str, Any]:
    node: dict[str, Any] = {"FULL_PATH": path, "ACCESS": 0, "CONTENTS": {}}
    if description:
        node["DESCRIPTION"] = description
    return node


def _leaf(lp: LiveParam) -> dict[str, Any]:
    value = lp.value
    args = to_osc(value) if lp.shape.kind != Kind.OTHER else [json.dumps(jsonable(value))]
    typetag = lp.shape.typetag if lp.shape.kind != Kind.OTHER else "s"
    if lp.shape.kind == Kind.BOOL:
        typetag = "T" if value else "F"
    desc = lp.info.description or lp.info.name
    if lp.expr is not None:
        desc += f" (follows {lp.expr.text!r}; set {lp.address}/expr to change)"
    leaf: dict[str, Any] = {
        "FULL_PATH": lp.address, "TYPE": typetag, "ACCESS": 3, "DESCRIPTION": desc,
        "VALUE": [jsonable(a) for a in args] if lp.shape.kind != Kind.OTHER else args,
    }
    rng = range_of(lp.info, lp.shape)
    if any(r is not None for r in rng):
        leaf["RANGE"] = rng
        leaf["CLIPMODE"] = "both"
    return leaf


def _place(root: dict[str, Any], path: str) -> dict[str, Any]:
    """The container at ``path`` under ``root``, made where missing."""
    node = root
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts):
        contents = node.setdefault("CONTENTS", {})
        if part not in contents:
            contents[part] = _container("/" + "/".join(parts[: i + 1]))
        node = contents[part]
    return node


def build_tree(store: ParamStore, name: str = "flowml", control: bool = True) -> dict[str, Any]:
    """The whole OSCQuery tree of ``store``'s params (plus ``/flowml/preset/...``)."""
    root = _container("/", f"flowml graph {name}")
    for node, params in store.nodes().items():
        rn = store.graph.nodes[node]
        holder = _place(root, f"{store.prefix}/{node}")
        doc = rn.type.cls.describe() if hasattr(rn.type.cls, "describe") else ""
        holder["DESCRIPTION"] = f"{rn.type.name}: {doc}" if doc else rn.type.name
        for lp in params:
            holder["CONTENTS"][lp.name] = _leaf(lp)
    if control:
        for address, typetag, desc in ((SAVE, "i", "save every param as preset N"),
                                       (RECALL, "i", "recall preset N (a 2nd arg: crossfade seconds)"),
                                       (GET, "s", "answers <address> value... for the matching params")):
            parent, _, leaf = address.rpartition("/")
            holder = _place(root, parent)
            holder["CONTENTS"].setdefault(leaf, {"FULL_PATH": address, "TYPE": typetag, "ACCESS": 2,
                                                 "DESCRIPTION": desc})
    return root


def _find(tree: dict[str, Any], path: str) -> dict[str, Any] | None:
    node = tree
    for part in [p for p in path.split("/") if p]:
        node = node.get("CONTENTS", {}).get(part)
        if node is None:
            return None
    return node


class _Client:
    """One websocket client: what it listens to, and values waiting to go to it."""

    def __init__(self, ws: Any, loop: asyncio.AbstractEventLoop):
        self.ws, self.loop = ws, loop
        self.paths: set[str] = set()
        self.pending: dict[str, list[Any]] = {}
        self.wake = asyncio.Event()

    def queue(self, address: str, args: list[Any]) -> None:  # on the loop
        self.pending[address] = args  # the latest value wins
        self.wake.set()

    def send_osc(self, address: str, args: list[Any]) -> None:  # any thread
        self.loop.call_soon_threadsafe(self.queue, address, args)

    async def pump(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            pending, self.pending = self.pending, {}
            for address, args in pending.items():
                await self.ws.send(build_message(address, args))


class OscQueryServer:
    """HTTP + websocket server of the param tree. ``on_osc(datagram, client)`` handles OSC
    that a websocket client sends (answers go back through ``client.send_osc``)."""

    def __init__(self, store: ParamStore, host: str, port: int, *, osc_host: str, osc_port: int,
                 name: str = "flowml", on_osc: Callable[[bytes, Any], None] | None = None):
        self.store, self.host, self.port = store, host, port
        self.osc_host, self.osc_port, self.name, self.on_osc = osc_host, osc_port, name, on_osc
        self.clients: set[_Client] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stopping: asyncio.Event | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start serving (raises OSError with a clear message if the port is taken)."""
        self._thread = threading.Thread(target=self._run, name="flowml-oscquery", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise OSError(f"cannot serve OSCQuery on {self.host}:{self.port}: {self._error}; pick "
                          "another port (--oscquery-port, or osc: {oscquery_port: ...}; 0: any free)")
        self.store.listeners.append(self._changed)

    def stop(self) -> None:
        if self._changed in self.store.listeners:
            self.store.listeners.remove(self._changed)
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        from websockets.asyncio.server import serve

        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        quiet = logging.getLogger("flowml.control.websockets")
        quiet.setLevel(logging.CRITICAL)
        async with serve(self._ws, self.host, self.port, process_request=self._http,
                         logger=quiet, max_size=1 << 16) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stopping.wait()

    # -- HTTP ---------------------------------------------------------------------------------
    def _http(self, connection: Any, request: Any) -> Any:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None  # go on with the websocket handshake
        status, body = self.answer(request.path)
        response = connection.respond(status, body)
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    def answer(self, target: str) -> tuple[int, str]:
        """``(status, JSON text)`` for a request target like ``/fx/gain?VALUE``."""
        parts = urlsplit(target)
        path, query = unquote(parts.path) or "/", parts.query
        if query == "HOST_INFO":
            return 200, json.dumps(self.host_info())
        node = _find(build_tree(self.store, self.name), path)
        if node is None:
            return 404, json.dumps({"error": f"no such path {path}"})
        if not query:
            return 200, json.dumps(node)
        if query not in ATTRIBUTES:
            return 400, json.dumps({"error": f"unknown attribute {query}; known: {', '.join(ATTRIBUTES)}"})
        if query not in node:
            return 204, ""
        return 200, json.dumps({query: node[query]})

    def host_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"NAME": self.name, "OSC_PORT": self.osc_port,
                                "OSC_TRANSPORT": "UDP", "EXTENSIONS": EXTENSIONS}
        if self.osc_host not in ("0.0.0.0", "::", ""):
            info["OSC_IP"] = self.osc_host
        return info

    # -- websocket ----------------------------------------------------------------------------
    async def _ws(self, ws: Any) -> None:
        assert self._loop is not None
        client = _Client(ws, self._loop)
        self.clients.add(client)
        pump = asyncio.create_task(client.pump())
        try:
            async for message in ws:
                if isinstance(message, (bytes, bytearray)):
                    if self.on_osc is not None:
                        await asyncio.to_thread(self.on_osc, bytes(message), client)
                else:
                    self._command(client, message)
        except Exception as exc:  # a client going away is normal
            log.debug("OSCQuery websocket: %s", exc)
        finally:
            pump.cancel()
            self.clients.discard(client)

    def _command(self, client: _Client, text: str) -> None:
        try:
            msg = json.loads(text)
            command, path = msg["COMMAND"], msg.get("DATA", "")
        except (ValueError, KeyError, TypeError):
            log.debug("OSCQuery: ignoring websocket text %r", text[:80])
            return
        if command == "LISTEN":
            client.paths.add(path)
            lp = self.store.params.get(path)
            if lp is not None:  # the current value at once
                client.queue(path, to_osc(lp.value))
        elif command == "IGNORE":
            client.paths.discard(path)

    def _changed(self, changed: list[LiveParam]) -> None:
        """Store listener (dispatch thread): pass new values to listening clients."""
        if not self.clients or self._loop is None:
            return
        items = [(lp.address, to_osc(lp.value)) for lp in changed]
        self._loop.call_soon_threadsafe(self._push, items)

    def _push(self, items: list[tuple[str, list[Any]]]) -> None:
        for client in list(self.clients):
            for address, args in items:
                if address in client.paths:
                    client.queue(address, args)
