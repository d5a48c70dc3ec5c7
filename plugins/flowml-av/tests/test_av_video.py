"""output.video -> capture.video round trips on real files."""

import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from flowml import EndOfStream, NodeError
from flowml.testing import NodeHarness, run_node
from flowml_av.reader import VideoSource
from flowml_av.writer import VideoWriter


def scene(n, width=160, height=96):
    """n frames of a moving, smooth test picture (B=1)."""
    y = torch.linspace(0, 1, height).view(1, 1, height, 1)
    x = torch.linspace(0, 1, width).view(1, 1, 1, width)
    frames = []
    for k in range(n):
        cx = 0.2 + 0.6 * k / max(n - 1, 1)
        disc = (((x - cx) ** 2 + (y - 0.5) ** 2) < 0.04).float()
        frames.append(torch.cat([x.expand(1, 1, height, width), y.expand(1, 1, height, width),
                                 disc], dim=1))
    return frames


def encode(path, frames, **params):
    with NodeHarness(VideoWriter, {"path": str(path), **params}) as h:
        for frame in frames:
            h.process(image=frame)


def decode(path, **params):
    """[(t, image)] of the whole file (calls process() directly to see each frame's stamp)."""
    out = []
    with NodeHarness(VideoSource, {"path": str(path), **params}) as h:
        while True:
            try:
                stamped = h.node.process()
            except EndOfStream:
                return out
            out.append((stamped.t, stamped.outputs["image"]))


@pytest.mark.parametrize("fragmented", [True, False])
def test_round_trip_frames_stamps_pixels(tmp_path, fragmented):
    frames = scene(30)
    encode(tmp_path / "v.mp4", frames, fps=30, crf=18, fragmented=fragmented)
    decoded = decode(tmp_path / "v.mp4")
    assert len(decoded) == 30
    assert [t for t, _ in decoded] == pytest.approx([k / 30 for k in range(30)], abs=1e-9)
    for (_, image), original in zip(decoded, frames):
        assert image.shape == (1, 3, 96, 160) and image.dtype == torch.float32
        assert (image - original).abs().mean() < 0.03


def test_same_frames_give_byte_identical_files(tmp_path):
    # hard blocks moving on gradients: with x264's defaults (mbtree) these gave a different
    # file about one run in five
    width, height = 160, 96
    ramp = torch.linspace(0, 1, width).view(1, 1, 1, width).expand(1, 1, height, width)
    frames = []
    for k in range(30):
        frame = torch.cat([ramp, torch.full_like(ramp, (k * 8 % 256) / 255), torch.zeros_like(ramp)], 1)
        frame[:, 2, 10:30, k * 3:k * 3 + 20] = 1.0
        frames.append(frame)
    files = []
    for run in range(4):
        encode(tmp_path / f"{run}.mp4", frames, fragmented=run % 2 == 0)
        files.append((tmp_path / f"{run}.mp4").read_bytes())
    assert files[0] == files[2] and files[1] == files[3]


def test_saturated_colours_keep_their_hue(tmp_path):
    """Encoder and reader must agree on the YUV matrix (BT.709, tagged in the stream)."""
    colours = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 1.0, 0.0)]
    frames = [torch.tensor(c).view(1, 3, 1, 1).expand(1, 3, 32, 32) for c in colours]
    encode(tmp_path / "c.mp4", frames, crf=10)
    for (_, image), colour in zip(decode(tmp_path / "c.mp4"), colours):
        assert torch.allclose(image.mean(dim=(2, 3)).flatten(), torch.tensor(colour), atol=0.02)
    import av
    with av.open(str(tmp_path / "c.mp4")) as container:
        codec = container.streams.video[0].codec_context
        assert (codec.colorspace, codec.color_primaries, codec.color_trc) == (1, 1, 1)


def test_odd_size_is_cropped_to_even_and_other_sizes_are_refused(tmp_path):
    odd = torch.rand(1, 4, 33, 51)  # RGBA: alpha is dropped
    with NodeHarness(VideoWriter, {"path": "odd.mp4"}, graph_dir=tmp_path) as h:
        h.process(image=odd)
        with pytest.raises(NodeError, match=r"frame 1 is 40x40, but the video is 50x32.*image\.resize"):
            h.process(image=torch.rand(1, 3, 40, 40))
    assert [img.shape for _, img in decode(tmp_path / "odd.mp4")] == [(1, 3, 32, 50)]


def test_loop_keeps_time_going_and_start_and_size(tmp_path):
    encode(tmp_path / "v.mp4", scene(6), fps=10)
    looped = [t for t, _ in decode_n(tmp_path / "v.mp4", 14, loop=True)]
    assert looped == pytest.approx([k / 10 for k in range(14)], abs=1e-9)
    late = decode(tmp_path / "v.mp4", start=0.3, size=[80, 48])
    assert [t for t, _ in late] == pytest.approx([0.3, 0.4, 0.5], abs=1e-9)
    assert late[0][1].shape == (1, 3, 48, 80)


def decode_n(path, n, **params):
    with NodeHarness(VideoSource, {"path": str(path), **params}) as h:
        return [(s.t, s.outputs["image"]) for s in (h.node.process() for _ in range(n))]


def test_bad_paths_say_what_to_do(tmp_path):
    with pytest.raises(NodeError, match=r"video file not found: .*missing\.mp4"):
        run_node(VideoSource, graph_dir=tmp_path, params={"path": "missing.mp4"})
    (tmp_path / "junk.mp4").write_bytes(b"\0" * 100)
    with pytest.raises(NodeError, match="cannot read video"):
        run_node(VideoSource, graph_dir=tmp_path, params={"path": "junk.mp4"})
    with pytest.raises(ValueError, match="end the file name in .mp4"):
        VideoWriter.Params(path="out.avi")


KILLED_WRITER = textwrap.dedent("""
    import sys, time, torch
    from flowml.testing import NodeHarness
    from flowml_av.writer import VideoWriter
    with NodeHarness(VideoWriter, {"path": sys.argv[1], "fps": 30, "keyframe_interval": 0.5}) as h:
        for k in range(300):
            h.process(image=torch.full((1, 3, 64, 96), (k % 30) / 30))
            if k == 90:
                print("encoded 90", flush=True)
                time.sleep(60)
""")


def test_fragmented_file_survives_sigkill(tmp_path):
    path = tmp_path / "killed.mp4"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "encoded 90"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    decoded = decode(path)
    assert 30 <= len(decoded) <= 91  # whole fragments up to the kill
    assert [t for t, _ in decoded] == pytest.approx([k / 30 for k in range(len(decoded))], abs=1e-9)
