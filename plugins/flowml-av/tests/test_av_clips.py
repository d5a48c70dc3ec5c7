"""capture.clips and capture.sequence against PyAV: frame-exact windows on ffmpeg-made files
(H.264 and HEVC with B-frames and short, open GOPs; sizes not multiples of 16), and each of
NVVL's processing options against plain PyTorch on the CPU-decoded frames.

Tolerance: the CPU path decodes with the same FFmpeg and converts with the same swscale call
as decoding the whole file with PyAV, so windows must be *equal* (0 difference); processing
is compared within float rounding (1e-5; uint8 exactly; half within its rounding, 1e-3).
"""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from flowml import EndOfStream, NodeError
from flowml.testing import NodeHarness
from flowml_av.clips import Clips
from flowml_av.processing import ProcessDesc
from flowml_av.sequence import FrameWindows

from av_test_videos import video

FILES = ["h264_178x98.mp4", "hevc_178x98.mp4"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("videos")
    return {name: video(name, tmp) for name in FILES}


def pyav_bytes(path) -> torch.Tensor:
    """Every frame of ``path`` as PyAV decodes it: (N, 3, H, W) uint8 RGB."""
    with av.open(str(path)) as c:
        arrays = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)


def pyav_frames(path) -> torch.Tensor:
    """The same as float in [0, 1]."""
    return pyav_bytes(path).float() / 255


def as_bytes(frames: torch.Tensor) -> torch.Tensor:
    return (frames * 255).round().to(torch.uint8)


def run_clips(params, graph_dir=None):
    batches = []
    with NodeHarness(Clips, params, graph_dir=graph_dir or ".") as h:
        while True:
            try:
                batches.append(h.process())
            except EndOfStream:
                return batches


@pytest.mark.parametrize("name", FILES)
def test_every_window_equals_pyavs_frames(files, name):
    ref = pyav_bytes(files[name])
    length, step = 3, 2
    span = (length - 1) * step + 1
    order = list(range(len(ref) - span + 1))[::-1][::2]  # backwards: every window needs a seek
    order += [0, 1, 2, 3, 9, 10, 11, 12]                # then forwards, decoding on without seeking
    batches = run_clips({"files": [str(files[name])], "length": length, "step": step,
                         "samples": order, "batch": 4})
    got = torch.cat([b["frames"] for b in batches])
    index = torch.cat([b["index"] for b in batches])
    assert index.tolist() == order
    assert got.shape == (len(order), length, 3, 98, 178)
    for window, first in zip(got, order):
        assert torch.equal(as_bytes(window), ref[first:first + span:step]), f"window at frame {first}"


@pytest.mark.parametrize("name", FILES)
def test_sequence_windows_from_a_file_equal_pyavs_frames(files, name):
    ref = pyav_bytes(files[name])
    with NodeHarness(FrameWindows, {"path": str(files[name]), "length": 4, "stride": 3}) as h:
        windows = []
        while True:
            try:
                windows.append(h.node.process().outputs["frames"][0])
            except EndOfStream:
                break
    assert len(windows) == (len(ref) - 4) // 3 + 1
    for k, w in enumerate(windows):
        assert torch.equal(as_bytes(w), ref[3 * k:3 * k + 4])


OPTIONS = {
    "u8": {"dtype": "uint8"},
    "half": {"dtype": "half"},
    "raw255": {"normalized": False},
    "size": {"scale": [89, 49], "interpolation": "bilinear"},
    "factor": {"scale_factor": 0.5, "interpolation": "bicubic"},
    "nearest": {"scale": [356, 196], "interpolation": "nearest"},
    "area": {"scale_factor": 0.5, "interpolation": "area"},
    "crop": {"crop": [10, 7, 64, 48]},
    "norm": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    "ycc": {"color_space": "YCbCr"},
    "cthw": {"layout": "BCTHW"},
    "middle": {"index_map": [-1, -1, 0]},
    "reverse": {"index_map": [2, 1, 0]},
    "crop_first": {"crop": [10, 7, 64, 48], "crop_first": True, "scale_factor": 0.5},
}


def reference(frames: torch.Tensor, name: str) -> torch.Tensor:
    """Plain PyTorch for one option, from (T, 3, H, W) CPU-decoded frames in [0, 1]."""
    x = frames
    if name == "u8":
        return (x * 255).round().to(torch.uint8)[None]
    if name == "half":
        return x.half()[None]
    if name == "raw255":
        return (x * 255)[None]
    if name == "size":
        return F.interpolate(x, size=(49, 89), mode="bilinear", antialias=True)[None]
    if name == "factor":
        return F.interpolate(x, size=(49, 89), mode="bicubic", antialias=True)[None]
    if name == "nearest":  # doubling: every pixel twice
        return x.repeat_interleave(2, 2).repeat_interleave(2, 3)[None]
    if name == "area":     # 2x2 box averages
        return F.avg_pool2d(x, 2, ceil_mode=False)[None]
    if name == "crop":
        return x[:, :, 7:55, 10:74][None]
    if name == "norm":
        m = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        s = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        return ((x - m) / s)[None]
    if name == "ycc":      # ITU-T T.871 (JFIF)
        r, g, b = x[:, 0], x[:, 1], x[:, 2]
        y = 0.299 * r + 0.587 * g + 0.114 * b
        cb = 0.5 - 0.168736 * r - 0.331264 * g + 0.5 * b
        cr = 0.5 + 0.5 * r - 0.418688 * g - 0.081312 * b
        return torch.stack([y, cb, cr], 1)[None]
    if name == "cthw":
        return x.permute(1, 0, 2, 3)[None]
    if name == "middle":
        return x[2:3][None]
    if name == "reverse":
        return x.flip(0)[None]
    if name == "crop_first":
        return F.interpolate(x[:, :, 7:55, 10:74], size=(24, 32), mode="bilinear", antialias=True)[None]
    raise KeyError(name)


def test_each_processing_option_against_plain_pytorch(files):
    path = files["h264_178x98.mp4"]
    ref = pyav_frames(path)
    samples = [0, 17, 40]
    batches = run_clips({"files": [str(path)], "length": 3, "samples": samples, "batch": 3,
                         "outputs": OPTIONS})
    assert len(batches) == 1
    out = batches[0]
    assert set(out) == {*OPTIONS, "index"}
    for name in OPTIONS:
        want = torch.cat([reference(ref[s:s + 3], name) for s in samples])
        got = out[name]
        assert got.shape == want.shape and got.dtype == want.dtype, name
        if got.dtype == torch.uint8:
            assert torch.equal(got, want), name
        else:
            tol = 1e-3 if got.dtype == torch.float16 else 1e-5
            assert (got.float() - want.float()).abs().max() <= tol * max(1.0, float(want.abs().max())), name


def test_random_crop_and_flip_are_crops_and_flips_and_follow_the_seed(files):
    path = files["hevc_178x98.mp4"]
    ref = pyav_bytes(path)
    samples = list(range(0, 32, 2))
    params = {"files": [str(path)], "length": 2, "samples": samples, "batch": 16, "seed": 7,
              "outputs": {"rc": {"random_crop": [40, 30], "random_flip": True}}}
    got = run_clips(params)[0]["rc"]
    origins, flips = set(), set()
    for seq, s in zip(got, samples):
        frames = ref[s:s + 2]
        seq = as_bytes(seq)
        found = []
        for f in (False, True):
            src = frames.flip(-1) if f else frames
            # candidate origins: where the crop's first pixel is, then the whole crop compared
            hits = (src[0] == seq[0, :, 0, 0].view(3, 1, 1)).all(0).nonzero().tolist()
            found += [(x, y, f) for y, x in hits if y + 30 <= 98 and x + 40 <= 178
                      and torch.equal(seq, src[:, :, y:y + 30, x:x + 40])]
        assert found, f"sample {s} is no crop of its frames"
        origins.add(found[0][:2])
        flips.add(found[0][2])
    assert len(origins) > 8 and flips == {False, True}   # they vary from sample to sample
    assert torch.equal(run_clips(params)[0]["rc"], got)  # and the seed fixes them
    assert not torch.equal(run_clips({**params, "seed": 8})[0]["rc"], got)


def test_outputs_of_a_sequence_share_the_random_crop_and_flip(files):
    """An input and its target (NVVL's super-resolution example) cut and flip alike."""
    path = files["h264_178x98.mp4"]
    outputs = {"target": {"random_crop": [64, 48], "random_flip": True, "crop_first": True},
               "input": {"random_crop": [64, 48], "random_flip": True, "crop_first": True, "scale_factor": 0.25}}
    out = run_clips({"files": [str(path)], "length": 3, "samples": list(range(0, 40, 5)), "batch": 8,
                     "seed": 3, "outputs": outputs})[0]
    target, low = out["target"], out["input"]
    assert target.shape == (8, 3, 3, 48, 64) and low.shape == (8, 3, 3, 12, 16)
    want = F.interpolate(target.flatten(0, 1), size=(12, 16), mode="bilinear", antialias=True)
    assert (low.flatten(0, 1) - want).abs().max() < 1e-5


def test_several_outputs_from_one_sequence_and_sequence_outputs(files):
    path = files["h264_178x98.mp4"]
    ref = pyav_frames(path)
    outputs = {"input": {"scale_factor": 0.25, "dtype": "half"}, "target": {"index_map": [-1, -1, 0, -1, -1]}}
    with NodeHarness(FrameWindows, {"path": str(path), "length": 5, "stride": 5, "outputs": outputs}) as h:
        assert [o.name for o in h.ports.outputs] == ["input", "target", "new"]
        first = h.node.process().outputs
        second = h.node.process().outputs
    assert first["input"].shape == (1, 5, 3, 24, 44) and first["input"].dtype == torch.float16
    assert (first["target"][0, 0] - ref[2]).abs().max() < 1e-6
    assert (second["target"][0, 0] - ref[7]).abs().max() < 1e-6
    want = F.interpolate(ref[5:10], size=(24, 44), mode="bilinear", antialias=True).half()
    assert (second["input"][0].float() - want.float()).abs().max() < 1e-3


def test_bad_processing_says_what_is_wrong(files, tmp_path):
    with pytest.raises(ValueError, match=r"index_map \[-1, 2\]: every output position 0..2 must be filled"):
        ProcessDesc(index_map=[-1, 2])
    with pytest.raises(ValueError, match="dtype uint8 holds 0..255"):
        ProcessDesc(dtype="uint8", mean=[0.5], std=[0.5])
    with pytest.raises(ValueError, match="give crop or random_crop, not both"):
        ProcessDesc(crop=[0, 0, 4, 4], random_crop=[4, 4])
    with pytest.raises(ValueError, match="index_map has 2 entries for a sequence of 3 frames"):
        Clips.Params(files=["x.mp4"], length=3, outputs={"a": {"index_map": [0, 1]}})
    with pytest.raises(ValueError, match="scale: with `outputs`, give the processing in each output"):
        FrameWindows.Params(scale=[8, 8], outputs={"a": {}})
    path = str(files["h264_178x98.mp4"])
    with pytest.raises(NodeError, match=r"output big: random_crop \[0, 0, 400, 30\] does not fit in a 178x98"):
        run_clips({"files": [path], "length": 2, "samples": [0], "outputs": {"big": {"random_crop": [400, 30]}}})
    with pytest.raises(NodeError, match=r"samples \[99\] are outside 0..46"):
        run_clips({"files": [path], "length": 2, "samples": [99]})
