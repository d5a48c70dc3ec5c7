"""Tracking scored with Roboflow ``trackers``' own evaluation code (``trackers.eval``, which
follows TrackEval's matching): CLEAR (MOTA, IDSW) and Identity (IDF1) metrics."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterable

from .synth import write_mot


def score(truth: Iterable[tuple[int, list[dict]]], tracked: Iterable[tuple[int, list[dict]]],
          threshold: float = 0.5) -> dict[str, float]:
    """``truth`` and ``tracked``: (frame from 0, [{id, box: xyxy}]) pairs -> ``{MOTA, IDF1,
    IDSW, MOTP, recall, precision, gt_tracks}`` (MOTA, IDF1 as fractions, 1 = perfect), by
    ``trackers.eval.evaluate_mot_sequence`` on MOT files written from both."""
    from trackers.eval import evaluate_mot_sequence

    with tempfile.TemporaryDirectory() as tmp:
        gt = write_mot(Path(tmp) / "gt.txt", truth, gt=True)
        tr = write_mot(Path(tmp) / "tracker.txt", tracked)
        r = evaluate_mot_sequence(gt, tr, metrics=["CLEAR", "Identity"], threshold=threshold)
    return {"MOTA": float(r.CLEAR.MOTA), "IDF1": float(r.Identity.IDF1), "IDSW": int(r.CLEAR.IDSW),
            "MOTP": float(r.CLEAR.MOTP), "recall": float(r.CLEAR.CLR_Re),
            "precision": float(r.CLEAR.CLR_Pr), "frag": int(r.CLEAR.Frag)}
