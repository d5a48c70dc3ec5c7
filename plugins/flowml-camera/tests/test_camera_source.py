"""capture.camera through OpenCV's VideoCapture: a video file stands in for the device (this
machine has no /dev/video* and cannot load v4l2loopback); unplug and replug are made by
closing the capture under the node and making the file vanish and come back."""

from __future__ import annotations

import logging
import os
import threading
import time

import cv2
import numpy as np
import pytest
import torch

from flowml import NodeError
from flowml.graph import load_graph
from flowml.plugins import load_registry
from flowml.runtime.scheduler import Scheduler
from flowml.testing import NodeHarness, run_node
from flowml_camera.camera import CameraSource

FPS = 50


@pytest.fixture
def clip(tmp_path):
    """20 frames at 50 fps, 64x48 MJPG: frame k is pure red on its left half with k*12 of
    green on the right (so its index can be read back)."""
    path = tmp_path / "cam.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (64, 48))
    assert writer.isOpened()
    for k in range(20):
        bgr = np.zeros((48, 64, 3), np.uint8)
        bgr[:, :32, 2] = 255          # red (OpenCV is BGR)
        bgr[:, 32:, 1] = k * 12
        writer.write(bgr)
    writer.release()
    return path


def index_of(image: torch.Tensor) -> int:
    return round(float(image[0, 1, :, 40:].mean()) * 255 / 12)


def test_file_plays_at_its_rate_in_rgb_and_loops(clip):
    with NodeHarness(CameraSource, {"device": str(clip)}, mode="live") as h:
        stamps, indices = [], []
        for _ in range(30):
            h.process()
            stamps.append(h.last_t)
            out = h.node.last
            indices.append(index_of(out))
        status = h.process()["status"]
    image = out
    assert image.shape == (1, 3, 48, 64) and image.dtype == torch.float32
    assert image[0, 0, :, :30].mean() > 0.95 and image[0, 2].mean() < 0.05  # RGB, not BGR
    gaps = np.diff(stamps)
    assert 0.6 / FPS < np.median(gaps) < 1.6 / FPS           # paced like a 50 fps camera
    # live: the newest frame wins, so a slow moment may skip one; the file starts again at its end
    wraps = [k for k in range(1, 30) if indices[k] < indices[k - 1]]
    assert len(wraps) == 1 and indices[wraps[0]] <= 2, indices
    steps = [(b - a) % 20 for a, b in zip(indices, indices[1:])]
    assert all(1 <= d <= 3 for d in steps) and steps.count(1) >= 25, indices
    assert status["state"] == "ok" and status["lost"] == 0 and status["frames"] >= 31
    # every frame read was either handed out (31 calls) or skipped for a newer one
    assert status["frames"] - status["skipped"] in (31, 32), status


def test_unplug_and_replug_keep_the_graph_running_and_resume(clip, caplog):
    params = {"device": str(clip), "timeout": 0.2, "retry": 0.05, "retry_max": 0.2}
    with NodeHarness(CameraSource, params, mode="live") as h, caplog.at_level(logging.WARNING):
        for _ in range(3):
            h.process()
        node = h.node
        moved = clip.with_suffix(".gone")
        with node.lock:                  # the device goes away under the node ...
            node.cap.release()
            os.rename(clip, moved)       # ... and stays away until the file is back
        t0 = time.monotonic()
        held = [h.process() for _ in range(5)]
        assert time.monotonic() - t0 < 5 * 0.2 + 1.5     # never stuck: hold every `timeout`
        assert held[-1]["status"]["state"] == "lost"
        assert held[-1]["status"]["held"] >= 3 and held[-1]["status"]["lost"] == 1
        assert torch.equal(held[-1]["image"], held[-2]["image"])
        os.rename(moved, clip)           # replugged
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            out = h.process()
            if out["status"]["state"] == "ok":
                break
        else:
            pytest.fail(f"did not resume: {out['status']}")
        assert out["status"]["reconnects"] == 1
        frames = out["status"]["frames"]
        for _ in range(5):
            out = h.process()
        assert out["status"]["frames"] == frames + 5 and out["status"]["state"] == "ok"
    lost = [r for r in caplog.records if "lost (" in r.getMessage()]
    assert len(lost) == 1, [r.getMessage() for r in caplog.records]  # reported once, not per retry
    assert "reopening every 0.05-0.2 s" in lost[0].getMessage()
    assert any("is back" in r.getMessage() for r in caplog.records)


def test_wait_mode_pauses_until_the_device_is_back(clip):
    params = {"device": str(clip), "timeout": 0.1, "retry": 0.05, "retry_max": 0.1, "on_lost": "wait"}
    with NodeHarness(CameraSource, params, mode="live") as h:
        h.process()
        node = h.node
        moved = clip.with_suffix(".gone")
        with node.lock:
            node.cap.release()
            os.rename(clip, moved)
        time.sleep(0.1)
        with node.cond:                  # forget a frame read just before the unplug
            node.taken = node.seq
        threading.Timer(0.6, os.rename, (moved, clip)).start()
        t0 = time.monotonic()
        out = h.process()                 # blocks while lost, returns a fresh frame
        assert time.monotonic() - t0 >= 0.4
        assert out["status"]["state"] == "ok" and out["status"]["held"] == 0


GRAPH = """\
flowml: 1
clock: cam
nodes:
  cam:  {{type: capture.camera, params: {{device: {path}, timeout: 0.1, retry: 0.05, retry_max: 0.1}}}}
  flip: {{type: image.flip, inputs: {{image: cam/image}}, params: {{horizontal: true}}}}
"""


def test_a_graph_runs_through_an_unplug(clip, tmp_path):
    (tmp_path / "g.yaml").write_text(GRAPH.format(path=clip.name))
    graph = load_graph(tmp_path / "g.yaml", load_registry())
    sched = Scheduler(graph)
    assert sched.mode == "live"
    with sched:
        node = sched.nodes["cam"].node
        result: dict = {}
        runner = threading.Thread(target=lambda: result.update(r=sched.run(duration=2.5)))
        runner.start()
        time.sleep(0.5)
        moved = clip.with_suffix(".gone")
        with node.lock:
            node.cap.release()
            os.rename(clip, moved)
        time.sleep(0.8)
        lost_ticks = sched.stats.ticks
        os.rename(moved, clip)
        runner.join(10)
    r = result["r"]
    assert r.ok and r.reason == "duration", r.error
    assert node.counts["lost"] == 1 and node.counts["reconnects"] == 1 and node.counts["held"] >= 3
    assert r.stats.ticks > lost_ticks + 20   # frames came again after the replug


def test_cannot_open_says_what_devices_exist(tmp_path):
    with pytest.raises(NodeError, match=r"cannot open camera 7; (this machine has no /dev/video\* "
                                        r"device|devices here: )"):
        run_node(CameraSource, params={"device": 7}, mode="live")
    with pytest.raises(NodeError, match="camera stand-in file not found"):
        run_node(CameraSource, params={"device": "nope.mp4"}, graph_dir=tmp_path, mode="live")
    with pytest.raises(ValueError, match="a FOURCC is 4 ASCII characters"):
        CameraSource.Params(fourcc="MJPEG")


def test_size_scales_on_the_device(clip):
    out = run_node(CameraSource, params={"device": str(clip), "size": [32, 24]}, mode="live")
    assert out["image"].shape == (1, 3, 24, 32)


def test_not_the_clock_hands_out_the_newest_frame_at_once(clip):
    params = {"device": str(clip), "wait_for_new": False, "timeout": 0.3}
    with NodeHarness(CameraSource, params, mode="live") as h:
        first = h.process()                       # the very first frame is waited for
        t0 = time.monotonic()
        again = [h.process() for _ in range(20)]  # 20 calls well inside one frame period
        assert time.monotonic() - t0 < 0.02 * 20
        assert any(o["image"] is first["image"] for o in again[:2])  # sample-and-hold
        time.sleep(0.1)
        assert index_of(h.process()["image"]) != index_of(first["image"])  # ... and newer later


def test_when_pinned_memory_fails_frames_keep_coming_from_pageable_memory(clip, caplog):
    """Here pinned memory cannot be had at all (no GPU): the reader says so once and goes on."""
    if torch.cuda.is_available():
        pytest.skip("needs a machine without a GPU, where pinned memory cannot be allocated")
    with NodeHarness(CameraSource, {"device": str(clip)}, mode="live") as h:
        h.process()
        h.node.pinned = True          # as on a GPU: the next reads ask for pinned buffers
        with caplog.at_level(logging.WARNING):
            indices = [index_of(h.process()["image"]) for _ in range(5)]
    assert h.node.pinned is False and len(set(indices)) == 5
    assert sum("reading into pageable memory" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.cuda
def test_on_a_gpu_frames_are_read_into_pinned_memory(clip):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    with NodeHarness(CameraSource, {"device": str(clip)}, device="cuda", mode="live") as h:
        for _ in range(5):
            out = h.process()
        frame = h.node.frame
        assert torch.from_numpy(frame).is_pinned()  # OpenCV wrote into the buffer it was given
        image = out["image"]
    assert image.is_cuda and image.shape == (1, 3, 48, 64)
    assert image[0, 0, :, :30].mean() > 0.95 and image[0, 2].mean() < 0.05  # RGB, not BGR
