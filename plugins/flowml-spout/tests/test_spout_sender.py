"""output.spout: Windows only. Elsewhere a graph using it fails validation, naming the OS and
the package; on Windows with SpoutGL it sends real frames."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from flowml_spout.sender import SpoutSender

GRAPH = """\
flowml: 1
clock: {fps: 30}
nodes:
  bars:  {type: capture.pattern, params: {pattern: bars, size: [64, 48]}}
  spout: {type: output.spout, inputs: {image: bars/image}, params: {name: flowml-test}}
"""


@pytest.mark.skipif(sys.platform == "win32", reason="Spout runs on Windows")
def test_validate_names_windows_and_spoutgl(tmp_path):
    (tmp_path / "g.yaml").write_text(GRAPH)
    r = subprocess.run([sys.executable, "-m", "flowml.cli", "validate", str(tmp_path / "g.yaml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert "g.yaml:5:" in out and "node 'spout': output.spout cannot run here" in out
    assert "only on Windows" in out and f"this is {sys.platform}" in out and "pip install SpoutGL" in out
    assert "Traceback" not in out


@pytest.mark.skipif(sys.platform != "win32" or SpoutSender.unavailable() is not None,
                    reason="needs Windows with SpoutGL")
def test_sends_frames_on_windows():
    from flowml.testing import NodeHarness

    with NodeHarness(SpoutSender, {"name": f"flowml-test-{os.getpid()}"}) as h:
        for k in range(3):
            h.process(image=torch.full((1, 3, 48, 64), k / 3))
