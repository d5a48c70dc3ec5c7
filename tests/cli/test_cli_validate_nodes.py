"""`flowml validate` checks every file; `flowml nodes` names what failed, shows tracebacks with
--verbose, reports type-name conflicts and bad ports(), and survives a closed pipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def flowml(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowml.cli", *args], capture_output=True,
                          text=True, timeout=120, **kw)


def plugin_site(tmp_path: Path, name: str, source: str) -> Path:
    """A folder holding an installed distribution with one ``flowml`` entry point."""
    site = tmp_path / "site"
    (site / f"{name}_plugin").mkdir(parents=True)
    (site / f"{name}_plugin" / "__init__.py").write_text(textwrap.dedent(source))
    dist = site / f"{name}_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[flowml]\n{name} = {name}_plugin\n")
    return site


def test_validate_reports_every_bad_file_and_still_checks_the_good_ones(tmp_path):
    (tmp_path / "a.yaml").write_text("flowml: 1\nnodes: {x: {type: capture.patern}}\n")
    (tmp_path / "b.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (tmp_path / "c.yaml").write_bytes(b"flowml: 1\nnodes: {}\n\x0c\n")
    r = flowml("validate", str(tmp_path / "a.yaml"), str(tmp_path / "b.bin"),
               str(ROOT / "graphs" / "demo.yaml"), str(tmp_path / "c.yaml"))
    assert r.returncode == 2
    assert f"{tmp_path / 'a.yaml'}:2:19: error: node 'x': unknown node type 'capture.patern'; " \
           "did you mean 'capture.pattern'?" in r.stderr
    assert f"{tmp_path / 'b.bin'}:1:1: error: a binary file, not a graph file" in r.stderr
    assert f"{tmp_path / 'c.yaml'}:3:1: error: a form feed (U+000C)" in r.stderr
    assert "3 of 4 graph files have errors" in r.stderr
    assert f"ok: {ROOT / 'graphs' / 'demo.yaml'}: 5 nodes" in r.stdout
    assert "Traceback" not in r.stderr


def test_nodes_json_into_a_closed_pipe_is_quiet():
    r = subprocess.run(f"{sys.executable} -m flowml.cli nodes --json | head -c 100", shell=True,
                       capture_output=True, text=True, timeout=120)
    assert r.stdout.startswith('{\n  "node_types"')
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr


def test_a_failed_plugin_is_named_and_its_traceback_shown_on_request(tmp_path):
    site = plugin_site(tmp_path, "broken", """\
        def helper():
            raise RuntimeError("the SDK is missing")
        helper()
    """)
    env = {**os.environ, "PYTHONPATH": str(site)}
    r = flowml("nodes", env=env)
    assert "plugin 'broken' failed to load: RuntimeError: the SDK is missing" in r.stderr
    assert "flowml nodes --verbose" in r.stderr and "Traceback" not in r.stderr
    r = flowml("nodes", "--verbose", env=env)
    assert "Traceback (most recent call last)" in r.stderr and "in helper" in r.stderr
    listing = json.loads(flowml("nodes", "--json", "--verbose", env=env).stdout)
    [failure] = [f for f in listing["failed_plugins"] if f["plugin"] == "broken"]
    assert "in helper" in failure["traceback"] and failure["loaded"] is False


def test_a_plugin_taking_a_built_in_name_is_a_conflict_not_a_takeover(tmp_path):
    site = plugin_site(tmp_path, "flipper", """\
        import flowml
        from flowml import IMAGE, Input, Node, Output, Ports


        class MyFlip(Node):
            '''Not the built-in flip: this one mirrors
            the image the other way.

            More words here.'''
            type_name = "image.flip"
            inputs = (Input("image", IMAGE),)
            outputs = (Output("image", IMAGE),)


        class TupleNode(Node):
            '''ports() returns a tuple.'''
            type_name = "flipper.tuple"

            @classmethod
            def ports(cls, params):
                return ((), ())


        class Bad(Node):
            type_name = "NoFamily"


        @flowml.hookimpl
        def register_node_types(register):
            register(MyFlip)
            register(TupleNode)
            register(Bad)
    """)
    env = {**os.environ, "PYTHONPATH": str(site)}
    listing = json.loads(flowml("nodes", "--json", env=env).stdout)
    [clash] = listing["conflicts"]
    assert clash["type"] == "image.flip" and clash["plugins"] == ["flipper", "std"]
    types = {t["type"]: t for t in listing["node_types"]}
    flips = {t["plugin"]: t for t in listing["node_types"] if t["type"] == "image.flip"}
    assert set(flips) == {"flipper", "std"}  # both listed
    assert flips["flipper"]["description"] == "Not the built-in flip: this one mirrors the image the other way."
    assert types["flipper.tuple"]["inputs"].startswith("error: flipper.tuple: ports() must return flowml.Ports")
    [bad] = [f for f in listing["failed_plugins"] if f["plugin"] == "flipper"]
    assert bad["loaded"] and "NoFamily" in bad["error"]
    assert not [f for f in listing["failed_plugins"] if f["plugin"] == "std"]  # std is fine

    graph = tmp_path / "g.yaml"
    graph.write_text("flowml: 1\nnodes:\n  scene: {type: capture.pattern}\n"
                     "  flip: {type: image.flip, inputs: {image: scene/image}}\n")
    r = flowml("validate", str(graph), env=env)
    assert r.returncode == 2
    assert "node type 'image.flip' is registered by plugins 'flipper' and 'std'" in r.stderr
    graph.write_text("flowml: 1\nplugins: {image.flip: std}\nnodes:\n  scene: {type: capture.pattern}\n"
                     "  flip: {type: image.flip, inputs: {image: scene/image}}\n")
    r = flowml("validate", str(graph), env=env)
    assert r.returncode == 0, r.stderr
