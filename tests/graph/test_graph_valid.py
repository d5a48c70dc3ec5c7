"""Graphs that are right: what ``load_graph`` builds from them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import nodes_for_tests
import pytest

from flowml.graph import RateClock, Source, ValidatedGraph, load_graph
from flowml.plugins import load_registry

GRAPH = """\
    flowml: 1
    name: demo
    nodes:
      show: {type: test.display, inputs: {image: warp/image}}
      plate: {type: test.still, params: {path: plate.png}}
      cam: {type: test.camera, params: {device: 1}}
      align: {type: test.homography, inputs: {src: plate/image, dst: cam/image}, every: 5}
      warp: {type: test.warp, inputs: {image: plate/image, matrix: align/matrix}}
    clock: cam
"""


def test_topological_order_is_stable_file_order(load) -> None:
    graph = load(GRAPH)
    assert graph.order == ["plate", "cam", "align", "warp", "show"]


def test_nodes_keep_file_order_and_resolved_parts(load) -> None:
    graph = load(GRAPH)
    assert list(graph.nodes) == ["show", "plate", "cam", "align", "warp"]
    align = graph.nodes["align"]
    assert align.type.cls is nodes_for_tests.Homography
    assert align.params == nodes_for_tests.Homography.Params(method="orb")
    assert align.spec.every == 5
    assert align.inputs == {"src": Source("plate", "image"), "dst": Source("cam", "image")}
    assert graph.nodes["cam"].params.device == 1 and graph.nodes["cam"].is_source


def test_consumers(load) -> None:
    graph = load(GRAPH)
    assert graph.consumers("plate") == [("align", "src", "image"), ("warp", "image", "image")]


def test_path_is_kept_as_given(load) -> None:
    graph = load(GRAPH)
    assert graph.path == Path("graph.yaml") and graph.spec.name == "demo"


def test_named_clock(load) -> None:
    assert load(GRAPH).clock == "cam"


def test_only_source_is_the_clock(load) -> None:
    graph = load("""\
        flowml: 1
        nodes:
          cam: {type: test.camera}
          show: {type: test.display, inputs: {image: cam/image}}
    """)
    assert graph.clock == "cam"


def test_rate_clock(load) -> None:
    graph = load("""\
        flowml: 1
        clock: {fps: 60}
        nodes:
          cam: {type: test.camera}
          plate: {type: test.still, params: {path: p.png}}
    """)
    assert graph.clock == RateClock(fps=60)


def test_optional_input_may_be_left_out_or_connected(load) -> None:
    graph = load("""\
        flowml: 1
        nodes:
          cam: {type: test.camera}
          soft: {type: test.blur, inputs: {image: cam/image}}
          masked: {type: test.blur, inputs: {image: cam/image, mask: soft/image}}
    """)
    assert graph.nodes["soft"].inputs == {"image": Source("cam", "image")}
    assert graph.nodes["masked"].inputs["mask"] == Source("soft", "image")


def test_image_feeds_a_tensor_input(load) -> None:
    graph = load("""\
        flowml: 1
        nodes:
          cam: {type: test.camera}
          norm: {type: test.norm, inputs: {tensor: cam/image}}
    """)
    assert graph.nodes["norm"].inputs == {"tensor": Source("cam", "image")}


def test_ports_computed_from_params(load) -> None:
    graph = load("""\
        flowml: 1
        nodes:
          cam: {type: test.camera}
          model: {type: test.model, params: {inputs: [rgb, depth]},
                  inputs: {rgb: cam/image, depth: cam/image}}
    """)
    assert [p.name for p in graph.nodes["model"].ports.inputs] == ["rgb", "depth"]


def test_anchors_aliases_and_merge_keys(load) -> None:
    graph = load("""\
        flowml: 1
        nodes:
          cam: {type: test.camera, params: &fast {device: 2, fps: 120}}
          cam2: {type: test.camera, params: {<<: *fast, device: 3}}
          cam3: {type: test.camera, params: *fast}
        clock: cam
    """)
    assert graph.nodes["cam2"].params.model_dump() == {"device": 3, "fps": 120.0}
    assert graph.nodes["cam3"].params.model_dump() == {"device": 2, "fps": 120.0}


def test_text_is_used_instead_of_the_file(registry) -> None:
    graph = load_graph("not/on/disk.yaml", registry, text="flowml: 1\nnodes: {c: {type: test.camera}}\n")
    assert isinstance(graph, ValidatedGraph) and graph.order == ["c"]


def test_registry_from_plugin_hook(in_tmp: Path) -> None:
    registry = load_registry(extra_modules=[("testnodes", nodes_for_tests)])
    assert registry.get("test.blur").plugin == "testnodes"
    graph = load_graph("g.yaml", registry, text="flowml: 1\nnodes: {c: {type: test.camera}}\n")
    assert graph.nodes["c"].type.name == "test.camera"


# -- the layer's import rules --------------------------------------------------------------------

GRAPH_PACKAGE = Path(__file__).resolve().parents[2] / "flowml" / "graph"


@pytest.mark.parametrize("module", sorted(p.name for p in GRAPH_PACKAGE.glob("*.py")))
def test_graph_layer_imports_only_ports_from_flowml(module: str) -> None:
    tree = ast.parse((GRAPH_PACKAGE / module).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 2:
            # ports and parammeta: the two torch-free modules the graph layer may read
            assert node.module in ("ports", "parammeta"), f"{module} imports flowml.{node.module}"
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            assert not (node.module or "").startswith(("flowml", "torch")), module
        elif isinstance(node, ast.Import):
            assert not any(a.name.startswith(("flowml", "torch")) for a in node.names), module


def test_loading_a_graph_does_not_import_torch(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from flowml.graph import load_graph, GraphErrors\n"
        "from flowml.plugins import Registry\n"
        "try:\n"
        "    load_graph('g.yaml', Registry(), text='flowml: 1\\nnodes: {a: {type: x.y}}\\n')\n"
        "except GraphErrors:\n"
        "    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
