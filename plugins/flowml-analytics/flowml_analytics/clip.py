"""``video.clip``: a sliding window of T preprocessed frames, kept in a ring on the frames' device.

Each frame is preprocessed once, when it arrives, exactly as torchvision's video-classification
preset (``torchvision.transforms._presets.VideoClassification``) does to every frame of a clip:
bilinear resize without antialiasing, centre crop, ``(x - mean) / std``, in two kernels and no
allocation: the resize into a buffer made once, then one multiply-add (``x / std - mean / std``)
from a fixed view of its centre straight into slot ``n % T`` of a ring preallocated as
``(B, C, T, h, w)`` (or ``(B, T, C, h, w)``);
when a clip is due, one ``index_select`` with a precomputed rotation of the slot indices
gathers the window in time order into a new tensor (a clip in flight is never overwritten by
later frames). No list of frames, no ``torch.cat`` of the whole window per frame.
"""

from __future__ import annotations

from typing import Any, Literal

from flowml.lazy import lazy_import
torch = lazy_import("torch")
F = lazy_import("torch.nn.functional")
from pydantic import field_validator

import flowml
from flowml import IMAGE, NO_VALUE, TENSOR, Field, Input, Node, NodeError, Output

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


def centre_box(height: int, width: int, crop_h: int, crop_w: int) -> tuple[int, int]:
    """Top and left of a centred ``crop_h x crop_w`` box, rounded as torchvision rounds them."""
    return int(round((height - crop_h) / 2.0)), int(round((width - crop_w) / 2.0))


class ClipRing:
    """The ring: frames in, clips out. ``push(frame)`` preprocesses a ``(B, C, H, W)`` float
    frame into its slot; ``clip()`` returns the last T frames in order, ``(B, C, T, h, w)`` for
    ``layout="BCTHW"`` or ``(B, T, C, h, w)`` for ``"BTCHW"``, as a new contiguous tensor."""

    def __init__(self, frames: int, resize: tuple[int, int] | None, crop: tuple[int, int] | None,
                 mean: tuple[float, ...], std: tuple[float, ...], layout: str = "BCTHW"):
        self.frames, self.resize, self.crop, self.layout = frames, resize, crop, layout
        self.mean_values, self.std_values = mean, std
        self.ring: torch.Tensor | None = None
        self.count = 0  # frames pushed since the ring was made
        self.time_dim = 2 if layout == "BCTHW" else 1

    def _make(self, frame: torch.Tensor, shape: tuple[int, ...]) -> None:
        b, c, h, w = shape
        t = self.frames
        ring_shape = (b, c, t, h, w) if self.layout == "BCTHW" else (b, t, c, h, w)
        self.ring = frame.new_empty(ring_shape)
        self.key = (tuple(frame.shape), frame.dtype, frame.device)
        # (x - mean) / std as one multiply-add: x * (1 / std) + (-mean / std)
        mean = torch.tensor(self.mean_values, dtype=torch.float64).view(1, -1, 1, 1)
        std = torch.tensor(self.std_values, dtype=torch.float64).view(1, -1, 1, 1)
        self.scale = (1.0 / std).to(frame.device, frame.dtype)
        self.shift = (-mean / std).to(frame.device, frame.dtype)
        # one view per slot, made once: push writes into it (no per-frame allocation or view)
        self.slots = [self.ring.select(self.time_dim, i) for i in range(t)]
        size = tuple(frame.shape[-2:])
        self.resized = None  # the resize's output, reused every frame
        if self.resize is not None and size != self.resize:
            self.resized = frame.new_empty((frame.shape[0], frame.shape[1], *self.resize))
            size = self.resize
        src = self.resized if self.resized is not None else None
        if self.crop is not None:
            ch, cw = self.crop
            if ch > size[0] or cw > size[1]:
                raise NodeError(f"crop {cw}x{ch} is larger than the {'resized ' if self.resize else ''}frame "
                                f"{size[1]}x{size[0]}; make `crop` smaller or `resize` larger")
            self.box = (*centre_box(size[0], size[1], ch, cw), ch, cw)
        else:
            self.box = None
        self.cropped = None if src is None else self._cut(src)  # a fixed view of the resize buffer
        # row r: the slots in time order when the oldest frame is in slot r
        base = torch.arange(t, device=frame.device)
        self.rotations = (base[None, :] + base[:, None]) % t
        self.count = 0

    def _cut(self, x: torch.Tensor) -> torch.Tensor:
        if self.box is None:
            return x
        top, left, ch, cw = self.box
        return x[..., top:top + ch, left:left + cw]

    def preprocess(self, frame: torch.Tensor) -> torch.Tensor:
        """One frame ``(B, C, H, W)`` -> ``(B, C, h, w)``: resize, centre crop, normalise
        (a new tensor; ``push`` writes the same values straight into the ring)."""
        if self.ring is None or self.key != (tuple(frame.shape), frame.dtype, frame.device):
            self._renew(frame)
        return torch.addcmul(self.shift, self._resized(frame), self.scale)

    def _resized(self, frame: torch.Tensor) -> torch.Tensor:
        """The frame resized (into the reused buffer) and cropped: a view, no copy."""
        if self.resized is None:
            return self._cut(frame)
        # bilinear, align_corners=False, no antialias: F.interpolate's kernel without its
        # Python argument handling (a few microseconds a frame)
        torch._C._nn.upsample_bilinear2d(frame, self.resize, False, None, None, out=self.resized)
        return self.cropped

    def _renew(self, frame: torch.Tensor) -> None:
        if self.mean_values and frame.shape[1] != len(self.mean_values):
            raise NodeError(f"frames have {frame.shape[1]} channels, but mean and std have "
                            f"{len(self.mean_values)} values; give one per channel")
        self.ring = None
        probe_h, probe_w = self.crop or self.resize or tuple(frame.shape[-2:])
        self._make(frame, (frame.shape[0], frame.shape[1], probe_h, probe_w))

    def push(self, frame: torch.Tensor) -> None:
        """Preprocess ``frame`` into its slot: one resize into a reused buffer and one
        multiply-add (normalise) written into the ring; nothing is allocated per frame."""
        if self.ring is None or self.key != (tuple(frame.shape), frame.dtype, frame.device):
            self._renew(frame)
        torch.addcmul(self.shift, self._resized(frame), self.scale, out=self.slots[self.count % self.frames])
        self.count += 1

    def clip(self) -> torch.Tensor:
        """The last ``frames`` frames in time order (a new tensor); needs ``count >= frames``."""
        oldest = self.count % self.frames
        return torch.index_select(self.ring, self.time_dim, self.rotations[oldest])  # type: ignore[arg-type]

    def due(self, stride: int) -> bool:
        """Is a clip due after the last push: T frames there, and ``stride`` since the last one?"""
        return self.count >= self.frames and (self.count - self.frames) % stride == 0


class VideoClip(Node):
    """A sliding window of the last ``frames`` frames, every ``stride`` frames, as a 3D-CNN clip.

    ``image`` ``(B, C, H, W)`` float in [0, 1]. Each frame is resized to ``resize`` [width,
    height] (bilinear, no antialiasing), centre-cropped to ``crop`` [width, height] and
    normalised with ``mean`` / ``std`` (Kinetics-400's by default) once, on arrival, into a
    ring on the frames' device: torchvision's ``VideoClassification(crop_size=(112, 112),
    resize_size=(128, 171))`` preset, which r3d_18, mc3_18 and r2plus1d_18 were trained with,
    is ``resize: [171, 128], crop: [112, 112]`` (the defaults; torchvision writes (h, w)).

    Output ``clip``: ``(B, C, T, h, w)`` (``layout: BCTHW``, what torchvision's video models
    take) or ``(B, T, C, h, w)``, on the ticks a clip is due: once ``frames`` frames have come
    and then every ``stride`` frames (stride 1: every frame). On the other ticks it has no
    value (``flowml.NO_VALUE``), so the model and everything after it skip them. A change of
    frame size, or of any param but ``stride``, starts the window again.
    """

    type_name = "video.clip"
    inputs = (Input("image", IMAGE, "(B, C, H, W) float RGB in [0, 1]"),)
    outputs = (Output("clip", TENSOR, "(B, C, T, h, w) or (B, T, C, h, w); no value until due"),)

    class Params(flowml.Params):
        frames: int = Field(16, ge=1, le=512, description="T: frames in a clip")
        stride: int = Field(1, ge=1, le=10_000, description="frames between clips (1: a clip every frame)")
        resize: tuple[int, int] | None = Field(
            (171, 128), description="[width, height] each frame is resized to first; none: keep its size")
        crop: tuple[int, int] | None = Field(
            (112, 112), description="[width, height] of the centre crop; none: no crop")
        mean: tuple[float, ...] = Field(KINETICS_MEAN, description="per-channel mean (Kinetics-400's)")
        std: tuple[float, ...] = Field(KINETICS_STD, description="per-channel std (Kinetics-400's)")
        layout: Literal["BCTHW", "BTCHW"] = Field("BCTHW", description="axis order of the clip")

        @field_validator("resize", "crop")
        @classmethod
        def _size(cls, size: tuple[int, int] | None) -> tuple[int, int] | None:
            if size is not None and min(size) < 1:
                raise ValueError("a size is [width, height] in pixels, both at least 1")
            return size

        @field_validator("std")
        @classmethod
        def _std(cls, std: tuple[float, ...]) -> tuple[float, ...]:
            if any(s <= 0 for s in std):
                raise ValueError("std values must be more than 0")
            return std

    def setup(self, ctx: flowml.NodeContext) -> None:
        p = self.params
        if len(p.mean) != len(p.std):
            raise NodeError(f"mean has {len(p.mean)} values and std {len(p.std)}; give one of each per channel")
        flip = lambda s: None if s is None else (s[1], s[0])  # noqa: E731  [w, h] -> (h, w)
        self.ring = ClipRing(p.frames, flip(p.resize), flip(p.crop), p.mean, p.std, p.layout)

    def on_params(self, old: flowml.Params, new: flowml.Params) -> None:
        if old.model_copy(update={"stride": new.stride}) != new:  # type: ignore[attr-defined]
            self.setup(self.ctx)

    def process(self, image: torch.Tensor) -> Any:
        with torch.inference_mode():
            self.ring.push(image)
            return self.ring.clip() if self.ring.due(self.params.stride) else NO_VALUE
