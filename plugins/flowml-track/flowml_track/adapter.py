"""``detect.from_tensor``: any box-predicting ``torch.model``'s output as detections."""

from __future__ import annotations

from typing import Any, Mapping

import flowml
from flowml import ANY, DETECTIONS, Field, Input, Node, NodeError, Output

from . import detections

ROWS_HINT = "an (N, 6) tensor of x1, y1, x2, y2, score, label, or a dict with boxes/scores/labels"


class FromTensor(Node):
    """The documented adapter from a detector model's output to ``detections``.

    Accepted ``value`` (a ``torch.model`` output port typed ``:any`` or ``:tensor``):

    - an ``(N, 6)`` tensor (or ``(1, N, 6)``) of rows ``x1, y1, x2, y2, score, label``
      (YOLO-style exports after NMS), or ``(N, 5)`` without the label;
    - a torchvision-detection-style dict ``{boxes (N, 4), scores (N,), labels (N,)}``, or a
      list of such dicts (one per image: the first is used).

    Rows scoring below ``min_score`` are dropped; ``scale`` multiplies the box coordinates
    (a model run at a smaller ``size`` than the frame: frame width / model width), and
    ``max_detections`` keeps the best ones. The boxes stay on the model's device.
    """

    type_name = "detect.from_tensor"
    inputs = (Input("value", ANY, ROWS_HINT),)
    outputs = (Output("detections", DETECTIONS, "boxes (N, 4), scores (N,), labels (N,)"),)

    class Params(flowml.Params):
        min_score: float = Field(0.5, ge=0.0, description="rows scoring less are dropped")
        scale: float = Field(1.0, gt=0.0, description="box coordinates are multiplied by this")
        max_detections: int = Field(300, ge=1, le=100000, description="the best this many are kept")

    def process(self, value: Any) -> dict[str, Any]:
        import torch

        boxes, scores, labels = _split(value)
        keep = scores >= self.params.min_score
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        if scores.shape[0] > self.params.max_detections:
            top = torch.topk(scores, self.params.max_detections).indices
            boxes, scores, labels = boxes[top], scores[top], labels[top]
        return {"detections": {"boxes": boxes.float() * self.params.scale,
                               "scores": scores.float(), "labels": labels.long()}}


def _split(value: Any) -> tuple[Any, Any, Any]:
    """(boxes (N, 4), scores (N,), labels (N,)) tensors of what a detector returned."""
    import torch

    if isinstance(value, (list, tuple)) and value and isinstance(value[0], Mapping):
        value = value[0]
    if isinstance(value, Mapping):
        missing = {"boxes", "scores"} - set(value)
        if missing:
            raise NodeError(f"detect.from_tensor: the dict has keys {sorted(value)}, missing "
                            f"{sorted(missing)}; expected {ROWS_HINT}")
        boxes = value["boxes"].reshape(-1, 4)
        scores = value["scores"].reshape(-1)
        labels = value.get("labels")
        labels = torch.zeros_like(scores, dtype=torch.int64) if labels is None else labels.reshape(-1)
        return boxes, scores, labels
    if isinstance(value, torch.Tensor):
        rows = value[0] if value.ndim == 3 and value.shape[0] == 1 else value
        if rows.ndim == 2 and rows.shape[1] in (5, 6):
            labels = rows[:, 5].round().long() if rows.shape[1] == 6 else torch.zeros(
                rows.shape[0], dtype=torch.int64, device=rows.device)
            return rows[:, :4], rows[:, 4], labels
        raise NodeError(f"detect.from_tensor: got a tensor of shape {tuple(value.shape)}; expected {ROWS_HINT}")
    raise NodeError(f"detect.from_tensor: got {type(value).__name__}; expected {ROWS_HINT}")
