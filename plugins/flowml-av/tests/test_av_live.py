"""Live recordings keep real time: output.video stamps frames by capture time, so skipped frames
leave the one before on screen (the file still lasts as long as the take), encodes on several
threads unless asked to be deterministic, and a 60 s live graph gives a 60 s file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from flowml.testing import NodeHarness
from flowml_av.writer import REPEATABLE, VideoWriter

FFPROBE = shutil.which("ffprobe")
FLOWML = [sys.executable, "-m", "flowml.cli"]


def probe(path: Path, *args: str) -> str:
    assert FFPROBE, "the ffprobe CLI is needed (Debian's ffmpeg package; scripts/test.sh installs it)"
    return subprocess.run([FFPROBE, "-v", "error", *args, str(path)], capture_output=True, text=True,
                          check=True, timeout=120).stdout.strip()


def frame_times(path: Path) -> list[float]:
    out = probe(path, "-select_streams", "v:0", "-show_entries", "frame=pts_time", "-of", "csv=p=0")
    return sorted(float(x.strip(",")) for x in out.split() if x.strip(","))


def duration(path: Path) -> float:
    return float(probe(path, "-show_entries", "format=duration", "-of", "csv=p=0"))


def grey(k: int) -> torch.Tensor:
    return torch.full((1, 3, 64, 96), (k % 10) / 10)


def test_live_frames_are_stamped_by_capture_time(tmp_path):
    path = tmp_path / "live.mp4"
    stamps = [0, 1 / 30, 5 / 30, 5.2 / 30, 6 / 30, 10 / 30]  # a gap (skipped frames), a late duplicate
    with NodeHarness(VideoWriter, {"path": str(path), "fps": 30}, mode="live") as h:
        for k, t in enumerate(stamps):
            h.process(t=t, image=grey(k))
        assert h.node.merged == 1 and h.node.held == 6
    times = frame_times(path)
    assert times[:5] == pytest.approx([0, 1 / 30, 5 / 30, 6 / 30, 10 / 30], abs=1e-3)
    assert len(times) <= 6  # at most one more: the last frame held to the moment the take stopped
    assert probe(path, "-select_streams", "v:0", "-show_entries", "stream=r_frame_rate", "-of", "csv=p=0") == "30/1"


def test_live_take_lasts_until_it_stopped_even_if_the_last_frames_were_skipped(tmp_path):
    path = tmp_path / "tail.mp4"
    with NodeHarness(VideoWriter, {"path": str(path), "fps": 30}, mode="live") as h:
        t0 = time.perf_counter()
        for k in range(3):
            h.process(t=time.perf_counter() - t0, image=grey(k))
        time.sleep(1.0)  # the graph went on for 1 s; the sink got none of those frames
    assert duration(path) >= 1.0
    assert duration(path) < 30  # bounded by the real wall time of this test, not a runaway fill


def test_live_encodes_on_several_threads_offline_is_repeatable(tmp_path):
    with NodeHarness(VideoWriter, {"path": str(tmp_path / "a.mp4")}, mode="live") as h:
        h.process(image=grey(0))
        assert h.node.deterministic is False
        assert h.node._encoder_options(None)["threads"] == "0"
    with NodeHarness(VideoWriter, {"path": str(tmp_path / "b.mp4")}, mode="offline") as h:
        h.process(image=grey(0))
        assert h.node.deterministic is True
        assert h.node._encoder_options(None)["threads"] == REPEATABLE["threads"]
    with NodeHarness(VideoWriter, {"path": str(tmp_path / "c.mp4"), "deterministic": True}, mode="live") as h:
        h.process(image=grey(0))
        assert h.node._encoder_options(None)["threads"] == "1"


GRAPH = """\
flowml: 1
name: live_take
clock: {fps: 30}
mode: live
nodes:
  scene: {type: capture.pattern, params: {pattern: scene, size: [640, 360], fps: 30}}
  rec: {type: output.video, inputs: {image: scene/image}, params: {path: take.mp4, fps: 30}}
"""


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_60_second_live_recording_plays_60_seconds(tmp_path):
    """The suite's one long test (about 70 s): a live graph records for 60 s on this machine;
    the file plays 60 s, within one frame interval, however many frames the sink skipped."""
    (tmp_path / "take.yaml").write_text(GRAPH)
    stats = tmp_path / "stats.json"
    run = subprocess.run([*FLOWML, "run", str(tmp_path / "take.yaml"), "--duration", "60",
                          "--stats-json", str(stats)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads(stats.read_text())
    sink = summary["nodes"]["rec"]
    played = duration(tmp_path / "take.mp4")
    assert abs(played - 60.0) <= 1 / 30 + 2e-3, (
        f"played {played:.3f} s; ticks {summary['ticks']}, source drops {summary['source_drops']}, "
        f"sink calls {sink['calls']}, sink drops {sink['drops']}")
    frames = len(frame_times(tmp_path / "take.mp4"))
    assert 0 < frames <= sink["calls"] + 1  # what the sink took (+ the last one held to the end)
