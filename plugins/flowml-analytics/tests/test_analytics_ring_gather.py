"""The batched ring's gather over long runs, and the batched graph's tick with no host sync.

FramesRing gathers n clips with an index computed on the device from offsets made once per
(clips, stride), so the batches of a long run (the oldest frame in every one of the ring's R
slots in turn) must still give, value for value, the clips ClipRing gives one frame at a time.
On CUDA, a steady-state tick of capture.pattern ``batch: K`` and video.clip ``input: frames``
must not synchronize the host with the GPU at all (``torch.cuda.set_sync_debug_mode``): a
``tensor[list]`` index or an ``.item()`` there would hold the dispatcher until the previous
tick's model is done, every tick."""

from __future__ import annotations

import itertools

import pytest
import torch

from flowml import NO_VALUE
from flowml.testing import NodeHarness
from flowml_analytics.clip import VideoClip
from flowml_analytics.ring import ClipRing, FramesRing, due_in
from flowml_std import patterns
from flowml_std.pattern import PatternSource

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning")]
MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def test_due_in_is_every_frame_where_a_clip_is_due():
    for before, k, t, stride in itertools.product(range(30), range(1, 12), range(1, 18), range(1, 10)):
        want = [j for j in range(k) if before + j + 1 >= t and (before + j + 1 - t) % stride == 0]
        assert list(due_in(before, k, t, stride)) == want, (before, k, t, stride)


class _Seen(FramesRing):
    """FramesRing, noting where each multi-clip gather started and whether it wrapped."""

    def _gather(self, oldest, n, stride):
        self.seen.add((oldest, oldest + (n - 1) * stride + self.frames > self.ring.shape[self.time_dim]))
        return super()._gather(oldest, n, stride)


@pytest.mark.parametrize("layout", ["BCTHW", "BTCHW"])
@pytest.mark.parametrize("k, stride", [(3, 1), (8, 1), (8, 3), (16, 8), (24, 8), (5, 7)])
def test_a_long_run_of_batches_gives_the_single_frame_clips(layout, k, stride):
    """As many batches as the ring has slots (R = T + K - 1) and more, so the gathers start
    at every slot they can and wrap round the ring's end; every clip equals ClipRing's for
    the same frame."""
    t = 5
    slots = t + k - 1
    n_frames = k * (slots + 3)
    video = torch.rand(n_frames, 3, 6, 7, generator=torch.Generator().manual_seed(k * 31 + stride))
    single, ring = {}, ClipRing(t, None, (4, 5), MEAN, STD, layout)
    for i in range(n_frames):
        ring.push(video[i:i + 1])
        if ring.due(stride):
            single[i] = ring.clip()[0]
    frames, got = _Seen(t, None, (4, 5), MEAN, STD, layout), {}
    frames.seen = set()
    for first in range(0, n_frames, k):
        clips, ends = frames.push(video[first:first + k], stride)
        if clips is None:
            assert ends == []
            continue
        assert clips.shape[0] == len(ends) and clips.is_contiguous()
        for j, clip in zip(ends, clips):
            got[first + j] = clip
    if k >= stride:  # several clips a batch: gathers at many slots, some wrapping
        assert len(frames.seen) >= 3 and {w for _, w in frames.seen} == {True, False}, frames.seen
    assert sorted(got) == sorted(single) and len(got) >= 8
    for i, clip in single.items():
        assert torch.equal(got[i], clip), i


def test_noise_frames_equal_the_frames_one_by_one():
    gen = torch.Generator()
    for first, count in ((0, 1), (5, 4), (3, 7)):  # the same generator, reseeded per frame
        want = torch.cat([patterns.noise(first + i, 20, 12, 9, "cpu") for i in range(count)])
        assert torch.equal(patterns.noise_frames(first, count, 20, 12, 9, "cpu", gen), want)
    assert torch.equal(patterns.noise_frames(2, 3, 20, 12, 9, "cpu"), torch.cat(
        [patterns.noise(i, 20, 12, 9, "cpu") for i in (2, 3, 4)]))


def _frames_info(first: int, count: int) -> dict:
    return {"index": first, "count": count, "t": [(first + i) / 30 for i in range(count)]}


@pytest.mark.cuda
@pytest.mark.parametrize("k, stride", [(64, 8), (8, 1), (128, 8), (64, 1)])
def test_a_steady_batched_tick_never_synchronizes(k, stride):
    """The source's K noise frames and video.clip's preprocessing and gather of every clip due,
    tick after tick past the first (made-once buffers), with torch's sync debug mode set to
    raise on any host-GPU synchronization; the clips equal ClipRing's on the same frames."""
    src_params = {"pattern": "noise", "size": [64, 36], "batch": k}
    clip_params = {"frames": 16, "stride": stride, "resize": [34, 26], "crop": [24, 24], "input": "frames"}
    outs = []
    with NodeHarness(PatternSource, src_params, device="cuda") as src, \
            NodeHarness(VideoClip, clip_params, device="cuda") as clip:
        torch.cuda.synchronize()
        first = 0
        for tick in range(2 * (16 + k) // k + 4):
            if tick == 2:
                torch.cuda.set_sync_debug_mode("error")
            try:
                image = src.process()["image"]
                outs.append((first, image, clip.process(image=image, frames=_frames_info(first, k))))
            finally:
                torch.cuda.set_sync_debug_mode("default")
            first += k
    ring = ClipRing(16, (26, 34), (24, 24), VideoClip.Params().mean, VideoClip.Params().std)
    checked = 0
    for first, image, out in outs:
        for j in range(k):
            ring.push(image[j:j + 1])
            if ring.due(stride):
                assert out["clip"] is not NO_VALUE
                assert out["frames"][0]["frame"] <= first + j
                row = [f["frame"] for f in out["frames"]].index(first + j)
                torch.testing.assert_close(out["clip"][row], ring.clip()[0], atol=1e-6, rtol=0)
                checked += 1
    assert checked >= 8
