"""``track.objects``: multi-object tracking with Roboflow's ``trackers`` (ByteTrack, SORT, OC-SORT)."""

from __future__ import annotations

import inspect
import warnings
from typing import Any, Literal

from flowml.lazy import lazy_import
np = lazy_import("numpy")

import flowml
from flowml import DETECTIONS, JSON, Field, Input, Node, NodeError, Output

from .lifetimes import KEYS, Lifetimes

TRACKERS = {"bytetrack": "ByteTrackTracker", "sort": "SORTTracker", "ocsort": "OCSORTTracker"}
INSTALL = ("Roboflow's trackers package is missing: `pip install --no-deps 'trackers>=2.6,<2.7'` "
           "(its opencv-python dependency would replace flowml's OpenCV; scripts/setup.sh does this)")


class Track(Node):
    """Track ids for detections, and per-track times for rules.

    ``detections`` -> the chosen tracker of Roboflow's ``trackers`` (Kalman filter + IoU
    association; ByteTrack also re-associates low-score boxes) -> ``detections`` with
    ``tracker_id (N,)`` int64 added (only confirmed tracks, unless ``keep_unconfirmed``: then
    unconfirmed rows carry -1). The frame's time ``t`` (its pts) is passed to the tracker
    (``timestamps``), so dropped frames keep the motion model right.

    ``tracks`` (JSON): one dict per track the tracker holds (matched now or coasting), with
    ``tracker_id``, ``first_seen_time`` and ``last_seen_time`` (seconds, the times of its first
    and latest matched frame), ``tracking_duration_in_seconds`` (last - first) and
    ``tracking_ended_time``: "N/A" while it lives; a track the tracker dropped (unmatched for
    longer than ``lost_track_buffer``) appears once more with the time it was dropped.

    Changing a tracker param live starts a new tracker: every current track ends then.
    """

    type_name = "track.objects"
    inputs = (Input("detections", DETECTIONS, "boxes (N, 4), scores (N,), labels (N,)"),)
    outputs = (Output("detections", DETECTIONS, "the confirmed rows with tracker_id (N,) added"),
               Output("tracks", JSON, f"list of {{{', '.join(KEYS)}}}"))
    blocking = True  # host numpy work (Hungarian matching); off the launching thread

    class Params(flowml.Params):
        tracker: Literal["bytetrack", "sort", "ocsort"] = Field("bytetrack", description="the algorithm")
        lost_track_buffer: int = Field(30, ge=0, le=10000, description=(
            "a track unmatched this long (in 30 fps frames, scaled by frame_rate) is dropped"))
        frame_rate: float = Field(30.0, gt=0, le=1000, description="the video's frame rate")
        track_activation_threshold: float = Field(0.25, ge=0.0, le=1.0, description=(
            "bytetrack, sort: least score that starts a track"))
        high_conf_det_threshold: float = Field(0.6, ge=0.0, le=1.0, description=(
            "bytetrack, ocsort: scores above are matched first, the rest in a second pass"))
        minimum_consecutive_frames: int = Field(2, ge=1, le=1000, description=(
            "frames a new track must be matched before it gets an id"))
        minimum_iou_threshold: float = Field(0.1, ge=0.0, le=1.0, description="least IoU that associates a box to a track")
        keep_unconfirmed: bool = Field(False, description="also output unconfirmed rows (tracker_id -1)")
        timestamps: bool = Field(True, description="give the tracker each frame's time (else one step per call)")

    @classmethod
    def unavailable(cls) -> str | None:
        import importlib.util

        return None if importlib.util.find_spec("trackers") else INSTALL

    @classmethod
    def metadata_keys(cls, params: flowml.Params) -> frozenset[str]:
        """The keys of each dict on ``tracks``, for rules to name."""
        return frozenset(KEYS)

    def setup(self, ctx: flowml.NodeContext) -> None:
        self.lifetimes = Lifetimes()
        self.tracker = make_tracker(self.params)
        self.restarted = False

    def on_params(self, old: flowml.Params, new: flowml.Params) -> None:
        if any(getattr(old, k) != getattr(new, k) for k in type(new).model_fields
               if k not in ("keep_unconfirmed", "timestamps")):
            self.tracker = make_tracker(new)
            self.restarted = True

    def process(self, detections: Any) -> dict[str, Any]:
        import supervision as sv
        import torch

        from . import detections as dets

        t = float(self.ctx.tick.t)
        if self.restarted:
            self.lifetimes.end_all(t)
            self.restarted = False
        dets.check(detections, "track")
        d = dets.to_numpy(detections)
        given = sv.Detections(xyxy=d["boxes"].astype(np.float32).reshape(-1, 4),
                              confidence=d["scores"].astype(np.float32),
                              class_id=d["labels"].astype(int))
        with warnings.catch_warnings():  # a duplicate time (a repeated frame) is handled: no predict
            warnings.filterwarnings("ignore", "duplicate timestamp", UserWarning)
            out = self.tracker.update(given, timestamp=t if self.params.timestamps else None)
        ids = np.asarray(out.tracker_id if out.tracker_id is not None else np.full(len(out), -1), np.int64)
        keep = np.ones(len(out), bool) if self.params.keep_unconfirmed else ids >= 0
        alive = [int(i) for i in self.tracker.tracked_objects.tracker_id]
        self.lifetimes.update(t, [int(i) for i in ids[ids >= 0]], alive)
        rows = dets.make(out.xyxy[keep], out.confidence[keep] if out.confidence is not None else None,
                         out.class_id[keep] if out.class_id is not None else None,
                         tracker_id=torch.from_numpy(ids[keep]))
        return {"detections": rows, "tracks": self.lifetimes.report()}

    def teardown(self) -> None:
        self.tracker = None


def make_tracker(p: flowml.Params) -> Any:
    """A tracker of ``trackers`` with the node's params that its class takes."""
    try:
        import trackers
    except ImportError as exc:
        raise NodeError(INSTALL) from exc
    cls = getattr(trackers, TRACKERS[p.tracker])
    takes = inspect.signature(cls.__init__).parameters
    kw = {k: getattr(p, k) for k in type(p).model_fields if k in takes}
    try:
        return cls(**kw)
    except ValueError as exc:
        raise NodeError(f"track: {p.tracker}: {exc}") from exc
