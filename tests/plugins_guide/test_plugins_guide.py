"""docs/plugins.md, followed alone: its `# file:` blocks are a plugin package; install it with
pip, list it, validate and run its graph (a node of every kind the guide describes), run the
guide's own tests of it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "plugins.md"
BLOCK = re.compile(r"^```[a-z]*\n# file: (\S+)\n(.*?)^```", re.S | re.M)
TYPES = {"guide.counter", "guide.tint", "guide.invert", "guide.trail", "guide.split",
         "guide.needs_library", "guide.record"}


def guide_files() -> dict[str, str]:
    return {path: text for path, text in BLOCK.findall(GUIDE.read_text())}


def flowml(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowml.cli", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The guide's package written from the page, pip-installed into a folder of its own."""
    package = tmp_path_factory.mktemp("flowml-guide")
    for path, text in guide_files().items():
        (package / path).parent.mkdir(parents=True, exist_ok=True)
        (package / path).write_text(text)
    site = tmp_path_factory.mktemp("site")
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                          "--no-build-isolation", "--target", str(site), str(package)],
                         capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr
    return package, {**os.environ, "PYTHONPATH": str(site)}


def test_the_guide_holds_a_whole_plugin():
    files = guide_files()
    assert {"pyproject.toml", "flowml_guide/plugin.py", "graph.yaml",
            "tests/test_guide_nodes.py"} <= set(files)
    for name in ("counter", "tint", "trail", "functions", "split", "needs", "record"):
        assert f"flowml_guide/{name}.py" in files


def test_installed_guide_plugin_lists_every_type(installed):
    package, env = installed
    listing = json.loads(flowml("nodes", "guide.", "--json", env=env, cwd=package).stdout)
    types = {t["type"]: t for t in listing["node_types"]}
    assert set(types) == TYPES
    assert {t["plugin"] for t in types.values()} == {"guide"}
    assert types["guide.tint"]["distribution"] == "flowml-guide"
    assert [p["choices"] for p in types["guide.tint"]["params"] if p["name"] == "colour"] == [
        ["red", "green", "blue"]]
    assert not [f for f in listing["failed_plugins"] if f["plugin"] == "guide"]


def test_guide_graph_validates_and_runs_every_kind_of_node(installed):
    package, env = installed
    r = flowml("validate", "graph.yaml", env=env, cwd=package)
    assert r.returncode == 0, r.stderr
    r = flowml("run", "graph.yaml", "--check", env=env, cwd=package)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in (package / "record.jsonl").read_text().splitlines()]
    assert [row["b"] for row in rows] == [0, 1, 2, 3, 4]
    assert [row["t"] for row in rows] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    average = None
    for k, row in enumerate(rows):  # counter -> tint green 0.5 -> invert -> trail 0.5 -> g
        level = k / 4
        g = 1 - (level * 0.5 + 0.5)
        average = g if average is None else average * 0.5 + g * 0.5
        assert row["a"] == pytest.approx(average, abs=1e-6)


def test_guide_unavailable_type_fails_validation_with_its_reason(installed):
    package, env = installed
    (package / "needs.yaml").write_text(
        "flowml: 1\nnodes:\n  count: {type: guide.counter}\n"
        "  sdk: {type: guide.needs_library, inputs: {image: count/image}}\n")
    r = flowml("validate", "needs.yaml", env=env, cwd=package)
    assert r.returncode == 2
    assert "needs.yaml:4:15: error: node 'sdk': guide.needs_library cannot run here: it needs the " \
           "vendor SDK" in r.stderr


def test_the_guides_own_tests_pass(installed):
    package, env = installed
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        str(package / "tests")], capture_output=True, text=True, env=env,
                       cwd=package, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "4 passed" in r.stdout
