"""K decoders on keyframe-aligned segments (``parallel.py``) give what one decoder gives, and
NVDEC's minimum sizes decide the CPU fallback (``nvdec.py``): CPU tests, PyAV decoding."""

from __future__ import annotations

import logging

import pytest
import torch

from flowml import EndOfStream
from flowml.testing import NodeHarness
from flowml_av.nvdec import MIN_SIZE, minimum_size, size_problem
from flowml_av.cpudecode import CpuVideo
from flowml_av.parallel import ParallelFrames, key_pieces, keyframe_indices, plan, segments
from flowml_av.probe import probe
from flowml_av.reader import VideoSource

from av_test_videos import video

FILES = ["h264_210x146.mp4", "hevc_210x146.mp4"]  # B-frames; HEVC's GOPs open (RASL frames)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("videos")
    return {name: video(name, tmp) for name in [*FILES, "hevc_178x98.mp4"]}


def run(path, n=None, **params):
    """Every (stamp, image, status) capture.video gives (``n`` of them when looping)."""
    out = []
    with NodeHarness(VideoSource, {"path": str(path), "decode": "cpu", **params}) as h:
        while n is None or len(out) < n:
            try:
                s = h.node.process()
            except EndOfStream:
                break
            out.append((s.t, s.outputs["image"], s.outputs["status"]))
    return out


@pytest.mark.parametrize("name", FILES)
def test_segments_start_at_keyframes_and_cover_every_frame_once(files, name):
    info = probe(files[name])
    parts = segments(info, 3, min_frames=8)
    assert [k for p in parts for k in p] == list(range(3, info.frames))
    keys = set(keyframe_indices(info))
    assert len(parts) >= 3 and all(p.start in keys for p in parts[1:])


@pytest.mark.parametrize("name", FILES)
def test_k_decoders_equal_one_decoder_frame_by_frame(files, name, monkeypatch):
    import flowml_av.parallel as parallel

    monkeypatch.setattr(parallel.plan, "__defaults__", (8,))  # several segments in these short files
    one = run(files[name], start=0.2)
    many = run(files[name], start=0.2, decoders=3)
    assert len(many) == len(one) == probe(files[name]).frames - 5
    assert [t for t, _, _ in many] == [t for t, _, _ in one]      # the same pts, to the bit
    for (t, a, _), (_, b, status) in zip(one, many):
        assert torch.equal(a, b), f"{name} frame at {t}"
    assert many[0][2]["decoders"] == 3 and one[0][2]["decoders"] == 1


def test_k_decoders_loop_with_the_stamps_of_one(files, monkeypatch):
    import flowml_av.parallel as parallel

    monkeypatch.setattr(parallel.plan, "__defaults__", (8,))
    path = files["hevc_210x146.mp4"]
    n = probe(path).frames
    one = run(path, n=2 * n + 3, loop=True, start=0.4)
    many = run(path, n=2 * n + 3, loop=True, start=0.4, decoders=4)
    assert [t for t, _, _ in many] == [t for t, _, _ in one]
    assert all(b > a for (a, _, _), (b, _, _) in zip(many, many[1:]))  # time goes on across passes
    assert all(torch.equal(a, b) for (_, a, _), (_, b, _) in zip(one, many))


def test_nvdec_minimum_sizes_decide_the_fallback(files):
    small, ok = probe(files["hevc_178x98.mp4"]), probe(files["hevc_210x146.mp4"])
    assert MIN_SIZE["hevc"] == (144, 144) and MIN_SIZE["h264"] == (48, 16)
    minimum, source = minimum_size(small)                  # no caps: NVIDIA's table
    problem = size_problem(small, minimum, source)
    assert problem and "178x98" in problem and "144x144" in problem and "hevc" in problem
    assert size_problem(ok, *minimum_size(ok)) is None
    # the decoder's own caps win over the table
    assert minimum_size(ok, {"width_min": 256, "height_min": 160}) == ((256, 160), "cuvidGetDecoderCaps")
    assert "256x160" in size_problem(ok, *minimum_size(ok, {"width_min": 256, "height_min": 160}))
    h264 = probe(video("h264_178x98.mp4", files["hevc_178x98.mp4"].parent))
    assert size_problem(h264, *minimum_size(h264)) is None  # H.264's minimum is 48x16


def test_clips_with_k_decoders_equal_one_decoder(files):
    from flowml_av.clips import Clips

    paths = [str(files[n]) for n in FILES]
    params = {"files": paths, "length": 4, "step": 2, "samples": [50, 3, 71, 20, 9, 33, 60, 1], "batch": 4,
              "seed": 3, "outputs": {"a": {"random_crop": [64, 48], "random_flip": True}, "b": {"index_map": [0, -1, -1, 1]}}}
    out = {}
    for k in (1, 3):
        with NodeHarness(Clips, {**params, "decoders": k}) as h:
            assert (h.node.pool is None) == (k == 1)
            out[k] = [h.process(), h.process()]
            with pytest.raises(EndOfStream):
                h.process()
    for one, many in zip(out[1], out[3]):
        assert set(one) == set(many) == {"a", "b", "index"}
        assert all(torch.equal(one[n], many[n]) for n in one)


def test_key_pieces_start_at_keyframes_join_gops_and_keep_a_long_gop_whole():
    keys = [0, 12, 24, 36]
    assert key_pieces(keys, range(0, 24), 8) == [list(range(0, 12)), list(range(12, 24))]  # a GOP > piece: whole
    assert key_pieces(keys, range(10, 40), 8) == [[10, 11], list(range(12, 24)), list(range(24, 36)),
                                                 [36, 37, 38, 39]]                  # only the first mid-GOP
    assert key_pieces([0, 4, 8, 12], range(0, 14), 8) == [list(range(0, 8)), list(range(8, 14))]  # joined
    assert key_pieces([0, 100], range(0, 120), 8, long_gop=64) == [list(range(64)), list(range(64, 100)),
                                                                  list(range(100, 120))]
    assert key_pieces(keys, range(5, 5), 8) == []


@pytest.mark.parametrize("name", FILES)
def test_k_decoders_with_keyframe_pieces_give_every_frame_in_order_from_calls_at_keyframes(files, name):
    info = probe(files[name])
    keys = keyframe_indices(info)
    calls: list[list[int]] = []

    def decode(video, indices):
        calls.append(list(indices))
        return video.frames(indices)

    par = ParallelFrames(lambda: CpuVideo(str(files[name]), "cpu"), plan(info, 3, False, 8), 2, decode, keys=keys)
    try:
        got = list(par)
    finally:
        par.close()
    assert [k for k, _ in got] == list(range(3, info.frames))
    first = [c[0] for c in calls]
    assert sorted(first)[0] == 3 and all(k in keys for k in first if k != 3), calls
    ref = CpuVideo(str(files[name]), "cpu")
    try:
        for k, image in got[::7]:
            assert torch.equal(image, ref.frames([k])), k
    finally:
        ref.close()
