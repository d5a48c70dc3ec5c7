"""NDI loopback through real NDI (cyndilib's bundled runtime) on 127.0.0.1, no mDNS needed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import numpy as np
import pytest
import torch

from flowml import NodeError
from flowml.testing import NodeHarness, run_node
from flowml_ndi.common import loopback_env, write_loopback_config
from flowml_ndi.receiver import NdiSource, _pick
from flowml_ndi.sender import NdiSender
from flowml_std.pattern import PatternSource

# The NDI runtime reads its config once, when it starts in this process: set it up first.
if "NDI_CONFIG_DIR" not in os.environ:
    _cfg = tempfile.mkdtemp(prefix="flowml-ndi-")
    write_loopback_config(_cfg)
    os.environ["NDI_CONFIG_DIR"] = _cfg

FLOWML = [sys.executable, "-m", "flowml.cli"]
TAG = f"t{os.getpid()}"  # source names unique to this run: other processes may share 127.0.0.1


def picture(width=160, height=96):
    """A smooth picture with one hard edge: what NDI's codec keeps well, within a tolerance."""
    y = torch.linspace(0, 1, height).view(1, 1, height, 1).expand(1, 1, height, width)
    x = torch.linspace(0, 1, width).view(1, 1, 1, width).expand(1, 1, height, width)
    image = torch.cat([x, y, 1 - x], dim=1).clone()
    image[:, :, height // 4: height // 2, width // 4: width // 2] = torch.tensor([1.0, 0.9, 0.1]).view(1, 3, 1, 1)
    return image


class Pump:
    """Sends ``image`` through a harness at ``fps`` on a thread until stopped."""

    def __init__(self, harness, image, fps=60):
        self.h, self.image, self.period = harness, image, 1 / fps
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            self.h.process(image=self.image)
            time.sleep(self.period)

    def __enter__(self):
        if self.h.node.sender is None:  # the source is up before a receiver looks for it: NDI's
            self.h.process(image=self.image)  # finder polls 127.0.0.1 only every few seconds
            time.sleep(0.3)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)


def test_frames_cross_ndi_within_tolerance_and_a_lost_sender_is_held_then_resumes():
    image = picture()
    name = f"{TAG}-inproc"
    with NodeHarness(NdiSender, {"name": name, "fps": 60}, mode="live") as tx:
        with Pump(tx, image) as pump:
            with NodeHarness(NdiSource, {"source": name, "timeout": 0.3, "wait": 10}, mode="live") as rx:
                for _ in range(5):
                    out = rx.process()
                got = out["image"]
                assert got.shape == (1, 3, 96, 160) and got.dtype == torch.float32
                err = (got - image).abs()
                assert err.mean() < 0.02 and err.max() < 0.25  # NDI's codec is lossy
                assert out["status"]["state"] == "ok" and out["status"]["frames"] >= 5

                pump.stop.set()           # the sender goes quiet: the graph must keep getting frames
                pump.thread.join(5)
                t0 = time.monotonic()
                held = []
                for _ in range(6):  # under load a frame NDI still had may come first; then each call holds
                    held.append(rx.process())
                    if held[-1]["status"]["held"] >= 2:
                        break
                assert time.monotonic() - t0 < len(held) * 0.3 + 2.0  # each call waits `timeout`, no more
                assert held[-1]["status"]["state"] == "lost" and held[-1]["status"]["held"] >= 2
                assert torch.equal(held[-1]["image"], held[-2]["image"])

                with Pump(tx, 1 - image):  # ... and resumes when it is back
                    deadline = time.monotonic() + 5
                    while time.monotonic() < deadline:
                        out = rx.process()
                        if out["status"]["state"] == "ok" and (out["image"] - (1 - image)).abs().mean() < 0.02:
                            break
                    else:
                        pytest.fail(f"frames did not resume: {out['status']}")


def test_alpha_travels_with_rgba_and_grey_is_repeated():
    name = f"{TAG}-alpha"
    rgba = torch.cat([picture(), torch.linspace(0, 1, 160).view(1, 1, 1, 160).expand(1, 1, 96, 160)], 1)
    with NodeHarness(NdiSender, {"name": name, "alpha": True}, mode="live") as tx, Pump(tx, rgba):
        with NodeHarness(NdiSource, {"source": name, "alpha": True}, mode="live") as rx:
            got = [rx.process()["image"] for _ in range(3)][-1]
    assert got.shape == (1, 4, 96, 160)
    assert (got - rgba).abs()[:, 3].mean() < 0.02


def test_missing_source_names_what_was_seen_and_the_config_hint():
    with pytest.raises(NodeError, match=r"NDI source 'no-such-source' not found within 0\.3 s "
                                        r"\(sources seen: .*\).*NDI_CONFIG_DIR"):
        run_node(NdiSource, params={"source": "no-such-source", "wait": 0.3}, mode="live")


def test_source_name_matching():
    names = ["HOST (cam)", "HOST (camera 2)", "OTHER (flowml)"]
    assert _pick("HOST (cam)", names) == "HOST (cam)"
    assert _pick("cam", names) == "HOST (cam)"
    assert _pick("flowml", names) == "OTHER (flowml)"
    assert _pick("camera", names) == "HOST (camera 2)"
    assert _pick("none", names) is None


def test_bad_input_is_reported():
    with pytest.raises(ValueError, match="expected 1, 3 or 4 channels"):  # the input packing says it
        run_node(NdiSender, {"image": torch.rand(1, 2, 8, 8)}, {"name": f"{TAG}-bad"})


SENDER = """\
flowml: 1
name: ndi-send
clock: bars
nodes:
  bars: {{type: capture.pattern, params: {{pattern: bars, size: [320, 180], fps: 30}}}}
  ndi:  {{type: output.ndi, inputs: {{image: bars/image}}, params: {{name: {name}, fps: 30}}}}
"""

RECEIVER = """\
flowml: 1
name: ndi-receive
clock: rx
nodes:
  rx:   {{type: capture.ndi, params: {{source: {name}, wait: 20}}}}
  last: {{type: output.image, inputs: {{image: rx/image}}, params: {{path: got.png}}}}
"""


def test_one_graph_sends_another_graph_receives(tmp_path):
    """Two `flowml run` processes: pattern -> output.ndi, and capture.ndi -> a PNG."""
    name = f"{TAG}-graphs"
    (tmp_path / "send.yaml").write_text(SENDER.format(name=name))
    (tmp_path / "receive.yaml").write_text(RECEIVER.format(name=name))
    env = loopback_env(tmp_path / "ndi-config")
    sender = subprocess.Popen([*FLOWML, "run", str(tmp_path / "send.yaml"), "--duration", "60"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.monotonic()
        rx = subprocess.run([*FLOWML, "run", str(tmp_path / "receive.yaml"), "--frames", "30",
                             "--stats-json", str(tmp_path / "rx.json")],
                            env=env, capture_output=True, text=True, timeout=60)
        elapsed = time.monotonic() - t0
    finally:
        sender.send_signal(signal.SIGINT)
        _, err = sender.communicate(timeout=30)
    assert rx.returncode == 0, rx.stderr
    assert sender.returncode == 0, err
    assert elapsed < 45
    from PIL import Image

    got = torch.from_numpy(np.array(Image.open(tmp_path / "got.png").convert("RGB"))).permute(2, 0, 1)[None] / 255
    bars = run_node(PatternSource, params={"pattern": "bars", "size": [320, 180]})["image"]
    assert got.shape == bars.shape
    err = (got - bars).abs()
    assert err.mean() < 0.03, float(err.mean())  # lossy codec, hard bar edges


def test_readme_documents_the_loopback_config():
    readme = (os.path.dirname(__file__) + "/../README.md")
    text = open(readme).read()
    assert "NDI_CONFIG_DIR" in text and '"ips":"127.0.0.1"' in text.replace(" ", "")
