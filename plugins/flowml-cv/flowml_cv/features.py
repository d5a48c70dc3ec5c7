"""Feature detection on a downscaled grey copy, with keypoints given back in full-size pixels.

OpenCV is imported lazily (``import cv2`` costs ~0.2 s), here and nowhere at module level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from flowml.lazy import lazy_import
np = lazy_import("numpy")

FeatureKind = Literal["orb", "sift", "akaze"]

AKAZE_HINT = ("AKAZE is in OpenCV's contrib build from OpenCV 5 on (cv2.xfeatures2d): "
              "pip install opencv-contrib-python-headless, and uninstall opencv-python-headless, "
              "which installs the same `cv2` module without it")


@dataclass(frozen=True)
class Features:
    """Keypoints of one image: ``points`` ``(N, 2)`` float32 in full-size pixel coordinates
    (OpenCV's: ``(0, 0)`` is the centre of the top-left pixel), ``descriptors`` ``(N, D)``."""

    points: np.ndarray
    descriptors: np.ndarray | None
    size: tuple[int, int]   # (width, height) of the full-size image

    def __len__(self) -> int:
        return len(self.points)


def akaze_factory() -> Any | None:
    """OpenCV's AKAZE constructor where this cv2 has one (4.x main, 5.x contrib), else None."""
    import cv2

    make = getattr(cv2, "AKAZE_create", None)
    if make is None and hasattr(cv2, "xfeatures2d"):
        make = getattr(cv2.xfeatures2d, "AKAZE_create", None)
    return make


def available_kinds() -> list[str]:
    """The feature kinds this OpenCV offers."""
    return ["orb", "sift"] + (["akaze"] if akaze_factory() is not None else [])


class Detector:
    """One kind of feature, ``max_features`` strongest per image, on a grey copy scaled by ``scale``."""

    def __init__(self, kind: FeatureKind, max_features: int, scale: float):
        import cv2

        self.kind, self.max_features, self.scale = kind, max_features, scale
        if kind == "orb":
            self.impl = cv2.ORB_create(nfeatures=max_features, fastThreshold=10)
            self.norm = cv2.NORM_HAMMING
        elif kind == "sift":
            self.impl = cv2.SIFT_create(nfeatures=max_features)
            self.norm = cv2.NORM_L2
        elif kind == "akaze":
            make = akaze_factory()
            if make is None:
                raise RuntimeError(f"features: akaze is not in this OpenCV ({cv2.__version__}). {AKAZE_HINT}")
            self.impl = make(threshold=0.0005)
            self.norm = cv2.NORM_HAMMING
        else:
            raise ValueError(f"unknown feature kind {kind!r}; use orb, sift or akaze")

    def grey(self, rgb: np.ndarray) -> np.ndarray:
        """``(H, W, 3|4)`` or ``(H, W)`` uint8 -> ``(h, w)`` uint8 grey, scaled by ``self.scale``
        (area-averaged, so downscaling does not alias)."""
        import cv2

        grey = rgb if rgb.ndim == 2 else cv2.cvtColor(
            np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2GRAY)
        if self.scale == 1.0:
            return grey
        h, w = grey.shape
        size = (max(16, round(w * self.scale)), max(16, round(h * self.scale)))
        return cv2.resize(grey, size, interpolation=cv2.INTER_AREA)

    def detect(self, grey: np.ndarray, full_size: tuple[int, int]) -> Features:
        """Keypoints of ``grey`` (from ``self.grey``), mapped back to ``full_size`` pixels."""
        import cv2

        keypoints, descriptors = self.impl.detectAndCompute(grey, None)
        if len(keypoints) > self.max_features:  # AKAZE has a threshold, not a count
            keep = np.argsort([-k.response for k in keypoints])[: self.max_features]
            keypoints = [keypoints[i] for i in keep]
            descriptors = descriptors[keep]
        # in C++ (a list comprehension over thousands of KeyPoints holds the GIL for ~2 ms,
        # which the graph's dispatcher thread then waits for; see match)
        pts = (cv2.KeyPoint_convert(keypoints).astype(np.float64).reshape(-1, 2) if len(keypoints)
               else np.empty((0, 2), np.float64))
        # small pixel centre x_s = (x + 0.5) * w / W - 0.5, per axis
        fx, fy = full_size[0] / grey.shape[1], full_size[1] / grey.shape[0]
        pts = (pts + 0.5) * (fx, fy) - 0.5
        return Features(pts.astype(np.float32), descriptors, full_size)

    def match(self, a: Features, b: Features, ratio: float) -> tuple[np.ndarray, np.ndarray]:
        """Lowe's ratio test on the two nearest neighbours: ``(pa (M, 2), pb (M, 2))`` of the
        pairs whose best match is clearly better than the second best."""
        import cv2

        if a.descriptors is None or b.descriptors is None or len(a) < 2 or len(b) < 2:
            return np.empty((0, 2), np.float32), np.empty((0, 2), np.float32)
        # The two nearest neighbours as arrays (what BFMatcher.knnMatch computes, without making
        # a Python DMatch object per pair and testing them in a Python loop): estimation then
        # holds the GIL only briefly, so a `hold: true` estimator does not slow the dispatcher
        # thread, which needs the GIL back after every kernel launch (a GIL convoy).
        dtype = cv2.CV_32S if self.norm == cv2.NORM_HAMMING else cv2.CV_32F
        dist, nidx = cv2.batchDistance(a.descriptors, b.descriptors, dtype, normType=self.norm,
                                       K=2, update=0, crosscheck=False)
        good = (nidx[:, 1] >= 0) & (dist[:, 0] < ratio * dist[:, 1])
        return a.points[good], b.points[nidx[good, 0]]
