"""cv.warp on a CUDA GPU gives what it gives on the CPU (skipped where there is none)."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from flowml.gpu.transfer import image_from_host
from flowml.testing import run_node
from flowml_cv.warp import Warp

sys.path.insert(0, str(Path(__file__).parent))
from helpers import HD, photo, random_homography  # noqa: E402

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")]


@pytest.mark.parametrize("matrix_on", ["cpu", "cuda"])
def test_warp_on_cuda_matches_the_cpu_at_1080p(matrix_on):
    plate = image_from_host(photo("coffee", HD))
    frame = torch.rand(1, 3, HD[1], HD[0], generator=torch.Generator().manual_seed(0))
    m = torch.from_numpy(random_homography(np.random.default_rng(2)).astype(np.float32))
    cpu = run_node(Warp, {"plate": plate, "frame": frame, "matrix": m})
    gpu = run_node(Warp, {"plate": plate.cuda(), "frame": frame.cuda(), "matrix": m.to(matrix_on)}, device="cuda")
    assert gpu["image"].is_cuda
    assert (gpu["covered"].cpu() != cpu["covered"]).float().mean() < 1e-4  # edge pixels may flip
    diff = (gpu["image"].cpu() - cpu["image"]).abs()
    assert diff.mean() < 1e-4 and diff.max() < 0.02


def test_warp_in_half_precision_on_cuda():
    plate = image_from_host(photo("coffee", HD)).cuda()
    m = torch.tensor([[1.0, 0.02, 7.5], [-0.01, 1.0, -3.25], [0.0, 0.0, 1.0]])
    full = run_node(Warp, {"plate": plate, "frame": plate, "matrix": m}, device="cuda")["image"]
    half = run_node(Warp, {"plate": plate.half(), "frame": plate.half(), "matrix": m}, device="cuda")["image"]
    assert half.dtype == torch.float16 and (half.float() - full).abs().mean() < 2e-3
