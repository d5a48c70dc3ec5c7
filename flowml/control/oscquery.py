"""OSCQuery: the param tree over HTTP (and LISTEN over a websocket on the same port).

Follows the OSCQuery proposal (Vidvox, github.com/Vidvox/OSCQueryProposal):

- ``GET /`` -> the whole tree: containers (one per node) with ``FULL_PATH``, ``CONTENTS``,
  ``ACCESS: 0``, ``DESCRIPTION``; params with ``FULL_PATH``, ``TYPE`` (OSC type tags: ``ii`` for
  a size, ``T``/``F`` for a bool), ``VALUE`` (live: what the node has now), ``RANGE`` (one entry
  per type tag: ``MIN``/``MAX`` or ``VALS``), ``ACCESS`` (3; 1 for a param that only the graph
  file changes), ``CLIPMODE`` (``"none"`` per tag: a value out of range is refused, not
  clipped), ``DESCRIPTION``. An exclusive bound (``gt=0``) is given as the nearest value
  inside it: the next int, or the next 32-bit float.
- ``GET /fx/gain`` -> that part of the tree; ``GET /fx/gain?VALUE`` -> ``{"VALUE": [...]}``.
- ``GET /?HOST_INFO`` -> ``NAME``, ``OSC_IP``, ``OSC_PORT``, ``OSC_TRANSPORT: "UDP"``,
  ``EXTENSIONS``.
- ``HEAD``: the headers of the ``GET``; ``OPTIONS``: 204 with ``Allow``; other methods 405
  (with ``Allow``), unknown methods 501, a malformed request 400.
- A websocket on the same port: send ``{"COMMAND": "LISTEN", "DATA": "/fx/gain"}`` (or
  ``IGNORE``) and get each new value as a binary OSC message (at most one per tick); binary OSC
  sent over the websocket is handled like OSC over UDP, answered on the websocket. When a
  ``--watch`` reload changes the tree, ``{"COMMAND": "PATH_CHANGED", "DATA": "/..."}`` is sent.

Only local pages may use it (``origins.OriginPolicy``: the ``Origin`` and ``Host`` checks);
others get 403. Unknown paths answer 404, unknown attributes 400. The server (aiohttp) runs an
asyncio loop on its own thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

from .convert import Kind, jsonable, range_of, to_osc, type_of
from .dispatch import GET, RECALL, SAVE
from .origins import OriginPolicy
from .osc_server import build_message
from .store import LiveParam, ParamStore

__all__ = ["OscQueryServer", "build_tree", "tree_changes"]

log = logging.getLogger("flowml.control")

ATTRIBUTES = ("FULL_PATH", "CONTENTS", "TYPE", "VALUE", "RANGE", "ACCESS", "DESCRIPTION",
              "CLIPMODE")
EXTENSIONS = {"ACCESS": True, "VALUE": True, "RANGE": True, "DESCRIPTION": True, "TAGS": False,
              "CLIPMODE": True, "UNIT": False, "CRITICAL": False, "EXTENDED_TYPE": False,
              "OVERLOADS": False, "HTML": False, "LISTEN": True, "PATH_CHANGED": True,
              "PATH_RENAMED": False, "PATH_ADDED": False, "PATH_REMOVED": False}
READ_METHODS = ("GET", "HEAD", "OPTIONS")
KNOWN_METHODS = READ_METHODS + ("POST", "PUT", "DELETE", "PATCH", "TRACE", "CONNECT")
ALLOW = ", ".join(READ_METHODS)


def _container(path: str, description: str = "") -> dict[str, Any]:
    node: dict[str, Any] = {"FULL_PATH": path, "ACCESS": 0, "CONTENTS": {}}
    if description:
        node["DESCRIPTION"] = description
    return node


def _leaf(lp: LiveParam) -> dict[str, Any]:
    value, shape = lp.value, lp.shape
    typetag = type_of(shape, value)
    if shape.kind == Kind.OTHER:
        args: list[Any] = [json.dumps(jsonable(value))]
    elif value is None:
        args = [None] * len(typetag)
    else:
        args = [jsonable(a) for a in to_osc(value)]
    desc = lp.info.description or lp.info.name
    if lp.expr is not None:
        desc += f" (follows {lp.expr.text!r}; set {lp.address}/expr to change)"
    meta = getattr(lp, "meta", None)
    live = getattr(meta, "live", True)
    if not live:
        desc += " (changes only in the graph file)"
    leaf: dict[str, Any] = {"FULL_PATH": lp.address, "TYPE": typetag, "ACCESS": 3 if live else 1,
                            "DESCRIPTION": desc, "VALUE": args}
    rng = range_of(lp.info, shape, typetag)
    if any(r is not None for r in rng):
        leaf["RANGE"] = rng
        leaf["CLIPMODE"] = ["none"] * len(rng)
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
            if lp.part is not None:  # /node/edits/0/value: inside the list param's node
                where, _, leaf = lp.address.rpartition("/")
                _place(root, where).setdefault("CONTENTS", {})[leaf] = _leaf(lp)
            else:
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


def _structure(tree: dict[str, Any]) -> dict[str, str]:
    """Every path of the tree with what a client caches about it (all but VALUE)."""
    out: dict[str, str] = {}

    def walk(node: dict[str, Any]) -> None:
        own = {k: v for k, v in node.items() if k not in ("VALUE", "CONTENTS")}
        out[node["FULL_PATH"]] = json.dumps(own, sort_keys=True)
        for child in node.get("CONTENTS", {}).values():
            walk(child)

    walk(tree)
    return out


def tree_changes(old: dict[str, str], new: dict[str, str]) -> str | None:
    """The container that holds every path added, removed or changed between two
    ``_structure`` maps (the ``DATA`` of PATH_CHANGED), or None when nothing changed."""
    changed = [p for p in old.keys() | new.keys() if old.get(p) != new.get(p)]
    if not changed:
        return None
    parents = [p.rstrip("/").rpartition("/")[0] or "/" if p in new.keys() ^ old.keys() else p
               for p in changed]
    common = [part for part in parents[0].split("/") if part]
    for p in parents[1:]:
        parts = [part for part in p.split("/") if part]
        n = 0
        while n < min(len(common), len(parts)) and common[n] == parts[n]:
            n += 1
        common = common[:n]
    return "/" + "/".join(common)


class _Client:
    """One websocket client: what it listens to, and values waiting to go to it."""

    def __init__(self, ws: Any, loop: asyncio.AbstractEventLoop):
        self.ws, self.loop = ws, loop
        self.paths: set[str] = set()
        self.pending: dict[str, list[Any]] = {}
        self.texts: list[str] = []
        self.wake = asyncio.Event()

    def queue(self, address: str, args: list[Any]) -> None:  # on the loop
        self.pending[address] = args  # the latest value wins
        self.wake.set()

    def queue_text(self, text: str) -> None:  # on the loop
        if len(self.texts) < 64:
            self.texts.append(text)
        self.wake.set()

    def send_osc(self, address: str, args: list[Any]) -> None:  # any thread
        self.loop.call_soon_threadsafe(self.queue, address, args)

    async def pump(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            texts, self.texts = self.texts, []
            for text in texts:
                await self.ws.send_str(text)
            pending, self.pending = self.pending, {}
            for address, args in pending.items():
                await self.ws.send_bytes(build_message(address, args))


class OscQueryServer:
    """HTTP + websocket server of the param tree. ``on_osc(datagram, client)`` handles OSC
    that a websocket client sends (answers go back through ``client.send_osc``).
    ``allow_origins``: web pages beyond local ones that may use it (``origins.OriginPolicy``)."""

    def __init__(self, store: ParamStore, host: str, port: int, *, osc_host: str, osc_port: int,
                 name: str = "flowml", on_osc: Callable[[bytes, Any], None] | None = None,
                 allow_origins: list[str] | None = None):
        self.store, self.host, self.port = store, host, port
        self.osc_host, self.osc_port, self.name, self.on_osc = osc_host, osc_port, name, on_osc
        self.policy = OriginPolicy(host, list(allow_origins or []))
        self.clients: set[_Client] = set()
        self.refused = 0                     # requests refused by the Origin/Host checks
        self._structure: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stopping: asyncio.Event | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start serving (raises OSError with a clear message if the port is taken)."""
        self._structure = _structure(build_tree(self.store, self.name))
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
        from aiohttp import web

        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=1 << 16)
        app.router.add_route("*", "/{tail:.*}", self._request)
        quiet = logging.getLogger("flowml.control.http")  # junk requests are answered 400,
        quiet.setLevel(logging.CRITICAL)                   # not logged with a traceback each
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0,
                               logger=quiet)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, backlog=64)
            await site.start()
            server = site._server  # the asyncio server: its socket tells the port taken
            if server is not None and getattr(server, "sockets", None):
                self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stopping.wait()
            for client in list(self.clients):
                await client.ws.close()
        finally:
            await runner.cleanup()

    # -- HTTP ---------------------------------------------------------------------------------
    async def _request(self, request: Any) -> Any:
        from aiohttp import web

        method = request.method
        problem = self.policy.host_problem(request.headers.get("Host")) or \
            self.policy.origin_problem(request.headers.get("Origin"))
        if problem:
            self.refused += 1
            log.warning("OSCQuery: refused %s %s: %s", method, request.path[:80], problem)
            return self._json(403, {"error": problem})
        if method == "GET" and request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._ws(request)
        if method == "OPTIONS":
            return self._cors(web.Response(status=204, headers={"Allow": ALLOW}), request)
        if method not in ("GET", "HEAD"):
            status = 405 if method in KNOWN_METHODS else 501
            reason = (f"{method} is not served here; the tree is read with GET (or HEAD)"
                      if status == 405 else f"unknown method {method[:20]!r}")
            return self._json(status, {"error": reason}, Allow=ALLOW)
        status, body = self.answer(request.path_qs)
        response = web.Response(status=status, text=body if status != 204 else None,
                                content_type="application/json" if status != 204 else None)
        return self._cors(response, request)

    @staticmethod
    def _cors(response: Any, request: Any) -> Any:
        origin = request.headers.get("Origin")
        if origin is not None:  # it passed the Origin check: let that page read the answer
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        return response

    @staticmethod
    def _json(status: int, data: Any, **headers: str) -> Any:
        from aiohttp import web

        return web.Response(status=status, text=json.dumps(data), content_type="application/json",
                            headers=headers)

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
    async def _ws(self, request: Any) -> Any:
        from aiohttp import WSMsgType, web

        assert self._loop is not None
        ws = web.WebSocketResponse(max_msg_size=1 << 16, heartbeat=None)
        await ws.prepare(request)
        client = _Client(ws, self._loop)
        self.clients.add(client)
        pump = asyncio.create_task(client.pump())
        try:
            async for message in ws:
                if message.type == WSMsgType.BINARY:
                    if self.on_osc is not None:
                        await asyncio.to_thread(self.on_osc, bytes(message.data), client)
                elif message.type == WSMsgType.TEXT:
                    self._command(client, message.data)
                else:
                    break
        except Exception as exc:  # a client going away is normal
            log.debug("OSCQuery websocket: %s", exc)
        finally:
            pump.cancel()
            self.clients.discard(client)
        return ws

    def _command(self, client: _Client, text: str) -> None:
        try:
            msg = json.loads(text)
            command, path = msg["COMMAND"], msg.get("DATA", "")
        except (ValueError, KeyError, TypeError, RecursionError):
            log.debug("OSCQuery: ignoring websocket text %r", text[:80])
            return
        if not isinstance(path, str):
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

    # -- the tree changed ----------------------------------------------------------------------
    def tree_may_have_changed(self) -> None:
        """Any thread (after a reload): compare the tree with the last one served and send
        PATH_CHANGED to every websocket client when it differs."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._check_tree)

    def _check_tree(self) -> None:  # on the loop
        try:
            new = _structure(build_tree(self.store, self.name))
        except Exception as exc:  # the store is mid-rebuild: the next reload tries again
            log.debug("OSCQuery: tree check failed: %s", exc)
            return
        where = tree_changes(self._structure, new)
        self._structure = new
        if where is None:
            return
        text = json.dumps({"COMMAND": "PATH_CHANGED", "DATA": where})
        for client in list(self.clients):
            client.queue_text(text)
