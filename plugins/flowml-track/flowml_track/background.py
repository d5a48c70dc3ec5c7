"""``detect.background``: moving objects by OpenCV background subtraction (MOG2 or KNN)."""

from __future__ import annotations

from typing import Any, Literal

from flowml.lazy import lazy_import
np = lazy_import("numpy")

import flowml
from flowml import DETECTIONS, IMAGE, TENSOR, Field, Input, Node, NodeError, Output

from . import detections

#: params that make a new subtractor when they change (its learnt background is lost)
MODEL_PARAMS = ("method", "history", "threshold", "shadows", "scale")


class BackgroundDetector(Node):
    """Moving objects of a fixed camera: background subtraction, morphology, contours.

    ``image`` (delivered as (1, H, W, 3) uint8 on the host; shrunk by ``scale``) -> OpenCV's MOG2 or KNN
    subtractor -> foreground mask (shadows, marked grey by the subtractor, dropped) ->
    median blur, opening (removes speckle), closing (fills holes) -> external contours ->
    bounding boxes whose contour area is within [``min_area``, ``max_area``] pixels.

    ``detections``: boxes (N, 4) xyxy px, ``scores`` = the foreground fraction of each box
    (a filled rectangle scores 1, a disc about 0.79), ``labels`` 0. ``mask``: (1, 1, H, W)
    float foreground in {0, 1} on the host. The first ``history`` frames teach it the
    background: objects present from the first frame are found once they move.
    """

    type_name = "detect.background"
    inputs = (Input("image", IMAGE, "the frame", uint8=True),)
    outputs = (Output("detections", DETECTIONS, "boxes (N, 4), scores (N,) foreground fraction, labels 0"),
               Output("mask", TENSOR, "(1, 1, h, w) float32 foreground mask after morphology (at scale), host"))
    blocking = True  # OpenCV on the host: off the graph's launching thread

    class Params(flowml.Params):
        method: Literal["mog2", "knn"] = Field("mog2", description="OpenCV's subtractor: MOG2 (Zivkovic) or KNN")
        history: int = Field(200, ge=1, le=100000, description="frames the background model remembers")
        threshold: float = Field(24.0, gt=0, le=10000, description=(
            "MOG2: varThreshold (squared Mahalanobis distance); KNN: dist2Threshold (try 400)"))
        shadows: bool = Field(True, description="detect shadows (then dropped from the mask)")
        learning_rate: float | None = Field(None, ge=-1.0, le=1.0, description=(
            "how fast the background follows the scene, per frame; -1: OpenCV's automatic "
            "1/frames; 0: frozen; none: 0.002 for MOG2 (whose automatic rate is fast at the "
            "start: slow objects melt into the background), automatic for KNN"))
        blur: int = Field(3, ge=0, le=31, description="median blur of the mask, odd kernel size; 0: none")
        open_px: int = Field(3, ge=0, le=99, description="opening kernel size (removes specks); 0: none")
        close_px: int = Field(5, ge=0, le=99, description="closing kernel size (fills holes); 0: none")
        min_area: float = Field(30.0, ge=0, description="smallest contour area kept, pixels")
        max_area: float = Field(1e9, gt=0, description="largest contour area kept, pixels")
        scale: float = Field(1.0, gt=0.02, le=1.0, description=(
            "the frame is shrunk by this before subtraction (0.5 at 1080p: 4x less work); "
            "boxes and areas stay in full-frame pixels"))
        threads: int = Field(1, ge=0, le=256, description="OpenCV's worker threads (process-wide); 0: its default")

    def setup(self, ctx: flowml.NodeContext) -> None:
        self._make()

    def _make(self) -> None:
        import cv2

        p = self.params
        cv2.setNumThreads(p.threads if p.threads > 0 else -1)
        if p.method == "mog2":
            self.subtractor = cv2.createBackgroundSubtractorMOG2(p.history, p.threshold, p.shadows)
        else:
            self.subtractor = cv2.createBackgroundSubtractorKNN(p.history, p.threshold, p.shadows)

    def on_params(self, old: flowml.Params, new: flowml.Params) -> None:
        if any(getattr(old, k) != getattr(new, k) for k in MODEL_PARAMS + ("threads",)):
            self._make()

    def process(self, image: Any) -> dict[str, Any]:
        import cv2
        import torch

        if image.ndim != 4 or image.shape[-1] < 3:
            raise NodeError(f"detect.background: expected an RGB image, got {tuple(image.shape)}")
        p = self.params
        frame = np.ascontiguousarray(image[0, ..., :3].numpy())
        if p.scale != 1.0:
            frame = cv2.resize(frame, None, fx=p.scale, fy=p.scale, interpolation=cv2.INTER_AREA)
        rate = p.learning_rate if p.learning_rate is not None else (0.002 if p.method == "mog2" else -1.0)
        mask = self.subtractor.apply(frame, learningRate=rate)
        mask = cv2.threshold(mask, 200, 255, cv2.THRESH_BINARY)[1]  # shadows (127) dropped
        mask = clean(mask, p.blur, p.open_px, p.close_px)
        boxes, scores = blobs(mask, p.min_area * p.scale ** 2, p.max_area * p.scale ** 2)
        found = detections.make(boxes / p.scale, scores)
        return {"detections": found,
                "mask": torch.from_numpy(mask).float().div_(255)[None, None]}


def clean(mask: np.ndarray, blur: int, open_px: int, close_px: int) -> np.ndarray:
    """Median blur (odd ``blur``), then opening and closing with elliptical kernels."""
    import cv2

    if blur > 1:
        mask = cv2.medianBlur(mask, blur | 1)
    if open_px > 1:
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (open_px, open_px)))
    if close_px > 1:
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (close_px, close_px)))
    return mask


def blobs(mask: np.ndarray, min_area: float, max_area: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N, 4) xyxy of the external contours of ``mask`` (uint8 0/255) with area in range,
    and the foreground fraction of each box (N,)."""
    import cv2

    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    boxes, scores = [], []
    for c in contours:
        area = cv2.contourArea(c)
        if not min_area <= area <= max_area:
            continue
        x, y, w, h = cv2.boundingRect(c)
        boxes.append((x, y, x + w, y + h))
        scores.append(float(np.count_nonzero(mask[y:y + h, x:x + w])) / (w * h))
    if not boxes:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    order = np.lexsort((np.array(boxes)[:, 0], np.array(boxes)[:, 1]))  # top to bottom, stable
    return np.asarray(boxes, np.float32)[order], np.asarray(scores, np.float32)[order]
