"""NVDEC decoding inside graphs with NVIDIA's PyNvVideoCodec (``pip install flowml-av[nvdec]``).

PyNvVideoCodec's ``SimpleDecoder`` retains the device's primary CUDA context, the one torch
uses, so it works after torch has started CUDA (in a graph it always has), which PyAV's
FFmpeg NVDEC did not (``gpudecode.py`` says why). Frames are asked for by index and come
as NV12 on the GPU (``OutputColorType.NATIVE``); they are converted to RGB by
``gpudecode.nv12_to_rgb`` with the matrix and range FFmpeg reports for the stream, so they
match the CPU path (PyNvVideoCodec's own RGB conversion takes every stream as limited range
and scales chroma by 255/219 rather than 255/224, a few levels off FFmpeg's). Frame times,
colour tags and rotation come from ``probe.py`` (PyAV, demux only), so stamps, ``start``
and looping work as on the CPU.

Stream order: the decoder writes on a stream of this object's; before each decode that
stream waits for the copies of the last batch (which read its buffers), and the copy of
its planes, on the caller's stream, waits for the decode, all on the GPU. Nothing waits on
the default stream, which a training loop uses. The decoded frames are kept
until the event after that copy has passed, so the decoder's memory is never reused under
a kernel still reading it; the planes and RGB tensors are torch's own, kept alive by the
graph's ``record_stream`` for their consumers.
"""

from __future__ import annotations

import re
from collections import deque
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from flowml.lazy import lazy_import
torch = lazy_import("torch")

from .gpudecode import nv12_to_rgb
from .probe import VideoInfo, probe

URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
PATTERN = re.compile(r"%0?\d*d")
NV12_SOURCES = ("yuv420p", "yuvj420p", "nv12")
"""8-bit 4:2:0 streams, which NVDEC returns as NV12; others (4:4:4, 10-bit) take the CPU path."""
MIN_SIZE: dict[str, tuple[int, int]] = {
    "h264": (48, 16), "hevc": (144, 144), "vp9": (128, 128), "av1": (128, 128), "vp8": (48, 16),
    "mpeg1video": (48, 16), "mpeg2video": (48, 16), "mpeg4": (48, 16), "vc1": (48, 16), "mjpeg": (64, 64)}
"""NVDEC's smallest coded size (width, height) per codec, by FFmpeg's codec name: NVIDIA's NVDEC
Video Decoder API Programming Guide, chapter "Video Decoder Capabilities" (its table of
hardware decoder capabilities, Min Resolution). ``cuvidCreateDecoder`` refuses a smaller stream
(error 1, CUDA_ERROR_INVALID_VALUE, seen for HEVC at 178x98 on the H200). Where PyNvVideoCodec
answers ``GetDecoderCaps`` (``cuvidGetDecoderCaps``: ``width_min``, ``height_min``) its answer
is used instead."""
ENGINES_DEFAULT = 1
"""NVDEC engines assumed where ``GetDecoderCaps`` does not say (``num_decoder_engines``)."""


class NvdecSizeError(RuntimeError):
    """The stream is smaller than NVDEC's minimum for its codec (the CPU path decodes it)."""


def size_problem(info: VideoInfo, minimum: tuple[int, int] | None, source: str = "NVIDIA's table") -> str | None:
    """Why NVDEC refuses ``info``'s size, or None: ``minimum`` is (width, height) for its codec."""
    if minimum is None:
        return None
    w, h = minimum
    if info.width < w or info.height < h:
        return (f"{info.width}x{info.height} {info.codec} is below NVDEC's minimum of {w}x{h} for {info.codec} "
                f"({source})")
    return None


def decoder_caps(path: str, gpu_id: int = 0) -> dict[str, Any]:
    """``PyNvVideoCodec.GetDecoderCaps`` for ``path``'s codec, chroma and depth ({} where it cannot say)."""
    return dict(_caps(str(path), gpu_id))


@lru_cache(maxsize=64)
def _caps(path: str, gpu_id: int) -> tuple:
    try:
        import PyNvVideoCodec as nvc

        demuxer = nvc.CreateDemuxer(filename=path)
        caps = nvc.GetDecoderCaps(gpuid=gpu_id, codec=demuxer.GetNvCodecId(),
                                  chromaformat=demuxer.ChromaFormat(), bitdepth=demuxer.BitDepth())
        return tuple(dict(caps).items())
    except Exception:  # noqa: BLE001 - no PyNvVideoCodec, an older one, no driver: the table decides
        return ()


def minimum_size(info: VideoInfo, caps: dict[str, Any] | None = None) -> tuple[tuple[int, int] | None, str]:
    """NVDEC's minimum (width, height) for ``info``'s codec and where it comes from: the decoder's
    own caps (``caps``, from ``decoder_caps``) where they say, else ``MIN_SIZE``."""
    caps = caps or {}
    w, h = caps.get("width_min"), caps.get("height_min")
    if isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0:
        return (w, h), "cuvidGetDecoderCaps"
    return MIN_SIZE.get(info.codec), "NVIDIA's table"


def engines(path: str | None = None, gpu_id: int = 0) -> int:
    """NVDEC engines on the GPU (the H200 has 7), from ``GetDecoderCaps``; 1 where it cannot say."""
    n = decoder_caps(path, gpu_id).get("num_decoder_engines") if path else None
    return int(n) if isinstance(n, int) and n > 0 else ENGINES_DEFAULT


def nvdec_size_problem(path: str, device: str) -> str | None:
    """Why NVDEC refuses ``path`` for its size (probed caps, else the table), or None."""
    info = probe(path)
    index = (torch.device(device).index or 0) if device.startswith("cuda") else 0
    key = (info.codec, info.pix_fmt, index)  # caps depend on codec, chroma, depth: asked once a kind
    if key not in _CAPS_BY_KIND:
        _CAPS_BY_KIND[key] = decoder_caps(path, index)
    minimum, source = minimum_size(info, _CAPS_BY_KIND[key])
    return size_problem(info, minimum, source)


_CAPS_BY_KIND: dict[tuple[str, str, int], dict[str, Any]] = {}


def nvdec_problem(target: str, device: str) -> str | None:
    """Why ``target`` cannot be decoded with PyNvVideoCodec on ``device``, or None."""
    if not device.startswith("cuda"):
        return f"the node runs on {device}"
    if URL.match(target) or PATTERN.search(Path(target).name):
        return "NVDEC (PyNvVideoCodec) reads seekable files only, not streams or image sequences"
    try:
        import PyNvVideoCodec  # noqa: F401
    except ImportError as exc:
        return f"PyNvVideoCodec is not installed (pip install flowml-av[nvdec]): {exc}"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    return None


class NvdecVideo:
    """One file on NVDEC: ``frames(indices)`` -> ``(N, 3, H, W)`` float32 RGB in [0, 1] on
    ``device``, on the current torch stream. Raises ``RuntimeError`` when NVDEC cannot take it."""

    def __init__(self, path: str, device: str):
        import PyNvVideoCodec as nvc

        self.info: VideoInfo = probe(path)
        if self.info.pix_fmt not in NV12_SOURCES:
            raise RuntimeError(f"NVDEC path takes 8-bit 4:2:0 video, this is {self.info.pix_fmt}")
        problem = nvdec_size_problem(path, device)
        if problem:
            raise NvdecSizeError(f"{path}: {problem}")
        self.device = torch.device(device)
        index = self.device.index if self.device.index is not None else torch.cuda.current_device()
        self.device = torch.device("cuda", index)
        torch.empty(1, device=self.device)  # torch's context first: the decoder retains the same one
        self.stream = torch.cuda.Stream(self.device)
        self.decoder = self._open(nvc, path, index)
        count = len(self.decoder)
        if count < self.info.frames:
            self.info = _truncated(self.info, count)
        self.in_use: deque[tuple[Any, list]] = deque()  # (event after the copy, decoded frames)
        self.log_once: str | None = getattr(self, "log_once", None)
        self.decoded = 0

    def _open(self, nvc: Any, path: str, index: int) -> Any:
        """The decoder on a stream of ours (``cuda_stream`` is a CUstream handle; 0 would make
        it create one we cannot order against), or on its own where a build refuses ours."""
        kwargs = dict(gpu_id=index, use_device_memory=True, output_color_type=nvc.OutputColorType.NATIVE)
        try:
            return nvc.SimpleDecoder(path, cuda_stream=self.stream.cuda_stream, **kwargs)
        except Exception as first:  # noqa: BLE001 - PyNvVCException and friends
            try:
                decoder = nvc.SimpleDecoder(path, **kwargs)
            except Exception as exc:  # unsupported codec, no NVDEC, no driver library
                raise RuntimeError(f"PyNvVideoCodec could not open {path}: {exc}") from exc
            self.stream = None
            self.log_once = f"PyNvVideoCodec refused our CUDA stream ({first}); it decodes on its own"
            return decoder

    def __len__(self) -> int:
        return self.info.frames

    def frames(self, indices: Sequence[int]) -> torch.Tensor:
        """Frames at ``indices`` (in the file's presentation order) as ``(N, 3, H, W)``."""
        y, uv = self.nv12(indices)
        return nv12_to_rgb(y, uv, self.info.colorspace, self.info.full_range)

    def nv12(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoded planes at ``indices``: Y ``(N, H, W)`` and interleaved CbCr
        ``(N, H/2, W/2, 2)`` uint8, as the decoder wrote them (copied off its buffers)."""
        if not indices:
            raise ValueError("frames: no indices")
        bad = [i for i in indices if not 0 <= i < len(self)]
        if bad:
            raise IndexError(f"frames {bad} are outside {self.info.path} ({len(self)} frames)")
        current = torch.cuda.current_stream(self.device)
        while self.in_use and self.in_use[0][0].query():
            self.in_use.popleft()
        if self.in_use:  # the decoder may reuse buffers the last copy still reads
            last = self.in_use[-1][0]
            if self.stream is not None:
                self.stream.wait_event(last)
            else:            # a stream of its own, which we cannot order: wait on the host
                last.synchronize()
        unique = sorted(set(indices))
        try:
            decoded = self.decoder.get_batch_frames_by_index(unique)
        except Exception as exc:
            raise RuntimeError(f"NVDEC failed on {self.info.path} frames {unique[0]}..{unique[-1]}: {exc}") from exc
        if len(decoded) != len(unique):
            raise RuntimeError(f"NVDEC gave {len(decoded)} frames for {len(unique)} indices of {self.info.path}")
        if self.stream is not None:  # (never the default stream: that would tie us to the loop's work)
            current.wait_stream(self.stream)
        at = {k: n for n, k in enumerate(unique)}
        planes = [self._planes(decoded[at[i]]) for i in indices]
        y = torch.stack([p[0] for p in planes])      # copies: the decoder's buffers are read here
        uv = torch.stack([p[1] for p in planes])
        self._pending = decoded
        self._converted()
        self.decoded += len(unique)
        return y, uv

    def _converted(self) -> None:
        """Keep the decoded frames until the kernels queued so far (that read them) are done."""
        decoded = getattr(self, "_pending", None)
        if decoded is not None:
            done = torch.cuda.Event()
            done.record(torch.cuda.current_stream(self.device))
            self.in_use.append((done, decoded))
            self._pending = None

    def _planes(self, frame: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """A decoded NV12 frame -> its Y ``(H, W)`` and interleaved CbCr ``(H/2, W/2, 2)`` views."""
        t = torch.from_dlpack(frame)
        while t.ndim > 2 and (t.shape[0] == 1 or t.shape[-1] == 1):  # (1, rows, W) or (rows, W, 1)
            t = t[0] if t.shape[0] == 1 else t[..., 0]
        h, w = self.info.height, self.info.width
        ch, cw = (h + 1) // 2, (w + 1) // 2
        if t.ndim != 2 or t.dtype != torch.uint8 or t.shape[1] < w or t.shape[0] < h + ch:
            raise RuntimeError(f"NVDEC gave a frame of {tuple(t.shape)} {t.dtype}; expected NV12 "
                               f"({h + ch}, {w}) uint8")
        luma_rows = t.shape[0] * 2 // 3  # the luma plane may be padded to the coded height
        y = t[:h, :w]
        uv = t[luma_rows:luma_rows + ch, :2 * cw].reshape(ch, cw, 2)
        return y, uv

    def close(self) -> None:
        if self.in_use:
            self.in_use[-1][0].synchronize()
        self.in_use.clear()
        self.decoder = None


def _truncated(info: VideoInfo, count: int) -> VideoInfo:
    """``info`` with only the first ``count`` frames (the decoder sees fewer than the demuxer)."""
    from dataclasses import replace

    return replace(info, times=info.times[:count], pts=info.pts[:count])
