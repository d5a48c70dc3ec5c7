"""video.clip against torchvision's video-classification preset, and when clips are due."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms._presets import VideoClassification

from flowml import NO_VALUE
from flowml.testing import NodeHarness
from flowml_analytics.clip import VideoClip

PRESET = VideoClassification(crop_size=(112, 112), resize_size=(128, 171))  # r3d_18's own


def frames(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 54, 96, generator=g)  # 16:9, as 640x360 sources are


def run_clips(video: torch.Tensor, **params) -> list:
    with NodeHarness(VideoClip, params) as h:
        return [h.process(image=video[i:i + 1])["clip"] for i in range(len(video))]


@pytest.mark.parametrize("T", [8, 16])
@pytest.mark.parametrize("stride", [1, 8])
def test_clip_equals_torchvision_preset(T, stride):
    video = frames(T + 2 * stride + 1)
    clips = run_clips(video, frames=T, stride=stride)
    due = [i for i, c in enumerate(clips) if c is not NO_VALUE]
    assert due == [i for i in range(len(video)) if i + 1 >= T and (i + 1 - T) % stride == 0]
    assert len(due) >= 3
    for i in (due[0], due[1], due[-1]):
        expected = PRESET(video[i + 1 - T:i + 1])  # (T, C, H, W) -> (C, T, 112, 112)
        assert clips[i].shape == (1, 3, T, 112, 112)
        torch.testing.assert_close(clips[i][0], expected, atol=1e-5, rtol=0)


def test_btchw_layout_and_a_batch_of_streams():
    a, b = frames(6, seed=1), frames(6, seed=2)
    video = torch.stack([a, b], dim=1)  # (6, 2, C, H, W): two streams, one batch
    with NodeHarness(VideoClip, {"frames": 4, "stride": 2, "layout": "BTCHW"}) as h:
        clips = [h.process(image=video[i])["clip"] for i in range(6)]
    assert [c is NO_VALUE for c in clips] == [True, True, True, False, True, False]
    for stream, src in enumerate((a, b)):
        expected = PRESET(src[2:6]).permute(1, 0, 2, 3)  # (T, C, h, w)
        torch.testing.assert_close(clips[5][stream], expected, atol=1e-5, rtol=0)


def test_a_clip_is_not_changed_by_later_frames_and_a_change_restarts_the_window():
    video = frames(6)
    with NodeHarness(VideoClip, {"frames": 2, "resize": None, "crop": [32, 32]}) as h:
        h.process(image=video[0:1])
        first = h.process(image=video[1:2])["clip"]
        kept = first.clone()
        h.process(image=video[2:3])
        torch.testing.assert_close(first, kept, atol=0, rtol=0)  # a new tensor per clip
        h.set_params(stride=2)  # stride: the window goes on
        assert h.process(image=video[3:4])["clip"] is not NO_VALUE
        h.set_params(crop=[16, 16])  # anything else: the window starts again
        assert h.process(image=video[4:5])["clip"] is NO_VALUE
        assert h.process(image=video[5:6])["clip"].shape == (1, 3, 2, 16, 16)


def test_bad_sizes_say_what_to_do():
    with pytest.raises(Exception, match="crop 200x200 is larger than the frame 96x54"):
        run_clips(frames(1), frames=1, resize=None, crop=[200, 200])
    with pytest.raises(Exception, match="mean and std have 3 values"):
        run_clips(torch.rand(1, 4, 54, 96), frames=1)


@pytest.mark.cuda
@pytest.mark.parametrize("stride", [1, 8])
def test_clip_on_cuda_equals_the_cpu(stride):
    video = frames(16 + 2 * stride)
    cpu = run_clips(video, frames=16, stride=stride)
    with NodeHarness(VideoClip, {"frames": 16, "stride": stride}, device="cuda") as h:
        gpu = [h.process(image=video[i:i + 1].cuda())["clip"] for i in range(len(video))]
    assert [c is NO_VALUE for c in gpu] == [c is NO_VALUE for c in cpu]
    for c, g in zip(cpu, gpu):
        if c is not NO_VALUE:
            assert g.is_cuda
            torch.testing.assert_close(g.cpu(), c, atol=1e-5, rtol=0)
