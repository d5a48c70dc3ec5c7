"""mDNS / DNS-SD (python-zeroconf): advertise a running graph, find graphs and OSCQuery servers.

A graph with OSCQuery on is advertised as two services, as the OSCQuery proposal and the
tools that read it (ossia score, TouchDesigner's OSCQuery support, VRChat-style clients)
expect:

- ``_oscjson._tcp``: the OSCQuery HTTP/websocket port. TXT: ``txtvers=1``, ``flowml=<version>``,
  ``graph=<name>``, ``osc_port``, ``osc_transport=UDP``.
- ``_osc._udp``: the OSC port. TXT: ``txtvers=1``, ``flowml``, ``graph``, ``oscquery_port``.

Where it is announced follows where the servers listen: a graph bound to one address
(127.0.0.1, the default, or a LAN address) is announced on that interface only; one bound to
``0.0.0.0`` on every interface, with each interface's IPv4 address. ``osc: {mdns: false}``
turns it off. Announcing never stops a graph: a failure is logged and the graph runs on.

``browse`` lists what answers within a time and reads each OSCQuery server's ``HOST_INFO``
(``flowml discover``).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Advertiser", "Found", "browse", "render", "OSCJSON", "OSC_UDP"]

log = logging.getLogger("flowml.control")

OSCJSON = "_oscjson._tcp.local."
OSC_UDP = "_osc._udp.local."
_ANY = ("0.0.0.0", "", "::")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("flowml")
    except Exception:
        return "0"


def _label(name: str) -> str:
    """A DNS-SD instance name: at most 63 bytes of UTF-8, no dots."""
    text = (name or "flowml").replace(".", "-").strip() or "flowml"
    while len(text.encode()) > 63:
        text = text[:-1]
    return text


def local_ipv4() -> list[str]:
    """This machine's IPv4 addresses (loopback last), as zeroconf's ``ifaddr`` lists them."""
    import ifaddr

    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and ip.ip not in found:
                found.append(ip.ip)
    return sorted(found, key=lambda a: a.startswith("127."))


class Advertiser:
    """Announces one graph's ``_oscjson._tcp`` and ``_osc._udp`` services while it runs.

    ``host`` is the address the servers are bound to. ``start`` returns at once (zeroconf
    probes for a free name on its own thread); ``stop`` says goodbye and closes, bounded."""

    def __init__(self, name: str, host: str, oscquery_port: int, osc_port: int | None):
        self.name, self.host = _label(name), host
        self.oscquery_port, self.osc_port = oscquery_port, osc_port
        self.zc: Any = None
        self.infos: list[Any] = []
        self.error: str | None = None
        self.registered = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def addresses(self) -> list[str]:
        if self.host in _ANY:
            return [a for a in local_ipv4() if not a.startswith("127.")] or ["127.0.0.1"]
        return [socket.gethostbyname(self.host)]

    def _service_infos(self) -> list[Any]:
        from zeroconf import ServiceInfo

        addresses = [socket.inet_aton(a) for a in self.addresses]
        server = f"{_label(socket.gethostname().split('.')[0])}-flowml-{self.oscquery_port}.local."
        common = {"txtvers": "1", "flowml": _version(), "graph": self.name}
        infos = [ServiceInfo(OSCJSON, f"{self.name}.{OSCJSON}", port=self.oscquery_port,
                             addresses=addresses, server=server,
                             properties={**common, "osc_port": str(self.osc_port or ""),
                                         "osc_transport": "UDP"})]
        if self.osc_port:
            infos.append(ServiceInfo(OSC_UDP, f"{self.name}.{OSC_UDP}", port=self.osc_port,
                                     addresses=addresses, server=server,
                                     properties={**common, "oscquery_port": str(self.oscquery_port)}))
        return infos

    def start(self) -> None:
        self._thread = threading.Thread(target=self._register, name="flowml-mdns", daemon=True)
        self._thread.start()

    def _register(self) -> None:
        try:
            from zeroconf import InterfaceChoice, IPVersion, Zeroconf

            interfaces = InterfaceChoice.All if self.host in _ANY else [self.addresses[0]]
            zc = Zeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
            with self._lock:
                if self._stopped:
                    zc.close()
                    return
                self.zc = zc
            for info in self._service_infos():
                zc.register_service(info, allow_name_change=True)
                self.infos.append(info)
            self.registered.set()
            log.info("mDNS: advertising %s", ", ".join(i.name for i in self.infos))
        except Exception as exc:  # no multicast here, say: OSCQuery works, discovery does not
            if self._stopped:  # closed while still probing for a name: nothing to report
                self.registered.set()
                return
            self.error = f"{type(exc).__name__}: {exc}"
            log.warning("mDNS: cannot advertise OSCQuery on %s (%s); clients can still connect "
                        "to the port directly (osc: {mdns: false} turns this off)", self.host, self.error)
            self.registered.set()

    def describe(self) -> str:
        if self.error:
            return f"mDNS: not advertised ({self.error})"
        where = "every interface" if self.host in _ANY else self.host
        return f"mDNS: advertising '{self.name}' as _oscjson._tcp and _osc._udp on {where}"

    def stop(self, timeout: float = 3.0) -> None:
        with self._lock:
            self._stopped = True
        if self._thread is not None:  # still probing for a name: a short wait, then close anyway
            self._thread.join(min(timeout, 1.0))
        with self._lock:
            zc = self.zc
        if zc is None:
            return
        done = threading.Event()

        def close() -> None:
            try:
                zc.unregister_all_services()
            except Exception as exc:
                log.debug("mDNS: goodbye failed: %s", exc)
            finally:
                zc.close()
                done.set()

        threading.Thread(target=close, name="flowml-mdns-stop", daemon=True).start()
        done.wait(timeout)


@dataclass
class Found:
    """One service that answered: where it is, its TXT record, and (OSCQuery) its HOST_INFO."""

    name: str
    type: str
    addresses: list[str]
    port: int
    txt: dict[str, str] = field(default_factory=dict)
    host_info: dict[str, Any] | None = None
    error: str | None = None

    @property
    def flowml(self) -> bool:
        return "flowml" in self.txt

    @property
    def url(self) -> str:
        return f"http://{self.addresses[0] if self.addresses else '?'}:{self.port}/"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["flowml"] = self.flowml
        if self.type == OSCJSON:
            d["url"] = self.url
        return d


def _txt(info: Any) -> dict[str, str]:
    out = {}
    for k, v in (info.properties or {}).items():
        key = k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)
        out[key] = v.decode("utf-8", "replace") if isinstance(v, bytes) else ("" if v is None else str(v))
    return out


def host_info(address: str, port: int, timeout: float = 2.0) -> dict[str, Any]:
    """``GET /?HOST_INFO`` of an OSCQuery server."""
    with urllib.request.urlopen(f"http://{address}:{port}/?HOST_INFO", timeout=timeout) as r:
        data = json.loads(r.read(1 << 20))
    if not isinstance(data, dict):
        raise ValueError("HOST_INFO is not a JSON object")
    return data


def browse(timeout: float = 3.0, *, interfaces: list[str] | None = None,
           types: tuple[str, ...] = (OSCJSON, OSC_UDP), read_host_info: bool = True) -> list[Found]:
    """Every service of ``types`` that answers within ``timeout`` seconds (OSCQuery ones with
    their HOST_INFO), on ``interfaces`` (addresses; default: all)."""
    from zeroconf import InterfaceChoice, IPVersion, ServiceBrowser, Zeroconf

    names: set[tuple[str, str]] = set()
    lock = threading.Lock()

    class Listener:
        def add_service(self, zc: Any, type_: str, name: str) -> None:
            with lock:
                names.add((type_, name))

        def update_service(self, zc: Any, type_: str, name: str) -> None:
            self.add_service(zc, type_, name)

        def remove_service(self, zc: Any, type_: str, name: str) -> None:
            with lock:
                names.discard((type_, name))

    zc = Zeroconf(interfaces=interfaces or InterfaceChoice.All, ip_version=IPVersion.V4Only)
    found: list[Found] = []
    try:
        browser = ServiceBrowser(zc, list(types), Listener())
        time.sleep(max(0.0, timeout))
        browser.cancel()
        with lock:
            todo = sorted(names)
        for type_, name in todo[:256]:
            info = zc.get_service_info(type_, name, timeout=1500)
            if info is None:
                continue
            f = Found(name.removesuffix("." + type_), type_, info.parsed_addresses(), info.port or 0,
                      _txt(info))
            if read_host_info and type_ == OSCJSON and f.addresses:
                try:
                    f.host_info = host_info(f.addresses[0], f.port)
                except Exception as exc:
                    f.error = f"HOST_INFO: {type(exc).__name__}: {exc}"
            found.append(f)
    finally:
        zc.close()
    return found


def render(found: list[Found], as_json: bool = False) -> str:
    """``flowml discover``'s output: JSON, or one block per OSCQuery server (flowml graphs
    first) and one line per OSC-only service."""
    if as_json:
        return json.dumps([f.as_dict() for f in found], indent=2)
    if not found:
        return "nothing found (graphs advertise only where OSCQuery is on and osc.mdns is not false)"
    lines: list[str] = []
    query = sorted((f for f in found if f.type == OSCJSON), key=lambda f: (not f.flowml, f.name))
    for f in query:
        kind = "flowml graph" if f.flowml else "OSCQuery server"
        lines.append(f"{kind} '{f.name}': {f.url}")
        info = f.host_info or {}
        if info:
            osc_ip = info.get("OSC_IP") or (f.addresses[0] if f.addresses else "?")
            lines.append(f"  OSC: {info.get('OSC_TRANSPORT', 'UDP').lower()} {osc_ip}:"
                         f"{info.get('OSC_PORT', '?')}   name: {info.get('NAME', '')}")
        elif f.error:
            lines.append(f"  {f.error}")
    for f in sorted((f for f in found if f.type == OSC_UDP), key=lambda f: f.name):
        where = f"{f.addresses[0] if f.addresses else '?'}:{f.port}"
        lines.append(f"OSC (udp) '{f.name}': {where}" + (" (flowml)" if f.flowml else ""))
    return "\n".join(lines)
