"""output.preview: a window where a display exists; a clear validation error where none does.
SDL's offscreen driver gives the real window code a screen without a desktop."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

from flowml.testing import NodeHarness
from flowml_preview.window import PreviewWindow

GRAPH = """\
flowml: 1
clock: {fps: 60}
nodes:
  bars: {type: capture.pattern, params: {pattern: bars, size: [96, 64]}}
  view: {type: output.preview, inputs: {image: bars/image}}
"""

FLOWML = [sys.executable, "-m", "flowml.cli"]


def headless_env():
    return {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")}


@pytest.mark.skipif(sys.platform != "linux", reason="the no-display message is Linux's")
def test_validate_without_a_display_says_so(tmp_path):
    (tmp_path / "g.yaml").write_text(GRAPH)
    r = subprocess.run([*FLOWML, "validate", str(tmp_path / "g.yaml")], env=headless_env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert "node 'view': output.preview cannot run here: needs a display" in out
    assert "DISPLAY" in out and "output.ndi" in out and "Traceback" not in out


@pytest.fixture
def offscreen(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "offscreen")
    assert PreviewWindow.unavailable() is None


def test_window_shows_the_newest_frame_scaled_to_its_size(offscreen):
    frame = torch.zeros(1, 3, 40, 60)
    frame[:, 0, :, :30] = 1.0       # left half red
    frame[:, 2, :, 30:] = 1.0       # right half blue
    with NodeHarness(PreviewWindow, {"size": [120, 80], "title": "test"}) as h:
        h.process(image=torch.zeros(1, 3, 40, 60))
        h.process(image=frame)
        deadline = time.monotonic() + 5
        while h.node.shown < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        shot = h.node.screenshot()
    assert shot.shape == (80, 120, 3)
    assert shot[40, 20].tolist() == [255, 0, 0] and shot[40, 100].tolist() == [0, 0, 255]


def test_a_graph_runs_with_a_window(tmp_path):
    (tmp_path / "g.yaml").write_text(GRAPH)
    env = {**headless_env(), "SDL_VIDEODRIVER": "offscreen"}
    r = subprocess.run([*FLOWML, "run", str(tmp_path / "g.yaml"), "--frames", "30"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
