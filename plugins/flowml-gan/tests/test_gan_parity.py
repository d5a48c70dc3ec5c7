"""Our StyleGAN2 against NVIDIA's own code on the same random weights and latents.

The fixtures were made once with NVIDIA's stylegan2-ada-pytorch on the CPU (their reference
ops): see fixtures/make_nvidia_fixtures.py for how. Each holds the generator's init kwargs, its
state dict in NVIDIA's naming, the latents z and NVIDIA's ws and images for them.
"""

from pathlib import Path

import pytest
import torch

from flowml_gan.snapshot import load_generator
from flowml_gan.stylegan2 import Generator

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name):
    return torch.load(FIXTURES / name, weights_only=True)


@pytest.mark.parametrize("name", ["sg2_64.pt", "sg2_256.pt"])
def test_official_state_dict_loads_unchanged_and_gives_nvidias_image(name):
    d = fixture(name)
    G = Generator(**d["init_kwargs"]).eval()
    G.load_state_dict(d["state_dict"], strict=True)  # every name and shape as NVIDIA's
    assert set(dict(G.named_buffers())) | set(dict(G.named_parameters())) == set(d["state_dict"])
    with torch.no_grad():
        ws = G.mapping(d["z"], None, truncation_psi=0.7)
        img = G.synthesis(ws, noise_mode="const", force_fp32=True)
    assert ws.shape == d["ws"].shape and img.shape == d["img"].shape
    assert (ws - d["ws"]).abs().max() <= 1e-4
    assert (img - d["img"]).abs().max() <= 1e-4
    assert d["img"].abs().max() > 1  # a real signal, not a blank image


def test_unfused_modulation_gives_the_same_image():
    d = fixture("sg2_64.pt")
    G = Generator(**d["init_kwargs"]).eval()
    G.load_state_dict(d["state_dict"])
    with torch.no_grad():
        img = G.synthesis(d["ws1"], noise_mode="const", force_fp32=True, fused_modconv=False)
    assert (img - d["img1"]).abs().max() <= 1e-4


@pytest.mark.parametrize("key", ["G_ema", "G"])
def test_official_pickle_read_safely_gives_nvidias_image(key):
    d = fixture("sg2_64.pt")
    G = load_generator(FIXTURES / "sg2_64.pkl", key=key)
    with torch.no_grad():
        img = G(d["z"], None, truncation_psi=0.7, noise_mode="const", force_fp32=True)
    assert (img - d["img"]).abs().max() <= 1e-4
