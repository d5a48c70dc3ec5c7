"""output.syphon: macOS only. Elsewhere a graph using it fails validation, naming the OS and
the package; on macOS with syphon-python it publishes real frames."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from flowml_syphon.server import SyphonServer

GRAPH = """\
flowml: 1
clock: {fps: 30}
nodes:
  bars:   {type: capture.pattern, params: {pattern: bars, size: [64, 48]}}
  syphon: {type: output.syphon, inputs: {image: bars/image}, params: {name: flowml-test}}
"""


@pytest.mark.skipif(sys.platform == "darwin", reason="Syphon runs on macOS")
def test_validate_names_macos_and_syphon_python(tmp_path):
    (tmp_path / "g.yaml").write_text(GRAPH)
    r = subprocess.run([sys.executable, "-m", "flowml.cli", "validate", str(tmp_path / "g.yaml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert "g.yaml:5:" in out and "node 'syphon': output.syphon cannot run here" in out
    assert "only on macOS" in out and "pip install syphon-python" in out
    assert "Traceback" not in out


@pytest.mark.skipif(sys.platform != "darwin" or SyphonServer.unavailable() is not None,
                    reason="needs macOS with syphon-python")
def test_publishes_frames_on_macos():
    from flowml.testing import NodeHarness

    with NodeHarness(SyphonServer, {"name": "flowml-test"}) as h:
        for k in range(3):
            h.process(image=torch.full((1, 3, 48, 64), k / 3))
