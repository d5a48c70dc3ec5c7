"""One rule set (issue 13, items 2 - 4): strict scalars refused alike by `validate` and by the
JSON Schema; a bad param no longer hides wiring errors; type names owned by one plugin."""

from __future__ import annotations

import copy

import jsonschema
import pytest
import yaml
from nodes_for_tests import ALL, Blur

from flowml import IMAGE, Field, Input, Node, Output, Params, Ports
from flowml.graph import GraphErrors, graph_json_schema
from flowml.graph.validate import _Validator
from flowml.graph.yaml_source import load_yaml
from flowml.plugins import Registry


class Snapshot(Node):
    """A sink with an int param that a bool must not pass for."""

    type_name = "test.snapshot"
    inputs = (Input("image", IMAGE),)

    class Params(Params):
        at_frame: int = Field(0, ge=0)
        frames: int = Field(1, ge=1)


def registry_with(*extra: type[Node]) -> Registry:
    registry = Registry()
    for cls in (*ALL, *extra):
        registry.add(cls, "testnodes")
    return registry


BASE = {"flowml": 1, "nodes": {
    "cam": {"type": "test.camera"},
    "blur": {"type": "test.blur", "inputs": {"image": "cam/image"}},
    "snap": {"type": "test.snapshot", "inputs": {"image": "blur/image"}},
}}

# (path to set, value, accepted?) -- the same verdict from validate and from the schema
CASES = [
    (("nodes", "blur", "hold"), "no", False),
    (("nodes", "blur", "hold"), 1, False),
    (("nodes", "blur", "hold"), True, True),
    (("nodes", "blur", "cuda_graph"), 1, False),
    (("nodes", "blur", "cuda_graph"), "yes", False),
    (("nodes", "blur", "cuda_graph"), False, True),
    (("nodes", "blur", "every"), "3", False),
    (("nodes", "blur", "every"), True, False),
    (("nodes", "blur", "every"), 3, True),
    (("nodes", "snap", "params", "frames"), "3", False),
    (("nodes", "snap", "params", "frames"), 3, True),
    (("nodes", "snap", "params", "at_frame"), False, False),
    (("nodes", "snap", "params", "at_frame"), 75, True),
    (("nodes", "blur", "params", "sigma"), "1.5", False),
    (("nodes", "blur", "params", "sigma"), 2, True),
    (("nodes", "blur", "params", "radius"), "3", False),
    (("nodes", "cam", "params", "fps"), None, False),
    (("max_in_flight",), "2", False),
    (("max_in_flight",), 2, True),
    (("osc",), {"port": "9000"}, False),
    (("osc",), {"port": 9000}, True),
]


def with_value(path, value):
    data = copy.deepcopy(BASE)
    target = data
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    return data


def validate_data(data, registry):
    text = yaml.safe_dump(data, sort_keys=False)
    return _Validator("graph.yaml", load_yaml(text, "graph.yaml"), registry).validate()


@pytest.mark.parametrize(("path", "value", "accepted"), CASES)
def test_validate_and_schema_agree(path, value, accepted):
    registry = registry_with(Snapshot)
    schema = graph_json_schema(registry)
    data = with_value(path, value)
    schema_ok = jsonschema.Draft202012Validator(schema).is_valid(data)
    try:
        validate_data(data, registry)
        validate_ok = True
    except GraphErrors:
        validate_ok = False
    assert (validate_ok, schema_ok) == (accepted, accepted)


def test_strict_scalar_messages(errors):
    text = errors("""\
        flowml: 1
        nodes:
          cam: {type: test.camera}
          blur: {type: test.blur, inputs: {image: cam/image}, hold: "no", cuda_graph: 1, every: "3"}
    """)
    assert text.splitlines() == [
        "graph.yaml:4:61: error: node 'blur': hold: Input should be a valid boolean (got 'no')",
        "graph.yaml:4:79: error: node 'blur': cuda_graph: Input should be a valid boolean (got 1)",
        "graph.yaml:4:89: error: node 'blur': every: Input should be a valid integer (got '3')",
    ]


def test_at_frame_false_is_not_frame_zero(in_tmp):
    registry = registry_with(Snapshot)
    with pytest.raises(GraphErrors) as caught:
        validate_data(with_value(("nodes", "snap", "params", "at_frame"), False), registry)
    assert "param 'at_frame': Input should be a valid integer (got false)" in str(caught.value)


def test_lists_still_read_as_tuples_and_strings_as_choices(load):
    graph = load("""\
        flowml: 1
        nodes:
          a: {type: test.still, params: {path: a.png}}
          b: {type: test.still, params: {path: b.png}}
          h: {type: test.homography, inputs: {src: a/image, dst: b/image}, params: {method: sift}}
          w: {type: test.warp, inputs: {image: a/image, matrix: h/matrix}}
        clock: {fps: 10}
    """)
    assert graph.nodes["h"].params.method == "sift"


def test_a_bad_param_does_not_hide_the_nodes_wiring_errors(errors):
    text = errors("""\
        flowml: 1
        nodes:
          cam: {type: test.camera}
          blur: {type: test.blur, inputs: {image: cam/imag, maks: cam/image}, params: {radius: 99}}
    """)
    assert text.splitlines() == [
        "graph.yaml:4:43: error: node 'blur': input 'image': node 'cam' has no output 'imag'; did you mean 'image'? (outputs of 'cam': image)",
        "graph.yaml:4:53: error: node 'blur': unknown input 'maks'; did you mean 'mask'?",
        "graph.yaml:4:88: error: node 'blur': param 'radius': Input should be less than or equal to 50 (got 99)",
    ]


# -- type names owned by one plugin ----------------------------------------------------------

class OtherBlur(Node):
    """A second plugin's test.blur."""

    type_name = "test.blur"
    inputs = (Input("image", IMAGE),)
    outputs = (Output("image", IMAGE),)


def clashing() -> Registry:
    registry = registry_with()
    registry.add(OtherBlur, "otherplugin")
    return registry


GRAPH = """\
    flowml: 1
    {plugins}nodes:
      cam: {{type: test.camera}}
      blur: {{type: test.blur, inputs: {{image: cam/image}}{node_plugin}}}
"""


def test_a_second_registration_is_a_conflict_naming_both_plugins(errors):
    text = errors(GRAPH.format(plugins="", node_plugin=""), clashing())
    assert text == ("graph.yaml:4:16: error: node 'blur': node type 'test.blur' is registered by "
                    "plugins 'testnodes' and 'otherplugin'; say which one to use: `plugins: "
                    "{test.blur: testnodes}` at the top of the graph file, `plugin: testnodes` in "
                    "the node, or FLOWML_PLUGINS=test.blur=testnodes")


def test_the_graph_says_which_plugin(in_tmp):
    import textwrap
    from pathlib import Path

    from flowml.graph import load_graph

    registry = clashing()
    for plugins, node_plugin, want in [("plugins: {test.blur: otherplugin}\n    ", "", OtherBlur),
                                       ("", ", plugin: testnodes", Blur),
                                       ("plugins: {test.blur: testnodes}\n    ", ", plugin: otherplugin", OtherBlur)]:
        Path("graph.yaml").write_text(textwrap.dedent(GRAPH.format(plugins=plugins, node_plugin=node_plugin)))
        graph = load_graph("graph.yaml", registry)
        assert graph.nodes["blur"].type.cls is want


def test_the_environment_says_which_plugin(load, monkeypatch, in_tmp):
    import textwrap
    from pathlib import Path

    from flowml.graph import load_graph

    monkeypatch.setenv("FLOWML_PLUGINS", "test.blur=otherplugin")
    Path("graph.yaml").write_text(textwrap.dedent(GRAPH.format(plugins="", node_plugin="")))
    assert load_graph("graph.yaml", clashing()).nodes["blur"].type.cls is OtherBlur


def test_a_plugin_that_does_not_register_the_type(errors):
    text = errors(GRAPH.format(plugins="", node_plugin=", plugin: nosuch"), clashing())
    assert text == ("graph.yaml:4:63: error: node 'blur': plugin 'nosuch' does not register "
                    "'test.blur'; it comes from 'testnodes' or 'otherplugin'")


def test_same_plugin_registering_two_classes_under_one_name_is_refused():
    registry = registry_with()
    with pytest.raises(TypeError, match="already registered by .*in the same plugin"):
        registry.add(OtherBlur, "testnodes")


def test_bad_type_names_are_refused():
    class Bad(Node):
        type_name = "Blur"

    with pytest.raises(TypeError, match=r"type_name must be '<family>.<name>'.*got 'Blur'"):
        Registry().add(Bad, "p")


def test_ports_returning_a_tuple_is_reported_naming_the_type(errors):
    class TupleOut(Node):
        type_name = "test.tuple_out"

        @classmethod
        def ports(cls, params):
            return ((), (Output("image", IMAGE),))

    registry = registry_with(TupleOut)
    text = errors("""\
        flowml: 1
        nodes:
          t: {type: test.tuple_out}
        clock: {fps: 1}
    """, registry)
    assert text == ("graph.yaml:3:13: error: node 't': test.tuple_out: ports() must return "
                    "flowml.Ports(inputs=(Input(...), ...), outputs=(Output(...), ...)), not a "
                    "tuple (a bug in plugin 'testnodes')")
    assert isinstance(Blur.ports(Blur.Params()), Ports)


def test_plugins_entries_are_checked_once(errors):
    text = errors("""\
        flowml: 1
        plugins: {test.blurr: testnodes, test.blur: nosuch}
        nodes:
          cam: {type: test.camera}
          blur: {type: test.blur, inputs: {image: cam/image}}
    """, clashing())
    assert text.splitlines() == [
        "graph.yaml:2:11: error: plugins: unknown node type 'test.blurr'; did you mean 'test.blur'?",
        "graph.yaml:2:45: error: plugins: plugin 'nosuch' does not register 'test.blur'; it comes from 'testnodes' or 'otherplugin'",
    ]
