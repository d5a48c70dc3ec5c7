"""``classify.topk``: a classifier's logits -> ``{predicted_class, probability, top}`` metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flowml.lazy import lazy_import
torch = lazy_import("torch")

import flowml
from flowml import JSON, TENSOR, Field, Input, Node, NodeError, Output

KEYS = frozenset({"predicted_class", "class_index", "probability", "top"})
FRAME_KEYS = frozenset({"frame", "t"})  # from video.clip's `frames`, when connected


def read_labels(path: Path, shown_as: str) -> list[str]:
    """One label per line (blank lines at the end ignored)."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise NodeError(f"labels file not found: {path} (labels: {shown_as}, relative to the graph file)") from None
    while lines and not lines[-1].strip():
        lines.pop()
    return [line.strip() for line in lines]


def top_classes(logits: torch.Tensor, k: int, labels: list[str] | None) -> list[dict[str, Any]]:
    """For each row of ``logits`` ``(B, K)``: the record of its top ``k`` classes.

    ``probability`` is ``100 * softmax(logits)`` of the class, in percent (0 to 100), as
    EDGEMATRIX's rules compare it (``probability >= 20``); ``predicted_class`` is the label
    of the top class (its index as a string without a labels file)."""
    probs = torch.softmax(logits.detach().float().reshape(logits.shape[0], -1), dim=1) * 100.0
    k = min(k, probs.shape[1])
    values, indices = probs.topk(k, dim=1)
    records = []
    for vals, idx in zip(values.tolist(), indices.tolist()):
        top = [{"class": _label(i, labels), "index": i, "probability": v} for v, i in zip(vals, idx)]
        records.append({"predicted_class": top[0]["class"], "class_index": top[0]["index"],
                        "probability": top[0]["probability"], "top": top})
    return records


def _label(index: int, labels: list[str] | None) -> str:
    return labels[index] if labels is not None and index < len(labels) else str(index)


class TopK(Node):
    """A classifier's logits ``(B, K)`` (or ``(K,)``) -> its top classes as JSON metadata.

    For one row: ``{predicted_class, class_index, probability, top: [{class, index,
    probability}, ...]}``; for B > 1 a list of them, one per row. ``probability`` is the
    softmax of the logits times 100: a percentage in [0, 100], summing to 100 over all K
    classes. Labels come from a text file, one per line (line n is class n); without one, or
    past its end, a class is named by its index. Runs on a worker thread: the logits arrive
    in host memory (the download waits there, never on the graph's thread).

    ``frames`` (optional; ``video.clip``'s ``frames``): one ``{frame, t}`` per row, added to
    that row's record, so that n clips classified in one tick (``input: frames``) are n
    records of their own frames, in order, and ``rules.match`` takes them one frame at a time.
    """

    type_name = "classify.topk"
    inputs = (Input("logits", TENSOR, "(B, K) or (K,) class scores", host=True),
              Input("frames", JSON, "[{frame, t}] one per row (video.clip's frames)", optional=True))
    outputs = (Output("metadata", JSON, "{predicted_class, class_index, probability, top[, frame, t]}"),)
    blocking = True

    class Params(flowml.Params):
        k: int = Field(5, ge=1, le=1000, description="how many classes in `top`")
        labels: str | None = Field(None, file="input", rebuild=True,
                                   description="text file, one label per line (line n: class n)")

    @classmethod
    def metadata_keys(cls, params: flowml.Params) -> frozenset[str]:
        return KEYS | FRAME_KEYS

    def setup(self, ctx: flowml.NodeContext) -> None:
        p = self.params.labels
        self.labels = read_labels(ctx.resolve(p), p) if p else None

    def process(self, logits: torch.Tensor, frames: Any = None) -> Any:
        if not isinstance(logits, torch.Tensor) or logits.ndim not in (1, 2) or logits.numel() == 0:
            got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise NodeError(f"logits must be a (B, K) or (K,) tensor, got {got}")
        rows = top_classes(logits if logits.ndim == 2 else logits[None], self.params.k, self.labels)
        if frames is not None:
            _add_frames(rows, frames)
        if self.labels is not None and logits.shape[-1] != len(self.labels) and not getattr(self, "_warned", False):
            self._warned = True
            self.log.warning("classify.topk: %d labels for %d classes", len(self.labels), logits.shape[-1])
        return rows[0] if len(rows) == 1 else rows


def _add_frames(rows: list[dict[str, Any]], frames: Any) -> None:
    """Each row's ``{frame, t}`` into its record (one for all rows: B streams of one frame)."""
    stamps = frames if isinstance(frames, list) else [frames]
    if len(stamps) == 1 and len(rows) > 1:
        stamps = stamps * len(rows)
    if len(stamps) != len(rows) or not all(isinstance(s, dict) for s in stamps):
        raise NodeError(f"frames must be one {{frame, t}} per row of logits ({len(rows)}), got {frames!r:.200}; "
                        "connect it to the video.clip that feeds the model")
    for row, stamp in zip(rows, stamps):
        row.update(stamp)
