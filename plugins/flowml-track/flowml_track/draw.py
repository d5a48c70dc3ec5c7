"""Boxes and text drawn with torch ops on the image's device (no copy to the host).

Everything is a scatter into an (H, W + 1, 3) canvas: pixels that fall outside a box edge,
outside a glyph's ink or outside the frame are sent to the extra column, which is cut off at
the end. So no boolean selection (whose size would need a device-to-host copy) and no loop
per object: one ``index_put_`` for all box edges, one for all label backgrounds, one for all
glyphs. The glyphs are OpenCV's Hershey font rasterised once into a tensor.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

from flowml.lazy import lazy_import
np = lazy_import("numpy")

from flowml.lazy import lazy_import

torch = lazy_import("torch")

FIRST, LAST = 32, 126  # printable ASCII


@lru_cache(maxsize=8)
def glyphs(scale: float) -> tuple[np.ndarray, int, int]:
    """(95, gh, gw) bool ink of the printable ASCII characters in a fixed cell, and gh, gw."""
    import cv2

    font, thick = cv2.FONT_HERSHEY_SIMPLEX, 1
    (w, h), base = cv2.getTextSize("M", font, scale, thick)
    gw, gh = w + 1, h + base + 2
    cells = np.zeros((LAST - FIRST + 1, gh, gw), np.uint8)
    for i in range(LAST - FIRST + 1):
        cv2.putText(cells[i], chr(FIRST + i), (0, h + 1), font, scale, 255, thick, cv2.LINE_8)
    return cells > 127, gh, gw


def palette(ids: Any, device: Any) -> Any:
    """(K, 3) float RGB in [0, 1], a stable colour per id (golden-ratio hues)."""
    import colorsys

    ids = [int(i) for i in ids]
    rgb = [colorsys.hsv_to_rgb((0.6 + 0.618034 * max(i, 0)) % 1.0, 0.7, 1.0) for i in ids]
    return torch.tensor(rgb, dtype=torch.float32, device=device).reshape(-1, 3)


class Canvas:
    """An (H, W + 1, 3) copy of an image (1, 3, H, W) to draw into; ``image()`` gives it back."""

    def __init__(self, image: Any):
        _, _, self.h, self.w = image.shape
        self.dtype = image.dtype
        self.buf = torch.zeros(self.h, self.w + 1, 3, dtype=image.dtype, device=image.device)
        self.buf[:, :self.w] = image[0, :3].permute(1, 2, 0)

    def put(self, ys: Any, xs: Any, ok: Any, colours: Any) -> None:
        """Paint ``colours`` (..., 3) at ``ys``, ``xs`` (same shape) where ``ok``; elsewhere,
        and outside the frame, into the spare column."""
        ok = ok & (ys >= 0) & (ys < self.h) & (xs >= 0) & (xs < self.w)
        ys = torch.where(ok, ys, torch.zeros_like(ys)).reshape(-1)
        xs = torch.where(ok, xs, torch.full_like(xs, self.w)).reshape(-1)
        self.buf.index_put_((ys, xs), colours.to(self.dtype).reshape(-1, 3))

    def boxes(self, boxes: Any, colours: Any, thickness: int) -> None:
        """Outlines of ``boxes`` (K, 4) xyxy, ``thickness`` px inside each edge."""
        if boxes.shape[0] == 0:
            return
        dev = boxes.device
        b = boxes.round().long()
        x1, y1, x2, y2 = (b[:, i, None, None] for i in range(4))
        t = torch.arange(thickness, device=dev)[None, :, None]            # (1, T, 1)
        xs, ys = torch.arange(self.w, device=dev)[None, None], torch.arange(self.h, device=dev)[None, None]
        along_x = (xs >= x1) & (xs < x2)                                     # (K, 1, W)
        along_y = (ys >= y1) & (ys < y2)
        col = colours[:, None, None, :]
        for row in (y1 + t, y2 - 1 - t):                                     # top, bottom: (K, T, 1)
            self.put(row.expand(-1, -1, self.w), xs.expand(b.shape[0], thickness, -1),
                     along_x.expand(-1, thickness, -1), col.expand(-1, thickness, self.w, 3))
        for column in (x1 + t, x2 - 1 - t):                                  # left, right
            self.put(ys.expand(b.shape[0], thickness, -1), column.expand(-1, -1, self.h),
                     along_y.expand(-1, thickness, -1), col.expand(-1, thickness, self.h, 3))

    def text(self, x: Any, y: Any, strings: Sequence[str], colours: Any, scale: float,
             background: Any | None = None) -> None:
        """``strings[i]`` with its top-left corner at (``x[i]``, ``y[i]``) (device tensors, (K,)),
        in ``colours`` (K, 3), on a filled ``background`` (K, 3) when given."""
        ink, gh, gw = glyphs(scale)
        dev = self.buf.device
        which, offset, code = [], [], []
        for i, s in enumerate(strings):
            for j, ch in enumerate(s):
                which.append(i)
                offset.append(j)
                code.append(min(max(ord(ch), FIRST), LAST) - FIRST)
        if not which:
            return
        which_t = torch.tensor(which, device=dev)
        cx = x.long()[which_t] + torch.tensor(offset, device=dev) * gw       # (M,)
        cy = y.long()[which_t]
        gy, gx = torch.arange(gh, device=dev)[None, :, None], torch.arange(gw, device=dev)[None, None, :]
        ys, xs = (cy[:, None, None] + gy).expand(-1, gh, gw), (cx[:, None, None] + gx).expand(-1, gh, gw)
        if background is not None:
            self.put(ys, xs, torch.ones_like(ys, dtype=torch.bool), background[which_t][:, None, None].expand(-1, gh, gw, 3))
        mask = _ink(scale, dev)[torch.tensor(code, device=dev)]
        self.put(ys, xs, mask, colours[which_t][:, None, None].expand(-1, gh, gw, 3))

    def image(self) -> Any:
        """The drawing as (1, 3, H, W)."""
        return self.buf[:, :self.w].permute(2, 0, 1)[None].contiguous()


_INK: dict[tuple[float, str], Any] = {}


def _ink(scale: float, device: Any) -> Any:
    """The glyphs of ``glyphs(scale)`` as a bool tensor on ``device``, uploaded once."""
    key = (scale, str(device))
    if key not in _INK:
        _INK[key] = torch.as_tensor(glyphs(scale)[0], device=device)
    return _INK[key]


def cell(scale: float) -> tuple[int, int]:
    """(height, width) of one character cell at ``scale``."""
    _, gh, gw = glyphs(scale)
    return gh, gw
