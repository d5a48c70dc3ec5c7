"""`flowml new plugin NAME DIR`: the scaffold installs with pip and its own test passes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def flowml(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowml.cli", *args], capture_output=True,
                          text=True, timeout=300, **kw)


def test_scaffolded_plugin_installs_and_passes_its_test(tmp_path: Path):
    r = flowml("new", "plugin", "mynodes", str(tmp_path / "flowml-mynodes"))
    assert r.returncode == 0, r.stderr
    package = tmp_path / "flowml-mynodes"
    assert (package / "flowml_mynodes" / "nodes.py").is_file()
    site = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                          "--no-build-isolation", "--target", str(site), str(package)],
                         capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr
    env = {**os.environ, "PYTHONPATH": str(site)}
    test = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(package / "tests")], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    assert test.returncode == 0, test.stdout + test.stderr
    assert "2 passed" in test.stdout
    listed = flowml("nodes", "mynodes.", env=env)
    assert "mynodes.gain" in listed.stdout


def test_bad_name_and_a_used_folder_are_refused(tmp_path: Path):
    r = flowml("new", "plugin", "My-Nodes", str(tmp_path / "x"))
    assert r.returncode == 2 and "plugin name 'My-Nodes': use lower case letters" in r.stderr
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("mine")
    r = flowml("new", "plugin", "mynodes", str(tmp_path / "used"))
    assert r.returncode == 2 and "exists and is not empty" in r.stderr
    assert (tmp_path / "used" / "keep.txt").read_text() == "mine"
