"""``overlay.tracks``: boxes, track ids, classes and a summary line drawn on the frame."""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from flowml.lazy import lazy_import
np = lazy_import("numpy")

import flowml
from flowml import DETECTIONS, IMAGE, JSON, Field, Input, Node, Output

from . import detections as dets
from . import draw


class Overlay(Node):
    """Boxes, ids, labels and a class line on the image, for preview, NDI or a recording.

    ``image`` (1, 3, H, W) + ``detections`` (with ``tracker_id`` when tracked) + optional
    ``classes`` (``classify.join``'s list) -> ``image`` with each box outlined in its track's
    colour, labelled ``#id class prob%`` (``#id`` alone without classes; ``label score``
    for untracked detections), and a top line: the number of objects and of each class.

    ``renderer``: ``supervision`` draws with Roboflow supervision's ``BoxAnnotator`` and
    ``LabelAnnotator`` on a host copy (the CPU path); ``torch`` draws with torch ops on the
    image's device (``flowml_track.draw``: no download of the frame, one scatter per kind of
    mark); ``auto`` takes ``torch`` on a GPU and ``supervision`` on the CPU.
    """

    type_name = "overlay.tracks"
    inputs = (Input("image", IMAGE, "(1, 3, H, W) the frame"),
              Input("detections", DETECTIONS, "boxes (N, 4), tracker_id (N,) optional", optional=True),
              Input("classes", JSON, "classify.join's [{tracker_id, class, probability}]", optional=True))
    outputs = (Output("image", IMAGE, "(1, 3, H, W) with the overlay"),)

    class Params(flowml.Params):
        renderer: Literal["auto", "torch", "supervision"] = Field("auto", description="who draws (see above)")
        thickness: int = Field(2, ge=1, le=32, description="box outline, pixels")
        text_scale: float = Field(0.4, gt=0.05, le=4.0, description="label text size (OpenCV font scale)")
        labels: list[str] = Field([], description="names of the detector's label numbers (untracked rows)")
        summary: bool = Field(True, description="draw the class line at the top")

    def process(self, image: Any, detections: Any = None, classes: Any = None) -> Any:
        rows = dets.check(detections, "overlay") if detections is not None else 0
        boxes = detections["boxes"] if rows else None
        strings, ids = self._labels(detections, classes, rows)
        line = _summary(rows, classes) if self.params.summary else ""
        use_torch = self.params.renderer == "torch" or (
            self.params.renderer == "auto" and image.device.type != "cpu")
        if use_torch:
            return self._torch(image, boxes, ids, strings, line)
        return self._supervision(image, boxes, ids, strings, line)

    def _labels(self, d: Any, classes: Any, rows: int) -> tuple[list[str], list[int]]:
        if not rows:
            return [], []
        by_id = {int(c["tracker_id"]): c for c in (classes or [])}
        if "tracker_id" in d:
            ids = [int(i) for i in d["tracker_id"].cpu().tolist()]
            out = []
            for i in ids:
                c = by_id.get(i)
                out.append(f"#{i} {c['class']} {c['probability']:.0f}%" if c else f"#{i}")
            return out, ids
        labels = [int(v) for v in d["labels"].cpu().tolist()]
        scores = d["scores"].cpu().tolist()
        names = self.params.labels
        return ([f"{names[v] if 0 <= v < len(names) else v} {s:.2f}" for v, s in zip(labels, scores)],
                labels)

    def _torch(self, image: Any, boxes: Any, ids: list[int], strings: list[str], line: str) -> Any:
        import torch

        p = self.params
        canvas = draw.Canvas(image)
        gh, gw = draw.cell(p.text_scale)
        if boxes is not None:
            b = boxes.to(image.device, torch.float32, non_blocking=True)
            colours = draw.palette(ids, image.device)
            canvas.boxes(b, colours, p.thickness)
            x = b[:, 0]
            y = torch.where(b[:, 1] >= gh, b[:, 1] - gh, b[:, 1])  # above the box, inside at the top
            black = torch.zeros_like(colours)
            canvas.text(x, y, strings, black, p.text_scale, background=colours)
        if line:
            zero = torch.zeros(1, device=image.device)
            canvas.text(zero, zero, [line], torch.ones(1, 3, device=image.device), p.text_scale,
                        background=torch.zeros(1, 3, device=image.device))
        return canvas.image()

    def _supervision(self, image: Any, boxes: Any, ids: list[int], strings: list[str], line: str) -> Any:
        import cv2
        import supervision as sv
        import torch

        p = self.params
        rgb = (image[0, :3].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
        bgr = np.ascontiguousarray(rgb[..., ::-1])  # supervision draws with OpenCV: BGR
        if boxes is not None:
            found = sv.Detections(xyxy=boxes.detach().cpu().numpy().astype(np.float32),
                                  class_id=np.asarray(ids, int), tracker_id=np.asarray(ids, int))
            palette = sv.ColorPalette([sv.Color(*(int(255 * v) for v in c))
                                       for c in draw.palette(ids, "cpu").tolist()])
            lookup = np.arange(len(ids))
            bgr = sv.BoxAnnotator(color=palette, thickness=p.thickness).annotate(
                bgr, found, custom_color_lookup=lookup)
            bgr = sv.LabelAnnotator(color=palette, text_color=sv.Color.BLACK, text_scale=p.text_scale,
                                    text_padding=2).annotate(bgr, found, labels=strings,
                                                             custom_color_lookup=lookup)
        if line:
            (w, h), base = cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, p.text_scale, 1)
            cv2.rectangle(bgr, (0, 0), (w + 2, h + base + 2), (0, 0, 0), -1)
            cv2.putText(bgr, line, (1, h + 1), cv2.FONT_HERSHEY_SIMPLEX, p.text_scale, (255, 255, 255), 1)
        out = torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).to(image.device)
        return out.permute(2, 0, 1)[None].to(image.dtype).div(255)


def _summary(rows: int, classes: Any) -> str:
    """``3 objects: disc 2, square 1``."""
    counts = Counter(c["class"] for c in (classes or []))
    tail = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
    return f"{rows} object{'s' if rows != 1 else ''}" + (f": {tail}" if tail else "")
