"""cv.warp against OpenCV's warpPerspective (bilinear) on a real photograph, on the CPU."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from flowml import NodeError
from flowml.gpu.transfer import image_from_host
from flowml.testing import run_node
from flowml_cv.warp import Warp, warp_perspective

sys.path.insert(0, str(Path(__file__).parent))
from helpers import photo, random_homography  # noqa: E402

SIZE = (640, 360)


@pytest.fixture(scope="module")
def plate() -> np.ndarray:
    return photo("coffee", SIZE)


def test_matches_opencv_warp_perspective(plate):
    import cv2

    m = random_homography(np.random.default_rng(1), SIZE)
    ours, covered = warp_perspective(image_from_host(plate), torch.from_numpy(m), SIZE)
    theirs = cv2.warpPerspective(plate.astype(np.float32) / 255, m, SIZE, flags=cv2.INTER_LINEAR)
    ones = cv2.warpPerspective(np.ones(plate.shape[:2], np.float32), m, SIZE, flags=cv2.INTER_LINEAR)
    inside = covered[0, 0].numpy()
    assert np.mean(inside == (ones > 1 - 1e-4)) > 0.998  # the same pixels count as covered
    diff = np.abs(ours[0].permute(1, 2, 0).numpy() - theirs)[inside]
    assert diff.mean() < 1e-3 and diff.max() < 0.02  # OpenCV rounds its weights to 1/32 px


def test_identity_is_the_plate_and_every_pixel_is_covered(plate):
    image = image_from_host(plate)
    out, covered = warp_perspective(image, torch.eye(3), SIZE)
    assert torch.allclose(out, image, atol=1e-3) and bool(covered.all())  # float32 grid: ~1e-4 px


def test_uncovered_areas_come_from_the_frame(plate):
    shift = torch.tensor([[1.0, 0, 50], [0, 1, 0], [0, 0, 1]])  # the plate moves 50 px right
    plate_t, frame = image_from_host(plate), torch.full((1, 3, SIZE[1], SIZE[0]), 0.5)
    out = run_node(Warp, {"plate": plate_t, "frame": frame, "matrix": shift})
    assert torch.equal(out["image"][..., :50], frame[..., :50])
    assert torch.allclose(out["image"][..., 50:], plate_t[..., :-50], atol=1e-3)
    assert out["covered"][..., :50].sum() == 0 and bool((out["covered"][..., 51:] == 1).all())
    black = run_node(Warp, {"plate": plate_t, "frame": frame, "matrix": shift}, {"fill": "black"})
    assert black["image"][..., :49].abs().max() == 0


def test_batch_half_precision_and_bad_matrix(plate):
    plate_t = image_from_host(plate).half().expand(2, -1, -1, -1)
    mats = torch.stack([torch.eye(3), torch.tensor([[1.0, 0, 3], [0, 1, -2], [0, 0, 1]])])
    out, _ = warp_perspective(plate_t, mats, SIZE)
    assert out.dtype == torch.float16 and out.shape == (2, 3, SIZE[1], SIZE[0])
    assert torch.allclose(out[1, :, :-2, 3:].float(), plate_t[1, :, 2:, :-3].float(), atol=2e-3)
    assert torch.allclose(out[0].float(), plate_t[0].float(), atol=2e-3)
    with pytest.raises(NodeError, match=r"expected a homography \(3, 3\)"):
        warp_perspective(plate_t, torch.eye(4), SIZE)
