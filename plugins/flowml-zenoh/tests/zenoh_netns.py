"""Two network namespaces joined by a veth pair, made and removed by a test.

Like tests/control/test_discovery_netns.py (which makes one anonymous namespace with
``unshare -n``), this uses iproute2; here the namespaces are named (``ip netns add``) so two
processes can be started in each with ``ip netns exec``. Addresses come from 198.18.0.0/15
(RFC 2544, benchmarking): nothing on them reaches a real network.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import Iterator


@dataclass(frozen=True)
class Pair:
    """Namespace ``a`` has ``addr_a`` on its end of the veth, ``b`` has ``addr_b``."""

    a: str
    b: str
    addr_a: str = "198.18.0.1"
    addr_b: str = "198.18.0.2"
    port: int = 7447

    def exec(self, ns: str) -> list[str]:
        """The command prefix that runs a program inside namespace ``ns`` ("": here)."""
        return ["ip", "netns", "exec", ns] if ns else []

    @property
    def link(self) -> str:
        return "veth" if self.a else "loopback"


def loopback() -> Pair:
    """Both ends on this host's loopback, no namespaces (the GPU test where none can be made)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return Pair("", "", "127.0.0.1", "127.0.0.1", s.getsockname()[1])


def problem() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if sys.platform != "linux":
        return "network namespaces are Linux only"
    if shutil.which("ip") is None:
        return "needs ip (iproute2); scripts/test.sh installs it"
    if os.geteuid() != 0:
        return "needs root (ip netns add); CI runs as root"
    return None


def _ip(*args: str) -> None:
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")


@contextlib.contextmanager
def veth_pair(tag: str = "fz") -> Iterator[Pair]:
    """Make namespaces ``<tag><pid>a`` / ``b`` joined by a veth, 198.18.0.1/30 and .2/30, both
    loopbacks up; remove them (and so the veth) afterwards, whatever happened."""
    why = problem()
    if why:
        raise RuntimeError(f"cannot make network namespaces: {why}")
    pair = Pair(f"{tag}{os.getpid()}a", f"{tag}{os.getpid()}b")
    made: list[str] = []
    try:
        for ns in (pair.a, pair.b):
            _ip("netns", "add", ns)
            made.append(ns)
        ea, eb = f"{tag}{os.getpid()}va"[:15], f"{tag}{os.getpid()}vb"[:15]
        _ip("link", "add", ea, "netns", pair.a, "type", "veth", "peer", "name", eb, "netns", pair.b)
        for ns, dev, addr in ((pair.a, ea, pair.addr_a), (pair.b, eb, pair.addr_b)):
            _ip("-n", ns, "addr", "add", f"{addr}/30", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield pair
    finally:
        for ns in made:  # deleting a namespace deletes its end of the veth, and so the pair
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
