"""NvdecVideo's timestamp check, on the CPU: a stand-in for PyNvVideoCodec's SimpleDecoder
(no GPU here) that hands out FFmpeg's decoded frames of a real file with their pts, and
miscounts as PyNvVideoCodec did on the H200 (a call that starts off a keyframe gets the
frame after the one asked for). The real decoder runs in ``test_av_nvdec.py`` (cuda)."""

from __future__ import annotations

from collections import deque

import av
import numpy as np
import pytest
import torch

from flowml_av.colour import planes
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


class Miscounting:
    """``get_batch_frames_by_index``: right from a keyframe, one frame late for a call that starts
    elsewhere (``runs_too``: late for every call); ``get_batch_frames`` after a reset is right."""

    def __init__(self, frames: list[Frame], keys: list[int], runs_too: bool = False):
        self.frames, self.keys, self.runs_too, self.pos, self.calls = frames, keys, runs_too, 0, []

    def get_batch_frames_by_index(self, indices):
        self.calls.append(("index", list(indices)))
        late = 1 if self.runs_too or indices[0] not in self.keys else 0
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


def on_cpu(info, decoder) -> NvdecVideo:
    """An NvdecVideo on ``decoder`` with the CPU as its device (what __init__ sets, less CUDA)."""
    nv = NvdecVideo.__new__(NvdecVideo)
    nv.info, nv.device, nv.stream, nv.decoder = info, torch.device("cpu"), None, decoder
    nv.in_use, nv.log_once, nv.decoded, nv.misplaced, nv.unchecked = deque(), None, 0, 0, None
    return nv


def assert_frames(nv, ys, uvs, indices):
    y, uv = nv.nv12(indices)
    for k, i in enumerate(indices):
        assert torch.equal(y[k], ys[i]), f"frame {i}: Y"
        assert torch.equal(uv[k], uvs[i]), f"frame {i}: CbCr"


def test_misplaced_frames_are_decoded_again_from_their_keyframe_and_taken_by_pts(clip, caplog):
    info, ys, uvs, nv12 = clip
    keys = keyframe_indices(info)
    assert len(keys) >= 3 and [p for _, p in nv12] == list(info.pts)  # the file's pts are PyAV's
    decoder = Miscounting([Frame(t, p) for t, p in nv12], keys)
    nv = on_cpu(info, decoder)
    start = keys[1] + 3                                   # off a keyframe: the stand-in is late
    indices = [start + 4, start, start + 2, start + 1]
    assert_frames(nv, ys, uvs, indices)
    assert nv.misplaced == 4 and "other frames than asked for" in caplog.text
    assert decoder.calls[1] == ("index", list(range(keys[1], min(len(ys) - 1, start + 8) + 1))[:16])
    assert not [c for c in decoder.calls if c[0] == "reset"]
    assert_frames(nv, ys, uvs, [keys[0], keys[0] + 1, keys[2]])  # from a keyframe: right first time
    assert nv.misplaced == 4


def test_frames_no_keyframe_run_gives_come_from_the_start_frame_by_frame(clip):
    info, ys, uvs, nv12 = clip
    decoder = Miscounting([Frame(t, p) for t, p in nv12], keyframe_indices(info), runs_too=True)
    nv = on_cpu(info, decoder)
    indices = [len(ys) - 1, 5, 0, 12]
    assert_frames(nv, ys, uvs, indices)
    assert ("reset", info.path) in decoder.calls and nv.misplaced == 3   # all but the last (clipped)


def test_a_frame_no_decode_gives_is_an_error_naming_file_and_frame(clip):
    info, ys, uvs, nv12 = clip
    frames = [Frame(t, p) for t, p in nv12]
    del frames[7]                                          # a decoder that never shows frame 7
    nv = on_cpu(info, Miscounting(frames, keyframe_indices(info), runs_too=True))
    with pytest.raises(RuntimeError, match=rf"frame 7 \(pts {info.pts[7]}\) of .*{info.path.split('/')[-1]}"):
        nv.nv12([7])


def test_without_usable_timestamps_the_decoders_frames_are_taken_as_they_come(clip, caplog):
    info, ys, uvs, nv12 = clip
    scale = [Frame(t, None if k % 2 else 10**9 + k) for k, (t, _) in enumerate(nv12)]
    keys = keyframe_indices(info)
    nv = on_cpu(info, Miscounting(scale, keys))
    y, _ = nv.nv12([keys[1], keys[1] + 2])
    assert torch.equal(y[0], ys[keys[1]]) and nv.unchecked and "not checked by timestamp" in caplog.text
    assert nv.misplaced == 0
