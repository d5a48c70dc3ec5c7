"""Robust homography from matched points, its sanity checks, and temporal smoothing of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from flowml.lazy import lazy_import
np = lazy_import("numpy")

Method = Literal["magsac", "ransac"]
POLISH_ROUNDS = 3
POLISH_FACTOR = 2.5
"""After the robust fit, the homography is re-fitted by least squares on the matches within
``POLISH_FACTOR * threshold`` of it, ``POLISH_ROUNDS`` times. Plain RANSAC's model can rest on a
lucky minimal sample (corners ~1.7 px off at 1080p in tests); polishing brings both methods
to ~0.3 px."""


@dataclass(frozen=True)
class Estimate:
    """A fitted homography, or why there is none (``matrix`` None, ``reason`` says why)."""

    matrix: np.ndarray | None      # (3, 3) float64, plate pixels -> frame pixels
    matches: int
    inliers: int = 0
    error_px: float = float("nan")  # mean reprojection error of the inliers, full-size pixels
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.matrix is not None


def project(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``(N, 2)`` points through a 3x3 homography -> ``(N, 2)``."""
    p = np.c_[points, np.ones(len(points))] @ matrix.T
    return p[:, :2] / p[:, 2:3]


def corners(width: int, height: int) -> np.ndarray:
    """``(4, 2)`` the outermost pixel centres, clockwise from the top left."""
    return np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], np.float64)


def fit(plate_pts: np.ndarray, frame_pts: np.ndarray, *, method: Method, threshold_px: float,
        min_inliers: int, max_error_px: float, max_iters: int = 4000) -> Estimate:
    """Fit plate -> frame from matched points ``(M, 2)``, full-size pixels."""
    import cv2

    matches = len(plate_pts)
    if matches < max(4, min_inliers):
        return Estimate(None, matches, reason=f"{matches} matches, need {max(4, min_inliers)}")
    flag = cv2.USAC_MAGSAC if method == "magsac" else cv2.RANSAC
    h, mask = cv2.findHomography(plate_pts, frame_pts, flag, threshold_px,
                                 maxIters=max_iters, confidence=0.999)
    if h is None:
        return Estimate(None, matches, reason=f"no homography fits the {matches} matches")
    inlier = mask.ravel().astype(bool)
    for _ in range(POLISH_ROUNDS):
        err = np.linalg.norm(project(h, plate_pts) - frame_pts, axis=1)
        inlier = err < POLISH_FACTOR * threshold_px
        if inlier.sum() < 4:
            break
        refit, _ = cv2.findHomography(plate_pts[inlier], frame_pts[inlier], 0)
        if refit is None:
            break
        h = refit
    h = h / h[2, 2]
    err = np.linalg.norm(project(h, plate_pts) - frame_pts, axis=1)
    inlier = err < threshold_px
    n, mean_err = int(inlier.sum()), float(err[inlier].mean()) if inlier.any() else float("inf")
    if n < min_inliers:
        return Estimate(None, matches, n, mean_err, f"{n} inliers of {matches} matches, need {min_inliers}")
    if mean_err > max_error_px:
        return Estimate(None, matches, n, mean_err,
                        f"reprojection error {mean_err:.2f} px, more than {max_error_px} px")
    return Estimate(h, matches, n, mean_err)


def implausible(matrix: np.ndarray, plate_size: tuple[int, int], frame_size: tuple[int, int],
                max_area_ratio: float = 4.0) -> str:
    """Why a homography cannot be a camera shake or move (mirrored, folded, huge change of
    scale, plate off the frame), or "" when it is plausible."""
    if not np.all(np.isfinite(matrix)):
        return "not finite"
    quad = project(matrix, corners(*plate_size))
    edges = np.roll(quad, -1, axis=0) - quad
    nxt = np.roll(edges, -1, axis=0)
    turns = edges[:, 0] * nxt[:, 1] - edges[:, 1] * nxt[:, 0]  # z of each corner's cross product
    if not (np.all(turns > 0) or np.all(turns < 0)):
        return "the plate's corners fold over (not a convex quadrilateral)"
    if np.all(turns < 0):
        return "the plate is mirrored"
    area = 0.5 * abs(np.sum(quad[:, 0] * np.roll(quad[:, 1], -1) - np.roll(quad[:, 0], -1) * quad[:, 1]))
    ratio = area / (plate_size[0] * plate_size[1])
    if not 1 / max_area_ratio <= ratio <= max_area_ratio:
        return f"the plate's area changes {ratio:.2f}x"
    fw, fh = frame_size
    cx, cy = quad.mean(axis=0)
    if not (-fw / 2 <= cx <= 1.5 * fw and -fh / 2 <= cy <= 1.5 * fh):
        return "the plate's centre lands off the frame"
    return ""


class CornerSmoother:
    """Exponential smoothing of a homography through the plate's four corners in the frame
    (the entries of a 3x3 matrix are not a good space to average in; corner positions are).

    ``smoothing`` 0 takes each estimate as it is; 0.9 moves 10 % of the way per estimate.
    When an estimate's corners are more than ``snap_px`` away from the smoothed ones, it is
    taken at once: the camera moved, and lagging behind would misalign the plate.
    """

    def __init__(self, plate_size: tuple[int, int]):
        self.src = corners(*plate_size)
        self.state: np.ndarray | None = None

    def update(self, matrix: np.ndarray, smoothing: float, snap_px: float) -> np.ndarray:
        import cv2

        quad = project(matrix, self.src)
        if self.state is None or smoothing <= 0 or np.abs(quad - self.state).max() > snap_px:
            self.state = quad
            return matrix
        self.state = self.state + (1.0 - smoothing) * (quad - self.state)
        h = cv2.getPerspectiveTransform(self.src.astype(np.float32), self.state.astype(np.float32))
        return h / h[2, 2]
