"""``decoder_pool.DecoderPool``: decoders handed back are taken again for the same file and
device, others are opened, and at most ``limit`` idle ones are kept (real PyAV decoders here;
the NVDEC pool's reuse across a loader's epochs is checked on the GPU in test_av_nvdec.py)."""

from __future__ import annotations

import pytest
import torch

from flowml_av.cpudecode import CpuVideo
from flowml_av.decoder_pool import DecoderPool

from av_test_videos import video


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("videos")
    return [str(video(name, tmp)) for name in ("h264_178x98.mp4", "hevc_178x98.mp4")]


def test_a_decoder_handed_back_is_taken_again_for_its_file_and_device(files):
    pool = DecoderPool(limit=8)
    a = pool.take(files[0], "cpu", lambda: CpuVideo(files[0], "cpu"))
    first = a.frames([0, 1])
    pool.give(a)
    assert pool.idle() == 1
    assert pool.take(files[0], "cpu", lambda: CpuVideo(files[0], "cpu")) is a   # same file, same device
    assert torch.equal(a.frames([0, 1]), first)                                 # and it still decodes
    b = pool.take(files[0], "cpu", lambda: CpuVideo(files[0], "cpu"))          # a is lent: a new one
    c = pool.take(files[1], "cpu", lambda: CpuVideo(files[1], "cpu"))          # another file
    assert b is not a and c is not a and (pool.opened, pool.reused) == (3, 1)
    for v in (a, b, c):
        pool.give(v)
    pool.give(a)                                                               # twice: kept once
    assert pool.idle() == 3
    other = CpuVideo(files[1], "cpu")
    assert pool.take(files[1], "cuda:0", lambda: other) is other                # another device
    other.close()
    pool.clear()
    assert pool.idle() == 0
    with pytest.raises(Exception):
        a.frames([0])                  # closed by clear()


def test_past_the_limit_the_oldest_idle_decoders_are_closed(files):
    pool = DecoderPool(limit=2)
    videos = [pool.take(files[0], "cpu", lambda: CpuVideo(files[0], "cpu")) for _ in range(3)]
    for v in videos:
        pool.give(v)
    assert pool.idle() == 2
    with pytest.raises(Exception):
        videos[0].frames([0])          # the oldest was closed
    assert pool.take(files[0], "cpu", lambda: None) in videos[1:]
    stranger = CpuVideo(files[1], "cpu")
    pool.give(stranger)                # not from this pool: closed, not kept
    assert pool.idle() == 1
    with pytest.raises(Exception):
        stranger.frames([0])
