"""NVVL's per-output processing of a decoded frame sequence, as torch functions on the device.

NVIDIA's NVVL (``nvvl.ProcessDesc``, github.com/NVIDIA/nvvl, pytorch/nvvl/dataset.py) described
each output tensor made from one decoded sequence: element type, scaling, crop (fixed or
random), random horizontal flip, normalisation, colour space, dimension order and an
``index_map`` choosing and ordering frames. ``ProcessDesc`` here says the same, and
``process`` makes one output from a batch of decoded sequences in one pass on their device:

    frames (B, T, 3, H, W) float RGB in [0, 1]
      -> take frames (index_map)     (B, T', 3, H, W)
      -> scale (size or factor)      one interpolate over all B * T' frames
      -> flip, crop                  per sequence (the same for every frame of a sequence)
      -> colour space, normalise, cast, layout
      -> (B, T', C, h, w) or (B, C, T', h, w)

(``crop_first`` crops before scaling.) Random choices are drawn by ``draw`` from a seeded
``torch.Generator`` on the host, once per sequence, and shared by all outputs of that
sequence: outputs with the same ``random_crop`` (at the same scale, or ``crop_first``) cut
the same place, and every ``random_flip`` output of a sequence flips with the others, so an
input and its target stay aligned. A seed gives the same batches every run. (NVVL drew for
each output on its own.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flowml.lazy import lazy_import
torch = lazy_import("torch")
F = lazy_import("torch.nn.functional")

Pixels = Annotated[int, Field(ge=1, le=16384)]
DTYPES = {"uint8": "uint8", "half": "float16", "float": "float32", "bfloat16": "bfloat16"}
# ITU-T T.871 (JPEG): BT.601 full range, Cb and Cr centred on 0.5
YCBCR = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))


class ProcessDesc(BaseModel):
    """How one output is made from a decoded sequence (NVVL's ``ProcessDesc``).

    Order: ``index_map`` -> ``scale`` / ``scale_factor`` -> ``random_flip`` -> ``crop`` /
    ``random_crop`` -> ``color_space`` -> ``normalized`` / ``mean``, ``std`` -> ``dtype`` ->
    ``layout``. NVVL flipped before cropping too."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dtype: Literal["uint8", "half", "float", "bfloat16"] = Field(
        "float", description="element type: uint8 (0..255), half, float, bfloat16")
    scale: tuple[Pixels, Pixels] | None = Field(None, description="[width, height] to scale to")
    scale_factor: float | None = Field(None, gt=0, le=16, description="scale width and height by this")
    interpolation: Literal["nearest", "bilinear", "bicubic", "area"] = Field(
        "bilinear", description="how to scale (bilinear and bicubic antialiased when shrinking)")
    crop: tuple[int, int, Pixels, Pixels] | None = Field(
        None, description="[x, y, width, height] to cut out after scaling")
    random_crop: tuple[Pixels, Pixels] | None = Field(
        None, description="[width, height] cut out at a random place (seeded), after scaling")
    random_flip: bool = Field(False, description="flip horizontally with probability 0.5 (seeded)")
    crop_first: bool = Field(False, description="crop the decoded frames, then scale the crop")
    color_space: Literal["RGB", "YCbCr"] = Field(
        "RGB", description="RGB, or YCbCr (BT.601 full range as JPEG, Cb/Cr centred on 0.5)")
    normalized: bool | None = Field(
        None, description="values in [0, 1] (true) or [0, 255] (false); default: true, uint8 false")
    mean: list[float] | None = Field(None, description="per-channel mean subtracted after `normalized`")
    std: list[float] | None = Field(None, description="per-channel divisor, with mean")
    layout: Literal["BTCHW", "BCTHW"] = Field("BTCHW", description="(B, T, C, H, W) or (B, C, T, H, W)")
    index_map: list[int] | None = Field(
        None, description="NVVL's map from sequence position to output position; -1 drops the frame")

    @model_validator(mode="after")
    def _check(self) -> "ProcessDesc":
        if self.scale is not None and self.scale_factor is not None:
            raise ValueError("give scale or scale_factor, not both")
        if self.crop is not None and self.random_crop is not None:
            raise ValueError("give crop or random_crop, not both")
        if self.crop is not None and (self.crop[0] < 0 or self.crop[1] < 0):
            raise ValueError(f"crop {list(self.crop)}: x and y must be >= 0")
        if (self.mean is None) != (self.std is None):
            raise ValueError("give mean and std together")
        if self.std is not None:
            if len(self.mean) != len(self.std):
                raise ValueError(f"mean has {len(self.mean)} values, std {len(self.std)}: one per channel each")
            if any(s == 0 for s in self.std):
                raise ValueError("std: no channel may have a std of 0")
        if self.dtype == "uint8" and (self.normalized or self.mean is not None):
            raise ValueError("dtype uint8 holds 0..255: drop `normalized` and mean/std, or use half/float")
        if self.index_map is not None:
            used = [i for i in self.index_map if i != -1]
            if not used or any(i < -1 for i in self.index_map):
                raise ValueError(f"index_map {self.index_map}: positions are >= 0, or -1 to drop a "
                                 "frame, and at least one is used")
            missing = sorted(set(range(max(used) + 1)) - set(used))
            if missing or len(set(used)) != len(used):
                raise ValueError(f"index_map {self.index_map}: every output position 0..{max(used)} "
                                 f"must be filled exactly once (missing {missing})")
        return self

    @property
    def unit(self) -> bool:
        """True when values are in [0, 1] before mean/std (the `normalized` default)."""
        return self.dtype != "uint8" if self.normalized is None else self.normalized

    def positions(self, length: int) -> list[int]:
        """For each output frame, the position in the decoded sequence it comes from."""
        if self.index_map is None:
            return list(range(length))
        if len(self.index_map) != length:
            raise ValueError(f"index_map has {len(self.index_map)} entries for a sequence of "
                             f"{length} frames: give one per frame (-1 to drop it)")
        out = [0] * (max(self.index_map) + 1)
        for i, j in enumerate(self.index_map):
            if j >= 0:
                out[j] = i
        return out

    def scaled(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of a picture of this size once scaled."""
        if self.scale is not None:
            return self.scale
        if self.scale_factor is not None:
            return max(1, round(width * self.scale_factor)), max(1, round(height * self.scale_factor))
        return width, height

    def crop_size(self) -> tuple[int, int] | None:
        if self.crop is not None:
            return self.crop[2], self.crop[3]
        return self.random_crop

    def crop_region(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the picture the crop is cut from, for decoded frames of this size."""
        return (width, height) if self.crop_first else self.scaled(width, height)

    def out_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the output frames for decoded frames of this size."""
        crop = self.crop_size()
        if self.crop_first:
            return self.scaled(*(crop or (width, height)))
        return crop or self.scaled(width, height)


@dataclass(frozen=True)
class Draw:
    """The random numbers of one sequence, shared by its outputs: crop origin as fractions
    of the room there is (``u``, ``v`` in [0, 1)) and whether to flip."""

    u: float = 0.0
    v: float = 0.0
    flip: bool = False


@dataclass(frozen=True)
class Plan:
    """Crop origin and flip of one sequence for one output."""

    x: int = 0
    y: int = 0
    flip: bool = False


def draw(generator: torch.Generator | None) -> Draw:
    """One sequence's random numbers (always three draws, so outputs never shift the stream)."""
    u, v, f = torch.rand((3,), generator=generator, dtype=torch.float64).tolist()
    return Draw(u, v, f < 0.5)


def plan(desc: ProcessDesc, width: int, height: int, drawn: Draw = Draw()) -> Plan:
    """Crop origin and flip of one output for one sequence of decoded frames ``width`` x
    ``height``: a random crop's x is ``floor(u * (room + 1))`` for ``room`` pixels to spare."""
    sw, sh = desc.crop_region(width, height)
    x = y = 0
    if desc.crop is not None:
        x, y, cw, ch = desc.crop
        _fits(x, y, cw, ch, sw, sh, "crop")
    elif desc.random_crop is not None:
        cw, ch = desc.random_crop
        _fits(0, 0, cw, ch, sw, sh, "random_crop")
        x = min(int(drawn.u * (sw - cw + 1)), sw - cw)
        y = min(int(drawn.v * (sh - ch + 1)), sh - ch)
    return Plan(x, y, drawn.flip and desc.random_flip)


def _fits(x: int, y: int, w: int, h: int, width: int, height: int, what: str) -> None:
    if x + w > width or y + h > height:
        raise ValueError(f"{what} [{x}, {y}, {w}, {h}] does not fit in a {width}x{height} frame "
                         "(the frame it is cut from): make it smaller or scale less")


# -- tensor functions (each checks its input's shape) -----------------------------------------
def _check(x: torch.Tensor, ndim: int, what: str, shape: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != ndim:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{what}: expected a tensor {shape}, got {got}")


def take(frames: torch.Tensor, positions: Sequence[int]) -> torch.Tensor:
    """``(B, T, C, H, W)`` -> ``(B, len(positions), C, H, W)``: the frames at these positions."""
    _check(frames, 5, "take", "(B, T, C, H, W)")
    positions = list(positions)
    if positions == list(range(frames.shape[1])):
        return frames
    stride = positions[1] - positions[0] if len(positions) > 1 else 1
    if stride > 0 and positions == list(range(positions[0], positions[0] + stride * len(positions), stride)):
        return frames[:, positions[0]:positions[-1] + 1:stride]    # a view: no index on the device
    return frames.index_select(1, constant(positions, torch.int64, frames.device))


_CONSTANTS: dict[tuple, torch.Tensor] = {}


def constant(values: Sequence, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``values`` as a tensor on ``device``, made once per (values, dtype, device) and kept.

    ``torch.tensor(values, device=cuda)`` copies from pageable memory, which waits for the
    current stream to drain: the graph thread would wait on the GPU every batch. Here the copy
    runs once, on a side stream of its own, and only that copy is waited for; the tensor is
    then read from any stream."""
    key = (tuple(values), dtype, str(device))
    t = _CONSTANTS.get(key)
    if t is None:
        host = torch.tensor(list(values), dtype=dtype)
        if torch.device(device).type == "cuda":
            side = torch.cuda.Stream(torch.device(device))
            with torch.cuda.stream(side):
                t = host.to(device)
            side.synchronize()
        else:
            t = host.to(device)
        _CONSTANTS[key] = t
    return t


def resize(images: torch.Tensor, size: tuple[int, int], interpolation: str = "bilinear") -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(N, C, h, w)`` for ``size`` = (w, h); bilinear and bicubic are
    antialiased when shrinking (as PIL and torchvision's antialias do)."""
    _check(images, 4, "resize", "(N, C, H, W)")
    w, h = size
    if (images.shape[3], images.shape[2]) == (w, h):
        return images
    if interpolation == "nearest":
        return F.interpolate(images, size=(h, w), mode="nearest-exact")
    if interpolation == "area":
        return F.interpolate(images, size=(h, w), mode="area")
    return F.interpolate(images, size=(h, w), mode=interpolation, align_corners=False, antialias=True)


def rgb_to_ycbcr(images: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` RGB in [0, 1] -> YCbCr (BT.601 full range, as JPEG) in [0, 1]."""
    _check(images, 4, "rgb_to_ycbcr", "(N, 3, H, W)")
    if images.shape[1] != 3:
        raise ValueError(f"rgb_to_ycbcr: expected 3 channels, got {images.shape[1]}")
    m = constant([v for row in YCBCR for v in row], images.dtype, images.device).view(3, 3)
    offset = constant([0.0, 0.5, 0.5], images.dtype, images.device).view(1, 3, 1, 1)
    return torch.einsum("ij,njhw->nihw", m, images) + offset


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(N, C, H, W)``: ``(x - mean) / std`` per channel."""
    _check(images, 4, "normalize", "(N, C, H, W)")
    if images.shape[1] != len(mean):
        raise ValueError(f"normalize: mean/std have {len(mean)} channels, the frames {images.shape[1]}")
    m = constant(mean, images.dtype, images.device).view(1, -1, 1, 1)
    s = constant(std, images.dtype, images.device).view(1, -1, 1, 1)
    return (images - m) / s


def flip_crop(images: torch.Tensor, plans: Sequence[Plan], size: tuple[int, int]) -> torch.Tensor:
    """``(B, T, C, H, W)`` -> ``(B, T, C, h, w)``: sequence b flipped if ``plans[b].flip``,
    then cut to ``size`` = (w, h) at ``plans[b]``'s origin."""
    _check(images, 5, "flip_crop", "(B, T, C, H, W)")
    if len(plans) != images.shape[0]:
        raise ValueError(f"flip_crop: {len(plans)} plans for a batch of {images.shape[0]}")
    w, h = size
    if (w, h) == (images.shape[4], images.shape[3]) and not any(p.flip for p in plans):
        return images
    out = []
    for seq, p in zip(images, plans):
        if p.flip:
            seq = seq.flip(-1)
        out.append(seq[:, :, p.y:p.y + h, p.x:p.x + w])
    return torch.stack(out)


def process(frames: torch.Tensor, desc: ProcessDesc, plans: Sequence[Plan],
            positions: Sequence[int] | None = None) -> torch.Tensor:
    """One output from decoded sequences ``(B, T, 3, H, W)`` float RGB in [0, 1].

    ``positions`` overrides ``desc.index_map`` (capture.sequence's ``keep``). Returns
    ``(B, T', C, h, w)`` (``BTCHW``) or ``(B, C, T', h, w)`` (``BCTHW``) of ``desc.dtype``."""
    _check(frames, 5, "process", "(B, T, 3, H, W)")
    b, t, c, height, width = frames.shape
    x = take(frames, desc.positions(t) if positions is None else positions).float()
    t2 = x.shape[1]
    crop = desc.crop_size()
    if desc.crop_first:
        x = flip_crop(x, plans, crop or (width, height))
        cw, ch = x.shape[4], x.shape[3]
        x = resize(x.reshape(b * t2, c, ch, cw), desc.out_size(width, height), desc.interpolation)
    else:
        size = desc.scaled(width, height)
        x = resize(x.reshape(b * t2, c, height, width), size, desc.interpolation)
        x = flip_crop(x.reshape(b, t2, c, size[1], size[0]), plans, crop or size)
    h, w = x.shape[-2], x.shape[-1]
    x = x.reshape(b * t2, c, h, w)
    if desc.color_space == "YCbCr":
        x = rgb_to_ycbcr(x)
    if desc.dtype == "uint8":
        x = (x * 255).round_().clamp_(0, 255).to(torch.uint8)
    else:
        if not desc.unit:
            x = x * 255
        if desc.mean is not None:
            x = normalize(x, desc.mean, desc.std)
        x = x.to(getattr(torch, DTYPES[desc.dtype]))
    x = x.reshape(b, t2, c, h, w)
    if desc.layout == "BCTHW":
        x = x.permute(0, 2, 1, 3, 4)
    return x.contiguous()
