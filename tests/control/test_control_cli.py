"""`flowml run` with live control: --osc-port, a port in use, stats out over OSC."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from control_helpers import LOOPBACK, OscDump, free_udp_port, need_liblo, oscsend
from control_nodes import FRAMES

from flowml import cli

GRAPH = """
flowml: 1
clock: {fps: 50}
nodes:
  k1: {type: ctl.knobs}
"""


@pytest.fixture
def cli_registry(live, monkeypatch):
    monkeypatch.setattr(cli, "_registry", lambda: live.registry)
    return live


def test_run_listens_for_osc(cli_registry, capsys):
    need_liblo()  # here, not in the thread (a skip raised there would not reach pytest)
    path = cli_registry.write(GRAPH)
    port = free_udp_port()

    def drive():
        time.sleep(0.5)
        oscsend(port, "/k1/gain", "f", 6.5)

    t = threading.Thread(target=drive)
    t.start()
    code = cli.main(["run", str(path), "--duration", "1.5", "--osc-port", str(port)])
    t.join()
    assert code == 0
    assert FRAMES["k1"][-1].params.gain == 6.5 and FRAMES["k1"][0].params.gain == 1.0
    err = capsys.readouterr().err
    assert f"OSC on udp 127.0.0.1:{port}, 6 params at /<node>/<param>" in err


def test_a_port_in_use_is_a_clear_error(cli_registry, capsys):
    path = cli_registry.write(GRAPH)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOOPBACK, 0))
        taken = s.getsockname()[1]
        code = cli.main(["run", str(path), "--duration", "0.2", "--osc-port", str(taken)])
    assert code == 2
    err = capsys.readouterr().err
    assert f"cannot listen for OSC on 127.0.0.1:{taken}" in err and "--osc-port" in err
    assert not FRAMES["k1"]  # nothing ran


def test_a_bad_reply_address_is_a_clear_error(cli_registry, capsys):
    path = cli_registry.write(GRAPH + "osc: {port: 0, reply: 'localhost'}\n")
    assert cli.main(["run", str(path), "--duration", "0.2"]) == 2
    assert "write host:port, e.g. 127.0.0.1:9001" in capsys.readouterr().err


def test_stats_are_published_over_osc(live):
    with OscDump() as dump:
        live.start(f"""
            flowml: 1
            clock: {{fps: 50}}
            osc: {{port: 0, stats: 20, send: ["127.0.0.1:{dump.port}"]}}
            nodes:
              k1: {{type: ctl.knobs}}
        """)
        fps = dump.wait_for(lambda m: m.address == "/flowml/stats/fps" and m.args[0] > 30, timeout=5)
        assert fps[-1].types == "f"
        want = {"/flowml/stats/latency_ms", "/flowml/stats/frames", "/flowml/stats/dropped",
                "/flowml/stats/node/k1/mean_us"}
        deadline = time.monotonic() + 5
        # one publish sends fps first and each node's mean last: give oscdump time to print them
        while not want <= (names := {m.address for m in list(dump.messages)}) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert want <= names
