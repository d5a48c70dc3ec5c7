"""graphs/matting_demo.yaml runs as a user runs it and writes a video and a still;
graphs/matting.yaml validates where its camera node is installed."""

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flowml.plugins import load_registry

ROOT = Path(__file__).resolve().parents[3]


def test_demo_graph_writes_a_video_and_a_still(tmp_path):
    (tmp_path / "graphs").mkdir()
    shutil.copy(ROOT / "graphs" / "matting_demo.yaml", tmp_path / "graphs")
    spec = importlib.util.spec_from_file_location("build_bgmv2", ROOT / "models" / "build_bgmv2.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    build.build(tmp_path / "models")
    graph = str(tmp_path / "graphs" / "matting_demo.yaml")
    text = (tmp_path / "graphs" / "matting_demo.yaml").read_text().replace("at_frame: 60", "at_frame: 3")
    (tmp_path / "graphs" / "matting_demo.yaml").write_text(text)
    proc = subprocess.run([sys.executable, "-m", "flowml.cli", "run", graph, "--frames", "6", "--device", "cpu"],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "out" / "matting_demo.mp4").stat().st_size > 1000
    assert (tmp_path / "out" / "matting_demo.png").is_file()


def test_camera_graph_validates():
    if load_registry().get("capture.camera") is None:
        pytest.skip("capture.camera is not installed (flowml-camera)")
    proc = subprocess.run([sys.executable, "-m", "flowml.cli", "validate", str(ROOT / "graphs" / "matting.yaml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
