"""The rings behind ``video.clip``: preprocessed frames in, 3D-CNN clips out, on the frames' device.

Each frame is preprocessed once, when it arrives, exactly as torchvision's video-classification
preset (``torchvision.transforms._presets.VideoClassification``) does to every frame of a clip:
bilinear resize without antialiasing, centre crop, ``(x - mean) / std``, in two kernels and no
allocation: the resize into a buffer made once, then one multiply-add (``x / std - mean / std``)
from a fixed view of its centre straight into its slot of a ring preallocated as
``(B, C, R, h, w)`` (or ``(B, R, C, h, w)``). When a clip is due, one ``index_select`` with a
precomputed rotation of the slot indices gathers the window in time order into a new tensor (a
clip in flight is never overwritten by later frames). No list of frames, no ``torch.cat`` of the
whole window per frame.

- ``ClipRing``: one frame a call, whose batch axis is B independent streams (R = T slots).
- ``FramesRing``: K consecutive frames of one stream a call (a source's ``batch: K``), all K
  preprocessed in one pass; R = T + K - 1 slots hold every frame a clip due in the call needs,
  and all the clips that became due come out in one tensor ``(n, C, T, h, w)``.
"""

from __future__ import annotations

from flowml.lazy import lazy_import
torch = lazy_import("torch")

from flowml import NodeError

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
GATHERS_KEPT = 64  # offset tensors of multi-clip gathers kept, one per (clips, stride): one or two in use


def centre_box(height: int, width: int, crop_h: int, crop_w: int) -> tuple[int, int]:
    """Top and left of a centred ``crop_h x crop_w`` box, rounded as torchvision rounds them."""
    return int(round((height - crop_h) / 2.0)), int(round((width - crop_w) / 2.0))


def due_in(before: int, k: int, frames: int, stride: int) -> range:
    """Positions j in a piece of ``k`` frames, ``before`` frames having come already, where a
    clip of ``frames`` frames every ``stride`` is due: frame j is the stream's number
    ``before + j + 1`` (counting from 1), due when that is ``frames + m * stride``, m >= 0."""
    first = max(frames - before - 1, 0)  # the first j with T frames there
    first += -(before + first + 1 - frames) % stride  # then on the stride
    return range(first, k, stride)


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

    def _make(self, frame: torch.Tensor, shape: tuple[int, ...], slots: int | None = None) -> None:
        """The ring ``(b, c, slots, h, w)`` (or BTCHW) for ``shape = (b, c, h, w)``, the resize
        buffer for ``frame.shape[0]`` frames, the crop box and the slot rotations."""
        b, c, h, w = shape
        t, r = self.frames, slots or self.frames
        ring_shape = (b, c, r, h, w) if self.layout == "BCTHW" else (b, r, c, h, w)
        self.ring = frame.new_empty(ring_shape)
        self.key = self._key(frame)
        # (x - mean) / std as one multiply-add: x * (1 / std) + (-mean / std)
        mean = torch.tensor(self.mean_values, dtype=torch.float64).view(1, -1, 1, 1)
        std = torch.tensor(self.std_values, dtype=torch.float64).view(1, -1, 1, 1)
        self.scale = (1.0 / std).to(frame.device, frame.dtype)
        self.shift = (-mean / std).to(frame.device, frame.dtype)
        # one view per slot, made once: push writes into it (no per-frame allocation or view)
        self.slots = [self.ring.select(self.time_dim, i) for i in range(r)]
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
        # row s: the slots in time order when the oldest frame is in slot s
        self.rotations = (torch.arange(r, device=frame.device)[:, None]
                          + torch.arange(t, device=frame.device)[None, :]) % r
        self.count = 0

    def _key(self, frame: torch.Tensor) -> tuple:
        return (tuple(frame.shape), frame.dtype, frame.device)

    def _cut(self, x: torch.Tensor) -> torch.Tensor:
        if self.box is None:
            return x
        top, left, ch, cw = self.box
        return x[..., top:top + ch, left:left + cw]

    def preprocess(self, frame: torch.Tensor) -> torch.Tensor:
        """One frame ``(B, C, H, W)`` -> ``(B, C, h, w)``: resize, centre crop, normalise
        (a new tensor; ``push`` writes the same values straight into the ring)."""
        if self.ring is None or self.key != self._key(frame):
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

    def _check_channels(self, frame: torch.Tensor) -> None:
        if self.mean_values and frame.shape[1] != len(self.mean_values):
            raise NodeError(f"frames have {frame.shape[1]} channels, but mean and std have "
                            f"{len(self.mean_values)} values; give one per channel")

    def _renew(self, frame: torch.Tensor) -> None:
        self._check_channels(frame)
        self.ring = None
        probe_h, probe_w = self.crop or self.resize or tuple(frame.shape[-2:])
        self._make(frame, (frame.shape[0], frame.shape[1], probe_h, probe_w))

    def push(self, frame: torch.Tensor) -> None:
        """Preprocess ``frame`` into its slot: one resize into a reused buffer and one
        multiply-add (normalise) written into the ring; nothing is allocated per frame."""
        if self.ring is None or self.key != self._key(frame):
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


class FramesRing(ClipRing):
    """K consecutive frames of one stream a call. ``push(frames, stride)`` preprocesses a
    ``(K, C, H, W)`` batch (frame k is the stream's next frame but K - 1 - k) in one pass, the
    resize of all K, then one multiply-add per run of slots (two where the ring wraps), and
    returns the clips that became due in it, oldest first, with the batch positions of their
    last frames: ``(n, C, T, h, w)`` for BCTHW, ``(n, T, C, h, w)`` for BTCHW, or None for none.

    The ring has R = T + K - 1 slots, K being the first batch's size: a clip due at the batch's
    first frame reaches T - 1 frames back, one at its last frame K - 1 frames on. A shorter
    batch uses the front of the resize buffer; a longer one is taken in pieces of K. Its clips
    equal, value for value, those ``ClipRing`` gives for the same frames pushed one at a time."""

    def _key(self, frame: torch.Tensor) -> tuple:
        return (tuple(frame.shape[1:]), frame.dtype, frame.device)  # any number of frames

    def _renew(self, frames: torch.Tensor) -> None:
        self._check_channels(frames)
        self.ring = None
        self.capacity = frames.shape[0]
        probe_h, probe_w = self.crop or self.resize or tuple(frames.shape[-2:])
        self._make(frames, (1, frames.shape[1], probe_h, probe_w), slots=self.frames + self.capacity - 1)
        # BCTHW: a run of k frames is written as (C, k, h, w), so the constants are (C, 1, 1, 1)
        self.run_scale = self.scale.view(-1, 1, 1, 1) if self.layout == "BCTHW" else self.scale
        self.run_shift = self.shift.view(-1, 1, 1, 1) if self.layout == "BCTHW" else self.shift
        self.frames_dim = self.time_dim - 1  # in ring[0]: 1 for (C, R, h, w), 0 for (R, C, h, w)
        self.gathers: dict[tuple[int, int], torch.Tensor] = {}  # (clips, stride) -> offsets

    def push(self, frames: torch.Tensor, stride: int) -> tuple[torch.Tensor | None, list[int]]:  # type: ignore[override]
        if frames.ndim != 4 or frames.shape[0] == 0:
            raise NodeError(f"frames must be (K, C, H, W) with K >= 1, got {tuple(frames.shape)}")
        if self.ring is None or self.key != self._key(frames):
            self._renew(frames)
        clips, ends = [], []
        for start in range(0, frames.shape[0], self.capacity):
            got, at = self._piece(frames[start:start + self.capacity], stride)
            if got is not None:
                clips.append(got)
                ends += [start + j for j in at]
        if not clips:
            return None, []
        return (clips[0] if len(clips) == 1 else torch.cat(clips)), ends

    def _piece(self, frames: torch.Tensor, stride: int) -> tuple[torch.Tensor | None, list[int]]:
        """At most ``capacity`` frames into the ring; the clips due among them, gathered before
        any later frame is written."""
        k, slots, before = frames.shape[0], self.ring.shape[self.time_dim], self.count  # type: ignore[union-attr]
        src = self._resized_k(frames)
        at = before % slots
        first = min(k, slots - at)
        self._store(src[:first], at)
        if first < k:
            self._store(src[first:], 0)
        self.count += k
        ends = due_in(before, k, self.frames, stride)
        if not ends:
            return None, []
        return self._gather((before + ends[0] + 1 - self.frames) % slots, len(ends), stride), list(ends)

    def _resized_k(self, frames: torch.Tensor) -> torch.Tensor:
        """``k`` frames resized (into the front of the reused buffer) and cropped: a view."""
        k = frames.shape[0]
        if self.resized is None:
            return self._cut(frames)
        out = self.resized if k == self.capacity else self.resized[:k]
        torch._C._nn.upsample_bilinear2d(frames, self.resize, False, None, None, out=out)
        return self.cropped if k == self.capacity else self._cut(out)

    def _store(self, src: torch.Tensor, at: int) -> None:
        """Normalise ``src`` ``(k, C, h, w)`` into slots ``at .. at + k - 1`` (no wrap)."""
        out = self.ring[0].narrow(self.frames_dim, at, src.shape[0])  # type: ignore[index]
        if self.layout == "BCTHW":
            src = src.transpose(0, 1)  # (C, k, h, w), as the slots lie in (C, R, h, w)
        torch.addcmul(self.run_shift, src, self.run_scale, out=out)

    def _gather(self, oldest: int, n: int, stride: int) -> torch.Tensor:
        """``n`` clips, the first with its oldest frame in slot ``oldest``, each ``stride``
        frames after the one before, in time order: one ``index_select`` (and, for n > 1 in
        BCTHW, one copy into ``(n, C, T, h, w)``).

        The slot of clip i's frame j is ``(oldest + i * stride + j) % R``: the ``n * T`` offsets
        ``i * stride + j`` are a device tensor made once per ``(n, stride)``, and the index is
        two small kernels on it (add ``oldest``, modulo R), so no index ever goes from the host
        to the device in a tick (a ``tensor[list]`` would: a blocking copy that waits for the
        lane's stream, i.e. for the previous tick's model, every tick)."""
        if n == 1:
            return torch.index_select(self.ring, self.time_dim, self.rotations[oldest])  # type: ignore[arg-type]
        offsets = self.gathers.get((n, stride))
        if offsets is None:
            if len(self.gathers) >= GATHERS_KEPT:
                self.gathers.clear()
            steps = torch.arange(n, device=self.rotations.device) * stride
            offsets = self.gathers[(n, stride)] = (steps[:, None] + self.rotations[0][None, :]).reshape(-1)
        index = torch.remainder(offsets + oldest, self.rotations.shape[0])
        ring, t = self.ring[0], self.frames  # type: ignore[index]
        picked = torch.index_select(ring, self.frames_dim, index)
        if self.layout == "BTCHW":
            return picked.view(n, t, *picked.shape[1:])  # (n*T, C, h, w) -> (n, T, C, h, w)
        c, _, h, w = picked.shape
        return picked.view(c, n, t, h, w).transpose(0, 1).contiguous()
