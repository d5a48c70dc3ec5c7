"""capture.sequence: frame windows from a file or a stream, prepared on the device."""

from __future__ import annotations

import pytest
import torch

from flowml import EndOfStream
from flowml.graph import load_graph
from flowml.plugins import load_registry
from flowml.runtime.scheduler import Scheduler
from flowml.testing import NodeHarness
from flowml_av.sequence import FrameWindows

from test_av_video import encode


def numbered(n, width=64, height=48):
    """Frame k is a flat grey of k * 8 / 255 (so its number survives the codec)."""
    return [torch.full((1, 3, height, width), k * 8 / 255) for k in range(n)]


def number(frame: torch.Tensor) -> int:
    return round(float(frame.float().mean()) * 255 / 8)


def test_windows_from_a_file_with_stride_step_and_keep(tmp_path):
    encode(tmp_path / "v.mp4", numbered(30), fps=10, crf=0)
    params = {"path": "v.mp4", "length": 4, "step": 2, "stride": 5}
    with NodeHarness(FrameWindows, params, graph_dir=tmp_path) as h:
        assert h.ports.inputs == ()            # a file makes it a source
        windows = []
        while True:
            try:
                s = h.node.process()
            except EndOfStream:
                break
            windows.append((s.t, s.outputs["frames"]))
    # window k: frames 5k, 5k+2, 5k+4, 5k+6; the last that fits in 30 frames starts at 20
    assert [[number(f) for f in w[0]] for _, w in windows] == [
        [0, 2, 4, 6], [5, 7, 9, 11], [10, 12, 14, 16], [15, 17, 19, 21], [20, 22, 24, 26]]
    assert [t for t, _ in windows] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
    assert windows[0][1].shape == (1, 4, 3, 48, 64) and windows[0][1].dtype == torch.float32


def test_processing_scale_crop_normalise_dtype_layout_keep():
    frames = [torch.rand(1, 3, 96, 128) for _ in range(6)]
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    params = {"length": 3, "scale": [64, 48], "crop": [8, 4, 32, 24], "mean": mean, "std": std,
              "dtype": "fp16", "layout": "CTHW", "keep": [0, -1]}
    with NodeHarness(FrameWindows, params) as h:
        outs = [h.process(image=f) for f in frames]
    window = outs[-1]["frames"]
    assert window.shape == (1, 3, 2, 24, 32) and window.dtype == torch.float16  # (1, C, T, H, W)
    expected = []
    for f in (frames[3], frames[5]):  # positions 0 and -1 of the newest window (frames 3, 4, 5)
        x = torch.nn.functional.interpolate(f, size=(48, 64), mode="bilinear", align_corners=False,
                                            antialias=True)[:, :, 4:28, 8:40]
        expected.append(((x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))[0])
    expected = torch.stack(expected, 1)[None]
    assert torch.allclose(window.float(), expected, atol=1e-2)


def test_stream_windows_slide_hold_between_strides_and_pad_at_first():
    with NodeHarness(FrameWindows, {"length": 3, "stride": 2}) as h:
        outs = [h.process(image=f) for f in numbered(7)]
    assert [o["new"] for o in outs] == [True, False, True, False, True, False, True]
    got = [[number(f) for f in o["frames"][0]] for o in outs]
    assert got == [[0, 0, 0], [0, 0, 0], [0, 1, 2], [0, 1, 2], [2, 3, 4], [2, 3, 4], [4, 5, 6]]
    assert outs[1]["frames"] is outs[0]["frames"]  # held, not rebuilt


def test_bad_params_say_what_is_wrong():
    with pytest.raises(ValueError, match=r"keep: positions \[4\] are outside a window of length 4"):
        FrameWindows.Params(length=4, keep=[0, 4])
    with pytest.raises(ValueError, match="give mean and std together"):
        FrameWindows.Params(mean=[0.5])
    with pytest.raises(Exception, match=r"crop \[0, 0, 99, 10\] does not fit in a 64x48 frame"):
        with NodeHarness(FrameWindows, {"length": 2, "crop": [0, 0, 99, 10]}) as h:
            h.process(image=numbered(1)[0])


GRAPH = """\
flowml: 1
clock: seq
nodes:
  seq: {{type: capture.sequence, params: {{path: v.mp4, length: 8, stride: 8, scale: [32, 24], dtype: fp16}}}}
  fn:  {{type: python.function, inputs: {{x: seq/frames}},
        params: {{path: fx.py, function: shape, inputs: ["x:tensor"], outputs: []}}}}
"""


def test_in_a_graph_as_the_clock_source(tmp_path):
    encode(tmp_path / "v.mp4", numbered(40), fps=20)
    (tmp_path / "fx.py").write_text(
        "def shape(x):\n    assert tuple(x.shape) == (1, 8, 3, 24, 32) and str(x.dtype) == 'torch.float16'\n")
    (tmp_path / "g.yaml").write_text(GRAPH.format())
    graph = load_graph(tmp_path / "g.yaml", load_registry())
    with Scheduler(graph) as sched:
        result = sched.run()
    assert result.ok and result.reason == "end of stream", result.error
    assert result.stats.ticks == 5
