"""What NVDEC can take: PyNvVideoCodec present, a seekable file, a size the decoder accepts per
codec (``cuvidGetDecoderCaps`` where PyNvVideoCodec answers, else NVIDIA's table), and how many
engines the GPU has. ``nvdec.py`` decodes (and re-exports these names for its callers)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from flowml.lazy import lazy_import
torch = lazy_import("torch")

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
