"""output.virtualcam: needs a virtual camera driver (v4l2loopback on Linux). Without one a
graph using it fails validation, naming what to install; with one, frames sent come back out
of the device through OpenCV."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from flowml_vcam.virtualcam import VirtualCamera, loopback_devices

GRAPH = """\
flowml: 1
clock: {fps: 30}
nodes:
  bars: {type: capture.pattern, params: {pattern: bars, size: [64, 48]}}
  cam:  {type: output.virtualcam, inputs: {image: bars/image}}
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or bool(loopback_devices()),
                    reason="checks the message on Linux without v4l2loopback")
def test_validate_names_linux_v4l2loopback_and_pyvirtualcam(tmp_path):
    (tmp_path / "g.yaml").write_text(GRAPH)
    r = subprocess.run([sys.executable, "-m", "flowml.cli", "validate", str(tmp_path / "g.yaml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert "g.yaml:5:" in out and "node 'cam': output.virtualcam cannot run here" in out
    assert "v4l2loopback" in out and "Linux" in out and "pyvirtualcam" in out and "OBS" in out
    assert "Traceback" not in out


@pytest.mark.skipif(VirtualCamera.unavailable() is not None or not sys.platform.startswith("linux"),
                    reason="needs a v4l2loopback device")
def test_frames_come_out_of_the_loopback_device():
    import cv2

    from flowml.testing import NodeHarness

    device = loopback_devices()[0]
    red = torch.zeros(1, 3, 48, 64)
    red[:, 0] = 1.0
    with NodeHarness(VirtualCamera, {"device": device}) as h:
        h.process(image=red)
        cap = cv2.VideoCapture(device, cv2.CAP_V4L2)
        for _ in range(5):
            h.process(image=red)
        ok, bgr = cap.read()
        cap.release()
    assert ok and bgr[..., 2].mean() > 200 and bgr[..., 0].mean() < 50
