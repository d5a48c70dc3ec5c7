"""``detect.hog_people``: OpenCV's HOG + linear SVM pedestrian detector (Dalal & Triggs)."""

from __future__ import annotations

from typing import Any

from flowml.lazy import lazy_import
np = lazy_import("numpy")

import flowml
from flowml import DETECTIONS, IMAGE, Field, Input, Node, NodeError, Output

from . import detections


class HogPeople(Node):
    """People (upright, at least 64x128 px after ``scale``) with OpenCV's default HOG detector.

    ``image`` (host uint8) is scaled by ``scale`` (smaller is faster; people must stay at
    least 64x128 px), and ``cv2.HOGDescriptor.detectMultiScale`` with the built-in people SVM
    (``HOGDescriptor_getDefaultPeopleDetector``, no downloaded weights) searches it.
    ``detections``: boxes (N, 4) xyxy in the frame's pixels, ``scores`` = the SVM's margin
    (not a probability: 0 is the decision boundary, ~1 a confident hit), ``labels`` 0; boxes
    below ``min_score`` are dropped, the rest suppressed with NMS at ``nms_iou``.
    """

    type_name = "detect.hog_people"
    inputs = (Input("image", IMAGE, "the frame", uint8=True),)
    outputs = (Output("detections", DETECTIONS, "boxes (N, 4), scores (N,) SVM margin, labels 0"),)
    blocking = True

    class Params(flowml.Params):
        scale: float = Field(1.0, gt=0.05, le=4.0, description="the frame is resized by this before the search")
        win_stride: int = Field(8, ge=1, le=64, description="window step, pixels (multiple of 8 is fastest)")
        padding: int = Field(8, ge=0, le=64, description="padding around the image, pixels")
        pyramid: float = Field(1.05, gt=1.0, le=2.0, description="scale step between pyramid levels")
        hit_threshold: float = Field(0.0, ge=-10, le=10, description="the SVM's decision threshold")
        min_score: float = Field(0.3, ge=-10, le=100, description="boxes scoring less are dropped")
        nms_iou: float = Field(0.45, gt=0.0, le=1.0, description="NMS overlap; 1: no suppression")

    def setup(self, ctx: flowml.NodeContext) -> None:
        import cv2

        if not hasattr(cv2, "HOGDescriptor"):
            raise NodeError("this OpenCV build has no HOGDescriptor (install opencv-contrib-python-headless)")
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def process(self, image: Any) -> dict[str, Any]:
        import cv2
        import torch
        from torchvision.ops import nms

        p = self.params
        frame = np.ascontiguousarray(image[0, ..., :3].numpy())
        if p.scale != 1.0:
            frame = cv2.resize(frame, None, fx=p.scale, fy=p.scale, interpolation=cv2.INTER_AREA)
        rects, weights = self.hog.detectMultiScale(
            frame, hitThreshold=p.hit_threshold, winStride=(p.win_stride, p.win_stride),
            padding=(p.padding, p.padding), scale=p.pyramid)
        if len(rects) == 0:
            return {"detections": detections.empty()}
        r = np.asarray(rects, np.float32).reshape(-1, 4) / p.scale
        boxes = np.concatenate([r[:, :2], r[:, :2] + r[:, 2:]], axis=1)
        scores = np.asarray(weights, np.float32).reshape(-1)
        keep = scores >= p.min_score
        boxes_t, scores_t = torch.from_numpy(boxes[keep]), torch.from_numpy(scores[keep])
        if p.nms_iou < 1.0 and len(boxes_t):
            order = nms(boxes_t, scores_t, p.nms_iou)
            boxes_t, scores_t = boxes_t[order], scores_t[order]
        return {"detections": detections.make(boxes_t, scores_t)}
