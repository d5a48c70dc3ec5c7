"""``capture.video`` batched over time (``batch: K``): a tick of K frames is K ticks of one.

Frames, stamps and the ``frames`` record ({index, count, t, pts}) of a batched run must equal
those of the one-frame-a-tick run, to the bit, for K dividing the file's length and not
(a short last batch, then the end), across a loop, with K decoders on segments, and scaled.
The files are FFmpeg's testsrc2 (``av_test_videos``): H.264 (48 frames, GOP 12, B-frames)
and HEVC (40 frames, open GOPs). The cuda tests do the same on NVDEC.
"""

from __future__ import annotations

import pytest
import torch

from flowml import EndOfStream, NodeError
from flowml.graph import GraphErrors, load_graph
from flowml.plugins import load_registry
from flowml.runtime.scheduler import Scheduler
from flowml.testing import NodeHarness
from flowml_av.probe import probe
from flowml_av.reader import StreamSource, VideoSource

from av_test_videos import video

FILES = ["h264_210x146.mp4", "hevc_210x146.mp4"]  # 48 and 40 frames


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("videos")
    return {name: video(name, tmp) for name in FILES}


def ticks(path, n=None, device="cpu", **params):
    """Every tick capture.video gives, as (stamp, image, frames, status) (``n`` ticks when looping)."""
    out = []
    with NodeHarness(VideoSource, {"path": str(path), **params}, device=device) as h:
        while n is None or len(out) < n:
            try:
                s = h.node.process()
            except EndOfStream:
                break
            out.append((s.t, s.outputs["image"], s.outputs["frames"], s.outputs["status"]))
        with pytest.raises(EndOfStream):  # the end stays the end
            if n is None:
                h.node.process()
            else:
                raise EndOfStream
    return out


def frames_of(run):
    """The run's frames one by one: (image (1, 3, H, W), stamp, pts, index)."""
    out = []
    for _, image, rec, _ in run:
        assert image.shape[0] == rec["count"] == len(rec["t"]) == len(rec["pts"])
        for k in range(rec["count"]):
            out.append((image[k:k + 1], rec["t"][k], rec["pts"][k], rec["index"] + k))
    return out


def assert_same_frames(batched, single):
    assert len(batched) == len(single)
    for n, ((a, ta, pa, ia), (b, tb, pb, ib)) in enumerate(zip(batched, single)):
        assert (ta, pa, ia) == (tb, pb, ib), f"frame {n}"
        assert torch.equal(a, b), f"frame {n} at {ta}"


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("k", [3, 5, 8])  # 48 frames: 3 and 8 divide it, 5 does not; 40: 5 and 8 do, 3 not
def test_a_batch_is_k_single_ticks(files, name, k):
    path = files[name]
    n = probe(path).frames
    single = ticks(path, decode="cpu")
    batched = ticks(path, decode="cpu", batch=k)
    assert len(single) == n and all(rec["count"] == 1 for _, _, rec, _ in single)
    assert [rec["count"] for _, _, rec, _ in batched] == [k] * (n // k) + ([n % k] if n % k else [])
    assert [rec["index"] for _, _, rec, _ in batched] == list(range(0, n, k))
    assert [t for t, *_ in batched] == [rec["t"][0] for _, _, rec, _ in batched]  # stamped with its first frame
    assert [rec["t"] for _, _, rec, _ in batched][0][:2] == [single[0][0], single[1][0]]
    assert_same_frames(frames_of(batched), frames_of(single))
    assert batched[-1][3]["frames"] == n and batched[-1][1].shape[1:] == (3, 146, 210)


def test_batches_run_across_the_loop_with_stamps_going_on(files):
    path = files["hevc_210x146.mp4"]
    n = probe(path).frames - 5  # from start: 0.2 s at 25 fps
    single = ticks(path, n=2 * n + 8, decode="cpu", loop=True, start=0.2)
    batched = ticks(path, n=-(-(2 * n + 8) // 6), decode="cpu", loop=True, start=0.2, batch=6)  # 35 frames a pass
    one, many = frames_of(single), frames_of(batched)[:2 * n + 8]
    assert_same_frames(many, one)
    assert all(b[1] > a[1] for a, b in zip(many, many[1:]))   # stamps go on across passes
    assert many[n][2] == pytest.approx(0.2) and many[n][1] > many[n - 1][1]  # pts start again, t does not
    assert any(rec["pts"][0] > rec["pts"][-1] for _, _, rec, _ in batched)   # a batch holds the wrap


@pytest.mark.parametrize("name", FILES)
def test_k_decoders_batched_equal_one_decoder_single(files, name, monkeypatch):
    import flowml_av.parallel as parallel

    monkeypatch.setattr(parallel.plan, "__defaults__", (8,))  # several segments in these short files
    path = files[name]
    single = ticks(path, decode="cpu", start=0.2)
    batched = ticks(path, decode="cpu", start=0.2, decoders=3, batch=6)
    assert batched[0][3]["decoders"] == 3
    assert_same_frames(frames_of(batched), frames_of(single))


@pytest.mark.parametrize("decoders", [1, 3])
def test_scaled_batches_equal_scaled_single_frames(files, decoders):
    path = files["h264_210x146.mp4"]
    params = {"decode": "cpu", "size": [96, 64], "decoders": decoders}
    single = ticks(path, **params)
    batched = ticks(path, batch=5, **params)
    assert batched[0][1].shape == (5, 3, 64, 96)
    assert_same_frames(frames_of(batched), frames_of(single))


def test_batch_changes_between_ticks_offline(files):
    path = files["h264_210x146.mp4"]
    single = frames_of(ticks(path, decode="cpu"))
    got = []
    with NodeHarness(VideoSource, {"path": str(path), "decode": "cpu"}) as h:
        for k in (1, 4, 2):
            h.set_params(batch=k)
            s = h.node.process()
            got.append(s.outputs["frames"]["count"])
            rec = s.outputs["frames"]
            for j in range(rec["count"]):
                b = single[rec["index"] + j]
                assert torch.equal(s.outputs["image"][j:j + 1], b[0]) and rec["t"][j] == b[1]
    assert got == [1, 4, 2]


def test_live_graphs_refuse_a_batch_at_start_and_on_a_live_change(files):
    path = str(files["h264_210x146.mp4"])
    for node_type in (VideoSource, StreamSource):
        with pytest.raises(NodeError, match="batch: 4 stacks 4 frames a tick.*run it offline"):
            with NodeHarness(node_type, {"path": path, "batch": 4}, mode="live"):
                pass
    with NodeHarness(VideoSource, {"path": path, "decode": "cpu"}, mode="live") as h:
        assert h.node.process().outputs["image"].shape[0] == 1
        with pytest.raises(NodeError, match="batch: 2 stacks"):
            h.set_params(batch=2)


SINK = """\
def take(image, frames):
    assert tuple(image.shape[1:]) == (3, 146, 210) and image.shape[0] == frames['count']
    SEEN.append((frames['index'], frames['count'], image.clone()))
SEEN = []
"""

GRAPH = """\
flowml: 1
clock: v
nodes:
  v:    {{type: capture.video, params: {{path: {path}, decode: cpu, batch: {k}}}}}
  sink: {{type: python.function, inputs: {{image: v/image, frames: v/frames}},
         params: {{path: fx.py, function: take, inputs: [image, "frames:json"], outputs: []}}}}
"""


def test_in_a_graph_a_tick_carries_k_frames(files, tmp_path):
    (tmp_path / "fx.py").write_text(SINK)
    n = probe(files["h264_210x146.mp4"]).frames
    seen = {}
    for k in (1, 5):
        (tmp_path / f"g{k}.yaml").write_text(GRAPH.format(path=files["h264_210x146.mp4"], k=k))
        with Scheduler(load_graph(tmp_path / f"g{k}.yaml", load_registry())) as sched:
            result = sched.run()
            seen[k] = list(sched.nodes["sink"].node.fn.__globals__["SEEN"])
        assert result.ok and result.reason == "end of stream", result.error
        assert result.stats.ticks == -(-n // k)
    assert [(i, c) for i, c, _ in seen[5]] == [(i, min(5, n - i)) for i in range(0, n, 5)]
    assert torch.equal(torch.cat([x for _, _, x in seen[5]]), torch.cat([x for _, _, x in seen[1]]))


def test_video_clip_takes_capture_videos_frames(files, tmp_path):
    pytest.importorskip("flowml_analytics")
    path = files["h264_210x146.mp4"]
    good = tmp_path / "good.yaml"
    good.write_text("flowml: 1\nnodes:\n"
                    f"  v: {{type: capture.video, params: {{path: {path}, decode: cpu, batch: 4}}}}\n"
                    "  clip: {type: video.clip, inputs: {image: v/image, frames: v/frames}, "
                    "params: {input: frames, frames: 4, resize: [64, 48], crop: [48, 48]}}\n")
    load_graph(good, load_registry())  # capture.video declares {index, count, t}: no complaint
    bad = tmp_path / "bad.yaml"
    bad.write_text("flowml: 1\nnodes:\n"
                   f"  v: {{type: capture.video, params: {{path: {path}, decode: cpu, batch: 4}}}}\n"
                   "  clip: {type: video.clip, inputs: {image: v/image}, params: {input: frames}}\n")
    with pytest.raises(GraphErrors, match="connect the source's frame info"):
        load_graph(bad, load_registry())


# -- NVDEC ------------------------------------------------------------------------------------
NV_FILES = ["h264_210x146.mp4", "hevc_210x146.mp4", "h264_322x182.mp4"]


@pytest.fixture(scope="module")
def nv_files(tmp_path_factory):
    from flowml_av.nvdec import nvdec_problem

    problem = nvdec_problem("file.mp4", "cuda")
    if problem:
        pytest.fail(f"NVDEC is not usable on this GPU machine: {problem}")
    torch.zeros(1, device="cuda")
    tmp = tmp_path_factory.mktemp("nv_videos")
    return {name: video(name, tmp) for name in NV_FILES}


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", NV_FILES)
@pytest.mark.parametrize("decoders,k", [(1, 8), (3, 5), (7, 32)])
def test_nvdec_batches_are_k_single_ticks(nv_files, name, decoders, k):
    path = nv_files[name]
    params = {"decode": "cuda", "decoders": decoders}
    single = ticks(path, device="cuda", **params)
    batched = ticks(path, device="cuda", batch=k, **params)
    assert single[0][3]["decoder"] == batched[0][3]["decoder"] == "nvdec"
    assert batched[0][1].is_cuda and batched[0][1].shape[0] == min(k, len(single))
    assert_same_frames(frames_of(batched), frames_of(single))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_nvdec_batches_loop_and_scale_as_single_ticks(nv_files):
    path = nv_files["h264_322x182.mp4"]  # 30 frames
    params = {"decode": "cuda", "decoders": 3, "loop": True, "start": 0.2, "size": [160, 96]}
    single = frames_of(ticks(path, n=70, device="cuda", **params))
    batched = frames_of(ticks(path, n=9, device="cuda", batch=8, **params))[:70]
    assert batched[0][0].shape == (1, 3, 96, 160)
    for n, ((a, ta, pa, ia), (b, tb, pb, ib)) in enumerate(zip(batched, single)):
        assert (ta, pa, ia) == (tb, pb, ib), f"frame {n}"
        # scaled per batch vs per frame: the same kernel on each image, to float rounding
        assert float((a - b).abs().max()) < 1e-5, f"frame {n}"
