"""``image.beside``: two images side by side (the picture and a tapped layer, for one view)."""

from __future__ import annotations

from flowml.lazy import lazy_import

import flowml
from flowml import IMAGE, Field, Input, Node, NodeError, Output

torch = lazy_import("torch")
F = lazy_import("torch.nn.functional")

__all__ = ["Beside"]


class Beside(Node):
    """``left`` (B, C, H, W) and ``right`` (B, C', H', W') -> ``image`` (B, 3, H, W + W'')
    float32 RGB: ``right`` scaled to ``left``'s height H (keeping its aspect: W'' = round(W' *
    H / H')), then ``gap`` pixels of ``gap_value`` between them. Grey (C = 1) is repeated to
    RGB, alpha dropped; a batch of 1 is repeated to the other's batch."""

    type_name = "image.beside"
    inputs = (Input("left", IMAGE, "(B, C, H, W), C in 1, 3, 4"),
              Input("right", IMAGE, "(B, C', H', W'), scaled to height H"))
    outputs = (Output("image", IMAGE, "(B, 3, H, W + gap + W'') RGB"),)

    class Params(flowml.Params):
        gap: int = Field(0, ge=0, le=4096, description="pixels between the two images")
        gap_value: float = Field(0.0, ge=0, le=1, description="the gap's grey level")

    def process(self, left: "torch.Tensor", right: "torch.Tensor") -> dict[str, "torch.Tensor"]:
        a, b = _rgb(left, "left"), _rgb(right, "right").to(device=left.device)
        h = a.shape[-2]
        if b.shape[-2] != h:
            w = max(1, round(b.shape[-1] * h / b.shape[-2]))
            b = F.interpolate(b, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        if a.shape[0] != b.shape[0]:
            if 1 not in (a.shape[0], b.shape[0]):
                raise NodeError(f"left has batch {a.shape[0]}, right {b.shape[0]}: give equal batches or 1")
            n = max(a.shape[0], b.shape[0])
            a, b = a.expand(n, -1, -1, -1), b.expand(n, -1, -1, -1)
        parts = [a, b]
        if self.params.gap:
            parts.insert(1, a.new_full((a.shape[0], 3, h, self.params.gap), self.params.gap_value))
        return {"image": torch.cat(parts, dim=3)}


def _rgb(image: "torch.Tensor", port: str) -> "torch.Tensor":
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[1] not in (1, 3, 4):
        got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise NodeError(f"input {port!r}: expected an image (B, C, H, W) with C in 1, 3, 4; got {got}")
    image = image.float()
    return image.expand(-1, 3, -1, -1) if image.shape[1] == 1 else image[:, :3]
