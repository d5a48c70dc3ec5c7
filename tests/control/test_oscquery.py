"""OSCQuery: a client that knows nothing of flowml discovers the tree over HTTP and sets a
param with what it found; live values; LISTEN over the websocket."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from control_helpers import oscsend, wait_until
from control_nodes import FRAMES
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

GRAPH = """
flowml: 1
name: query-me
clock: {fps: 100}
osc: {port: 0, prefix: /show}
nodes:
  k1: {type: ctl.knobs}
  m: {type: ctl.model, inputs: {value: k1/value}}
"""


def get(port: int, target: str) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{target}", timeout=5) as r:
            body = r.read()
            return r.status, json.loads(body) if body else None
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def leaves(node: dict) -> list[dict]:
    out = [node] if "TYPE" in node else []
    for child in node.get("CONTENTS", {}).values():
        out += leaves(child)
    return out


def test_discover_the_tree_and_set_a_param_with_only_what_was_found(live):
    run = live.start(GRAPH, oscquery=True)
    http = run.session.oscquery.port
    status, info = get(http, "/?HOST_INFO")
    assert status == 200
    assert info["OSC_TRANSPORT"] == "UDP" and info["NAME"] == "query-me"
    assert info["EXTENSIONS"]["VALUE"] and info["EXTENSIONS"]["LISTEN"]
    assert info["EXTENSIONS"]["PATH_CHANGED"] and info["EXTENSIONS"]["CLIPMODE"]
    status, tree = get(http, "/")
    assert tree["FULL_PATH"] == "/" and "show" in tree["CONTENTS"]
    # pick any writable float param with a range, as a generic client would
    target = next(leaf for leaf in leaves(tree)
                  if leaf["TYPE"] == "f" and leaf["ACCESS"] == 3 and leaf.get("RANGE", [None])[0])
    rng = target["RANGE"][0]
    value = (rng["MIN"] + rng["MAX"]) / 4
    oscsend(info["OSC_PORT"], target["FULL_PATH"], "f", value)
    wait_until(lambda: get(http, target["FULL_PATH"] + "?VALUE")[1] == {"VALUE": [value]})
    node, param = target["FULL_PATH"].split("/")[-2:]
    assert getattr(FRAMES[node][-1].params, param) == value


def test_the_tree_describes_each_param(live):
    run = live.start(GRAPH, oscquery=True)
    http = run.session.oscquery.port
    _, k1 = get(http, "/show/k1")
    assert k1["FULL_PATH"] == "/show/k1" and k1["ACCESS"] == 0 and "ctl.knobs" in k1["DESCRIPTION"]
    c = k1["CONTENTS"]
    assert c["gain"] == {"FULL_PATH": "/show/k1/gain", "TYPE": "f", "ACCESS": 3, "VALUE": [1.0],
                         "DESCRIPTION": "a float with a range", "RANGE": [{"MIN": 0, "MAX": 10}],
                         "CLIPMODE": ["none"]}
    assert (c["count"]["TYPE"], c["count"]["RANGE"]) == ("i", [{"MIN": 0, "MAX": 100}])
    assert (c["on"]["TYPE"], c["on"]["VALUE"]) == ("T", [True])
    assert (c["mode"]["TYPE"], c["mode"]["RANGE"]) == ("s", [{"VALS": ["a", "b", "c"]}])
    assert (c["size"]["TYPE"], c["size"]["VALUE"]) == ("ii", [640, 480])
    assert get(http, "/show/k1/gain?TYPE") == (200, {"TYPE": "f"})
    assert get(http, "/show/nope")[0] == 404
    assert get(http, "/show/k1/gain?COLOR")[0] == 400
    _, control = get(http, "/flowml/preset/recall")
    assert control["ACCESS"] == 2


def test_listen_over_the_websocket_and_send_osc_through_it(live):
    websockets = pytest.importorskip("websockets.sync.client")
    run = live.start(GRAPH, oscquery=True)
    http = run.session.oscquery.port
    with websockets.connect(f"ws://127.0.0.1:{http}/", open_timeout=5) as ws:
        ws.send(json.dumps({"COMMAND": "LISTEN", "DATA": "/show/k1/count"}))
        first = OscMessage(ws.recv(timeout=5))
        assert (first.address, first.params) == ("/show/k1/count", [3])
        oscsend(run.osc_port, "/show/k1/count", "i", 77)
        msg = OscMessage(ws.recv(timeout=5))
        assert (msg.address, msg.params) == ("/show/k1/count", [77])
        b = OscMessageBuilder("/show/k1/count")
        b.add_arg(12)
        ws.send(b.build().dgram)             # OSC over the websocket sets params too
        msg = OscMessage(ws.recv(timeout=5))
        assert msg.params == [12]
        b = OscMessageBuilder("/show/k1/count")
        b.add_arg(1000)
        ws.send(b.build().dgram)             # ... and bad values are answered on it
        err = OscMessage(ws.recv(timeout=5))
        assert err.address == "/flowml/error" and err.params[0] == "/show/k1/count"
        ws.send(json.dumps({"COMMAND": "IGNORE", "DATA": "/show/k1/count"}))
    wait_until(lambda: FRAMES["k1"][-1].params.count == 12)
