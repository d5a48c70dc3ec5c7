"""The README and the install scripts stay in step with the packaging metadata."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _name(req: str) -> str:
    """``'opencv-contrib-python-headless>=4.8; sys_platform == "x"'`` -> ``opencv-contrib-python-headless``."""
    return re.split(r"[\s<>=!~;\[@]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _third_party(pyproject: Path) -> set[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    reqs = list(project.get("dependencies", []))
    for extra, items in project.get("optional-dependencies", {}).items():
        if extra != "test":
            reqs += items
    return {n for n in map(_name, reqs) if not n.startswith("flowml")}


def _dependency_table() -> str:
    start = README.index("## Dependencies and what each is for")
    return README[start:README.index("\n## ", start + 1)].lower().replace("_", "-")


def test_every_dependency_of_flowml_and_its_plugins_is_in_the_readme_table():
    table = _dependency_table()
    missing = {}
    for pyproject in [ROOT / "pyproject.toml", *sorted((ROOT / "plugins").glob("*/pyproject.toml"))]:
        absent = sorted(n for n in _third_party(pyproject) if n not in table)
        if absent:
            missing[pyproject.parent.name] = absent
    assert not missing, f"README.md's dependency table lacks: {missing}"


def test_the_gpu_dependency_wheels_are_the_versions_tested_here():
    pins = [line.split("#")[0].strip() for line in
            (ROOT / "scripts" / "gpu-wheels-deps.txt").read_text(encoding="utf-8").splitlines()]
    pins = [p for p in pins if p]
    assert len(pins) >= 5 and all("==" in p for p in pins), pins
    off = {name: (pin, metadata.version(name)) for name, pin in (p.split("==") for p in pins)
           if metadata.version(name) != pin}
    assert not off, f"scripts/gpu-wheels-deps.txt pins differ from this venv (pin, installed): {off}"


def test_every_script_the_readme_names_exists():
    named = set(re.findall(r"scripts[/\\]([\w.-]+\.(?:sh|ps1|py))", README))
    assert {"demo.sh", "test.sh", "demo.ps1", "test.ps1", "gpu-wheels-bench.sh"} <= named
    missing = sorted(n for n in named if not (ROOT / "scripts" / n).is_file())
    assert not missing, f"README.md names scripts that do not exist: {missing}"
