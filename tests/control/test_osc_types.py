"""Typed params over every surface: OSC in (liblo's oscsend), OSCQuery TYPE/VALUE/RANGE,
/flowml/get (read with oscdump), LISTEN, and `flowml params` agree, whatever way the pydantic
field's type is written. Strict scalars: no text or T/F into an int, only T/F or 0/1 into a bool."""

from __future__ import annotations

import enum
import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Annotated, Optional

import pytest
from control_helpers import OscDump, oscsend, wait_until
from control_nodes import FRAMES
from pythonosc.osc_message import OscMessage

from flowml import Field, Node, Output, Params, SCALAR
from flowml.control.convert import ConvertError, from_osc, shape_of

Pixels = Annotated[int, Field(ge=1, le=16384)]


class Mode(enum.Enum):
    FAST = "fast"
    FINE = "fine"


class Vec(Node):
    """Params typed the ways plugins write them."""

    type_name = "types.vec"
    outputs = (Output("value", SCALAR),)

    class Params(Params):
        size: tuple[Pixels, Pixels] | None = Field((160, 90), description="[width, height]")
        crop: Annotated[tuple[int, int, int, int], Field(description="x y w h")] = (0, 0, 10, 10)
        scale: list[float] = Field([1.0, 1.0], description="a variable vector")
        gain: float = Field(1.0, gt=0, le=4, description="must be > 0")
        count: int = Field(1, gt=0, lt=10, description="1..9")
        frames: int = Field(0, ge=0, description="0: endless")
        loop: bool = Field(False, description="a toggle")
        mode: Mode = Field(Mode.FAST, description="an enum")
        level: Optional[Annotated[float, Field(ge=0.5, le=2)]] = Field(None, description="optional")

    def process(self):
        FRAMES[self.ctx.node_id].append(self.params)
        return 0.0


GRAPH = """
flowml: 1
name: typed
clock: {fps: 100}
osc: {port: 0}
nodes:
  v: {type: types.vec}
"""


@pytest.fixture
def registry(registry):
    registry.add(Vec, "types-tests")
    return registry


def get(port: int, target: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{target}", timeout=5) as r:
        return json.loads(r.read())


def last(name: str):
    return getattr(FRAMES["v"][-1], name)


def test_a_size_sent_as_ii_is_set_and_every_surface_says_ii(live):
    dump = OscDump()
    run = live.start(GRAPH, oscquery=True, reply=("127.0.0.1", dump.port))
    http = run.session.oscquery.port
    run.wait_ticks(2)
    oscsend(run.osc_port, "/v/size", "ii", 320, 180)
    oscsend(run.osc_port, "/v/crop", "iiii", 1, 2, 30, 40)
    oscsend(run.osc_port, "/v/scale", "fff", 0.5, 1.5, 2.0)   # a list takes any length
    wait_until(lambda: FRAMES["v"] and last("size") == (320, 180) and last("crop") == (1, 2, 30, 40)
               and last("scale") == [0.5, 1.5, 2.0])

    leaf = get(http, "/v/size")
    assert (leaf["TYPE"], leaf["VALUE"]) == ("ii", [320, 180])
    assert leaf["RANGE"] == [{"MIN": 1, "MAX": 16384}, {"MIN": 1, "MAX": 16384}]
    assert leaf["CLIPMODE"] == ["none", "none"]       # out of range is refused, not clipped
    crop = get(http, "/v/crop")
    assert (crop["TYPE"], crop["VALUE"]) == ("iiii", [1, 2, 30, 40]) and "RANGE" not in crop
    wait_until(lambda: get(http, "/v/scale")["TYPE"] == "fff")
    assert get(http, "/v/scale")["VALUE"] == [0.5, 1.5, 2.0]

    with dump:                                         # /flowml/get answers the same types
        oscsend(run.osc_port, "/flowml/get", "s", "/v/size")
        oscsend(run.osc_port, "/flowml/get", "s", "/v/crop")
        [m] = dump.wait_for(lambda m: m.address == "/v/size")
        assert (m.types, m.args) == ("ii", [320, 180])
        [m] = dump.wait_for(lambda m: m.address == "/v/crop")
        assert (m.types, m.args) == ("iiii", [1, 2, 30, 40])

    from websockets.sync.client import connect
    with connect(f"ws://127.0.0.1:{http}/", open_timeout=5) as ws:   # and so does LISTEN
        ws.send(json.dumps({"COMMAND": "LISTEN", "DATA": "/v/size"}))
        first = OscMessage(ws.recv(timeout=5))
        assert (first.address, first.params) == ("/v/size", [320, 180])
        oscsend(run.osc_port, "/v/size", "ii", 64, 48)
        msg = OscMessage(ws.recv(timeout=5))
        assert msg.params == [64, 48] and msg.dgram.split(b",")[1].startswith(b"ii\0")


def test_vector_mistakes_are_refused_with_the_types_to_send(live):
    with OscDump() as dump:
        run = live.start(GRAPH, reply=("127.0.0.1", dump.port))
        run.wait_ticks(2)
        oscsend(run.osc_port, "/v/size", "i", 320)
        oscsend(run.osc_port, "/v/size", "ii", 0, 180)           # below the element's range
        oscsend(run.osc_port, "/v/size", "is", 320, "180")       # text is not a number
        errors = dump.wait_for(lambda m: m.address == "/flowml/error" and m.args[0] == "/v/size", n=3)
        reasons = " | ".join(m.args[1] for m in errors)
        assert "takes 2 values (ii), got 1 (i)" in reasons
        assert "[1] takes an int (i), got s '180'" in reasons
        assert "greater than or equal to 1" in reasons
        run.wait_ticks(3)
        assert last("size") == (160, 90)


def test_a_toggle_sent_to_every_param_sets_only_the_bools(live):
    with OscDump() as dump:
        run = live.start(GRAPH, reply=("127.0.0.1", dump.port))
        run.wait_ticks(2)
        oscsend(run.osc_port, "/*/*", "T")
        wait_until(lambda: last("loop") is True)
        dump.wait_for(lambda m: m.address == "/flowml/error" and "/v/frames" in m.args[1])
        oscsend(run.osc_port, "/v/frames", "s", "1")             # a digit string is text
        oscsend(run.osc_port, "/v/count", "F")
        dump.wait_for(lambda m: m.address == "/flowml/error" and m.args[0] == "/v/frames"
                      and "takes an int (i), got s '1'" in m.args[1])
        dump.wait_for(lambda m: m.address == "/flowml/error" and m.args[0] == "/v/count"
                      and "got F" in m.args[1])
        run.wait_ticks(3)
        assert (last("frames"), last("count"), last("gain")) == (0, 1, 1.0)

        oscsend(run.osc_port, "/v/loop", "i", 0)                 # 0/1 ints work for a bool
        wait_until(lambda: last("loop") is False)
        oscsend(run.osc_port, "/v/loop", "i", 2)
        oscsend(run.osc_port, "/v/loop", "s", "T")
        bad = dump.wait_for(lambda m: m.address == "/flowml/error" and m.args[0] == "/v/loop", n=2)
        assert all("takes T or F" in m.args[1] for m in bad)
        oscsend(run.osc_port, "/v/frames", "f", 12.0)            # a whole float is an int
        oscsend(run.osc_port, "/v/gain", "i", 2)                 # an int is a number
        wait_until(lambda: (last("frames"), last("gain")) == (12, 2.0))
        assert last("loop") is False


def test_ranges_enums_and_optionals_in_the_tree(live):
    run = live.start(GRAPH, oscquery=True)
    tree = get(run.session.oscquery.port, "/v")["CONTENTS"]
    gain = tree["gain"]["RANGE"][0]
    assert 0 < gain["MIN"] < 1e-30 and gain["MAX"] == 4     # gt=0: the smallest float32 above 0
    assert tree["count"]["RANGE"] == [{"MIN": 1, "MAX": 9}]  # gt=0, lt=10 on an int
    assert tree["frames"]["RANGE"] == [{"MIN": 0}]
    assert (tree["mode"]["TYPE"], tree["mode"]["RANGE"]) == ("s", [{"VALS": ["fast", "fine"]}])
    level = tree["level"]
    assert (level["TYPE"], level["VALUE"], level["RANGE"]) == ("f", [None], [{"MIN": 0.5, "MAX": 2}])
    assert (tree["loop"]["TYPE"], tree["loop"]["VALUE"]) == ("F", [False])
    oscsend(run.osc_port, "/v/level", "f", 1.5)
    oscsend(run.osc_port, "/v/mode", "s", "fine")
    wait_until(lambda: FRAMES["v"] and last("level") == 1.5 and last("mode") == Mode.FINE)
    oscsend(run.osc_port, "/v/level", "N")
    wait_until(lambda: last("level") is None)


@pytest.mark.parametrize("annotation, args, expected", [
    (tuple[Pixels, Pixels], [320, 180], [320, 180]),
    (tuple[Pixels, Pixels], ["[320, 180]"], [320, 180]),      # JSON text for tools without ii
    (Annotated[tuple[int, int], Field(description="d")], [1.0, 2], [1, 2]),
    (Optional[tuple[float, float]], [None], None),
    (list[int], [1, 2, 3], [1, 2, 3]),
    (bool, [1], True),
    (bool, [0.0], False),                                     # TouchDesigner's CHOP sends f
    (int, [7.0], 7),
])
def test_from_osc_accepts(annotation, args, expected):
    from pydantic.fields import FieldInfo

    assert from_osc(shape_of(FieldInfo.from_annotation(annotation)), args) == expected


@pytest.mark.parametrize("annotation, args, message", [
    (int, [True], "takes an int (i), got T"),
    (int, ["12"], "takes an int (i), got s '12'"),
    (int, [2.5], "takes an integer, got 2.5"),
    (float, [False], "takes a valid number (f or i), got F"),
    (float, ["0.5"], "takes a valid number (f or i), got s"),
    (bool, [2], "takes T or F"),
    (bool, ["T"], "takes T or F"),
    (str, [5], "takes a string (s), got i 5"),
    (int, [None], "got N (nil)"),
    (tuple[int, int], ["[true, 1]"], "[0] takes an int (i), got T"),
    (tuple[int, int], [1, 2, 3], "takes 2 values (ii), got 3 (iii)"),
])
def test_from_osc_refuses(annotation, args, message):
    from pydantic.fields import FieldInfo

    with pytest.raises(ConvertError) as err:
        from_osc(shape_of(FieldInfo.from_annotation(annotation)), args)
    assert message in str(err.value)


def test_flowml_params_shows_the_osc_types(tmp_path: Path):
    graph = tmp_path / "g.yaml"
    graph.write_text("flowml: 1\nclock: {fps: 10}\nnodes:\n"
                     "  src: {type: capture.pattern, params: {size: [160, 90]}}\n")
    out = subprocess.run([sys.executable, "-m", "flowml.cli", "params", str(graph), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = {r["address"]: r for r in json.loads(out.stdout)}
    size = rows["/src/size"]
    assert (size["osc"], size["value"]) == ("ii", [160, 90])
    assert size["osc_range"] == [{"MIN": 1, "MAX": 16384}] * 2 and size["range"] == "[1, 16384] each"
    fps = rows["/src/fps"]
    assert fps["osc"] == "f" and fps["range"].startswith("(0,") and fps["osc_range"][0]["MIN"] > 0
