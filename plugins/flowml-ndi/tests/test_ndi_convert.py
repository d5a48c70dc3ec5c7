"""The CPU conversion a uint8 sink input pays every frame (``to_uint8_bhwc``: OpenCV bands on
threads) gives torch's bytes exactly: the same rounding (half to even), saturation and NaN."""

from __future__ import annotations

import os

import pytest
import torch

from flowml.gpu.transfer import to_uint8_bhwc


def torch_reference(image: torch.Tensor) -> torch.Tensor:
    return image.detach().clamp(0, 1).mul(255).round_().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


@pytest.mark.parametrize("shape", [(1, 3, 1080, 1920), (2, 4, 720, 1280), (1, 1, 100, 50), (3, 3, 17, 33),
                                   (1, 3, 1, 1)])
def test_cpu_uint8_conversion_equals_torch_byte_for_byte(shape):
    gen = torch.Generator().manual_seed(sum(shape))
    image = torch.rand(shape, generator=gen) * 1.4 - 0.2          # below 0 and above 1 too
    flat = image.view(-1)
    steps = min(flat.numel(), 256)
    flat[:steps] = (torch.arange(steps).float() + 0.5) / 255        # exact half steps: rounding
    flat[-1] = float("nan")
    out = to_uint8_bhwc(image)
    assert out.dtype == torch.uint8 and out.is_contiguous()
    assert out.shape == (shape[0], shape[2], shape[3], shape[1])
    assert torch.equal(out, torch_reference(image))


def test_other_float_types_and_bad_shapes():
    image = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    assert torch.equal(to_uint8_bhwc(image), torch_reference(image))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        to_uint8_bhwc(torch.rand(3, 8, 8))


def test_ntsc_rate_is_announced_exactly(tmp_path, monkeypatch):
    from fractions import Fraction

    from flowml.testing import NodeHarness
    from flowml_ndi.common import write_loopback_config
    from flowml_ndi.sender import NdiSender

    if "NDI_CONFIG_DIR" not in os.environ:
        write_loopback_config(tmp_path)
        monkeypatch.setenv("NDI_CONFIG_DIR", str(tmp_path))
    with NodeHarness(NdiSender, {"name": f"rate-{os.getpid()}", "fps": 29.97}) as h:
        h.process(image=torch.rand(1, 3, 36, 64))
        assert h.node.sender.video_frame.get_frame_rate() == Fraction(30000, 1001)
