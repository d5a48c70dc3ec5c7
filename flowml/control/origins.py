"""Which web pages may talk to the OSCQuery server, and which Host names it answers to.

A browser lets any page it shows send requests to ``http://127.0.0.1:PORT`` and open
websockets to it; the ``Origin`` header says which page asks. By default only local pages
may read the tree or LISTEN: a request with no ``Origin`` (curl, ossia score, TouchDesigner,
any native client), or one whose origin's host is ``localhost`` (or ``*.localhost``),
``127.0.0.1``, ``[::1]`` or the address the server is bound to. ``osc: {allow_origins: [...]}``
widens it: full origins (``http://192.168.1.20:8080``), bare host names, or ``*``.

The ``Host`` header guards against DNS rebinding (a page on ``evil.example`` whose name is
made to point at 127.0.0.1): it must be an IP address (of this machine: it reached us),
a local name (``localhost``, this machine's name, ``<name>.local``) or a host that
``allow_origins`` names.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["OriginPolicy"]

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


def _host_of(authority: str) -> str:
    """``[::1]:80`` -> ``::1``; ``Example.COM:80`` -> ``example.com``."""
    try:
        host = urlsplit("//" + authority).hostname
    except ValueError:
        return ""
    return (host or "").rstrip(".").lower()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_local(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class OriginPolicy:
    """The checks for one server bound to ``bound`` (an address, or 0.0.0.0 for all)."""

    bound: str = "127.0.0.1"
    allow: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.any_origin = "*" in self.allow
        self.origins = {a.rstrip("/").lower() for a in self.allow if "://" in a or a == "null"}
        self.hosts = {a.lower() for a in self.allow if "://" not in a and a not in ("*", "null")}
        self.host_names = self.hosts | {_host_of(urlsplit(a).netloc) for a in self.allow if "://" in a}
        name = socket.gethostname().lower()
        self.names = {name, f"{name}.local", name.split(".")[0] + ".local"}

    def origin_problem(self, origin: str | None) -> str | None:
        """Why a page from ``origin`` may not read or LISTEN, or None when it may."""
        if origin is None or self.any_origin:
            return None
        text = origin.strip().rstrip("/").lower()
        if text in self.origins:
            return None
        if text != "null":
            parts = urlsplit(text)
            host = _host_of(parts.netloc) if parts.scheme in ("http", "https") else ""
            if host and (_is_local(host) or host == self.bound.lower() or host in self.hosts):
                return None
        return (f"pages from {origin[:100]!r} may not use this OSCQuery server; add the origin to "
                "the graph's osc: {allow_origins: [...]} to let them")

    def host_problem(self, host_header: str | None) -> str | None:
        """Why a request with this ``Host`` header is refused (DNS rebinding), or None."""
        if host_header is None:
            return None
        host = _host_of(host_header)
        if host and (_is_ip(host) or _is_local(host) or host in self.names or host in self.host_names
                     or self.any_origin):
            return None
        return (f"Host {host_header[:100]!r} is not this machine's address or a local name; "
                "connect by IP address or localhost (or add the name to osc: {allow_origins: [...]})")
