"""classify.join (logits back to track ids) and overlay.tracks (both renderers)."""

import numpy as np
import pytest
import torch

from flowml import NodeError
from flowml.testing import run_node
from flowml_track import detections, draw
from flowml_track.join import ClassifyJoin
from flowml_track.overlay import Overlay


def test_join_gives_each_track_its_class_and_percent(tmp_path):
    logits = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    (tmp_path / "labels.txt").write_text("square\ndisc\n")
    out = run_node(ClassifyJoin, {"logits": logits, "ids": [7, 3, 9]}, {"labels_file": "labels.txt"},
                   graph_dir=tmp_path)["classes"]
    assert [(c["tracker_id"], c["class"], c["class_id"]) for c in out] == [(7, "square", 0), (3, "disc", 1), (9, "square", 0)]
    soft = torch.softmax(logits, 1).max(1).values * 100
    assert [c["probability"] for c in out] == pytest.approx(soft.tolist(), abs=1e-3)
    assert run_node(ClassifyJoin, {"logits": torch.zeros(0, 2), "ids": []})["classes"] == []
    with pytest.raises(NodeError, match="K = 2"):
        run_node(ClassifyJoin, {"logits": logits, "ids": [1, 2]})
    with pytest.raises(NodeError, match="labels name 3"):
        run_node(ClassifyJoin, {"logits": logits, "ids": [1, 2, 3]}, {"labels": ["a", "b", "c"]})


BOXES = [[10, 12, 50, 40], [70, 50, 110, 100]]


def tracked():
    return detections.make(BOXES, [0.9, 0.8], tracker_id=[4, 11])


CLASSES = [{"tracker_id": 4, "class": "disc", "probability": 91.0},
           {"tracker_id": 11, "class": "square", "probability": 55.0}]


@pytest.mark.parametrize("renderer", ["supervision", "torch"])
def test_overlay_outlines_each_track_in_its_colour(renderer):
    image = torch.full((1, 3, 120, 160), 0.5)
    out = run_node(Overlay, {"image": image, "detections": tracked(), "classes": CLASSES},
                   {"renderer": renderer, "thickness": 2}, check=True)["image"]
    assert out.shape == image.shape and out.dtype == image.dtype
    colours = (draw.palette([4, 11], "cpu") * 255).round()
    for (x1, y1, x2, y2), colour in zip(BOXES, colours):
        right, bottom = out[0, :, (y1 + y2) // 2, x2 - 1] * 255, out[0, :, y2 - 1, (x1 + x2) // 2] * 255
        assert torch.allclose(right, colour, atol=2) and torch.allclose(bottom, colour, atol=2), (right, colour)
        centre = out[0, :, (y1 + y2) // 2, (x1 + x2) // 2]
        assert torch.allclose(centre, torch.full((3,), 0.5), atol=1 / 255)  # inside untouched
    assert torch.allclose(out[0, :, 110:, 120:], image[0, :, 110:, 120:], atol=1 / 255)  # far from any mark
    assert not torch.equal(out[0, :, :10, :60], image[0, :, :10, :60])  # the class line


def test_overlay_without_detections_draws_only_the_line():
    image = torch.zeros(1, 3, 60, 80)
    out = run_node(Overlay, {"image": image}, {"renderer": "torch"})["image"]
    assert out[0, :, 20:, :].abs().max() == 0 and out.max() > 0.5


def test_torch_renderer_draws_text_glyphs():
    ink, gh, gw = draw.glyphs(0.4)
    assert ink.shape == (95, gh, gw) and ink[ord("#") - 32].sum() > 5 and ink[0].sum() == 0
    canvas = draw.Canvas(torch.zeros(1, 3, 30, 60))
    canvas.text(torch.tensor([2.0]), torch.tensor([3.0]), ["#7"], torch.ones(1, 3), 0.4)
    img = canvas.image()[0, 0].numpy() > 0.5
    want = np.zeros_like(img)
    want[3:3 + gh, 2:2 + gw] = ink[ord("#") - 32]
    want[3:3 + gh, 2 + gw:2 + 2 * gw] = ink[ord("7") - 32]
    assert np.array_equal(img, want)
