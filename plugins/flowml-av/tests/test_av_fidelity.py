"""capture.video against FFmpeg's own tools: files made by the ``ffmpeg`` CLI (Debian's
``ffmpeg``, installed by scripts/test.sh), frames compared with ``ffmpeg -pix_fmt rgb24``:
colour matrix, range and bit depth, display rotation, damaged packets, image sequences, exact
NTSC rates through a round trip, and capture.stream reconnecting after failed reopens."""

from __future__ import annotations

import logging
import random
import shutil
import socket
import subprocess
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from flowml import EndOfStream
from flowml.testing import NodeHarness
from flowml_av.colour import Colour, frame_to_rgb
from flowml_av.reader import StreamSource, VideoSource
from flowml_av.writer import VideoWriter

FFMPEG, FFPROBE = shutil.which("ffmpeg"), shutil.which("ffprobe")
SRC = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"]

# name -> (container, ffmpeg options): each pixel format and range of issue 22
FORMATS = {
    "mjpeg-avi": ("avi", ["-c:v", "mjpeg", "-pix_fmt", "yuvj420p"]),
    "mjpeg-mov": ("mov", ["-c:v", "mjpeg", "-pix_fmt", "yuvj420p"]),
    "bt601-limited": ("mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p",
                              "-vf", "scale=out_color_matrix=bt601:out_range=tv",
                              "-colorspace", "smpte170m", "-color_primaries", "smpte170m",
                              "-color_trc", "smpte170m", "-color_range", "tv"]),
    "bt709-limited": ("mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p",
                              "-vf", "scale=out_color_matrix=bt709:out_range=tv",
                              "-colorspace", "bt709", "-color_primaries", "bt709",
                              "-color_trc", "bt709", "-color_range", "tv"]),
    "bt709-full": ("mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p",
                           "-vf", "scale=out_color_matrix=bt709:out_range=pc",
                           "-colorspace", "bt709", "-color_range", "pc"]),
    "yuv444p": ("mp4", ["-c:v", "libx264", "-pix_fmt", "yuv444p",
                        "-vf", "scale=out_color_matrix=bt709:out_range=tv",
                        "-colorspace", "bt709", "-color_range", "tv"]),
    "yuv420p10le": ("mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p10le",
                            "-vf", "scale=out_color_matrix=bt709:out_range=tv",
                            "-colorspace", "bt709", "-color_range", "tv"]),
}
COLOUR_NAMES = {"mjpeg-avi": "bt601 full range, 8-bit", "mjpeg-mov": "bt601 full range, 8-bit",
                "bt601-limited": "bt601 limited range, 8-bit", "bt709-limited": "bt709 limited range, 8-bit",
                "bt709-full": "bt709 full range, 8-bit", "yuv444p": "bt709 limited range, 8-bit",
                "yuv420p10le": "bt709 limited range, 10-bit"}


def ffmpeg(*args: str) -> None:
    assert FFMPEG, "the ffmpeg CLI is needed (Debian: apt-get install ffmpeg; scripts/test.sh does it)"
    subprocess.run([FFMPEG, "-v", "error", "-y", *args], check=True, timeout=120)


def ffmpeg_rgb(path: Path, *opts: str, pix_fmt: str = "rgb24") -> np.ndarray:
    """FFmpeg's own decode of every frame, ``(N, H, W, 3)``; rgb48le comes back scaled to 0..255."""
    out = subprocess.run([FFMPEG, "-v", "error", *opts, "-i", str(path), "-f", "rawvideo", "-pix_fmt",
                          pix_fmt, "-"], capture_output=True, check=True, timeout=120).stdout
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        turned = frame.rotation % 180 != 0 and "-noautorotate" not in opts
        w, h = (frame.height, frame.width) if turned else (frame.width, frame.height)
    if pix_fmt == "rgb48le":
        return np.frombuffer(out, "<u2").reshape(-1, h, w, 3).astype(np.float64) / 257.0
    return np.frombuffer(out, np.uint8).reshape(-1, h, w, 3).astype(np.float64)


def probe(path: Path, entry: str) -> str:
    assert FFPROBE, "the ffprobe CLI is needed (Debian's ffmpeg package)"
    return subprocess.run([FFPROBE, "-v", "error", "-select_streams", "v:0", "-count_frames",
                           "-show_entries", entry, "-of", "csv=p=0", str(path)],
                          capture_output=True, text=True, check=True, timeout=120).stdout.strip()


def read_all(path: Path, limit: int = 1000, **params) -> tuple[np.ndarray, list[float], dict]:
    """Every frame capture.video gives, as 0..255 floats (unrounded), their stamps, the last status."""
    frames, stamps, status = [], [], {}
    with NodeHarness(VideoSource, {"path": str(path), **params}) as h:
        for _ in range(limit):
            try:
                out = h.process()
            except EndOfStream:
                break
            frames.append(out["image"][0].permute(1, 2, 0).mul(255).double().cpu().numpy())
            stamps.append(h.last_t)
            status = out["status"]
    return np.stack(frames), stamps, status


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("formats")
    out = {}
    for name, (ext, opts) in FORMATS.items():
        out[name] = folder / f"{name}.{ext}"
        ffmpeg(*SRC, "-frames:v", "6", *opts, str(out[name]))
    return out


@pytest.mark.parametrize("name", [n for n in FORMATS if n != "yuv420p10le"])
def test_8bit_formats_equal_ffmpegs_rgb_decode(clips, name):
    ours, _, status = read_all(clips[name])
    ref = ffmpeg_rgb(clips[name])
    assert ours.shape == ref.shape
    diff = np.abs(np.round(ours) - ref)
    assert diff.max() <= 1, f"{name}: max {diff.max()} levels from FFmpeg's decode"
    assert status["colour"] == COLOUR_NAMES[name]


def test_10bit_is_converted_at_its_depth_and_matches_ffmpeg(clips):
    """FFmpeg's rgb24 output of a 10-bit source truncates inside swscale (about +1 level of bias
    here against the test pattern itself); its 16-bit RGB output does not. capture.video keeps
    the 10 bits until the float image: within 1 level of FFmpeg's rgb48 decode per channel on
    average, and nearer the pattern ffmpeg made the file from than FFmpeg's own rgb24 decode."""
    path = clips["yuv420p10le"]
    ours, _, status = read_all(path)
    assert status["colour"] == "bt709 limited range, 10-bit"
    deep = ffmpeg_rgb(path, pix_fmt="rgb48le")
    per_channel = np.abs(ours - deep).reshape(-1, 3).mean(0)
    assert per_channel.max() <= 1.0, per_channel
    assert np.percentile(np.abs(ours - deep), 99) <= 3.0
    pattern = np.frombuffer(subprocess.run(
        [FFMPEG, "-v", "error", *SRC, "-frames:v", "6", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True).stdout, np.uint8).reshape(ours.shape).astype(np.float64)
    assert np.abs(np.round(ours) - pattern).mean() < np.abs(ffmpeg_rgb(path) - pattern).mean()


@pytest.mark.parametrize("rotate", [90, 270])
def test_display_rotation_is_applied_as_ffmpeg_autorotates(tmp_path, clips, rotate):
    path = tmp_path / f"rot{rotate}.mp4"
    ffmpeg("-i", str(clips["bt709-limited"]), "-c", "copy", "-metadata:s:v:0", f"rotate={rotate}", str(path))
    ours, _, status = read_all(path)
    ref = ffmpeg_rgb(path)
    assert ours.shape[1:3] == (320, 240) == ref.shape[1:3]  # portrait, as FFmpeg gives it
    assert np.abs(np.round(ours) - ref).max() <= 1
    assert status["rotation"] == rotate
    raw, _, status = read_all(path, autorotate=False)
    assert raw.shape[1:3] == (240, 320)
    assert np.abs(np.round(raw) - ffmpeg_rgb(path, "-noautorotate")).max() <= 1
    assert status["rotation"] == 0
    sized, _, _ = read_all(path, size=[120, 160])  # size is the output's: [width, height] after turning
    assert sized.shape[1:3] == (160, 120)


def _damaged(good: bytes, seed: int) -> bytes:
    rnd, data = random.Random(seed), bytearray(good)
    start = len(good) // 2 + rnd.randint(-20000, 20000)
    for off in range(start, start + 4096):
        data[off] = rnd.randrange(256)
    return bytes(data)


def _decoder_refuses_a_packet(path: Path) -> bool:
    with av.open(str(path)) as c:
        for packet in c.demux(c.streams.video[0]):
            try:
                packet.decode()
            except av.FFmpegError:
                return True
    return False


def test_damaged_file_gives_every_decodable_frame_and_counts_the_skipped(tmp_path, caplog):
    good = tmp_path / "good.mp4"
    ffmpeg(*SRC, "-frames:v", "300", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "30", str(good))
    bad = tmp_path / "bad.mp4"
    for seed in range(1, 40):  # damage 4 KiB in the middle until the decoder refuses a packet
        bad.write_bytes(_damaged(good.read_bytes(), seed))
        if _decoder_refuses_a_packet(bad):
            break
    else:
        pytest.fail("no damage pattern made the decoder refuse a packet")
    expected = int(probe(bad, "stream=nb_read_frames"))
    assert 150 < expected < 300
    with caplog.at_level(logging.WARNING):
        frames, stamps, status = read_all(bad, limit=400)
    assert len(frames) == expected  # what FFmpeg decodes, not the frames before the damage
    assert status["skipped"] >= 1 and status["frames"] == expected
    assert stamps == sorted(stamps)
    warnings = [r.getMessage() for r in caplog.records if "could not be decoded" in r.getMessage()]
    assert len(warnings) == 2  # the first bad packet, with where it is; the summary at teardown
    assert "byte" in warnings[0] and " s " in warnings[0]
    assert f"{status['skipped']} packet(s)" in warnings[1]


def test_image_sequence_pattern_is_read_by_ffmpegs_image2_demuxer(tmp_path):
    ffmpeg(*SRC, "-frames:v", "5", str(tmp_path / "f_%04d.png"))
    frames, stamps, _ = read_all(tmp_path / "f_%04d.png", fps=10)
    ref = ffmpeg_rgb(tmp_path / "f_%04d.png")
    assert frames.shape == ref.shape == (5, 240, 320, 3)
    assert np.abs(np.round(frames) - ref).max() <= 1
    assert stamps == pytest.approx([k / 10 for k in range(5)])
    with pytest.raises(Exception, match="no image matches the pattern"):
        read_all(tmp_path / "g_%04d.png")


@pytest.mark.parametrize("rate,fraction", [("30000/1001", "30000/1001"), ("60000/1001", "60000/1001")])
def test_ntsc_rates_survive_a_round_trip(tmp_path, rate, fraction):
    src = tmp_path / "ntsc.mp4"
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=160x120:rate={rate}", "-frames:v", "30", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(src))
    assert probe(src, "stream=r_frame_rate") == fraction
    # 29.97 as a user types it; 60000/1001 as the fraction, in a string
    fps = round(float(Fraction(fraction)), 2) if rate.startswith("30") else fraction
    out = tmp_path / "out.mp4"
    with NodeHarness(VideoSource, {"path": str(src)}) as reader, \
            NodeHarness(VideoWriter, {"path": str(out), "fps": fps, "preset": "ultrafast"}) as writer:
        for _ in range(100):
            try:
                image = reader.process()["image"]
            except EndOfStream:
                break
            writer.process(image=image)
    assert probe(out, "stream=r_frame_rate") == fraction
    assert probe(out, "stream=nb_read_frames") == "30"
    frames, stamps, _ = read_all(out)
    assert stamps[-1] == pytest.approx(float(29 / Fraction(fraction)), abs=1e-6)


def test_writer_tags_match_its_pixels(tmp_path, clips):
    """output.video converts to BT.709 limited range and says so: FFmpeg's decode of the file
    (honouring the tags) gives back the frames it was given."""
    frames, _, _ = read_all(clips["yuv444p"])
    out = tmp_path / "tagged.mp4"
    with NodeHarness(VideoWriter, {"path": str(out), "crf": 0, "pix_fmt": "yuv444p"}) as writer:
        for f in frames:
            writer.process(image=torch.from_numpy(f / 255).permute(2, 0, 1)[None].float())
    assert probe(out, "stream=color_space,color_range,color_primaries,color_transfer") == "bt709,tv,bt709,bt709" \
        or probe(out, "stream=color_range,color_space,color_transfer,color_primaries") == "tv,bt709,bt709,bt709"
    back = ffmpeg_rgb(out)
    assert np.abs(back - np.round(frames)).mean() < 1.0


# -- capture.stream: reopening a stream that keeps failing ----------------------------------
class FlakyServer:
    """An MPEG-TS file over plain TCP on 127.0.0.1: the first client gets half of it; the next
    ``refusals`` clients are hung up on at once (their reopen fails: no data to probe); every
    later client gets all of it."""

    def __init__(self, data: bytes, refusals: int):
        self.data, self.refusals, self.clients = data, refusals, 0
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.done.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            self.clients += 1
            if self.clients == 1:
                payload = self.data[: len(self.data) // 2]
            elif self.clients <= 1 + self.refusals:
                payload = b""
            else:
                payload = self.data
            try:
                conn.sendall(payload)
            except OSError:
                pass
            conn.close()
        self.listener.close()


def test_stream_reconnects_after_several_failed_reopens(tmp_path, caplog):
    ts = tmp_path / "clip.ts"
    ffmpeg(*SRC, "-frames:v", "60", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "10", "-f", "mpegts", str(ts))
    server = FlakyServer(ts.read_bytes(), refusals=2)  # two reopens fail: the second one crashed before
    try:
        with caplog.at_level(logging.DEBUG), \
                NodeHarness(StreamSource, {"path": f"tcp://127.0.0.1:{server.port}", "timeout": 5,
                                           "realtime": False}, mode="live") as h:
            statuses = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(statuses) < 70:
                statuses.append(h.process()["status"])
                if statuses[-1]["reconnects"]:
                    break
    finally:
        server.done.set()
        server.thread.join(5)
    failed = [r for r in caplog.records if "reconnect failed" in r.getMessage()]
    assert len(failed) >= 2, "the test must see at least two failed reopens"
    assert statuses[-1]["reconnects"] == 1
    assert server.clients >= 2


# -- the same on the GPU: planes uploaded as decoded, converted once by torch there ----------
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", list(FORMATS))
@pytest.mark.parametrize("decode", ["cpu", "auto"])
def test_gpu_colour_conversion_matches_ffmpeg(clips, name, decode):
    """``decode: cpu`` on a CUDA node: FFmpeg decodes, torch converts the planes on the GPU;
    ``auto``: NVDEC where it takes the stream (NV12 on the GPU), else the same as ``cpu``.
    Float maths against swscale's fixed-point tables (which truncate): within 1 level per
    channel on average, a few levels at most on sharp colour edges."""
    ours, _, status = read_all(clips[name], device="cuda", decode=decode)
    deep = name == "yuv420p10le"
    ref = ffmpeg_rgb(clips[name], pix_fmt="rgb48le" if deep else "rgb24")
    assert ours.shape == ref.shape
    diff = np.abs((ours if deep else np.round(ours)) - ref)
    assert diff.reshape(-1, 3).mean(0).max() <= 1.0, diff.reshape(-1, 3).mean(0)
    assert np.percentile(diff, 99) <= 4.0
    if decode == "cpu":
        assert status["colour"] == COLOUR_NAMES[name]
        cpu, _, _ = read_all(clips[name], decode="cpu")  # the CPU path of the same node
        assert np.abs(np.round(cpu) - np.round(ours)).reshape(-1, 3).mean(0).max() <= 1.0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_and_cpu_torch_conversion_agree(clips):
    """colour.py is one piece of code for both devices: the GPU gives the CPU's values."""
    for name in ("bt709-limited", "yuv420p10le", "mjpeg-avi"):
        with av.open(str(clips[name])) as c:
            frame = next(c.decode(video=0))
            colour = Colour.of(frame)
            on_cpu = frame_to_rgb(frame, colour, "cpu")
            on_gpu = frame_to_rgb(frame, colour, "cuda").cpu()
        assert torch.allclose(on_cpu, on_gpu, atol=1e-4), name  # 0.03 of a level
