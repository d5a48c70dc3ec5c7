"""Validation notes: a node type's ``validation_notes(params, graph_dir)`` gives non-fatal
remarks on a valid graph (``ValidatedGraph.notes``, at the node's ``type``); ``flowml validate``
prints them to stderr as ``file:line:col: note: ...`` and still exits 0."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from nodes_for_tests import make_registry

from flowml import IMAGE, Field, Input, Node, Output, Params
from flowml.graph import GraphErrors, GraphNote, load_graph

GRAPH = """\
flowml: 1
nodes:
  cam: {type: test.camera}
  g:
    type: test.needs_gpu
    inputs: {image: cam/image}
    params: {fallback: true}
"""


class NeedsGpu(Node):
    """Says at validation what this machine lacks (a test type: nothing runs)."""

    type_name = "test.needs_gpu"
    inputs = (Input("image", IMAGE),)
    outputs = (Output("image", IMAGE),)

    class Params(Params):
        fallback: bool = Field(False, description="run slower instead of not at all")
        explode: bool = Field(False, description="the notes hook raises (a plugin bug)")

    @classmethod
    def validation_notes(cls, params, graph_dir: Path) -> list[str]:
        if params.explode:
            raise RuntimeError("boom")
        return [f"no GPU in {graph_dir.name}: " + ("runs slower" if params.fallback else "will not start")]


def _registry():
    registry = make_registry()
    registry.add(NeedsGpu, "testnodes")
    return registry


def test_notes_are_kept_on_the_valid_graph_at_the_node_type(tmp_path):
    path = tmp_path / "graph.yaml"
    path.write_text(GRAPH)
    graph = load_graph(path, _registry())
    assert graph.notes == [GraphNote(str(path), 5, 11, f"node 'g' (test.needs_gpu): no GPU in "
                                     f"{tmp_path.name}: runs slower")]
    assert str(graph.notes[0]).startswith(f"{path}:5:11: note: node 'g'")
    path.write_text(GRAPH.replace("fallback: true", "explode: true"))
    with pytest.raises(GraphErrors, match=r"graph.yaml:5:11: error: node 'g': its validation notes "
                       r"failed: RuntimeError: boom \(a bug in plugin 'testnodes'\)"):
        load_graph(path, _registry())
    path.write_text(GRAPH.replace("test.needs_gpu", "test.blur").replace("params: {fallback: true}", ""))
    assert load_graph(path, _registry()).notes == []         # types without the hook: none


def test_flowml_validate_prints_notes_and_exits_0(tmp_path):
    site = tmp_path / "site"
    (site / "gpuless_plugin").mkdir(parents=True)
    (site / "gpuless_plugin" / "__init__.py").write_text(textwrap.dedent('''\
        import flowml
        from flowml import IMAGE, Input, Node, Output

        class Gpu(Node):
            """Needs a GPU."""
            type_name = "gpuless.node"
            inputs = (Input("image", IMAGE),)
            outputs = (Output("image", IMAGE),)

            @classmethod
            def validation_notes(cls, params, graph_dir):
                return ["needs a CUDA GPU; this machine has none: the graph will not start here"]

        @flowml.hookimpl
        def register_node_types(register):
            register(Gpu)
        '''))
    dist = site / "gpuless_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: gpuless-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[flowml]\ngpuless = gpuless_plugin\n")
    graph = tmp_path / "g.yaml"
    graph.write_text("flowml: 1\nnodes:\n  scene: {type: capture.pattern}\n"
                     "  k: {type: gpuless.node, inputs: {image: scene/image}}\n")
    r = subprocess.run([sys.executable, "-m", "flowml.cli", "validate", str(graph)], capture_output=True,
                       text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(site)})
    assert r.returncode == 0, r.stderr
    assert f"ok: {graph}: 2 nodes" in r.stdout
    assert (f"{graph}:4:13: note: node 'k' (gpuless.node): needs a CUDA GPU; this machine has "
            "none: the graph will not start here") in r.stderr
