"""Detectors on a real encoded file, and the adapter from a detector model's output."""

import numpy as np
import pytest
import torch

from flowml import NodeError
from flowml.testing import NodeHarness, run_node
from flowml_track.adapter import FromTensor
from flowml_track.background import BackgroundDetector
from flowml_track.hog import HogPeople

from track_helpers import FPS, decoded, detect_all, encoded_scene, ious, truth_boxes


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory):
    return encoded_scene(tmp_path_factory.mktemp("scene"))


@pytest.mark.parametrize("method, threshold", [("mog2", 24.0), ("knn", 400.0)])
def test_background_finds_the_moving_objects_of_an_h264_file(scene_file, method, threshold):
    scene, path = scene_file
    frames = decoded(path)
    assert len(frames) == scene.frames
    found = detect_all(frames, method=method, threshold=threshold)
    hits = total = false = 0
    for i in range(20, scene.frames):  # once every object has moved a little
        gt, boxes = truth_boxes(scene, i), found[i]["boxes"]
        hits += int((ious(gt, boxes) >= 0.5).sum())
        total += len(gt)
        false += int((ious(boxes, gt) < 0.3).sum())
        assert found[i]["scores"].shape == (len(boxes),) and found[i]["labels"].dtype == torch.int64
    assert total > 100 and hits / total > 0.9, (hits, total)
    assert false / total < 0.05, false


def test_nothing_moves_nothing_found_and_area_filter_applies(scene_file):
    scene, path = scene_file
    frames = decoded(path)
    still = [frames[0]] * 10  # the background alone (objects appear later)
    assert all(len(d["boxes"]) == 0 for d in detect_all(still))
    big = detect_all(frames[:40], min_area=5000.0)  # larger than any object
    assert all(len(d["boxes"]) == 0 for d in big)


def test_a_live_threshold_change_keeps_running(scene_file):
    scene, path = scene_file
    frames = decoded(path)[:30]
    with NodeHarness(BackgroundDetector, {}) as h:
        for i, f in enumerate(frames):
            if i == 15:
                h.set_params(method="knn", threshold=400.0, open_px=5, scale=0.5)
            out = h.process(image=f)
        assert out["mask"].shape == (1, 1, 60, 80)
        assert out["detections"]["boxes"].shape[1] == 4


def test_scale_finds_at_half_size_and_reports_full_frame_pixels(scene_file):
    scene, path = scene_file
    found = detect_all(decoded(path)[:40], scale=0.5, min_area=30.0)
    for i in (25, 39):
        gt = truth_boxes(scene, i)
        assert len(found[i]["boxes"]) == len(gt) and (ious(gt, found[i]["boxes"]) > 0.6).all()


def test_hog_people_runs_on_a_frame_and_scales_boxes_back():
    frame = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (1, 512, 384, 3), dtype=np.uint8))
    out = run_node(HogPeople, {"image": frame}, {"scale": 0.5, "min_score": -10.0, "hit_threshold": -4.0})
    boxes = out["detections"]["boxes"]
    assert boxes.ndim == 2 and boxes.shape[1] == 4 and len(boxes) > 0
    # found at half size, reported in the frame's pixels: 64x128 windows come back at least 128x256
    assert float((boxes[:, 3] - boxes[:, 1]).min()) >= 255 and float((boxes[:, 2] - boxes[:, 0]).min()) >= 127
    assert float(boxes[:, 2].max()) <= 384 + 2 * 8 / 0.5 and float(boxes[:, 3].max()) <= 512 + 2 * 8 / 0.5


def test_from_tensor_rows_and_dicts():
    rows = torch.tensor([[0, 0, 10, 10, 0.9, 3], [5, 5, 8, 8, 0.2, 1], [1, 2, 3, 4, 0.6, 0]])
    out = run_node(FromTensor, {"value": rows}, {"min_score": 0.5, "scale": 2.0})["detections"]
    assert out["boxes"].tolist() == [[0, 0, 20, 20], [2, 4, 6, 8]]
    assert out["labels"].tolist() == [3, 0] and out["scores"].tolist() == pytest.approx([0.9, 0.6])
    tv = [{"boxes": rows[:, :4], "scores": rows[:, 4], "labels": rows[:, 5].long()}]
    top = run_node(FromTensor, {"value": tv}, {"min_score": 0.0, "max_detections": 1})["detections"]
    assert top["labels"].tolist() == [3]
    with pytest.raises(NodeError, match=r"\(N, 6\)"):
        run_node(FromTensor, {"value": torch.zeros(4, 3)})
