"""NVDEC (PyNvVideoCodec) against PyAV's CPU decoding, in graphs, and under the loader (cuda).

Tolerances: NVDEC's NV12 planes must *equal* FFmpeg's decoded yuv420p planes (H.264 and
HEVC decoding is exact by the standards); RGB is converted by torch in float (the same
formula as ``colour.py``'s GPU path, within 1e-4 of it) and differs from swscale's
fixed-point rgb24 by under 1 level on average and at most 8 levels (1/32) at sharp edges.

Files: ``FLOWML_TEST_VIDEOS`` (scripts/make-test-videos.sh), else made here (ffmpeg CLI, or
PyAV's libx264/libx265 where there is none), at sizes NVDEC takes (not multiples of 16, at
least HEVC's 144x144 minimum); ``hevc_178x98`` is below it and must fall back to the CPU.
A GPU machine without PyNvVideoCodec fails these tests, saying so.
"""

from __future__ import annotations

import logging

import av
import numpy as np
import pytest
import torch

from flowml import EndOfStream
from flowml.graph import load_graph
from flowml.plugins import load_registry
from flowml.runtime.scheduler import Scheduler
from flowml.testing import NodeHarness
from flowml_av.clips import Clips
from flowml_av.colour import planes
from flowml_av.nvdec import NvdecVideo, decoder_caps, minimum_size, nvdec_problem
from flowml_av.parallel import leading_indices
from flowml_av.probe import probe
from flowml_av.reader import VideoSource

from av_test_videos import video

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
pytestmark = [cuda, pytest.mark.cuda]
FILES = ["h264_210x146.mp4", "hevc_210x146.mp4", "h264_322x182.mp4", "hevc_322x182.mp4"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    problem = nvdec_problem("file.mp4", "cuda")
    if problem:
        pytest.fail(f"NVDEC is not usable on this GPU machine: {problem}")
    torch.zeros(1, device="cuda")  # torch's context first, as in a graph
    tmp = tmp_path_factory.mktemp("videos")
    return {name: video(name, tmp) for name in [*FILES, "hevc_178x98.mp4"]}


def pyav(path):
    """[(y, u, v) numpy planes, rgb24 (3, H, W) uint8 tensor, time] of every frame, CPU-decoded."""
    with av.open(str(path)) as c:
        return [(tuple(p.copy() for p in planes(f)), torch.from_numpy(f.to_ndarray(format="rgb24")).permute(2, 0, 1),
                 f.time) for f in c.decode(video=0)]


@pytest.mark.parametrize("name", FILES)
def test_nvdec_planes_equal_ffmpegs_and_rgb_is_within_a_level(files, name):
    ref = pyav(files[name])
    nv = NvdecVideo(str(files[name]), "cuda")
    assert len(nv) == len(ref)
    indices = [0, 7, len(ref) - 1, 3, 4, 5, 21, 20, 1]  # out of order, across keyframes
    y, uv = nv.nv12(indices)
    assert nv.unchecked is None, nv.unchecked   # frames are checked by their pts on this build
    print(f"{name}: pts offset {nv.pts_offset}; {nv.misplaced} of {len(set(indices))} frames given wrong by "
          f"PyNvVideoCodec, decoded again; {nv.cpu_frames} of them decoded on the CPU; leading pictures "
          f"{sorted(set(indices) & set(leading_indices(nv.info)))}, the one checked against FFmpeg's "
          f"(frame, equal): {nv.leading_checked}")
    assert nv.pts_offset is not None and nv.cpu_frames < len(set(indices)) // 2, (nv.pts_offset, nv.cpu_frames)
    for k, i in enumerate(indices):
        (ry, ru, rv), _, _ = ref[i]
        assert torch.equal(y[k].cpu(), torch.from_numpy(ry)), f"{name} frame {i}: Y"
        assert torch.equal(uv[k, ..., 0].cpu(), torch.from_numpy(ru)), f"{name} frame {i}: Cb"
        assert torch.equal(uv[k, ..., 1].cpu(), torch.from_numpy(rv)), f"{name} frame {i}: Cr"
    rgb = nv.frames(indices)
    assert rgb.is_cuda and rgb.shape == (len(indices), 3, *ref[0][1].shape[1:])
    want = torch.stack([ref[i][1] for i in indices]).float().cuda() / 255
    diff = (rgb - want).abs()
    assert float(diff.mean()) < 1 / 255 and float(diff.max()) <= 8 / 255, (float(diff.mean()), float(diff.max()))
    nv.close()


@pytest.mark.parametrize("decoders", [1, 3])
def test_capture_video_on_nvdec_keeps_stamps_start_and_loop(files, caplog, decoders):
    path = str(files["h264_210x146.mp4"])
    n = len(pyav(path))
    params = {"path": path, "start": 0.4, "loop": True}
    runs = {}
    for device, decode in (("cpu", "cpu"), ("cuda", "cuda")):
        with caplog.at_level(logging.WARNING), NodeHarness(
                VideoSource, {**params, "decode": decode, "decoders": decoders if device == "cuda" else 1},
                device=device) as h:
            assert h.node.decoder == ("nvdec" if device == "cuda" else "cpu")
            runs[device] = [h.node.process() for _ in range(2 * n + 5)]  # past the end twice: looped
    assert not [r for r in caplog.records if "decoding on the CPU" in r.getMessage()]
    cpu, gpu = runs["cpu"], runs["cuda"]
    assert [s.t for s in gpu] == [s.t for s in cpu]        # the CPU path's stamps, to the bit
    assert cpu[0].t == pytest.approx(0.4) and cpu[-1].t > cpu[0].t
    assert gpu[0].outputs["status"]["decoders"] == decoders
    for g, c in zip(gpu, cpu):
        img = g.outputs["image"]
        assert img.is_cuda and img.shape == (1, 3, 146, 210)
        assert float((img.cpu() - c.outputs["image"]).abs().mean()) < 1 / 255
        assert g.outputs["status"]["decoder"] == "nvdec"


GRAPH = """\
flowml: 1
clock: v
device: cuda
nodes:
  v:   {{type: capture.video, params: {{path: {path}, decode: cuda}}}}
  seq: {{type: capture.sequence, inputs: {{image: v/image}},
        params: {{length: 4, outputs: {{small: {{scale_factor: 0.5, dtype: half}}, mid: {{index_map: [-1, 0, -1, -1]}}}}}}}}
  fn:  {{type: python.function, inputs: {{image: v/image, small: seq/small}},
        params: {{path: fx.py, function: check, inputs: [image, "small:tensor"], outputs: []}}}}
"""

CHECK = """\
def check(image, small):
    assert image.is_cuda and tuple(image.shape) == (1, 3, 182, 322), image.shape
    assert small.is_cuda and tuple(small.shape) == (1, 4, 3, 91, 161) and str(small.dtype) == 'torch.float16'
"""


def test_in_a_graph_nvdec_decodes_with_no_cpu_fallback(files, tmp_path, caplog):
    (tmp_path / "fx.py").write_text(CHECK)
    (tmp_path / "g.yaml").write_text(GRAPH.format(path=files["hevc_322x182.mp4"]))
    graph = load_graph(tmp_path / "g.yaml", load_registry())
    with caplog.at_level(logging.WARNING), Scheduler(graph) as sched:
        result = sched.run()
        decoder = sched.nodes["v"].node.decoder
    assert result.ok and result.reason == "end of stream", result.error
    assert result.stats.ticks == 30
    assert decoder == "nvdec"
    assert not [r for r in caplog.records if "decoding on the CPU" in r.getMessage()]
    for r in caplog.records:  # frames NVDEC did not give (logged once a file): shown, not failed
        if "decoded on the CPU" in r.getMessage():
            print(r.getMessage())


def test_below_nvdecs_minimum_size_the_node_decodes_on_the_cpu_saying_why(files, caplog):
    path = str(files["hevc_178x98.mp4"])                   # HEVC's minimum is 144x144
    with caplog.at_level(logging.WARNING), NodeHarness(VideoSource, {"path": path, "decode": "cuda"},
                                                       device="cuda") as h:
        assert h.node.decoder == "cpu"
        img = h.node.process().outputs["image"]
    assert img.is_cuda and img.shape == (1, 3, 98, 178)
    said = [r.getMessage() for r in caplog.records if "decoding on the CPU" in r.getMessage()]
    (w, h), source = minimum_size(probe(path), decoder_caps(path))  # the GPU's own caps where it says
    assert len(said) == 1 and "178x98" in said[0] and f"{w}x{h}" in said[0] and "capture.video" in said[0], said
    assert w > 178 or h > 98, (w, h, source)


def test_clips_on_nvdec_equal_the_cpu_path(files):
    path = str(files["hevc_210x146.mp4"])
    params = {"files": [path], "length": 3, "step": 2, "samples": [30, 2, 17, 0, 9, 25], "batch": 3,
              "seed": 5, "outputs": {"a": {"random_crop": [64, 48], "random_flip": True, "dtype": "half"},
                                     "b": {"index_map": [-1, 0, -1]}}}
    out = {}
    for device in ("cpu", "cuda"):
        with NodeHarness(Clips, params, device=device) as h:
            assert h.node.decoder == ("nvdec" if device == "cuda" else "cpu")
            out[device] = [h.process(), h.process()]
            with pytest.raises(EndOfStream):
                h.process()
    with NodeHarness(Clips, {**params, "decode": "cpu"}, device="cuda") as h:  # PyAV's planes, colour.py
        assert h.node.decoder == "cpu"
        out["planes"] = [h.process(), h.process()]
    leading = set(leading_indices(probe(path)))
    for cpu, gpu, same in zip(out["cpu"], out["cuda"], out["planes"]):
        assert torch.equal(cpu["index"], gpu["index"].cpu())
        per = (gpu["a"].float().cpu() - cpu["a"].float()).abs().mean(dim=(2, 3, 4))   # (B, T)
        exact = (gpu["a"].float() - same["a"].float()).abs().amax(dim=(2, 3, 4)).cpu()
        print(f"clips a, samples {cpu['index'].tolist()} (leading pictures {sorted(leading)}): mean |NVDEC - "
              f"CPU path| per frame {[[round(v, 4) for v in r] for r in per.tolist()]}; max |NVDEC - PyAV's planes "
              f"by colour.py| per frame {[[round(v, 4) for v in r] for r in exact.tolist()]}")
        for name, within in (("a", 1e-3), ("b", 1e-4)):   # a is half: its rounding
            assert gpu[name].is_cuda and gpu[name].shape == cpu[name].shape
            assert float((gpu[name].float() - same[name].float()).abs().max()) < within, name  # frame-exact
            assert float((gpu[name].float().cpu() - cpu[name].float()).abs().mean()) < 1 / 255


def test_video_loader_on_cuda_uses_nvdec_and_matches_the_cpu_loader(files):
    from flowml.data import VideoDataset, VideoLoader

    data = VideoDataset([files["h264_210x146.mp4"], files["hevc_210x146.mp4"]], 5, processing={
        "input": {"scale_factor": 0.5, "dtype": "half"}, "target": {"index_map": [-1, -1, 0, -1, -1]}})
    batches = {}
    for device in ("cpu", "cuda"):
        loader = VideoLoader(data, batch_size=4, shuffle=True, seed=2, device=device)
        batches[device] = list(loader)
        assert loader.last_decoder == ("nvdec" if device == "cuda" else "cpu")
    assert len(batches["cuda"]) == len(data) // 4
    model = torch.nn.Conv3d(3, 3, 1).cuda()
    for cpu, gpu in zip(batches["cpu"], batches["cuda"]):
        assert gpu["input"].is_cuda and torch.equal(cpu["index"], gpu["index"].cpu())
        out = model(gpu["target"].permute(0, 2, 1, 3, 4))  # used on the loop's stream
        assert torch.isfinite(out).all()
        diffs = {name: float((gpu[name].float().cpu() - cpu[name].float()).abs().mean()) for name in ("input", "target")}
        print(f"loader batch {cpu['index'].tolist()}: mean |NVDEC - CPU loader| {diffs}")
        for name, diff in diffs.items():
            assert diff < 1 / 255, (name, diff)


def test_video_loader_epochs_take_the_nvdec_decoders_of_the_epochs_before(files):
    """Each epoch's graph hands its decoders back (``decoder_pool``); with overlapping epochs
    the first two open theirs and the later ones take those (opening few if any), and the batches
    are those of a loader whose every epoch opens fresh decoders."""
    from flowml.data import VideoDataset, VideoLoader
    from flowml_av.decoder_pool import NVDEC

    data = VideoDataset([files["h264_210x146.mp4"], files["hevc_210x146.mp4"]], 5)
    NVDEC.clear()
    opened0, reused0 = NVDEC.opened, NVDEC.reused     # the counters run over the process
    loader = VideoLoader(data, batch_size=4, shuffle=True, seed=3, device="cuda", decoders=2)
    opened = []
    epochs = []
    for _ in range(4):
        epochs.append([b["frames"].cpu() for b in loader])
        opened.append(NVDEC.opened - opened0)
    loader.close()
    assert loader.last_decoder == "nvdec"
    # epochs 3 and 4 take the decoders of 1 and 2 (a thread may want a file the ones handed
    # back hold too few of: a few are opened)
    assert opened[1] > 0 and opened[3] - opened[1] <= opened[1] // 2, opened
    assert NVDEC.reused > reused0 and NVDEC.idle() > 0
    NVDEC.clear()
    limit, NVDEC.limit = NVDEC.limit, 0                 # none kept: every epoch opens its own
    try:
        plain = VideoLoader(data, batch_size=4, shuffle=True, seed=3, device="cuda", decoders=2,
                            overlap_epochs=False)
        reused = NVDEC.reused
        for epoch in range(4):
            again = [b["frames"].cpu() for b in plain]
            assert len(again) == len(epochs[epoch])
            for a, b in zip(again, epochs[epoch]):
                assert torch.equal(a, b)
        plain.close()
        assert NVDEC.reused == reused                   # fresh decoders gave the same batches
    finally:
        NVDEC.limit = limit


@pytest.mark.parametrize("name", ["h264_210x146.mp4", "hevc_210x146.mp4"])
def test_nvdec_calls_from_keyframes_give_every_frame_as_ffmpeg_decodes_it(files, name):
    """The calls capture.video makes (``key_pieces``: whole GOPs from their keyframes, and a
    first call from mid-GOP) decode every frame exactly; how many NVDEC miscounted is printed."""
    from flowml_av.parallel import key_pieces, keyframe_indices

    ref = pyav(files[name])
    nv = NvdecVideo(str(files[name]), "cuda")
    keys = keyframe_indices(nv.info)
    for piece in (8, 24):
        for part in key_pieces(keys, range(3, len(ref)), piece):
            y, uv = nv.nv12(part)
            for k, i in enumerate(part):
                (ry, ru, rv), _, _ = ref[i]
                assert torch.equal(y[k].cpu(), torch.from_numpy(ry)), f"{name} frame {i}: Y (piece {piece})"
                assert torch.equal(uv[k, ..., 0].cpu(), torch.from_numpy(ru)), f"{name} frame {i}: Cb"
                assert torch.equal(uv[k, ..., 1].cpu(), torch.from_numpy(rv)), f"{name} frame {i}: Cr"
    print(f"{name}: {nv.misplaced} frames misplaced by PyNvVideoCodec over calls from keyframes, "
          f"{nv.cpu_frames} decoded on the CPU, pts offset {nv.pts_offset}, {nv.leading_frames} leading "
          f"pictures asked for, checked (frame, equal to FFmpeg's): {nv.leading_checked}")
    nv.close()


def test_grouped_clips_on_nvdec_equal_the_per_sample_path_and_pyav(files):
    """capture.clips on NVDEC with samples grouped (one call for the union of the frames of
    samples sharing GOPs) against one call a sample: the same bytes; both against PyAV's planes
    converted on the GPU (``colour.py``) within float rounding."""
    path = str(files["h264_210x146.mp4"])
    n = len(pyav(path))
    order = torch.randperm(n - 4, generator=torch.Generator().manual_seed(3)).tolist()[:24]
    params = {"files": [path], "length": 5, "samples": order, "batch": 4, "seed": 1, "decode": "cuda",
              "decoders": 3, "outputs": {"x": {"random_crop": [64, 48], "random_flip": True}}}
    runs = {}
    for group in (True, False):
        with NodeHarness(Clips, {**params, "group": group}, device="cuda") as h:
            assert h.node.decoder == "nvdec"
            runs[group] = [h.process() for _ in range(6)]
            runs[f"{group} frames"] = h.node.decoded_frames
            runs[f"{group} calls"] = h.node.decode_calls
    for g, a in zip(runs[True], runs[False]):
        assert torch.equal(g["index"], a["index"]) and torch.equal(g["x"], a["x"])
    assert runs["True calls"] < runs["False calls"] == 24
    with NodeHarness(Clips, {**params, "decode": "cpu"}, device="cuda") as h:
        assert h.node.decoder == "cpu"
        cpu = [h.process() for _ in range(6)]
    for g, c in zip(runs[True], cpu):
        assert torch.equal(g["index"], c["index"])
        assert float((g["x"] - c["x"]).abs().max()) < 1e-4   # same planes, same matrix: float rounding
    print(f"grouped: {runs['True calls']} calls, {runs['True frames']} frames; per sample: 24 calls, "
          f"{runs['False frames']} frames")
