"""``classify.join``: a secondary classifier's (K, C) logits back to the tracks they came from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flowml
from flowml import JSON, TENSOR, Field, Input, Node, NodeError, Output


KEYS = frozenset({"tracker_id", "class", "class_id", "probability"})


class ClassifyJoin(Node):
    """Per-track ``{tracker_id, class, class_id, probability}`` from a classifier's logits.

    ``logits`` (K, C) (a ``torch.model`` run on ``crop.square``'s crops; delivered on the
    host) and ``ids`` (``crop.square``'s K ids, same order) -> ``classes``: a list of K dicts
    in that order, ``probability`` = softmax x 100 of the best class (EDGEMATRIX's
    percentages; 0-100). Names come from ``labels`` (a list) or ``labels_file`` (one name a
    line, relative to the graph file); without them the class is its index as a string.
    """

    type_name = "classify.join"
    inputs = (Input("logits", TENSOR, "(K, C) classifier outputs", host=True),
              Input("ids", JSON, "K tracker ids, in the same order"))
    outputs = (Output("classes", JSON, "list of {tracker_id, class, class_id, probability}"),)
    blocking = False

    class Params(flowml.Params):
        labels: list[str] = Field([], description="class names, in the classifier's order")
        labels_file: str | None = Field(None, file="input", description="a text file, one class name a line")

    @classmethod
    def metadata_keys(cls, params: flowml.Params) -> frozenset[str]:
        """The keys of each dict on ``classes``, for rules to name (``rules.match``'s ``extra``)."""
        return KEYS

    def setup(self, ctx: flowml.NodeContext) -> None:
        self.names = self._names(self.params)

    def on_params(self, old: flowml.Params, new: flowml.Params) -> None:
        self.names = self._names(new)

    def _names(self, p: flowml.Params) -> list[str]:
        if p.labels_file is None:  # type: ignore[attr-defined]
            return list(p.labels)  # type: ignore[attr-defined]
        path = self.ctx.resolve(p.labels_file)  # type: ignore[attr-defined]
        if not Path(path).is_file():
            raise NodeError(f"classify.join: labels_file {p.labels_file} not found ({path})")  # type: ignore[attr-defined]
        return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]

    def process(self, logits: Any, ids: Any) -> list[dict[str, Any]]:
        import torch

        if logits.ndim == 4 and logits.shape[-2:] == (1, 1):
            logits = logits.flatten(1)
        if logits.ndim != 2 or logits.shape[0] != len(ids):
            raise NodeError(f"classify.join: logits must be (K, C) with K = {len(ids)} ids, "
                            f"got {tuple(logits.shape)}")
        if self.names and logits.shape[0] and logits.shape[1] != len(self.names):
            raise NodeError(f"classify.join: the classifier gives {logits.shape[1]} classes, "
                            f"labels name {len(self.names)}")
        prob, best = torch.softmax(logits.float(), dim=1).max(dim=1) if logits.shape[0] else (
            torch.zeros(0), torch.zeros(0, dtype=torch.int64))
        return [{"tracker_id": int(i), "class": self.names[c] if self.names else str(c),
                 "class_id": c, "probability": round(100.0 * p, 3)}
                for i, c, p in zip(ids, best.tolist(), prob.tolist())]
