"""``crop.square``: every object's square crop in one batched ``roi_align``, ready for a classifier."""

from __future__ import annotations

from typing import Any

import flowml
from flowml import DETECTIONS, IMAGE, JSON, TENSOR, Field, Input, Node, NodeError, Output
from flowml.lazy import lazy_import

from . import detections as dets

torch = lazy_import("torch")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def square_boxes(boxes: Any, width: int, height: int, margin: float = 0.0) -> Any:
    """EMPyCustom's square crop boxes, for all objects at once.

    ``boxes`` (K, 4) xyxy float -> (K, 4): the shorter side widened by half the difference on
    each side, then every side pushed out by ``margin`` x the longer side, clamped to the
    frame ``[0, width] x [0, height]`` and rounded to whole pixels as ``PIL.Image.crop`` rounds
    (half to even), at least one pixel wide and high. Same device and dtype as ``boxes``.
    """
    x1, y1, x2, y2 = boxes.unbind(-1)
    w, h = x2 - x1, y2 - y1
    half = (w - h).abs() / 2
    wide = w > h
    y1, y2 = torch.where(wide, y1 - half, y1), torch.where(wide, y2 + half, y2)
    x1, x2 = torch.where(wide, x1, x1 - half), torch.where(wide, x2, x2 + half)
    m = margin * torch.maximum(w, h)
    x1, y1 = (x1 - m).clamp(0, width).round(), (y1 - m).clamp(0, height).round()
    x2, y2 = (x2 + m).clamp(0, width).round(), (y2 + m).clamp(0, height).round()
    x1, y1 = torch.minimum(x1, torch.full_like(x1, width - 1)), torch.minimum(y1, torch.full_like(y1, height - 1))
    return torch.stack([x1, y1, torch.maximum(x2, x1 + 1), torch.maximum(y2, y1 + 1)], dim=-1)


def crop(image: Any, boxes: Any, size: int, mean: Any, std: Any) -> Any:
    """``image`` (1, 3, H, W) in [0, 1], ``boxes`` (K, 4) pixel-edge xyxy on its device ->
    (K, 3, size, size) normalised ``(x - mean) / std``. Bilinear, each output pixel the mean
    of ceil(box / size) samples per axis (``roi_align``'s adaptive sampling, ``aligned``:
    a box [0, W] covers the pixels 0..W-1 exactly)."""
    from torchvision.ops import roi_align

    rois = torch.cat([boxes.new_zeros(boxes.shape[0], 1), boxes], dim=1)
    out = roi_align(image[:, :3], rois.to(image.dtype), output_size=(size, size), spatial_scale=1.0,
                    sampling_ratio=-1, aligned=True)
    return (out - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


class CropSquare(Node):
    """Square crops of every object, one batched op, for a secondary classifier.

    ``image`` (1, 3, H, W) and ``detections`` (boxes on any device) -> ``crops`` (K, 3, S, S)
    on the image's device, normalised with ``mean``/``std`` (ImageNet's by default); K may be
    0. ``ids``: the tracker ids of the rows (JSON list, same order; row numbers when the
    detections have no ``tracker_id``), to join the classifier's results back. ``boxes``:
    (K, 4) the square boxes cropped, in pixels. The boxes follow EMPyCustom's secondary
    classifier (``square_boxes``); the resize is ``torchvision.ops.roi_align``.
    """

    type_name = "crop.square"
    inputs = (Input("image", IMAGE, "(1, 3, H, W) the frame"),
              Input("detections", DETECTIONS, "boxes (K, 4); tracker_id (K,) when tracked"))
    outputs = (Output("crops", TENSOR, "(K, 3, size, size) float, normalised"),
               Output("ids", JSON, "list of K tracker ids (or row numbers), in crop order"),
               Output("boxes", TENSOR, "(K, 4) the square crop boxes, pixels"))

    class Params(flowml.Params):
        size: int = Field(224, ge=1, le=4096, description="crops are size x size pixels")
        margin: float = Field(0.0, ge=0.0, le=4.0, description="each side pushed out by this x the longer side")
        mean: tuple[float, float, float] = Field(IMAGENET_MEAN, description="per-channel mean subtracted")
        std: tuple[float, float, float] = Field(IMAGENET_STD, description="per-channel std divided by")

    def setup(self, ctx: flowml.NodeContext) -> None:
        self._stats: tuple[Any, Any] | None = None
        if min(self.params.std) <= 0:
            raise NodeError(f"crop.square: std must be positive, got {self.params.std}")

    def on_params(self, old: flowml.Params, new: flowml.Params) -> None:
        self._stats = None

    def process(self, image: Any, detections: Any) -> dict[str, Any]:
        k = dets.check(detections, "crop.square")
        if image.shape[0] != 1:
            raise NodeError(f"crop.square: one frame at a time, got a batch of {image.shape[0]}")
        if self._stats is None or self._stats[0].device != image.device:
            opts = {"device": image.device, "dtype": image.dtype}
            self._stats = (torch.tensor(self.params.mean, **opts), torch.tensor(self.params.std, **opts))
        boxes = detections["boxes"].to(image.device, image.dtype, non_blocking=True)
        square = square_boxes(boxes, image.shape[-1], image.shape[-2], self.params.margin)
        ids = detections.get("tracker_id")
        ids = list(range(k)) if ids is None else [int(i) for i in ids.cpu().tolist()]
        crops = crop(image, square, self.params.size, *self._stats)
        return {"crops": crops, "ids": ids, "boxes": square}
