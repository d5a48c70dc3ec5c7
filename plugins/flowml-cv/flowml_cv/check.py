"""A quick check that a homography still aligns the plate with the frame, between estimates.

The plate is warped by the current matrix onto the frame at a small size (``WIDTH`` pixels
wide; 0.8 ms on a 2-core machine) and compared with it: the residual is the median absolute
grey difference over the plate's most textured pixels that it covers (flat areas match at any
small offset). The median ignores a subject that covers less than half of them; a camera that
moved (or a plate that slipped) raises it. ``cv.homography`` with ``recheck: N`` estimates
again as soon as the residual rises above ``recheck_rise`` times its value right after the
last estimate, and otherwise only every Nth call.
"""

from __future__ import annotations

from flowml.lazy import lazy_import
np = lazy_import("numpy")

WIDTH = 240
TEXTURED_PCT = 25
"""The check compares the plate's most textured quarter of pixels with the frame."""
FLOOR = 2.0
"""Grey levels: a residual at or below this always passes (a noise-free frame has ~0)."""


class AlignmentCheck:
    def __init__(self) -> None:
        self.small_plate: np.ndarray | None = None
        self.plate_size: tuple[int, int] = (0, 0)
        self.reference = float("nan")

    def plate(self, grey: np.ndarray, size: tuple[int, int]) -> None:
        """A new plate: ``grey`` is its grey copy (any scale), ``size`` its full size (w, h)."""
        self.small_plate, self.plate_size = _small(grey), size
        self.reference = float("nan")

    def residual(self, frame_grey: np.ndarray, frame_size: tuple[int, int], matrix: np.ndarray) -> float:
        """Median |plate warped by ``matrix`` - frame| in grey levels over the covered pixels;
        NaN before a plate or where the warped plate covers almost nothing."""
        import cv2

        if self.small_plate is None:
            return float("nan")
        frame = _small(frame_grey)
        ph, pw = self.small_plate.shape
        fh, fw = frame.shape
        # full-size plate pixels -> small plate pixels, and full-size frame pixels -> small frame
        to_small_plate = _scaling(pw / self.plate_size[0], ph / self.plate_size[1])
        to_small_frame = _scaling(fw / frame_size[0], fh / frame_size[1])
        m = to_small_frame @ matrix @ np.linalg.inv(to_small_plate)
        warped = cv2.warpPerspective(self.small_plate, m, (fw, fh), flags=cv2.INTER_LINEAR)
        inside = cv2.warpPerspective(np.ones_like(self.small_plate), m, (fw, fh), flags=cv2.INTER_NEAREST)
        covered = cv2.erode(inside, np.ones((3, 3), np.uint8)) > 0  # no edge pixels blended with black
        if covered.sum() < 0.1 * covered.size:
            return float("nan")
        # where the plate has texture: flat areas (sky, walls) match at any small offset
        grad = np.abs(cv2.Sobel(warped, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(warped, cv2.CV_32F, 0, 1))
        textured = covered & (grad >= np.percentile(grad[covered], 100 - TEXTURED_PCT))
        diff = np.abs(warped.astype(np.int16) - frame.astype(np.int16))[textured]
        return float(np.median(diff))

    def estimated(self, frame_grey: np.ndarray, frame_size: tuple[int, int], matrix: np.ndarray) -> float:
        """After a good estimate: its residual becomes the reference the next checks are held to."""
        self.reference = self.residual(frame_grey, frame_size, matrix)
        return self.reference

    def holds(self, residual: float, rise: float) -> bool:
        """Whether the alignment still holds: the residual is at most ``rise`` times the
        reference (or under ``FLOOR``). Unknown values never hold."""
        if not (np.isfinite(residual) and np.isfinite(self.reference)):
            return False
        return residual <= max(FLOOR, rise * self.reference)


def _small(grey: np.ndarray) -> np.ndarray:
    import cv2

    h, w = grey.shape
    if w <= WIDTH:
        return grey
    return cv2.resize(grey, (WIDTH, max(8, round(h * WIDTH / w))), interpolation=cv2.INTER_AREA)


def _scaling(sx: float, sy: float) -> np.ndarray:
    """Pixel centres of one size -> another: x' = (x + 0.5) * sx - 0.5."""
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])
