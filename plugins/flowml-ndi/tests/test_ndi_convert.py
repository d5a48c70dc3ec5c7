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


def torch_rgbx(image: torch.Tensor) -> torch.Tensor:
    """What ``channels=4`` must give: RGB(A) bytes, grey repeated, X = 255 where none came."""
    rgb = torch_reference(image)
    c = rgb.shape[-1]
    if c == 4:
        return rgb
    rgb = rgb.expand(*rgb.shape[:-1], 3) if c == 1 else rgb
    return torch.cat([rgb, torch.full_like(rgb[..., :1], 255)], dim=-1)


@pytest.mark.parametrize("shape", [(1, 3, 1080, 1920), (2, 1, 300, 40), (1, 4, 33, 17), (1, 3, 1, 1)])
def test_packing_to_four_channels_in_the_conversion(shape):
    image = torch.rand(shape, generator=torch.Generator().manual_seed(7)) * 1.2 - 0.1
    out = to_uint8_bhwc(image, channels=4)
    assert out.shape == (shape[0], shape[2], shape[3], 4) and out.is_contiguous()
    assert torch.equal(out, torch_rgbx(image))
    with pytest.raises(ValueError, match="channels"):
        to_uint8_bhwc(image, channels=3)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("c", [1, 3, 4])
def test_gpu_packing_equals_the_cpu_packing(c):
    from flowml.gpu.transfer import start_download

    image = torch.rand(1, c, 720, 1280, generator=torch.Generator().manual_seed(c))
    host = start_download(image.cuda(), [], torch.cuda.current_stream(), uint8=True, channels=4).wait()
    assert host.is_pinned() and host.shape == (1, 720, 1280, 4)
    assert torch.equal(host, to_uint8_bhwc(image, channels=4))


def test_a_sink_input_declared_with_channels_4_arrives_packed():
    from flowml import IMAGE, Input, Node
    from flowml.testing import NodeHarness

    seen = []

    class Packed(Node):
        type_name = "test.packed"
        inputs = (Input("image", IMAGE, uint8=True, channels=4),)

        def process(self, image):
            seen.append(image)

    with NodeHarness(Packed, {}) as h:
        h.process(image=torch.rand(1, 3, 6, 5))
    assert seen[0].shape == (1, 6, 5, 4) and bool((seen[0][..., 3] == 255).all())
    with pytest.raises(ValueError, match="uint8=True"):
        Input("image", IMAGE, channels=4)
