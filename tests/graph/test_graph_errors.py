# ruff: noqa: E501  (expected messages stay one line each, as the user sees them)
"""Golden tests: the exact text a user sees for each kind of broken graph file.

Each case is a small graph file and the full error output for it. The messages are the
product here: when one changes on purpose, update the expected text in the same commit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flowml.graph import GraphErrors, load_graph
from flowml.plugins import PluginFailure


def case(name: str, text: str, *expected: str):
    return pytest.param(text, "\n".join(expected), id=name)


CASES = [
    case(
        "yaml_syntax",
        """\
        flowml: 1
        nodes:
          cam: {type: test.camera, params: {device: [0}}
    """,
        "graph.yaml:3:47: error: invalid YAML: expected ',' or ']', but got '}' (while parsing a flow sequence at line 3)",
    ),
    case(
        "yaml_tab",
        """\
        flowml: 1
        nodes:
        \tcam: {type: test.camera}
    """,
        "graph.yaml:3:1: error: invalid YAML: found character '\\t' that cannot start any token; indent with spaces, not tabs",
    ),
    case(
        "yaml_bad_indent",
        """\
        flowml: 1
        nodes:
          cam:
            type: test.camera
           params: {}
    """,
        "graph.yaml:5:4: error: invalid YAML: expected <block end>, but found '<block mapping start>' (while parsing a block mapping at line 3); check the indentation",
    ),
    case(
        "duplicate_key",
        """\
        flowml: 1
        nodes:
          cam:
            type: test.camera
            params: {device: 1, fps: 30, device: 2}
    """,
        "graph.yaml:5:34: error: duplicate key 'device' (first at line 5, column 14)",
    ),
    case(
        "duplicate_node_id",
        """\
        flowml: 1
        nodes:
          cam: {type: test.camera}
          show: {type: test.display, inputs: {image: cam/image}}
          cam: {type: test.camera, params: {device: 1}}
    """,
        "graph.yaml:5:3: error: duplicate node id 'cam' (first at line 3)",
    ),
    case(
        "unknown_top_level_key",
        """\
        flowml: 1
        nodez:
          cam: {type: test.camera}
    """,
        "graph.yaml:2:1: error: unknown top-level key 'nodez'; did you mean 'nodes'?",
    ),
    case(
        "missing_version",
        """\
        name: demo
        nodes:
          cam: {type: test.camera}
    """,
        'graph.yaml:1:1: error: missing `flowml: 1` (the graph file format version) at the top of the file',
    ),
    case(
        "bad_version",
        """\
        flowml: 2
        nodes:
          cam: {type: test.camera}
    """,
        'graph.yaml:1:9: error: unsupported graph file format version 2: write `flowml: 1`',
    ),
    case(
        "unknown_type_suggestion",
        """\
        flowml: 1
        nodes:
          cam: {type: test.camra}
    """,
        "graph.yaml:3:15: error: node 'cam': unknown node type 'test.camra'; did you mean 'test.camera'?",
    ),
    case(
        "unknown_type_no_suggestion",
        """\
        flowml: 1
        nodes:
          cam: {type: video.capture}
    """,
        "graph.yaml:3:15: error: node 'cam': unknown node type 'video.capture'; run `flowml nodes` to list the installed types",
    ),
    case(
        "unknown_param",
        """\
        flowml: 1
        nodes:
          cam: {type: test.camera}
          blur: {type: test.blur, inputs: {image: cam/image}, params: {radus: 4}}
    """,
        "graph.yaml:4:64: error: node 'blur': unknown param 'radus'; did you mean 'radius'?",
    ),
    case(
        "param_out_of_range",
        """\
        flowml: 1
        nodes:
          cam: {type: test.camera}
          blur:
            type: test.blur
            inputs: {image: cam/image}
            params:
              radius: 80
    """,
        "graph.yaml:8:15: error: node 'blur': param 'radius': Input should be less than or equal to 50 (got 80)",
    ),
    case(
        "param_wrong_type",
        """\
        flowml: 1
        nodes:
          cam: {type: test.camera, params: {fps: fast}}
    """,
        "graph.yaml:3:42: error: node 'cam': param 'fps': Input should be a valid number (got 'fast')",
    ),
    case(
        "param_not_in_choices",
        """\
        flowml: 1
        nodes:
          a: {type: test.camera}
          b: {type: test.camera}
          h: {type: test.homography, inputs: {src: a/image, dst: b/image}, params: {method: surf}}
        clock: a
    """,
        "graph.yaml:5:85: error: node 'h': param 'method': Input should be 'orb' or 'sift' (got 'surf')",
    ),
    case(
        "missing_param",
        """\
        flowml: 1
        nodes:
          plate: {type: test.still}
    """,
        "graph.yaml:3:3: error: node 'plate': missing required param 'path': image file to read",
    ),
    case(
        "unknown_input_port",
        """\
        flowml: 1
        nodes:
          cam: {type: test.camera}
          blur: {type: test.blur, inputs: {imag: cam/image}}
    """,
        "graph.yaml:4:36: error: node 'blur': unknown input 'imag'; did you mean 'image'?",
    ),
    case(
        "input_on_source",
        """\
        flowml: 1
        nodes:
          cam: {type: test.camera, inputs: {image: cam/image}}
    """,
        "graph.yaml:3:37: error: node 'cam': unknown input 'image': test.camera takes no inputs",
    ),
    case(
        "bad_reference_syntax",
        """\
        flowml: 1
        nodes:
          cam: {type: test.camera}
          blur: {type: test.blur, inputs: {image: cam.image}}
    """,
        "graph.yaml:4:43: error: node 'blur': input 'image': 'cam.image' is not of the form node/port; did you mean 'cam/image'?",
    ),
    case(
        "reference_without_port",
        """\
        flowml: 1
        nodes:
          plate: {type: test.still, params: {path: plate.png}}
          blur: {type: test.blur, inputs: {image: plate}}
    """,
        "graph.yaml:4:43: error: node 'blur': input 'image': 'plate' is not of the form node/port; did you mean 'plate/image' or 'plate/size'?",
    ),
    case(
        "no_space_after_colon",
        """\
        flowml: 1
        nodes:
          cam: {type: test.camera}
          blur: {type: test.blur, inputs: {image:cam/image}}
        """,
        "graph.yaml:4:36: error: node 'blur': 'image:cam/image' has no value; did you mean `image: cam/image`? (YAML needs ': ' between a key and its value)",
    ),
    case(
        "unknown_source_node",
        """\
        flowml: 1
        nodes:
          camera: {type: test.camera}
          blur: {type: test.blur, inputs: {image: camra/image}}
    """,
        "graph.yaml:4:43: error: node 'blur': input 'image': no node 'camra'; did you mean 'camera'?",
    ),
    case(
        "unknown_source_port",
        """\
        flowml: 1
        nodes:
          plate: {type: test.still, params: {path: plate.png}}
          blur: {type: test.blur, inputs: {image: plate/img}}
    """,
        "graph.yaml:4:43: error: node 'blur': input 'image': node 'plate' has no output 'img'; did you mean 'image'? (outputs of 'plate': image, size)",
    ),
    case(
        "incompatible_types",
        """\
        flowml: 1
        clock: cam
        nodes:
          cam: {type: test.camera}
          plate: {type: test.still, params: {path: plate.png}}
          align: {type: test.homography, inputs: {src: plate/image, dst: cam/image}}
          warp: {type: test.warp, inputs: {image: plate/image, matrix: align/inliers}}
    """,
        "graph.yaml:7:64: error: node 'warp': input 'matrix' takes matrix, but 'align/inliers' gives scalar; did you mean 'align/matrix'?",
    ),
    case(
        "tensor_into_image",
        """\
        flowml: 1
        nodes:
          plate: {type: test.still, params: {path: plate.png}}
          blur: {type: test.blur, inputs: {image: plate/size}}
    """,
        "graph.yaml:4:43: error: node 'blur': input 'image' takes image, but 'plate/size' gives tensor; did you mean 'plate/image'?",
    ),
    case(
        "missing_input",
        """\
        flowml: 1
        nodes:
          cam: {type: test.camera}
          warp:
            type: test.warp
            inputs: {image: cam/image}
    """,
        "graph.yaml:6:5: error: node 'warp': input 'matrix' (matrix) is not connected; connect it to an output of type matrix",
    ),
    case(
        "cycle",
        """\
        flowml: 1
        nodes:
          cam: {type: test.camera}
          a: {type: test.warp, inputs: {image: cam/image, matrix: c/matrix}}
          b: {type: test.blur, inputs: {image: a/image}}
          c: {type: test.homography, inputs: {src: b/image, dst: cam/image}}
    """,
        'graph.yaml:4:59: error: cycle: a -> b -> c -> a; remove one of these connections',
    ),
    case(
        "clock_unknown",
        """\
        flowml: 1
        clock: camera
        nodes:
          cam: {type: test.camera}
    """,
        "graph.yaml:2:8: error: clock: no node 'camera'; did you mean 'cam'?",
    ),
    case(
        "clock_not_a_source",
        """\
        flowml: 1
        clock: blur
        nodes:
          cam: {type: test.camera}
          blur: {type: test.blur, inputs: {image: cam/image}}
    """,
        "graph.yaml:2:8: error: clock: node 'blur' is not a source (it has inputs); the clock is a source node (cam) or a rate, e.g. `clock: {fps: 30}`",
    ),
    case(
        "clock_ambiguous",
        """\
        flowml: 1
        nodes:
          cam: {type: test.camera}
          plate: {type: test.still, params: {path: plate.png}}
          align: {type: test.homography, inputs: {src: plate/image, dst: cam/image}}
    """,
        'graph.yaml:2:1: error: several source nodes (cam, plate) and no clock: say which one drives the ticks, e.g. `clock: cam`, or set a rate, e.g. `clock: {fps: 30}`',
    ),
    case(
        "clock_no_source",
        """\
        flowml: 1
        nodes:
          noise: {type: test.noise}
          show: {type: test.display, inputs: {image: noise/image}}
        """,
        "graph.yaml:2:1: error: no source node (a node without inputs) to drive the ticks: set a rate, e.g. `clock: {fps: 30}`",
    ),
    case(
        "clock_wrong_type",
        """\
        flowml: 1
        clock: 30
        nodes:
          cam: {type: test.camera}
    """,
        'graph.yaml:2:8: error: clock: write the id of a source node, or a rate like `clock: {fps: 30}` (got 30)',
    ),
    case(
        "clock_bad_rate",
        """\
        flowml: 1
        clock: {fps: 0}
        nodes:
          cam: {type: test.camera}
    """,
        'graph.yaml:2:14: error: clock.fps: Input should be greater than 0 (got 0)',
    ),
    case(
        "bad_node_id",
        """\
        flowml: 1
        nodes:
          2nd camera: {type: test.camera}
    """,
        "graph.yaml:3:3: error: node id '2nd camera' is not valid: use letters, digits, '_' and '-', starting with a letter or '_' (e.g. '_2nd_camera')",
    ),
    case(
        "unknown_node_key",
        """\
        flowml: 1
        nodes:
          cam: {type: test.camera, param: {device: 1}}
    """,
        "graph.yaml:3:28: error: node 'cam': unknown key 'param'; did you mean 'params'?",
    ),
    case(
        "node_field_range",
        """\
        flowml: 1
        nodes:
          cam: {type: test.camera, every: 0}
    """,
        "graph.yaml:3:35: error: node 'cam': every: Input should be greater than or equal to 1 (got 0)",
    ),
    case(
        "node_field_union",
        """\
        flowml: 1
        nodes:
          cam: {type: test.camera, smooth: 900}
        """,
        "graph.yaml:3:36: error: node 'cam': smooth: Input should be less than or equal to 600 (got 900)",
    ),
    case(
        "node_not_a_mapping",
        """\
        flowml: 1
        nodes:
          cam: test.camera
    """,
        "graph.yaml:3:8: error: node 'cam': a node is a mapping; write `cam: {type: test.camera}`",
    ),
    case(
        "missing_type",
        """\
        flowml: 1
        nodes:
          cam: {params: {device: 1}}
    """,
        "graph.yaml:3:3: error: node 'cam': missing required key 'type': node type, e.g. image.resize (see `flowml nodes`)",
    ),
    case(
        "empty_nodes",
        """\
        flowml: 1
        nodes: {}
    """,
        'graph.yaml:2:8: error: `nodes:` is empty: add at least one node',
    ),
    case(
        "empty_file",
        "",
        'graph.yaml:1:1: error: the graph file is empty: start it with `flowml: 1` and a `nodes:` mapping',
    ),
    case(
        "not_a_mapping",
        """\
        - flowml: 1
    """,
        'graph.yaml:1:1: error: a graph file is a mapping with `flowml: 1` and `nodes:`, not a list',
    ),
    case(
        "many_errors_in_file_order",
        """\
        flowml: 1
        nodez: {}
        nodes:
          cam: {type: test.camera, params: {device: 1, device: 2}}
          blur: {type: test.blurr, inputs: {image: cam/image}}
          warp: {type: test.warp, inputs: {image: cam/image, matrix: cam/image}, params: {}}
          show: {type: test.display, inputs: {image: wrap/image}}
          plate: {type: test.still, params: {path: 3}}
    """,
        "graph.yaml:2:1: error: unknown top-level key 'nodez'; did you mean 'nodes'?",
        # plate's bad param does not hide that it is a second source, and there is no clock
        "graph.yaml:3:1: error: several source nodes (cam, plate) and no clock: say which one drives the ticks, e.g. `clock: cam`, or set a rate, e.g. `clock: {fps: 30}`",
        "graph.yaml:4:48: error: duplicate key 'device' (first at line 4, column 37)",
        "graph.yaml:5:16: error: node 'blur': unknown node type 'test.blurr'; did you mean 'test.blur'?",
        "graph.yaml:6:62: error: node 'warp': input 'matrix' takes matrix, but 'cam/image' gives image; connect an output of type matrix",
        "graph.yaml:7:46: error: node 'show': input 'image': no node 'wrap'; did you mean 'warp'?",
        "graph.yaml:8:44: error: node 'plate': param 'path': Input should be a valid string (got 3)",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_error_text(errors, text: str, expected: str) -> None:
    assert errors(text) == expected


def test_broken_plugin_is_named_in_unknown_type(errors, registry) -> None:
    registry.failures.append(PluginFailure("ndi", "ModuleNotFoundError: No module named 'NDIlib'"))
    text = """\
        flowml: 1
        nodes:
          out: {type: ndi.send}
    """
    assert errors(text, registry) == (
        "graph.yaml:3:15: error: node 'out': unknown node type 'ndi.send' (plugin 'ndi' failed to "
        "load: ModuleNotFoundError: No module named 'NDIlib'; run `flowml nodes` for details)"
    )


def test_several_broken_plugins_are_listed(errors, registry) -> None:
    registry.failures.append(PluginFailure("cvnodes", "ImportError: x"))
    registry.failures.append(PluginFailure("ndi", "OSError: y"))
    text = """\
        flowml: 1
        nodes:
          cam: {type: test.camra}
    """
    assert errors(text, registry) == (
        "graph.yaml:3:15: error: node 'cam': unknown node type 'test.camra'; did you mean "
        "'test.camera'? (plugins 'cvnodes' and 'ndi' failed to load; run `flowml nodes` for details)"
    )


def test_missing_file_names_the_path_as_given(in_tmp: Path, registry) -> None:
    with pytest.raises(GraphErrors) as caught:
        load_graph("nope/graph.yaml", registry)
    assert str(caught.value) == "nope/graph.yaml:0:0: error: no such graph file"


def test_errors_are_sorted_by_position(errors) -> None:
    text = """\
        flowml: 1
        nodes:
          z: {type: test.blur, inputs: {image: y/image}}
          y: {type: test.nope}
          cam: {type: test.camera, params: {device: -1}}
    """
    lines = errors(text).splitlines()
    positions = [tuple(int(n) for n in line.split(":")[1:3]) for line in lines]
    assert positions == sorted(positions) and len(lines) == 2


def test_node_type_that_cannot_run_here_fails_at_validation(tmp_path, monkeypatch):
    from flowml import IMAGE, Input, Node
    from flowml.graph import GraphErrors, load_graph
    from flowml.plugins import Registry

    class Spoutish(Node):
        type_name = "output.spoutish"
        inputs = (Input("image", IMAGE),)

        @classmethod
        def unavailable(cls):
            return "needs Windows and `pip install SpoutGL`"

    class Src(Node):
        from flowml import Output
        type_name = "t.src"
        outputs = (Output("image", IMAGE),)

    reg = Registry()
    reg.add(Spoutish, "t")
    reg.add(Src, "t")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "g.yaml").write_text(
        "flowml: 1\nnodes:\n  s: {type: t.src}\n  o: {type: output.spoutish, inputs: {image: s/image}}\n")
    import pytest
    with pytest.raises(GraphErrors) as e:
        load_graph("g.yaml", reg)
    assert str(e.value) == ("g.yaml:4:13: error: node 'o': output.spoutish cannot run here: "
                            "needs Windows and `pip install SpoutGL`")
