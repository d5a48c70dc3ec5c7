"""--watch and OSCQuery: a reload that changes the tree sends PATH_CHANGED on the websocket;
an edited osc: section is reported as needing a restart."""

from __future__ import annotations

import json
import os
import textwrap
import time
import urllib.request

from control_helpers import wait_until
from websockets.sync.client import connect

from flowml.control.oscquery import tree_changes

GRAPH = """
flowml: 1
name: reloading
clock: {fps: 100}
osc: {port: 0}
nodes:
  k1: {type: ctl.knobs}
"""


def save(path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp~")
    tmp.write_text(textwrap.dedent(text))
    os.replace(tmp, path)


def texts(ws, timeout: float = 10.0) -> list[dict]:
    """Text frames (JSON) received within ``timeout``; binary OSC frames skipped."""
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    for _ in range(1000):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            msg = ws.recv(timeout=left)
        except TimeoutError:
            break
        if isinstance(msg, str):
            out.append(json.loads(msg))
            return out
    return out


def test_a_reload_that_adds_a_node_sends_path_changed(live):
    said: list[str] = []
    run = live.start(GRAPH, oscquery=True, watch=True, say=said.append)
    port = run.session.oscquery.port
    run.wait_ticks(2)
    with connect(f"ws://127.0.0.1:{port}/", open_timeout=5) as ws:
        save(run.path, GRAPH + "  k2: {type: ctl.knobs}\n")
        [msg] = texts(ws)
        assert msg == {"COMMAND": "PATH_CHANGED", "DATA": "/"}
        tree = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read())
        assert "k2" in tree["CONTENTS"]
        # a param edit alone (a new value, same tree) sends nothing
        save(run.path, GRAPH + "  k2: {type: ctl.knobs, params: {gain: 2.0}}\n")
        wait_until(lambda: any("reloaded" in line for line in said[1:]), timeout=10)
        assert texts(ws, timeout=1.0) == []
    assert not any("osc: section" in line for line in said)


def test_an_edited_osc_section_is_reported_as_needing_a_restart(live):
    said: list[str] = []
    run = live.start(GRAPH, oscquery=True, watch=True, say=said.append)
    run.wait_ticks(2)
    save(run.path, GRAPH.replace("osc: {port: 0}", "osc: {port: 0, prefix: /show}"))
    line = wait_until(lambda: next((s for s in said if "osc: section changed" in s), None), timeout=10)
    assert line.startswith("graph.yaml:") and "restart" in line
    assert "/k1/gain" in run.store.params           # the running prefix stays


def test_tree_changes_names_the_container_that_changed():
    old = {"/": "r", "/a": "c", "/a/x": "1", "/b": "c", "/b/y": "2"}
    assert tree_changes(old, dict(old)) is None
    assert tree_changes(old, {**old, "/a/z": "3"}) == "/a"          # added under /a
    assert tree_changes(old, {k: v for k, v in old.items() if k != "/b/y"}) == "/b"
    assert tree_changes(old, {**old, "/a/x": "9"}) == "/a/x"        # its TYPE or RANGE changed
    assert tree_changes(old, {**old, "/a/x": "9", "/b/y": "8"}) == "/"
