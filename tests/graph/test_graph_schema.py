"""The JSON Schema for editors: valid itself, accepts good graphs, flags what editors can see."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import yaml

from flowml.graph import graph_json_schema

jsonschema = pytest.importorskip("jsonschema")

GOOD = """\
    flowml: 1
    clock: cam
    osc: {port: 9000}
    nodes:
      cam: {type: test.camera, params: {device: 1}}
      plate: {type: test.still, params: {path: plate.png}}
      align: {type: test.homography, inputs: {src: plate/image, dst: cam/image}, every: 5}
      warp: {type: test.warp, inputs: {image: plate/image, matrix: align/matrix}}
      model: {type: test.model, params: {inputs: [a, b]}, inputs: {a: cam/image, b: warp/image}}
      show: {type: test.display, inputs: {image: warp/image}}
"""


@pytest.fixture
def validator(registry):
    schema = graph_json_schema(registry)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def problems(validator, text: str, **changes: Any) -> list[str]:
    data = yaml.safe_load(textwrap.dedent(text))
    for node_id, node in changes.items():
        data["nodes"][node_id] = node
    return [e.message for e in validator.iter_errors(data)]


def test_schema_is_draft_2020_12_with_descriptions(registry) -> None:
    schema = graph_json_schema(registry)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    types = schema["$defs"]["NodeSpec"]["properties"]["type"]["anyOf"]
    blur = {"const": "test.blur", "description": "Gaussian blur, optionally masked. (plugin testnodes)"}
    assert blur in types
    radius = schema["$defs"]["test.blur.params"]["properties"]["radius"]
    assert radius["description"] == "kernel radius in pixels"


def test_good_graph_passes(validator) -> None:
    assert problems(validator, GOOD) == []


@pytest.mark.parametrize(("node", "needle"), [
    ({"type": "test.camra"}, "is not valid under any of the given schemas"),
    ({"type": "test.blur", "inputs": {"image": "cam/image"}, "params": {"radius": 80}}, "80 is greater"),
    ({"type": "test.blur", "inputs": {"image": "cam/image"}, "params": {"radus": 1}},
     "'radus' was unexpected"),
    ({"type": "test.blur", "inputs": {"imag": "cam/image"}}, "'imag' was unexpected"),
    ({"type": "test.blur", "inputs": {}}, "'image' is a required property"),
    ({"type": "test.blur"}, "'inputs' is a required property"),
    ({"type": "test.blur", "inputs": {"image": "cam.image"}}, "does not match"),
    ({"type": "test.camera", "every": 0}, "0 is less than the minimum of 1"),
])
def test_bad_node_is_flagged(validator, node: dict, needle: str) -> None:
    found = problems(validator, GOOD, extra=node)
    assert any(needle in p for p in found), found


def test_bad_node_id_is_flagged(validator) -> None:
    found = problems(validator, GOOD, **{"2nd": {"type": "test.camera"}})
    assert any("does not match" in p for p in found), found


def test_unknown_top_level_key_is_flagged(validator) -> None:
    data = yaml.safe_load(textwrap.dedent(GOOD)) | {"nodez": {}}
    assert any("'nodez' was unexpected" in e.message for e in validator.iter_errors(data))


def test_params_dependent_ports_are_listed_but_open(registry) -> None:
    model = next(rule["then"] for rule in graph_json_schema(registry)["$defs"]["NodeSpec"]["allOf"]
                 if rule["if"]["properties"]["type"]["const"] == "test.model")
    assert list(model["properties"]["inputs"]["properties"]) == ["x"]
    assert model["properties"]["inputs"]["additionalProperties"] is not False


def test_type_without_default_params_allows_any_inputs(registry) -> None:
    still = next(rule["then"] for rule in graph_json_schema(registry)["$defs"]["NodeSpec"]["allOf"]
                 if rule["if"]["properties"]["type"]["const"] == "test.still")
    assert "inputs" not in still["properties"]
    assert still["properties"]["params"] == {"$ref": "#/$defs/test.still.params"}
