"""What a video file holds, read with PyAV (demuxed, one frame decoded): every frame's presentation time
(frame k of the file is the k-th smallest pts, as decoders hand frames out), size, codec,
colour matrix and range, rotation. The GPU decoder and ``capture.clips`` find frames by
index with it, and stamp them exactly as the CPU path does (``frame.time``)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

from flowml.lazy import lazy_import
av = lazy_import("av")

from flowml import NodeError


@dataclass(frozen=True)
class VideoInfo:
    path: str
    times: tuple[float, ...]   # seconds, frame k's pts * time_base, in presentation order
    pts: tuple[int, ...]       # the same in the stream's time_base
    time_base: float
    width: int
    height: int
    codec: str
    pix_fmt: str
    colorspace: int            # FFmpeg's AVColorSpace (1: BT.709, 5/6: BT.601, 2: unspecified)
    full_range: bool
    rotation: int              # display rotation in degrees, as PyAV reports it
    rate: float                # average frames a second
    keyframes: tuple[int, ...] = ()  # pts of the keyframes, ascending
    leading: tuple[tuple[int, int], ...] = ()  # (pts, its keyframe's pts): leading pictures, ascending

    @property
    def frames(self) -> int:
        return len(self.times)

    def index_at(self, seconds: float) -> int:
        """The first frame at or after ``seconds`` (within half a frame), as the CPU path seeks."""
        half = 0.5 / self.rate
        for k, t in enumerate(self.times):
            if t >= seconds - half:
                return k
        return len(self.times)


def leading_pictures(packets: list[tuple[int, bool]]) -> tuple[tuple[int, int], ...]:
    """``(pts, keyframe pts)`` of the leading pictures of every keyframe but the first, from
    ``packets`` (pts, is keyframe) in decode order: frames stored after a keyframe and shown
    before it. In an open GOP (HEVC's CRA, H.264's recovery-point I frames) these are RASL
    pictures, predicted from the GOP before the keyframe: a decode that starts at that keyframe
    cannot give them (FFmpeg drops them; NVDEC decodes them from missing references), so a
    decode that wants one starts at an earlier keyframe (``parallel.leading_indices``)."""
    out: list[tuple[int, int]] = []
    key: int | None = None
    for k, (pts, is_key) in enumerate(packets):
        if is_key:
            key = pts if k else None  # the first keyframe has no GOP before it
        elif key is not None and pts < key:
            out.append((pts, key))
    return tuple(sorted(out))


def probe(path: str | Path) -> VideoInfo:
    """Demux ``path`` (no decoding) and describe its first video stream; cached by path and mtime."""
    p = Path(path)
    if not p.is_file():
        raise NodeError(f"video file not found: {p}; check the path")
    return _probe(str(p.resolve()), p.stat().st_mtime_ns)


@lru_cache(maxsize=256)
def _probe(path: str, mtime: int) -> VideoInfo:
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise NodeError(f"{path} has no video stream")
            stream = container.streams.video[0]
            cc = stream.codec_context
            full = bool(cc.pix_fmt and cc.pix_fmt.startswith("yuvj"))
            rotation, colorspace = 0, 2
            try:  # the first frame's colour tags and display rotation, as the CPU path reads them
                frame = next(container.decode(stream))
                rotation, colorspace = int(frame.rotation), int(frame.colorspace)
                full = full or int(frame.color_range) == 2
            except (StopIteration, av.FFmpegError):
                pass
            container.seek(0, stream=stream)
            packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.pts is not None and p.size]
            pts = sorted(t for t, _ in packets)
            keyframes = sorted(t for t, key in packets if key)
            leading = leading_pictures(packets)
            tb = Fraction(stream.time_base)  # frame.time is pts * time_base rounded once: the same floats
            rate = float(stream.average_rate or 30)
            return VideoInfo(path, tuple(float(t * tb) for t in pts), tuple(pts), float(tb),
                             cc.width, cc.height, cc.name, cc.pix_fmt or "", colorspace, bool(full),
                             rotation, rate, tuple(keyframes), leading)
    except av.FFmpegError as exc:
        raise NodeError(f"cannot read video {path}: {exc}") from exc
