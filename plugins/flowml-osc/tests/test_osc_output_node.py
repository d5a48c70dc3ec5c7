"""output.osc, read back with liblo's oscdump (a real, independent OSC receiver)."""

from __future__ import annotations

import socket
import subprocess
import threading
import time

import pytest

from flowml.plugins import load_registry
from flowml.testing import NodeHarness, need_executables
from flowml_osc.output import OscOutput, messages


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def oscdump():
    """(port, lines): oscdump listening on a free port; lines fill as messages arrive."""
    need_executables("oscdump", missing="liblo-tools (oscdump) is not installed; scripts/test.sh installs it")
    port = free_port()
    proc = subprocess.Popen(["oscdump", "-L", str(port)], stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # wait until oscdump has the port
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                break
        time.sleep(0.02)
    yield port, lines
    proc.terminate()
    proc.wait(timeout=5)


def wait_lines(lines: list[str], n: int, timeout: float = 5.0, last: str = "") -> list[str]:
    deadline = time.monotonic() + timeout
    while (len(lines) < n or not lines[-1].rstrip().endswith(last)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return [line.split(" ", 1)[1].strip() for line in lines]  # drop the time tag


def test_values_arrive_as_osc(oscdump):
    port, lines = oscdump
    with NodeHarness(OscOutput, {"address": "/cls", "target": f"127.0.0.1:{port}", "rate": 1000}) as h:
        for value in (0.5, {"label": "cat", "score": 0.75}, [1, 2, 3], True, None):  # None: nothing
            h.process(value=value)
            time.sleep(0.003)  # more than 1/rate apart, so none is held back
    got = wait_lines(lines, 5)
    assert got == ['/cls f 0.500000', '/cls/label s "cat"', '/cls/score f 0.750000',
                   '/cls iii 1 2 3', '/cls T #T']


def test_rate_limit_sends_the_latest_value(oscdump):
    port, lines = oscdump
    with NodeHarness(OscOutput, {"address": "/v", "target": f"127.0.0.1:{port}", "rate": 10}) as h:
        for i in range(50):  # 50 values in about 0.3 s, at most 10 a second
            h.process(value=i)
            time.sleep(0.005)
        time.sleep(0.11)
        h.process(value=99)
    got = wait_lines(lines, 2, last=" 99")
    values = [int(line.split()[-1]) for line in got]
    assert 2 <= len(values) <= 6 and values[0] == 0 and values[-1] == 99
    assert values == sorted(values)


def test_messages_checks_and_the_entry_point():
    assert load_registry().get("output.osc").cls is OscOutput
    assert messages("/a", {"x": {"y": 1}}) == [("/a/x/y", [1])]
    assert messages("/a", [[1, 2], [3]]) == [("/a", ["[[1, 2], [3]]"])]
    with pytest.raises(Exception, match="starts with '/'"):
        OscOutput.Params(address="no-slash")
    with pytest.raises(Exception, match="host:port"):
        OscOutput.Params(target="localhost:http")


def test_on_change_sends_only_new_values(oscdump):
    port, lines = oscdump
    params = {"address": "/v", "target": f"127.0.0.1:{port}", "rate": 1000, "on_change": True}
    with NodeHarness(OscOutput, params) as h:
        for value in (1, 1, 1, 2, 2, 3):
            h.process(value=value)
            time.sleep(0.003)
    got = wait_lines(lines, 3, last=" 3")
    assert got == ["/v i 1", "/v i 2", "/v i 3"]
