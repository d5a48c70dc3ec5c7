"""Frames of a file by index on the CPU (PyAV): what ``capture.clips`` uses where NVDEC is not.

Frame k is the k-th frame in presentation order (``probe.py``). A request seeks to the
keyframe before its first frame unless the decoder is already at or a little before it
(sequential samples then cost no seek), and decodes forward, matching frames by pts. Pixels
are converted as ``capture.video`` converts them (swscale's rgb24 for 8-bit on the CPU,
``colour.py`` on the planes for deeper video or a GPU device), so a clip's frames equal the
frames ``capture.video`` gives for the same file.
"""

from __future__ import annotations

import itertools
from typing import Iterator, Sequence

from flowml.lazy import lazy_import
av = lazy_import("av")
np = lazy_import("numpy")
torch = lazy_import("torch")
transfer = lazy_import("flowml.gpu.transfer")

from flowml import NodeError

from .colour import Colour, frame_to_rgb
from .probe import VideoInfo, probe

SEEK_GAP = 32
"""Decode forward instead of seeking when the wanted frame is at most this many frames ahead."""


class CpuVideo:
    """One file decoded by FFmpeg: ``frames(indices)`` -> ``(N, 3, H, W)`` float32 RGB in [0, 1]."""

    def __init__(self, path: str, device: str, threads: int = 0):
        """``threads``: FFmpeg's decoding threads (frame and slice threads, ``thread_type``
        AUTO); 0: as many as FFmpeg picks (one a core). Decoding is bit-exact either way."""
        self.info: VideoInfo = probe(path)
        self.device = device
        self.index_of = {pts: k for k, pts in enumerate(self.info.pts)}
        self.container = av.open(path)
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        if threads:
            self.stream.thread_count = threads
        self.decoding: Iterator | None = None
        self.at = -1      # index of the last frame the decoder gave
        self.decoded = 0
        self.seeks = 0

    def __len__(self) -> int:
        return self.info.frames

    def frames(self, indices: Sequence[int]) -> torch.Tensor:
        bad = [i for i in indices if not 0 <= i < len(self)]
        if bad:
            raise IndexError(f"frames {bad} are outside {self.info.path} ({len(self)} frames)")
        wanted = sorted(set(indices))
        got: dict[int, torch.Tensor] = {}
        for target in wanted:
            if target in got:
                continue
            if self.decoding is None or not self.at < target <= self.at + SEEK_GAP:
                self._seek(target)
            for frame in self.decoding:
                k = self.index_of.get(frame.pts)
                if k is None:
                    continue
                self.at = k
                if k in wanted and k not in got:
                    got[k] = self._rgb(frame)
                if k >= target:
                    break
            if target not in got:
                raise NodeError(f"{self.info.path}: frame {target} did not come out of the decoder")
        return torch.cat([got[i] for i in indices])

    def _seek(self, target: int) -> None:
        """Start decoding at a keyframe at or before frame ``target``.

        FFmpeg's MP4 seek compares decode times, so seeking to a frame's pts can land on the
        next keyframe when frames are reordered (HEVC's open GOPs: the frames just before a
        CRA in display order come after it and are dropped when decoding starts there). So
        the seek goes to the last keyframe whose pts is not after the target, and one
        keyframe further back (down to the start) while the decoder still starts after it."""
        pts = self.info.pts[target]
        keys = [k for k in self.info.keyframes if k <= pts] or [self.info.pts[0]]
        for key in reversed(keys[-3:] if len(keys) > 1 else keys):
            self.seeks += 1
            self.container.seek(key, backward=True, any_frame=False, stream=self.stream)
            decoding = self._decode()
            first = next(decoding, None)
            k = self.index_of.get(first.pts) if first is not None else None
            if k is not None and k <= target:
                self.decoding, self.at = itertools.chain([first], decoding), -1
                return
        self.container.seek(0, backward=True, any_frame=False, stream=self.stream)  # from the start
        self.seeks += 1
        self.decoding, self.at = self._decode(), -1

    def _decode(self) -> Iterator:
        for packet in self.container.demux(self.stream):
            try:
                frames = packet.decode()
            except av.FFmpegError:
                continue  # a damaged packet: skipped, as capture.video skips it
            for frame in frames:
                self.decoded += 1
                yield frame

    def _rgb(self, frame: av.VideoFrame) -> torch.Tensor:
        colour = Colour.of(frame)
        if colour is not None and (self.device.startswith("cuda") or colour.depth > 8):
            return frame_to_rgb(frame, colour, self.device)
        return transfer.image_from_host(frame.to_ndarray(format="rgb24"), self.device)

    def close(self) -> None:
        self.decoding = None
        self.container.close()
