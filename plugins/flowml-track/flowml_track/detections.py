"""The DETECTIONS value (``flowml.ports``): building, checking and converting it.

A detections value is a dict of torch tensors with one row per object::

    boxes  (N, 4) float32  x1, y1, x2, y2 in pixels of the frame
    scores (N,)   float32
    labels (N,)   int64
    tracker_id (N,) int64  (added by ``track``)

Producers here put them on the host (the detectors and the tracker work there); consumers
(``crop.square``, ``overlay``) move the boxes to the image's device themselves.
"""

from __future__ import annotations

from typing import Any, Mapping

from flowml.lazy import lazy_import
np = lazy_import("numpy")

from flowml import NodeError
from flowml.lazy import lazy_import

torch = lazy_import("torch")


def make(boxes: Any, scores: Any = None, labels: Any = None, **extra: Any) -> dict[str, Any]:
    """A detections dict from arrays or tensors; ``scores`` default to 1, ``labels`` to 0."""
    b = torch.as_tensor(np.asarray(boxes, dtype=np.float32) if not isinstance(boxes, torch.Tensor)
                        else boxes, dtype=torch.float32).reshape(-1, 4)
    n = b.shape[0]
    s = torch.ones(n) if scores is None else torch.as_tensor(scores, dtype=torch.float32).reshape(n)
    lab = torch.zeros(n, dtype=torch.int64) if labels is None else torch.as_tensor(
        labels, dtype=torch.int64).reshape(n)
    out = {"boxes": b, "scores": s, "labels": lab}
    for key, value in extra.items():
        out[key] = torch.as_tensor(value).reshape(n)
    return out


def empty() -> dict[str, Any]:
    """No objects: ``boxes`` (0, 4)."""
    return make(np.zeros((0, 4), np.float32))


def check(value: Any, node: str, port: str = "detections") -> int:
    """The number of rows of a detections value; NodeError naming what is wrong."""
    if not isinstance(value, Mapping) or "boxes" not in value:
        raise NodeError(f"{node}: input {port!r} must be detections (a dict with boxes (N, 4), "
                        f"scores (N,), labels (N,)), got {type(value).__name__}")
    boxes = value["boxes"]
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise NodeError(f"{node}: input {port!r}: boxes must be (N, 4) x1, y1, x2, y2, "
                        f"got {tuple(boxes.shape)}")
    return int(boxes.shape[0])


def to_numpy(value: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Host numpy copies of every tensor in a detections dict."""
    return {k: (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v))
            for k, v in value.items()}
