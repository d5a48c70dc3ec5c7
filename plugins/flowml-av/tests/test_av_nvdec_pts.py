"""NvdecVideo's timestamp check, on the CPU: a stand-in for PyNvVideoCodec's SimpleDecoder
(no GPU here) that hands out FFmpeg's decoded frames of a real file with their pts, and
miscounts as PyNvVideoCodec did on the H200 (a call that starts off a keyframe gets the
frame after the one asked for), its pts off the container's by a constant as PyNvVideoCodec's
were there (``OFFSET``). The real decoder runs in ``test_av_nvdec.py`` (cuda)."""

from __future__ import annotations

from collections import deque
from dataclasses import replace

import av
import numpy as np
import pytest
import torch

from flowml_av.colour import planes
from flowml_av import nvdec
from flowml_av.nvdec import NvdecVideo
from flowml_av.parallel import keyframe_indices
from flowml_av.probe import probe

from av_test_videos import video


class Frame:
    """A decoded NV12 frame ``(H + H/2, W)`` uint8 with its packet's pts, as DLPack."""

    def __init__(self, nv12: torch.Tensor, pts: int | None):
        self.t, self.pts = nv12, pts

    def __dlpack__(self, *args, **kwargs):
        return self.t.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self.t.__dlpack_device__()

    def getPTS(self):  # noqa: N802 - PyNvVideoCodec's name
        return self.pts


OFFSET = -1024
"""What PyNvVideoCodec 2.2.4's getPTS() was off the container's pts on the H200 (H.264 and HEVC)."""


class Miscounting:
    """``get_batch_frames_by_index``: right from a keyframe, one frame late for a call that starts
    elsewhere (``runs_too``: late for every call of more than one frame; ``late=False``: never);
    ``get_batch_frames`` after a reset is right. ``fail_runs``: calls of more than one frame
    after the first raise."""

    def __init__(self, frames: list[Frame], keys: list[int], runs_too: bool = False, late: bool = True,
                 fail_runs: bool = False):
        self.frames, self.keys, self.runs_too, self.late, self.fail_runs = frames, keys, runs_too, late, fail_runs
        self.pos, self.calls = 0, []

    def get_batch_frames_by_index(self, indices):
        self.calls.append(("index", list(indices)))
        if self.fail_runs and len([c for c in self.calls if c[0] == "index" and len(c[1]) > 1]) > 1:
            raise ValueError("End of stream reached while seeking to frame index 39")  # as on the H200
        late = 1 if self.late and ((self.runs_too and len(indices) > 1) or indices[0] not in self.keys) else 0
        return [self.frames[min(i + late, len(self.frames) - 1)] for i in indices]

    def reconfigure_decoder(self, path):
        self.calls.append(("reset", path))
        self.pos = 0

    def get_batch_frames(self, n):
        self.calls.append(("batch", n))
        out = self.frames[self.pos:self.pos + n]
        self.pos += len(out)
        return out


@pytest.fixture(scope="module", params=["hevc_322x182.mp4", "hevc_210x146.mp4"])
def clip(request, tmp_path_factory):
    path = video(request.param, tmp_path_factory.mktemp("videos"))
    ys, uvs, nv12 = [], [], []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            y, u, v = (torch.from_numpy(p.copy()) for p in planes(f))
            uv = torch.stack([u, v], -1)
            ys.append(y), uvs.append(uv)
            nv12.append((torch.cat([y, uv.reshape(uv.shape[0], -1)]), f.pts))
    return probe(path), ys, uvs, nv12


@pytest.fixture(autouse=True)
def fresh_offsets():
    """Each test's stand-in has its own offset: none learned by an earlier one."""
    nvdec._OFFSETS.clear()
    nvdec._CPU_TOLD.clear()
    nvdec._TOLD.clear()
    yield
    nvdec._OFFSETS.clear()


def stamped(nv12, offset=0):
    return [Frame(t, p + offset) for t, p in nv12]


def on_cpu(info, decoder, leading: bool = False) -> NvdecVideo:
    """An NvdecVideo on ``decoder`` with the CPU as its device (what __init__ sets, less CUDA).
    Without ``leading`` the file's leading pictures are not told to it (``info.leading`` empty),
    so the calls these tests count are the pts check's alone; ``test_av_open_gop.py`` has them."""
    nv = NvdecVideo.__new__(NvdecVideo)
    if not leading:
        info = replace(info, leading=())
    nv.info, nv.device, nv.stream, nv.decoder, nv.log_once = info, torch.device("cpu"), None, decoder, None
    nv._init_state()
    return nv


def assert_frames(nv, ys, uvs, indices):
    y, uv = nv.nv12(indices)
    for k, i in enumerate(indices):
        assert torch.equal(y[k], ys[i]), f"frame {i}: Y"
        assert torch.equal(uv[k], uvs[i]), f"frame {i}: CbCr"


def redecodes(decoder):
    """Decoder calls after the first two (frame 0 for the offset, then the call asked for)."""
    return decoder.calls[2:]


def test_a_constant_pts_offset_alone_makes_no_frame_wrong_and_no_decode_again(clip, caplog):
    info, ys, uvs, nv12 = clip
    keys = keyframe_indices(info)
    decoder = Miscounting(stamped(nv12, OFFSET), keys, late=False)
    nv = on_cpu(info, decoder)
    start = keys[1] + 3
    indices = [start + 4, start, start + 2, start + 1]
    assert_frames(nv, ys, uvs, indices)
    assert nv.pts_offset == OFFSET and nv.misplaced == 0 and nv.cpu_frames == 0 and nv.unchecked is None
    assert decoder.calls == [("index", [0]), ("index", sorted(indices))]   # no decoding again
    assert_frames(nv, ys, uvs, [0, 1, 3, 4, 5, 7, 20, 21, len(ys) - 1])      # the H200 test's frames
    assert len(decoder.calls) == 3 and nv.misplaced == 0
    assert "other frames than asked for" not in caplog.text and "on the CPU" not in caplog.text


def test_the_offset_is_learned_once_a_file_from_frame_0_alone(clip):
    info, ys, uvs, nv12 = clip
    decoder = Miscounting(stamped(nv12, OFFSET), keyframe_indices(info), late=False)
    nv = on_cpu(info, decoder)
    assert_frames(nv, ys, uvs, [0, 7, 3])
    assert decoder.calls == [("index", [0]), ("index", [0, 3, 7])] and nv.pts_offset == OFFSET
    other = on_cpu(info, Miscounting(stamped(nv12, OFFSET), keyframe_indices(info), late=False))
    assert_frames(other, ys, uvs, [9])                       # a second decoder of the file: known
    assert other.decoder.calls == [("index", [9])] and other.pts_offset == OFFSET and other.misplaced == 0


@pytest.mark.parametrize("offset", [0, OFFSET])
def test_misplaced_frames_are_decoded_again_from_their_keyframe_and_taken_by_pts(clip, caplog, offset):
    info, ys, uvs, nv12 = clip
    keys = keyframe_indices(info)
    assert len(keys) >= 3 and [p for _, p in nv12] == list(info.pts)  # the file's pts are PyAV's
    decoder = Miscounting(stamped(nv12, offset), keys)
    nv = on_cpu(info, decoder)
    start = keys[1] + 3                                   # off a keyframe: the stand-in is late
    indices = [start + 4, start, start + 2, start + 1]
    assert_frames(nv, ys, uvs, indices)
    assert nv.pts_offset == offset and nv.misplaced == 4 and "other frames than asked for" in caplog.text
    assert redecodes(decoder)[0] == ("index", list(range(keys[1], min(len(ys) - 1, start + 8) + 1))[:16])
    assert not [c for c in decoder.calls if c[0] == "reset"] and nv.cpu_frames == 0
    assert_frames(nv, ys, uvs, [keys[0], keys[0] + 1, keys[2]])  # from a keyframe: right first time
    assert nv.misplaced == 4


def test_frames_no_keyframe_run_gives_come_from_the_start_frame_by_frame(clip):
    info, ys, uvs, nv12 = clip
    decoder = Miscounting(stamped(nv12, OFFSET), keyframe_indices(info), runs_too=True)
    nv = on_cpu(info, decoder)
    indices = [len(ys) - 1, 5, 0, 12]
    assert_frames(nv, ys, uvs, indices)
    assert ("reset", info.path) in decoder.calls and nv.misplaced == 3   # all but the last (clipped)
    assert nv.cpu_frames == 0 and sum(n for c, n in decoder.calls if c == "batch") <= len(ys)


def test_a_frame_no_decode_gives_comes_from_the_cpu_instead_of_an_error(clip, caplog):
    info, ys, uvs, nv12 = clip
    frames = stamped(nv12, OFFSET)
    del frames[7]                                          # a decoder that never shows frame 7
    nv = on_cpu(info, Miscounting(frames, keyframe_indices(info), runs_too=True))
    assert_frames(nv, ys, uvs, [7, 8, 2])                  # PyAV's planes, exactly
    assert nv.cpu_frames >= 1 and nv.cpu is not None
    said = [r.getMessage() for r in caplog.records if "decoded on the CPU" in r.getMessage()]
    assert len(said) == 1 and info.path in said[0] and "7" in said[0] and f"want {info.pts[7]}" in said[0]
    assert_frames(nv, ys, uvs, [7])
    assert len([r for r in caplog.records if "decoded on the CPU" in r.getMessage()]) == 1  # once a file
    nv.close()
    assert nv.cpu is None


def test_a_decoder_error_while_decoding_again_falls_back_to_the_cpu(clip, caplog):
    info, ys, uvs, nv12 = clip
    keys = keyframe_indices(info)
    decoder = Miscounting(stamped(nv12, OFFSET), keys, fail_runs=True)
    nv = on_cpu(info, decoder)
    start = keys[1] + 3
    indices = [start, start + 1, start + 2]
    assert_frames(nv, ys, uvs, indices)
    assert nv.cpu_frames == 3 and "End of stream reached" in caplog.text


def test_a_decoder_error_on_the_call_itself_falls_back_to_the_cpu(clip):
    info, ys, uvs, nv12 = clip

    class Broken(Miscounting):
        def get_batch_frames_by_index(self, indices):
            raise RuntimeError("GetFramesByIdxList: Error code : 1")

    nv = on_cpu(info, Broken(stamped(nv12), keyframe_indices(info)))
    assert_frames(nv, ys, uvs, [len(ys) - 1, 0, 4])
    assert nv.cpu_frames == 3 and nv.pts_offset is None


def test_without_usable_timestamps_the_decoders_frames_are_taken_as_they_come(clip, caplog):
    info, ys, uvs, nv12 = clip
    scale = [Frame(t, None if k % 2 else 10**9 + k) for k, (t, _) in enumerate(nv12)]
    keys = keyframe_indices(info)
    nv = on_cpu(info, Miscounting(scale, keys))
    y, _ = nv.nv12([keys[1], keys[1] + 2])
    assert torch.equal(y[0], ys[keys[1]]) and nv.unchecked and "not checked by timestamp" in caplog.text
    assert nv.misplaced == 0 and nv.cpu_frames == 0


def test_decoding_again_calls_start_at_keyframes_so_a_long_run_needs_no_reset(clip):
    """Frames wanted over more than ``RUN`` frames: every call of the decoding again starts at a
    keyframe (the stand-in, like PyNvVideoCodec on the H200, is late only for calls that do
    not), so all come from the keyframe runs: no reset to the start, nothing on the CPU."""
    info, ys, uvs, nv12 = clip
    keys = keyframe_indices(info)
    decoder = Miscounting(stamped(nv12, OFFSET), keys)
    nv = on_cpu(info, decoder)
    start = keys[1] + 3
    indices = list(range(start, min(len(ys), start + nvdec.RUN + 1)))
    assert_frames(nv, ys, uvs, indices)
    again = redecodes(decoder)
    assert again and all(c == "index" and run[0] in keys for c, run in again), again
    assert nv.misplaced == len(indices) and nv.cpu_frames == 0


def test_key_runs_start_at_keyframes_and_join_gops_up_to_a_run():
    assert nvdec.key_runs([0, 10, 20, 30], 13, 33, run=16) == [list(range(10, 20)), list(range(20, 34))]
    assert nvdec.key_runs([0, 8, 16], 11, 20, run=16) == [list(range(8, 21))]
    assert nvdec.key_runs([0, 40], 3, 45, run=16) == [list(range(0, 40)), list(range(40, 46))]  # a long GOP whole
