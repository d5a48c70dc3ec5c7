"""crop.square against EMPyCustom's per-object square crop, written out plainly with PIL."""

import numpy as np
import pytest
import torch
from PIL import Image

from flowml.testing import run_node
from flowml_track import detections
from flowml_track.crops import CropSquare, square_boxes

W, H = 160, 120


def oracle_box(box, width, height, margin):
    """One object, the straightforward way: widen the shorter side by half the difference on
    each side, push out by the margin, clamp to the frame; PIL.Image.crop then rounds."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    if w > h:
        y1, y2 = y1 - (w - h) / 2, y2 + (w - h) / 2
    else:
        x1, x2 = x1 - (h - w) / 2, x2 + (h - w) / 2
    m = margin * max(w, h)
    x1, y1, x2, y2 = max(0, x1 - m), max(0, y1 - m), min(width, x2 + m), min(height, y2 + m)
    return tuple(round(v) for v in (x1, y1, x2, y2))


def oracle_crops(frame, boxes, size, margin, mean, std):
    """EMPyCustom's loop: per object a PIL crop, a resize, to tensor, normalise."""
    pil = Image.fromarray(frame)
    out = []
    for box in boxes:
        piece = pil.crop(oracle_box(box, W, H, margin)).resize((size, size), Image.BILINEAR)
        t = torch.from_numpy(np.asarray(piece, np.float32) / 255).permute(2, 0, 1)
        out.append((t - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None])
    return torch.stack(out)


def random_boxes(rng, n):
    x1, y1 = rng.uniform(-10, W - 5, n), rng.uniform(-10, H - 5, n)
    w, h = rng.uniform(2, 70, n), rng.uniform(2, 70, n)
    return np.stack([x1, y1, x1 + w, y1 + h], 1).astype(np.float32)


@pytest.mark.parametrize("margin", [0.0, 0.1, 0.5])
def test_square_boxes_match_the_per_object_formula(margin):
    boxes = random_boxes(np.random.default_rng(1), 400)
    got = square_boxes(torch.from_numpy(boxes).double(), W, H, margin).numpy()
    want = np.array([oracle_box(b.astype(np.float64), W, H, margin) for b in boxes], np.float64)
    inside = (want[:, 2] > want[:, 0]) & (want[:, 3] > want[:, 1])  # boxes not wholly off-frame
    assert inside.sum() > 350
    np.testing.assert_array_equal(got[inside], want[inside])
    # an unclamped box is square, centred where the object is
    free = inside & (want[:, 0] > 0) & (want[:, 1] > 0) & (want[:, 2] < W) & (want[:, 3] < H)
    sides = got[free, 2:] - got[free, :2]
    assert free.sum() > 20 and np.abs(sides[:, 0] - sides[:, 1]).max() <= 1


def smooth_frame():
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    rgb = np.stack([0.5 + 0.4 * np.sin(xx / 23), 0.5 + 0.4 * np.cos(yy / 19), (xx + yy) / (W + H)], -1)
    return (rgb * 255).round().astype(np.uint8)


def test_crops_equal_the_pil_loop_and_ids_follow():
    frame = smooth_frame()
    boxes = np.array([[10, 20, 40, 35], [100, 60, 118, 110], [140, 90, 175, 130], [0, 0, 8, 8]], np.float32)
    image = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    out = run_node(CropSquare, {"image": image, "detections": detections.make(boxes, tracker_id=[5, 9, 2, 11])},
                   {"size": 24, "margin": 0.1, "mean": mean, "std": std}, check=True)
    assert out["crops"].shape == (4, 3, 24, 24) and out["ids"] == [5, 9, 2, 11]
    want = oracle_crops(frame, boxes, 24, 0.1, mean, std)
    err = (out["crops"] - want).abs() * torch.tensor(std)[:, None, None]  # in [0, 1] pixel units
    assert err.mean() < 0.002 and err.max() < 0.01, (err.mean(), err.max())  # measured 0.0011, 0.0049


def test_no_objects_give_an_empty_batch():
    out = run_node(CropSquare, {"image": torch.rand(1, 3, H, W), "detections": detections.empty()}, {"size": 16})
    assert out["crops"].shape == (0, 3, 16, 16) and out["ids"] == [] and out["boxes"].shape == (0, 4)


def test_untracked_rows_are_numbered():
    d = detections.make([[1, 1, 5, 9], [20, 20, 30, 30]])
    assert run_node(CropSquare, {"image": torch.rand(1, 3, H, W), "detections": d}, {"size": 8})["ids"] == [0, 1]
