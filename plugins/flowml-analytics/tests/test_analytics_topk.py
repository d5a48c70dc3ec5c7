"""classify.topk: probability is softmax x 100, labels by line, one record per row."""

from __future__ import annotations

import math

import pytest
import torch

from flowml.testing import run_node
from flowml_analytics.topk import TopK


def test_top_classes_with_labels(tmp_path):
    (tmp_path / "labels.txt").write_text("cat\ndog\nbird\n\n")
    logits = torch.tensor([[0.0, 2.0, 1.0]])
    out = run_node(TopK, {"logits": logits}, {"k": 2, "labels": "labels.txt"}, graph_dir=tmp_path)["metadata"]
    e = [math.exp(v) for v in (0.0, 2.0, 1.0)]
    p = [100 * v / sum(e) for v in e]
    assert out["predicted_class"] == "dog" and out["class_index"] == 1
    assert out["probability"] == pytest.approx(p[1], rel=1e-6)
    assert [t["class"] for t in out["top"]] == ["dog", "bird"]
    assert out["top"][1]["probability"] == pytest.approx(p[2], rel=1e-6)


def test_without_labels_a_batch_gives_one_record_per_row():
    logits = torch.tensor([[5.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 9.0]])
    out = run_node(TopK, {"logits": logits}, {"k": 10})["metadata"]
    assert [r["predicted_class"] for r in out] == ["0", "3"]
    assert all(len(r["top"]) == 4 for r in out)  # k is capped at the number of classes
    assert sum(t["probability"] for t in out[0]["top"]) == pytest.approx(100.0)


def test_bad_logits_and_missing_labels_say_so(tmp_path):
    with pytest.raises(Exception, match=r"logits must be a \(B, K\) or \(K,\) tensor, got \(1, 2, 3\)"):
        run_node(TopK, {"logits": torch.zeros(1, 2, 3)})
    with pytest.raises(Exception, match="labels file not found"):
        run_node(TopK, {"logits": torch.zeros(1, 2)}, {"labels": "nope.txt"}, graph_dir=tmp_path)
    assert TopK.metadata_keys(TopK.Params()) >= {"predicted_class", "probability"}
