"""The example graph and the built-in plugins together, through the real `flowml run`."""

import importlib.util
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
ROOT = Path(__file__).resolve().parents[2]


def flowml(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flowml.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def decode(path: Path) -> tuple[list[float], list[np.ndarray]]:
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return [f.time for f in frames], [f.to_ndarray(format="rgb24") for f in frames]


@pytest.fixture(scope="module")
def demo_copy(tmp_path_factory) -> Path:
    """graphs/demo.yaml and freshly built models, laid out as in the repo, in a temp folder."""
    root = tmp_path_factory.mktemp("repo")
    (root / "graphs").mkdir()
    shutil.copy(ROOT / "graphs" / "demo.yaml", root / "graphs" / "demo.yaml")
    script = ROOT / "models" / "build_demo_models.py"
    spec = importlib.util.spec_from_file_location("build_demo_models", script)
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    build.build(root / "models")
    return root


def test_demo_graph_runs_and_leaves_a_video_and_a_still(demo_copy):
    proc = flowml("run", str(demo_copy / "graphs" / "demo.yaml"), "--frames", "40")
    log, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, log
    times, frames = decode(demo_copy / "out" / "demo.mp4")
    assert len(frames) == 40 and frames[0].shape == (360, 640, 3)
    assert times == pytest.approx([k / 30 for k in range(40)], abs=1e-9)
    # stopped before at_frame 75: the still is the last frame, as the video shows it
    still = np.asarray(Image.open(demo_copy / "out" / "demo.png"))
    assert np.abs(still.astype(float) - frames[-1]).mean() < 4
    assert np.abs(frames[-1].astype(float) - frames[0]).mean() > 2  # the scene moved


ENDLESS = """
flowml: 1
clock: scene
nodes:
  scene: {type: capture.pattern, params: {pattern: bars, size: [160, 90], fps: 30}}
  video: {type: output.video, inputs: {image: scene/image}, params: {path: out.mp4, fragmented: false}}
  still: {type: output.image, inputs: {image: scene/image}, params: {path: out.png}}
  frames: {type: output.images, inputs: {image: scene/image}, params: {dir: frames}}
"""


def test_ctrl_c_still_leaves_a_playable_video_and_a_still(tmp_path):
    (tmp_path / "endless.yaml").write_text(ENDLESS)
    proc = flowml("run", str(tmp_path / "endless.yaml"))
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if len(list((tmp_path / "frames").glob("*.png"))) >= 10:  # it runs: stop it half-way
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    log, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, log
    times, frames = decode(tmp_path / "out.mp4")
    assert len(frames) >= 1, log
    assert times == pytest.approx([k / 30 for k in range(len(frames))], abs=1e-9), log
    assert np.asarray(Image.open(tmp_path / "out.png")).shape == (90, 160, 3), log
