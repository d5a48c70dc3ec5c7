"""Recorder and reader beyond the basics: 300-frame round trips in H.264 and H.265, bitrate,
NVENC with its CPU fallback, SIGINT, realtime pace, HTTP streams, the NV12 conversion.
GPU decoding (NVDEC through PyNvVideoCodec) is tested in test_av_nvdec.py."""

from __future__ import annotations

import functools
import http.server
import logging
import signal
import subprocess
import sys
import threading
import time

import av
import pytest
import torch

from flowml import EndOfStream, NodeError
from flowml.testing import NodeHarness, run_node
from flowml_av.gpudecode import nv12_to_rgb
from flowml_av.reader import StreamSource, VideoSource
from flowml_av.writer import VideoWriter, encoder_problem, parse_bitrate

from test_av_video import decode, encode, scene

FLOWML = [sys.executable, "-m", "flowml.cli"]
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def clip300(tmp_path_factory):
    return scene(300, 96, 64)


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_300_frames_round_trip_exact_count_and_stamps(tmp_path, clip300, codec):
    path = tmp_path / f"{codec}.mp4"
    encode(path, clip300, fps=30, crf=18, codec=codec, preset="ultrafast")
    decoded = decode(path)
    assert len(decoded) == 300
    assert [t for t, _ in decoded] == pytest.approx([k / 30 for k in range(300)], abs=1e-9)
    worst = max(float((img - ref).abs().mean()) for (_, img), ref in zip(decoded, clip300))
    assert worst < 0.03
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == {"h264": "h264", "h265": "hevc"}[codec]
        if codec == "h265":
            assert stream.codec_tag == "hvc1"


def test_h265_is_repeatable_byte_for_byte(tmp_path):
    frames = scene(20, 96, 64)
    for k in range(2):
        encode(tmp_path / f"{k}.mp4", frames, codec="h265")
    assert (tmp_path / "0.mp4").read_bytes() == (tmp_path / "1.mp4").read_bytes()


def test_bitrate_instead_of_crf(tmp_path):
    frames = [f + 0.1 * torch.rand_like(f) for f in scene(60, 160, 96)]  # noise: bits matter
    encode(tmp_path / "lo.mp4", frames, bitrate="100k")
    encode(tmp_path / "hi.mp4", frames, bitrate="2M")
    lo, hi = (tmp_path / "lo.mp4").stat().st_size, (tmp_path / "hi.mp4").stat().st_size
    assert lo < 0.5 * hi
    assert 0.5 < lo * 8 / 2.0 / 100_000 < 1.6  # 2 s at 100 kb/s, roughly
    assert parse_bitrate("2.5M") == 2_500_000 and parse_bitrate("800k") == 800_000
    with pytest.raises(ValueError, match="is not a bitrate"):
        VideoWriter.Params(path="x.mp4", bitrate="fast")


def test_nvenc_is_used_where_it_opens_else_the_cpu_encoder_with_a_log_line(tmp_path, caplog):
    frames = scene(10, 96, 64)
    with caplog.at_level(logging.INFO):
        with NodeHarness(VideoWriter, {"path": "n.mp4", "encoder": "nvenc", "codec": "h265"},
                         graph_dir=tmp_path) as h:
            for f in frames:
                h.process(image=f)
            used = h.node.encoder
    problem = encoder_problem("hevc_nvenc")
    if problem is None:
        assert used == "hevc_nvenc"
    else:
        assert used == "libx265"
        assert any("NVENC not available" in r.getMessage() and "libx265" in r.getMessage()
                   for r in caplog.records)
    assert len(decode(tmp_path / "n.mp4")) == 10
    # auto on a CPU node never tries NVENC
    with NodeHarness(VideoWriter, {"path": "a.mp4"}, graph_dir=tmp_path) as h:
        h.process(image=frames[0])
        assert h.node.encoder == "libx264"


@cuda
@pytest.mark.cuda
def test_nvenc_round_trip_on_the_gpu(tmp_path):
    if encoder_problem("h264_nvenc"):
        pytest.skip(encoder_problem("h264_nvenc"))
    frames = [f.cuda() for f in scene(60, 256, 144)]
    encode(tmp_path / "g.mp4", frames, encoder="nvenc")
    decoded = decode(tmp_path / "g.mp4")
    assert len(decoded) == 60
    assert [t for t, _ in decoded] == pytest.approx([k / 30 for k in range(60)], abs=1e-9)


SIGINT_GRAPH = """\
flowml: 1
clock: scene
nodes:
  scene: {type: capture.pattern, params: {pattern: scene, size: [160, 96], fps: 30}}
  rec:   {type: output.video, inputs: {image: scene/image},
          params: {path: rec.mp4, codec: h265, fragmented: false, preset: ultrafast}}
"""


def test_sigint_leaves_a_playable_h265_file(tmp_path):
    (tmp_path / "g.yaml").write_text(SIGINT_GRAPH)
    proc = subprocess.Popen([*FLOWML, "run", str(tmp_path / "g.yaml")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "rec.mp4").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    with av.open(str(tmp_path / "rec.mp4")) as c:  # the index was written on the way out
        stamps = [f.time for f in c.decode(video=0)]
    assert len(stamps) > 10
    assert stamps == pytest.approx([k / 30 for k in range(len(stamps))], abs=1e-9)


def test_realtime_plays_at_the_files_rate_and_offline_does_not(tmp_path):
    encode(tmp_path / "v.mp4", scene(16, 96, 64), fps=30)
    for mode, realtime in (("live", None), ("offline", None), ("offline", True)):
        with NodeHarness(VideoSource, {"path": "v.mp4", "start": 0.2, "realtime": realtime},
                         graph_dir=tmp_path, mode=mode) as h:
            t0 = time.perf_counter()
            stamps = [h.node.process().t for _ in range(10)]
            took = time.perf_counter() - t0
        assert stamps == pytest.approx([0.2 + k / 30 for k in range(10)], abs=1e-9)
        if mode == "live" or realtime:
            assert 9 / 30 - 0.02 < took < 9 / 30 + 0.25
        else:
            assert took < 0.2


@pytest.fixture
def http_server(tmp_path):
    """A local HTTP server (127.0.0.1, an ephemeral port) serving tmp_path."""
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_http_stream_decodes_every_frame_with_its_stamp(tmp_path, http_server):
    frames = scene(24, 96, 64)
    encode(tmp_path / "v.mp4", frames, fps=24)
    got = []
    with NodeHarness(VideoSource, {"path": f"{http_server}/v.mp4", "timeout": 5}) as h:
        while True:
            try:
                s = h.node.process()
            except EndOfStream:
                break
            got.append((s.t, s.outputs["image"]))
    assert len(got) == 24
    assert [t for t, _ in got] == pytest.approx([k / 24 for k in range(24)], abs=1e-9)
    assert max(float((img - f).abs().mean()) for (_, img), f in zip(got, frames)) < 0.03


def test_live_stream_is_paced_and_reconnects_with_time_going_forward(tmp_path, http_server, caplog):
    encode(tmp_path / "v.mp4", scene(6, 96, 64), fps=30)
    assert StreamSource.live and not VideoSource.live
    with caplog.at_level(logging.WARNING), NodeHarness(
            StreamSource, {"path": f"{http_server}/v.mp4", "timeout": 5}, mode="live") as h:
        t0 = time.perf_counter()
        stamps = [h.node.process().t for _ in range(9)]  # 6 frames, the end, a reconnect, 3 more
        took = time.perf_counter() - t0
    assert stamps == pytest.approx([k / 30 for k in range(9)], abs=1e-9)
    assert took > 0.5  # the reconnect waits 0.5 s first
    assert any("reconnecting" in r.getMessage() for r in caplog.records)
    assert any("reconnected" in r.getMessage() for r in caplog.records)


def test_unreachable_stream_fails_fast_with_the_url():
    with pytest.raises(NodeError, match=r"cannot read video http://127\.0\.0\.1:9/none\.mp4"):
        run_node(VideoSource, params={"path": "http://127.0.0.1:9/none.mp4", "timeout": 2})


def test_nv12_conversion_matches_ffmpegs_cpu_conversion(tmp_path):
    encode(tmp_path / "c.mp4", scene(3, 160, 96), crf=18)
    with av.open(str(tmp_path / "c.mp4")) as c:
        frame = next(c.decode(video=0))
        reference = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)[None] / 255
        nv12 = torch.from_numpy(frame.reformat(format="nv12").to_ndarray())
    h, w = frame.height, frame.width
    rgb = nv12_to_rgb(nv12[:h], nv12[h:].reshape(h // 2, w // 2, 2), frame.colorspace, False)
    assert rgb.shape == (1, 3, h, w)
    assert (rgb - reference).abs().max() < 0.02
    assert nv12_to_rgb(nv12[:h], nv12[h:].reshape(h // 2, w // 2, 2), size=(80, 48)).shape == (1, 3, 48, 80)


@pytest.mark.parametrize("colorspace, full_range", [(1, False), (5, False), (9, False), (7, False), (1, True)])
def test_batched_nv12_conversion_equals_colour_pys_per_frame_conversion(colorspace, full_range):
    """NVDEC's batch conversion (seven kernels for N frames) against ``colour.yuv_to_rgb``, the
    GPU path of CPU-decoded planes, frame by frame: the same matrix, within float rounding."""
    from flowml_av.colour import MATRICES, Colour, yuv_to_rgb

    g = torch.Generator().manual_seed(colorspace)
    h, w = 37, 51                                            # odd: chroma rounded up, cut back
    y = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g)
    uv = torch.randint(0, 256, (3, (h + 1) // 2, (w + 1) // 2, 2), dtype=torch.uint8, generator=g)
    rgb = nv12_to_rgb(y, uv, colorspace, full_range)
    assert rgb.shape == (3, 3, h, w) and rgb.dtype == torch.float32
    colour = Colour(*MATRICES[colorspace], full_range, 8, (1, 1))
    for k in range(3):
        want = yuv_to_rgb(y[k], uv[k, ..., 0], uv[k, ..., 1], colour)
        assert (rgb[k:k + 1] - want).abs().max() < 1e-5, k
    assert torch.equal(nv12_to_rgb(y[1], uv[1], colorspace, full_range), rgb[1:2])


def test_decode_cuda_on_a_cpu_node_falls_back_with_a_log_line(tmp_path, caplog):
    encode(tmp_path / "v.mp4", scene(3, 96, 64))
    with caplog.at_level(logging.WARNING):
        out = run_node(VideoSource, params={"path": "v.mp4", "decode": "cuda"}, graph_dir=tmp_path)
    assert out["image"].shape == (1, 3, 64, 96)
    assert any("decoding on the CPU" in r.getMessage() for r in caplog.records)
