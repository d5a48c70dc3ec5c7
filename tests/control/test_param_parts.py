"""Params of a list of mappings whose items have live parts (``parts=("value",)``): each
item's value has its own address, may follow an expression written inside the item in the
graph file, is set on its own, saved in presets, shown in OSCQuery; and ``in_place`` params,
which a captured CUDA graph leaves out of its key."""

from __future__ import annotations

from typing import Any

import pytest

import flowml
from flowml import Field, Node, Output, SCALAR
from flowml.control.oscquery import build_tree
from flowml.graph import GraphErrors, load_graph
from flowml.parammeta import SCHEMA_KEY, ParamMeta, in_place_fields, param_meta, rebuild_fields
from flowml.plugins import Registry

from control_helpers import LiveGraphs, wait_until


class Edited(Node):
    """Outputs the sum of its items' values (a source: runs every tick)."""

    type_name = "parts.edited"
    outputs = (Output("total", SCALAR),)

    class Params(flowml.Params):
        items: list[dict[str, Any]] = Field([], in_place=True, parts=("value",))
        gain: float = 1.0

    def process(self) -> dict[str, Any]:
        return {"total": self.params.gain * sum(float(i["value"]) for i in self.params.items)}


GRAPH = """\
flowml: 1
name: parts
clock: {fps: 100}
nodes:
  n:
    type: parts.edited
    params:
      items: [{name: a, value: {expr: "10 + frame"}}, {name: b, value: 0.5}]
"""


@pytest.fixture
def graphs(tmp_path):
    reg = Registry()
    reg.add(Edited, "parts-tests")
    g = LiveGraphs(tmp_path, reg)
    yield g
    g.stop_all()


def test_meta_schema_and_in_place_fields():
    P = Edited.Params
    assert param_meta(P, "items") == ParamMeta(in_place=True, parts=("value",))
    assert P.model_json_schema()["properties"]["items"][SCHEMA_KEY] == {"in_place": True, "parts": ["value"]}
    assert in_place_fields(P) == {"items"} and rebuild_fields(P) == set()
    assert param_meta(P, "items").tag() == "in-place"
    with pytest.raises(ValueError, match="in_place=True is for params applied by on_params"):
        Field(1.0, in_place=True, rebuild=True)


def test_a_captured_graph_is_keyed_by_every_param_but_the_in_place_ones():
    from flowml.gpu.capture import _structure

    a = Edited.Params(items=[{"name": "a", "value": 1.0}])
    assert _structure(a) == _structure(Edited.Params(items=[{"name": "a", "value": 2.0}]))
    assert _structure(a) != _structure(Edited.Params(items=a.items, gain=2.0))


def test_an_expression_inside_an_item_is_checked_where_it_is_written(graphs, tmp_path):
    path = graphs.write(GRAPH.replace('"10 + frame"', '"10 + frme"'))
    with pytest.raises(GraphErrors) as info:
        load_graph(path, graphs.registry)
    text = str(info.value)
    assert "graph.yaml:8:39:" in text and "param 'items[0].value': bad expression" in text
    assert "did you mean 'frame'" in text


def test_parts_are_live_params_of_their_own(graphs):
    run = graphs.start(GRAPH, osc=False)
    store = run.store
    assert {"/n/items", "/n/items/0/value", "/n/items/1/value"} <= set(store.params)
    wait_until(lambda: run.sched.params_of("n").items[0]["value"] >= 13)
    items = run.sched.params_of("n").items
    assert items[0]["name"] == "a" and items[1] == {"name": "b", "value": 0.5}
    assert store.params["/n/items"].value == items or store.params["/n/items"].value[1] == items[1]

    store.set("/n/items/1/value", 2.0)  # one part alone; the expression of the other goes on
    wait_until(lambda: run.sched.params_of("n").items[1]["value"] == 2.0)
    f0 = run.sched.params_of("n").items[0]["value"]
    wait_until(lambda: run.sched.params_of("n").items[0]["value"] > f0)

    snap = store.snapshot()["n"]
    assert snap["items/0/value"] == {"expr": "10 + frame"} and snap["items/1/value"] == 2.0

    store.set("/n/items", [{"name": "a", "value": 1.0}, {"name": "b", "value": 2.0}, {"name": "c", "value": 3.0}])
    wait_until(lambda: "/n/items/2/value" in store.params)
    # the store knows the new part as it hands the list over; the node switches at that
    # tick's start, a moment later
    wait_until(lambda: len(items := run.sched.params_of("n").items) == 3 and items[2]["value"] == 3)
    assert store.params["/n/items/0/value"].expr is not None  # same name: keeps its expression
    tree = build_tree(store)
    leaf = tree["CONTENTS"]["n"]["CONTENTS"]["items"]["CONTENTS"]["2"]["CONTENTS"]["value"]
    assert leaf["FULL_PATH"] == "/n/items/2/value" and leaf["TYPE"] == "f"

    store.set("/n/items", [{"name": "z", "value": 7}])
    wait_until(lambda: "/n/items/1/value" not in store.params)
    assert "/n/items/2/value" not in store.params
    assert [lp.name for lp in store.nodes()["n"]] == ["items", "items/0/value", "gain"]
    with pytest.raises(Exception, match="unknown address"):
        store.set("/n/items/3/value", 1.0)
    assert run.stop().ok
