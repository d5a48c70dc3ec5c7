"""The README's recipes, as far as they can be tested here: liblo's `oscsend` sends exactly
the type tags that TouchDesigner's OSC Out CHOP (floats only) and OSC Out DAT, Max's
[udpsend] and Max for Live's OSC Send send; an OSCQuery client (ossia score's way) sends what
the tree's TYPE says over the websocket."""

from __future__ import annotations

import json
import urllib.request

import pytest
from control_helpers import OscDump, oscsend, wait_until
from control_nodes import FRAMES
from pythonosc.osc_message_builder import OscMessageBuilder
from websockets.sync.client import connect

GRAPH = """
flowml: 1
name: recipes
clock: {fps: 100}
osc: {port: 0}
nodes:
  k1: {type: ctl.knobs}
"""


def params():
    return FRAMES["k1"][-1].params


def test_touchdesigner_osc_out_chop_sends_floats_only(live):
    run = live.start(GRAPH)
    run.wait_ticks(2)
    oscsend(run.osc_port, "/k1/gain", "f", 0.25)     # a float param
    oscsend(run.osc_port, "/k1/count", "f", 12.0)    # an int param from a CHOP: a whole float
    oscsend(run.osc_port, "/k1/on", "f", 0.0)        # a bool param from a CHOP: 0.0 / 1.0
    wait_until(lambda: FRAMES["k1"] and (params().gain, params().count, params().on) == (0.25, 12, False))


def test_touchdesigner_chop_fractions_for_ints_are_refused(live):
    with OscDump() as dump:
        run = live.start(GRAPH, reply=("127.0.0.1", dump.port))
        run.wait_ticks(2)
        oscsend(run.osc_port, "/k1/count", "f", 12.5)    # round it in TouchDesigner (Math CHOP)
        [m] = dump.wait_for(lambda m: m.address == "/flowml/error" and m.args[0] == "/k1/count")
        assert "takes an integer, got 12.5" in m.args[1]
        assert params().count == 3


def test_touchdesigner_osc_out_dat_sends_what_you_type(live):
    run = live.start(GRAPH)
    run.wait_ticks(2)
    oscsend(run.osc_port, "/k1/size", "ii", 320, 180)    # sendOSC('/k1/size', [320, 180])
    oscsend(run.osc_port, "/k1/label", "s", "hello")     # sendOSC('/k1/label', ['hello'])
    oscsend(run.osc_port, "/k1/mode", "s", "b")
    oscsend(run.osc_port, "/k1/on", "F")                 # a Python bool
    wait_until(lambda: FRAMES["k1"] and (params().size, params().label, params().mode, params().on)
               == ((320, 180), "hello", "b", False))


@pytest.mark.parametrize("types, values, field, expected", [
    ("ii", (1280, 720), "size", (1280, 720)),   # [udpsend]: message box "/k1/size 1280 720"
    ("i", (0,), "on", False),                   # a toggle: 0/1 ints
    ("f", (0.5,), "gain", 0.5),                 # "/k1/gain 0.5", or [live.dial] -> [prepend /k1/gain]
    ("i", (7,), "count", 7),
    ("s", ("c",), "mode", "c"),                 # a symbol
])
def test_max_udpsend_and_max_for_live(live, types, values, field, expected):
    run = live.start(GRAPH)
    run.wait_ticks(2)
    oscsend(run.osc_port, f"/k1/{field}", types, *values)
    wait_until(lambda: FRAMES["k1"] and getattr(params(), field) == expected)


def test_an_oscquery_client_sends_the_types_the_tree_gives(live):
    run = live.start(GRAPH, oscquery=True)
    port = run.session.oscquery.port
    tree = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/k1", timeout=5).read())
    values = {"size": [800, 600], "gain": [2.5], "count": [9], "label": ["from score"]}
    with connect(f"ws://127.0.0.1:{port}/", open_timeout=5) as ws:
        for name, args in values.items():
            leaf = tree["CONTENTS"][name]
            b = OscMessageBuilder(leaf["FULL_PATH"])
            for tag, v in zip(leaf["TYPE"], args, strict=True):
                b.add_arg(v, tag)
            ws.send(b.build().dgram)
    wait_until(lambda: FRAMES["k1"] and (params().size, params().gain, params().count, params().label)
               == ((800, 600), 2.5, 9, "from score"))
