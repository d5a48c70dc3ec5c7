"""``cv.homography``: the plate-to-frame homography from image features, on the host."""

from __future__ import annotations

import time
from typing import Any, Literal

from flowml.lazy import lazy_import
np = lazy_import("numpy")
torch = lazy_import("torch")

import flowml
from flowml import IMAGE, JSON, MATRIX, SCALAR, Field, Input, Node, NodeError, Output

from .check import AlignmentCheck
from .estimate import CornerSmoother, Estimate, Method, implausible
from .features import Detector, FeatureKind
from .job import ChildMatcher, Job, Matcher


class Homography(Node):
    """Estimate the homography that maps the plate onto the live frame, from image features.

    ``plate`` and ``frame`` arrive as ``(B, H, W, C)`` uint8 host frames (the scheduler
    converts and downloads them asynchronously); the first image of the batch is used. Both
    are turned grey and scaled by ``scale``; ``features`` (ORB with Hamming distances, SIFT,
    or AKAZE) are matched with Lowe's ratio test, and the homography is fitted robustly
    (``magsac``: OpenCV's USAC MAGSAC++, or ``ransac``), then polished by least squares on its
    inliers. The plate's features are kept while the plate does not change.

    Outputs: ``matrix`` ``(3, 3)`` float32 host tensor (pinned on a CUDA graph, so moving it to
    the GPU never waits), plate pixels -> frame pixels (feed it to ``cv.warp``); ``quality`` a
    dict (ok, inliers, matches, error_px, ms, frames_since_good, status, estimated, residual;
    ``output.osc`` sends it as one message per key); ``inliers`` and ``error_px`` as
    scalars; ``status`` a line of text. When an estimate fails (too few inliers, too large an
    error, an implausible warp) the last good matrix (identity before the first) is kept and
    ``status`` says so. Successive estimates are smoothed through the plate's corners
    (``smoothing``), except when the camera clearly moved (``snap_px``).

    Estimation takes tens of milliseconds of CPU (ORB ~35 ms at 1080p, scale 0.5, on 16
    cores), so the node is ``blocking`` (it runs on its own worker thread) and meant to be used
    with ``hold: true``: in live mode it then runs asynchronously, as often as it can, and the
    graph goes on at full rate with its last matrix (``every: N`` spaces the calls out).
    ``recheck: N`` estimates on every Nth call only, and checks the calls between quickly (the
    plate warped by the current matrix against the frame at 240 px wide, ``check.py``): when
    that residual rises by ``recheck_rise`` (the camera moved), it estimates at once.
    ``quality`` says whether a call ``estimated`` and gives the check's ``residual``.
    OpenCV's own thread pool is held to ``threads`` (2), so that estimation leaves the
    graph's own threads their cores; ``isolate: true`` estimates in a child process.
    Offline (files, tests) it runs on every frame and the output is deterministic::

        align: {type: cv.homography, inputs: {plate: plate/image, frame: camera/image}, hold: true}
        aligned: {type: cv.warp, inputs: {plate: plate/image, frame: camera/image, matrix: align/matrix}}
    """

    type_name = "cv.homography"
    blocking = True
    inputs = (
        Input("plate", IMAGE, "the clean background plate", uint8=True),
        Input("frame", IMAGE, "the live frame the plate is aligned to", uint8=True),
    )
    outputs = (
        Output("matrix", MATRIX, "(3, 3) float32 host tensor: plate pixels -> frame pixels"),
        Output("quality", JSON, "{ok, inliers, matches, error_px, ms, frames_since_good, status, estimated, residual}"),
        Output("inliers", SCALAR, "inliers of the last estimate (int)"),
        Output("error_px", SCALAR, "mean reprojection error of its inliers, full-size pixels"),
        Output("status", JSON, "'ok', or why the last good matrix is kept (a string)"),
    )

    class Params(flowml.Params):
        features: FeatureKind = Field("orb", description="orb (fast), sift (most accurate), akaze")
        max_features: int = Field(3000, ge=50, le=50000, description="strongest keypoints kept per image")
        scale: float = Field(0.5, gt=0.05, le=1.0, description="features are found on a grey copy this much smaller")
        ratio: float = Field(0.8, gt=0.0, le=1.0, description="Lowe's ratio test: best / second-best distance below this")
        method: Method = Field("magsac", description="robust fit: magsac (USAC MAGSAC++) or ransac")
        threshold_px: float = Field(2.0, gt=0.0, le=50.0, description="inlier distance, full-size pixels")
        min_inliers: int = Field(30, ge=4, description="fewer inliers: keep the last good matrix")
        max_error_px: float = Field(1.5, gt=0.0, description="larger mean inlier error: keep the last good matrix")
        smoothing: float = Field(0.0, ge=0.0, le=0.99, description="0: each estimate as it is; 0.9: heavy smoothing")
        snap_px: float = Field(8.0, gt=0.0, description="a corner moving further than this skips the smoothing")
        threads: int = Field(2, ge=0, le=256, description=(
            "OpenCV's worker threads (a process-wide setting); few, so the graph's own threads "
            "keep their cores; 0: OpenCV's default (all cores)"))
        recheck: int = Field(1, ge=1, le=100000, description=(
            "1: estimate on every call; N: estimate every Nth call while the alignment holds, and "
            "at once when the quick check on the calls between says it no longer does"))
        recheck_rise: float = Field(1.5, gt=1.0, le=100.0, description=(
            "the quick check fails when its residual exceeds this times its value at the last estimate"))
        isolate: bool = Field(False, description=(
            "estimate in a child process, off the GIL the GPU-launching thread needs (use it live "
            "on a GPU; starting the child takes about a second)"))

    def setup(self, ctx: flowml.NodeContext) -> None:
        self._make_detector()
        self.check = AlignmentCheck()
        self.since_estimate = 0
        self.last = Estimate(None, 0, reason="no estimate yet")
        self.matcher: Matcher | ChildMatcher = ChildMatcher() if self.params.isolate else Matcher()
        self.plate_key: np.ndarray | None = None
        self.smoother: CornerSmoother | None = None
        self.matrix = np.eye(3)
        self.since_good = 0
        self.ever_good = False

    def _make_detector(self) -> None:
        import cv2

        p = self.params
        cv2.setNumThreads(p.threads if p.threads > 0 else -1)  # -1: OpenCV's default
        try:
            self.detector = Detector(p.features, p.max_features, p.scale)
        except RuntimeError as exc:
            raise NodeError(str(exc)) from exc

    def on_params(self, old: flowml.Params, new: flowml.Params) -> None:
        if (old.features, old.max_features, old.scale, old.threads) != (  # type: ignore[attr-defined]
                new.features, new.max_features, new.scale, new.threads):  # type: ignore[attr-defined]
            self._make_detector()
            self.plate_key = None  # the plate's features are found again with the new detector
        if old.isolate != new.isolate:  # type: ignore[attr-defined]
            self.matcher.close() if isinstance(self.matcher, ChildMatcher) else None
            self.matcher = ChildMatcher() if new.isolate else Matcher()  # type: ignore[attr-defined]
            self.plate_key = None

    def teardown(self) -> None:
        if isinstance(getattr(self, "matcher", None), ChildMatcher):
            self.matcher.close()

    def process(self, plate: torch.Tensor, frame: torch.Tensor) -> dict[str, Any]:
        t0 = time.perf_counter()
        p = self.params
        plate_np, frame_np = _host_image(plate, "plate"), _host_image(frame, "frame")
        plate_size = (plate_np.shape[1], plate_np.shape[0])
        frame_size = (frame_np.shape[1], frame_np.shape[0])
        new_plate, frame_grey = self._new_plate(plate_np), self.detector.grey(frame_np)
        if new_plate is not None:
            self.check.plate(new_plate, plate_size)
        residual: float | None = None  # of the current matrix, once computed
        if (p.recheck > 1 and self.ever_good and self.since_good == 0 and new_plate is None
                and self.since_estimate < p.recheck - 1):  # between estimates: the check decides
            residual = self.check.residual(frame_grey, frame_size, self.matrix)
            if self.check.holds(residual, p.recheck_rise):
                self.since_estimate += 1
                return self._outputs(None, "ok", residual, t0)
        job = Job((p.features, p.max_features, p.scale, p.threads), new_plate,
                  plate_size, frame_grey, frame_size,
                  {"method": p.method, "threshold_px": p.threshold_px, "min_inliers": p.min_inliers,
                   "max_error_px": p.max_error_px, "ratio": p.ratio})
        try:
            est = self.matcher.run(job)
        except RuntimeError as exc:
            raise NodeError(f"estimation failed: {exc}") from exc
        if est.ok:
            why = implausible(est.matrix, plate_size, frame_size)
            if why:
                est = Estimate(None, est.matches, est.inliers, est.error_px, f"implausible warp: {why}")
        if est.ok:
            if self.smoother is None:
                self.smoother = CornerSmoother(plate_size)
            self.matrix = self.smoother.update(est.matrix, p.smoothing, p.snap_px)
            self.since_good, self.ever_good, status = 0, True, "ok"
            residual = self.check.estimated(frame_grey, frame_size, self.matrix)
        else:
            self.since_good += 1
            kept = "the last good matrix" if self.ever_good else "the identity (no good estimate yet)"
            status = f"kept {kept}: {est.reason}"
            if residual is None:
                residual = self.check.residual(frame_grey, frame_size, self.matrix)
        self.since_estimate, self.last = 0, est
        return self._outputs(est, status, residual, t0)

    def _outputs(self, est: Estimate | None, status: str, residual: float, t0: float) -> dict[str, Any]:
        """The node's outputs; ``est`` None: no estimate this call (the quick check held)."""
        last = est or self.last
        quality = {"ok": last.ok, "inliers": last.inliers, "matches": last.matches,
                   "error_px": _finite(last.error_px), "ms": round(1000 * (time.perf_counter() - t0), 2),
                   "frames_since_good": self.since_good, "status": status,
                   "estimated": est is not None, "residual": _finite(residual)}
        matrix = torch.from_numpy(self.matrix.astype(np.float32))
        if self.ctx.device.startswith("cuda"):  # pinned: its upload to the warp's GPU never waits
            matrix = matrix.pin_memory()
        return {"matrix": matrix, "quality": quality,
                "inliers": last.inliers, "error_px": quality["error_px"], "status": status}

    def _new_plate(self, plate: np.ndarray) -> np.ndarray | None:
        """The plate's grey copy when it changed (its features are then found again), else None."""
        grey = self.detector.grey(plate)
        if self.plate_key is None or not np.array_equal(grey, self.plate_key):
            self.plate_key, self.smoother = grey, None
            return grey
        return None


def _host_image(value: torch.Tensor, port: str) -> np.ndarray:
    """``(B, H, W, C)`` uint8 host tensor (as the scheduler delivers a uint8 port) -> ``(H, W, C)``."""
    if value.ndim != 4 or value.dtype != torch.uint8:
        raise NodeError(f"input {port!r}: expected an image, got {tuple(value.shape)} {value.dtype}")
    return value[0].numpy()


def _finite(x: float) -> float | None:
    return round(float(x), 4) if np.isfinite(x) else None
