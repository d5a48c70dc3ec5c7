"""mDNS discovery, for real: in a network namespace this test makes (loopback only, with a
multicast route, so nothing reaches a real network), `flowml run` advertises the graph and a
zeroconf browser (and `flowml discover`) finds `_oscjson._tcp` with the right port and reads
the tree from it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).with_name("netns_mdns_probe.py")
GRAPH = """\
flowml: 1
name: mdns-probe
clock: {fps: 20}
osc: {port: 0, oscquery_port: 0}
nodes:
  src: {type: capture.pattern, params: {size: [160, 90]}}
"""
SETUP = "ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo"


def _namespace() -> tuple[list[str] | None, str]:
    """The unshare command that makes a network namespace here (as root: -n; otherwise a user
    namespace too: -rn), or None and why not."""
    if sys.platform != "linux":
        return None, "network namespaces are Linux only"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return None, "needs unshare (util-linux) and ip (iproute2); scripts/test.sh installs them"
    why = []
    for cmd in (["unshare", "-n"], ["unshare", "-rn"]):
        probe = subprocess.run([*cmd, "--", "sh", "-c", SETUP], capture_output=True, text=True,
                               timeout=30)
        if probe.returncode == 0:
            return cmd, ""
        why.append(f"{' '.join(cmd)} + '{SETUP}' exited {probe.returncode}: "
                   f"{probe.stderr.strip()[:160]}")
    return None, ("cannot make a network namespace here (" + "; ".join(why) +
                  "); needs root, CAP_SYS_ADMIN or unprivileged user namespaces")


@pytest.mark.slow
def test_a_zeroconf_browser_in_a_namespace_finds_the_graph_and_reads_its_tree(tmp_path):
    unshare, problem = _namespace()
    if unshare is None:
        pytest.skip(problem)
    graph = tmp_path / "graph.yaml"
    graph.write_text(GRAPH)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run([*unshare, "--", "sh", "-c",
                          f'{SETUP} && exec "$0" "$1" "$2"', sys.executable, str(PROBE), str(graph)],
                         capture_output=True, text=True, timeout=240, cwd=tmp_path, env=env)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line, f"probe gave no result (rc {out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    seen = json.loads(line.removeprefix("RESULT "))
    log = "\n".join(seen["lines"])
    assert "oscquery_port" in seen, log
    assert any("mDNS: advertising 'mdns-probe'" in ln for ln in seen["lines"]), log

    query = [f for f in seen["found"] if f["type"] == "_oscjson._tcp.local."]
    assert len(query) == 1, (seen["found"], log)
    q = query[0]
    assert q["name"] == "mdns-probe" and q["port"] == seen["oscquery_port"]
    assert q["addresses"] == ["127.0.0.1"] and q["flowml"] is True
    assert q["txt"]["graph"] == "mdns-probe" and q["txt"]["osc_port"] == str(seen["osc_port"])
    assert q["host_info"]["NAME"] == "mdns-probe" and q["host_info"]["OSC_PORT"] == seen["osc_port"]
    osc = [f for f in seen["found"] if f["type"] == "_osc._udp.local."]
    assert [f["port"] for f in osc] == [seen["osc_port"]]
    assert osc[0]["txt"]["oscquery_port"] == str(seen["oscquery_port"])
    # the tree read from the address and port that discovery gave
    assert seen["size_leaf"]["TYPE"] == "ii" and seen["size_leaf"]["VALUE"] == [160, 90]

    assert seen["discover_rc"] == 0, seen["discover"]
    names = {(f["type"], f["name"], f["port"]) for f in seen["discover"]}
    assert ("_oscjson._tcp.local.", "mdns-probe", seen["oscquery_port"]) in names
    assert "mdns-probe" not in seen["after_stop"]            # said goodbye on stop
