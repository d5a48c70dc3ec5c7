"""``flowml new plugin NAME [DIR]``: a plugin package that installs with pip and passes its test.

What it makes follows docs/plugins.md: a ``pyproject.toml`` with the ``flowml`` entry point,
one node type ``NAME.gain`` (a class with a ranged param), the hook that registers it, and a
test that runs the node through ``flowml.testing`` and finds it among the installed types.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

__all__ = ["scaffold_plugin", "ScaffoldError"]

_NAME = re.compile(r"[a-z][a-z0-9_]*")


class ScaffoldError(Exception):
    """The name or the folder cannot be used; the message says why."""


_FILES: dict[str, str] = {
    "pyproject.toml": '''\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "flowml-$name"
version = "0.1.0"
description = "flowml nodes: $name"
requires-python = ">=3.11"
dependencies = ["flowml"]

[project.entry-points.flowml]
$name = "flowml_$name.plugin"

[tool.setuptools]
packages = ["flowml_$name"]
''',
    "README.md": '''\
# flowml-$name

flowml node types in the `$name.` family. Install with `pip install -e .`, then
`flowml nodes $name.` lists them and graph files can use them. Test with `pytest`.
See flowml's docs/plugins.md for everything a node can do.
''',
    "flowml_$name/__init__.py": '''\
"""flowml-$name: flowml node types."""
''',
    "flowml_$name/nodes.py": '''\
"""The node types of flowml-$name."""

from __future__ import annotations

import flowml
from flowml import IMAGE, Field, Input, Node, Output


class Gain(Node):
    """Multiply an image by a gain, clamped to [0, 1]."""

    type_name = "$name.gain"
    inputs = (Input("image", IMAGE, "(B, C, H, W) float in [0, 1]"),)
    outputs = (Output("image", IMAGE),)

    class Params(flowml.Params):
        gain: float = Field(1.0, ge=0.0, le=4.0, description="multiplier (live over OSC)")

    def process(self, image):
        return (image * self.params.gain).clamp(0, 1)  # a new tensor: inputs are read-only
''',
    "flowml_$name/plugin.py": '''\
"""The entry point flowml loads (group ``flowml`` in pyproject.toml)."""

import flowml

from .nodes import Gain


@flowml.hookimpl
def register_node_types(register):
    register(Gain)
''',
    "tests/test_nodes.py": '''\
"""Tests of flowml-$name's nodes: one node without a graph, and the installed plugin."""

import torch

from flowml.plugins import load_registry
from flowml.testing import run_node
from flowml_$name.nodes import Gain


def test_gain_doubles_and_clamps():
    image = torch.full((1, 3, 4, 4), 0.3)
    out = run_node(Gain, {"image": image}, {"gain": 2.0}, check=True)
    assert torch.allclose(out["image"], torch.full((1, 3, 4, 4), 0.6))
    assert run_node(Gain, {"image": image}, {"gain": 4.0})["image"].max() == 1.0


def test_the_installed_plugin_registers_gain():
    registry = load_registry()
    assert registry.get("$name.gain") is not None, [str(f) for f in registry.failures]
    assert registry.get("$name.gain").plugin == "$name"
''',
}


def scaffold_plugin(name: str, where: Path | None = None) -> Path:
    """Write the package for plugin ``name`` into ``where`` (default ``./flowml-<name>``);
    returns the folder. Raises ``ScaffoldError`` for a bad name or a non-empty folder."""
    if not _NAME.fullmatch(name):
        raise ScaffoldError(f"plugin name {name!r}: use lower case letters, digits and '_', "
                            "starting with a letter (it is also the family of its node types, "
                            "e.g. 'mynodes' for 'mynodes.gain')")
    root = Path(where) if where is not None else Path(f"flowml-{name}")
    if root.exists() and any(root.iterdir()):
        raise ScaffoldError(f"{root} exists and is not empty; choose another folder")
    for relative, text in _FILES.items():
        path = root / Template(relative).substitute(name=name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(text).substitute(name=name), encoding="utf-8")
    return root
