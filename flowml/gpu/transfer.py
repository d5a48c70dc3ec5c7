"""Moving frames between host and device: pinned staging, asynchronous copies.

Sources call ``image_from_host`` once per frame (uint8 HWC in, float BCHW on the device out);
sinks get host tensors from the scheduler, which downloads into pinned memory on a copy stream
and lets the sink's own thread wait for it (``Download``). PyTorch's caching host allocator
recycles pinned buffers only after the copies that use them have finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .lanes import map_tensors
from .staging import stage


PAGEABLE_STAGING = "direct"
"""What ``"auto"`` does with a frame in pageable memory. Direct, because in the graphs it was
as fast or faster (H100 host, 2026-11-22): a decode-bound decode + model chain ran at 116 fps
direct against 106 staged on 4 threads (GIL switch interval 0.5 ms), and live latency p50
was 20.2 against 20.3 ms (20.8 against 21.1 in another run). Alone, a 1080p upload costs
about the same either way (0.6 to 0.9 ms, host-dependent); at 4K, staging on 4 threads wins
(1.6 against 2.1 ms): ask for it with ``staging="pinned"``. ``flowml bench`` measures both
in every run."""


def image_from_host(array: np.ndarray, device: str | torch.device = "cpu",
                    staging: str = "auto") -> torch.Tensor:
    """``(H, W, C)`` uint8 RGB(A) on the host -> ``(1, C, H, W)`` float32 in [0, 1] on ``device``.

    The uint8 bytes cross the bus (4x fewer than float32) and are converted on the device, on
    the current stream. ``staging``: ``"pinned"`` copies the frame into pinned memory on a few
    threads (``gpu.staging``), then uploads asynchronously; ``"direct"`` copies from the array's
    own memory: asynchronous from pinned memory (see ``pinned_frame``), from pageable memory the
    driver stages it and the calling thread waits for the copy; ``"auto"`` (default) stages a
    pageable frame as ``PAGEABLE_STAGING`` says and never a pinned one.
    ``flowml bench --only transfer latency`` measures them (docs/benchmarks.md). The result is
    contiguous NCHW (a permuted view would silently run the model channels-last).

    A live frame arrives on a thread that slept since the last one, where each torch call
    costs 4 - 13x its warm time (H200, 2026-12-01: the seven calls of an upload took 339 - 595
    us after a 13 ms sleep against 44 - 122 us back to back; ``benchmarks/latency_probe.py``),
    so this path makes few: the batch axis is added by numpy, and a frame is asked whether it
    is pinned only where the answer changes what happens."""
    if array.dtype != np.uint8 or array.ndim != 3:
        raise ValueError(f"image_from_host wants (H, W, C) uint8, got {array.dtype} {array.shape}")
    if staging not in ("auto", "direct", "pinned"):
        raise ValueError(f"staging must be 'auto', 'direct' or 'pinned', got {staging!r}")
    if not str(device).startswith("cuda"):
        return _bhwc_uint8_to_image(torch.from_numpy(np.ascontiguousarray(array)[None]))
    if staging == "auto":
        staging = PAGEABLE_STAGING
        if staging == "pinned" and array.flags.c_contiguous and torch.from_numpy(array).is_pinned():
            staging = "direct"  # already pinned: the copy below is asynchronous as it is
    if staging == "pinned":
        src = stage(array)[None]  # any strides
    else:
        src = torch.from_numpy(np.ascontiguousarray(array)[None])
    return _bhwc_uint8_to_image(src.to(device, non_blocking=True))


def pinned_frame(height: int, width: int, channels: int = 3) -> np.ndarray:
    """A ``(H, W, C)`` uint8 numpy array in pinned memory: a source that can decode into it
    gets an asynchronous upload from ``image_from_host``."""
    return torch.empty((height, width, channels), dtype=torch.uint8, pin_memory=True).numpy()


def hwc_uint8_to_image(src: torch.Tensor) -> torch.Tensor:
    """``(H, W, C)`` uint8 -> contiguous ``(1, C, H, W)`` float32 in [0, 1], same device."""
    return _bhwc_uint8_to_image(src.unsqueeze(0))


def _bhwc_uint8_to_image(src: torch.Tensor) -> torch.Tensor:
    """``(1, H, W, C)`` uint8 -> contiguous ``(1, C, H, W)`` float32 in [0, 1], one kernel."""
    _, h, w, c = src.shape
    out = torch.empty((1, c, h, w), dtype=torch.float32, device=src.device)
    return torch.mul(src.permute(0, 3, 1, 2), 1.0 / 255.0, out=out)


def to_uint8_bhwc(image: torch.Tensor, channels: int | None = None) -> torch.Tensor:
    """``(B, C, H, W)`` float in [0, 1] -> ``(B, H, W, C)`` uint8, on the image's own device.

    ``channels=4`` packs 4 bytes a pixel, ``(B, H, W, 4)``: a 3-channel image gets an opaque
    fourth channel (255), a grey one is repeated into RGB first; a 4-channel image is as it is.

    On the GPU: one chain of torch kernels. On the CPU (a sink of a CPU graph pays this for
    every frame): OpenCV's SIMD loops over bands of ~256 rows (the band's planes stay in cache
    from conversion to interleaving), the bands on a few threads (OpenCV releases the GIL),
    no Python per pixel: 1080p costs ~5.5 ms of CPU against ~49 ms for the torch chain (2-core
    host, 2026-12-02), with the same bytes (x * 255 in float32, rounded half to even,
    saturated; NaN and negatives give 0; only +inf differs: 0, not 255). Without OpenCV, or
    for other float types, the torch chain runs on the CPU too."""
    if image.ndim != 4:
        raise ValueError(f"expected an image (B, C, H, W), got shape {tuple(image.shape)}")
    if channels not in (None, 4):
        raise ValueError(f"channels is None or 4, not {channels!r}")
    if channels == 4 and image.shape[1] not in (1, 3, 4):
        raise ValueError(f"expected 1, 3 or 4 channels to pack as RGBX/RGBA, got an image of "
                         f"shape {tuple(image.shape)}")
    if image.is_cuda or image.dtype != torch.float32 or image.requires_grad and torch.is_grad_enabled():
        return _torch_uint8(image, channels)
    try:
        import cv2
    except ImportError:
        return _torch_uint8(image, channels)
    import os
    from concurrent.futures import ThreadPoolExecutor

    src = image.detach().contiguous().numpy()
    b, c, h, w = src.shape
    pad = channels == 4 and c != 4
    oc = 4 if pad else c
    out = np.empty((b, h, w, oc), dtype=np.uint8)

    def band(i: int, r0: int, r1: int) -> None:
        # a*x + 0*x + 0 in float32, saturated to uint8: torch's clamp-round-cast, byte for byte
        planes = [_cv2_uint8(cv2, p) for p in src[i, :, r0:r1]]
        if pad:
            planes = (planes * 3 if c == 1 else planes) + [np.full_like(planes[0], 255)]
        if oc == 1:
            out[i, r0:r1, :, 0] = planes[0]
        else:
            cv2.merge(planes, dst=out[i, r0:r1])  # planar -> interleaved, in place

    bands = max(1, min(h // 128, -(-h * w // (256 * 1920))))  # ~256 1080p rows a band
    jobs = [(i, h * j // bands, h * (j + 1) // bands) for i in range(b) for j in range(bands)]
    if len(jobs) == 1:
        band(*jobs[0])
    else:
        pool = getattr(to_uint8_bhwc, "pool", None)
        if pool is None:
            # idle workers between frames; not named flowml-*, which the CLI reports alive at exit
            pool = to_uint8_bhwc.pool = ThreadPoolExecutor(min(4, os.cpu_count() or 1),
                                                           thread_name_prefix="to-uint8")
        for done in [pool.submit(band, *job) for job in jobs]:
            done.result()
    return torch.from_numpy(out)


def _cv2_uint8(cv2: Any, plane: np.ndarray) -> np.ndarray:
    """One float32 plane -> uint8: ``x * 255`` in float32, rounded half to even, saturated
    (OpenCV's SIMD loop); NaN gives 0 as on the GPU, whatever OpenCV's own saturation of NaN
    is (0 in OpenCV 4, 255 in 5.1): the NaNs are found by ``x != x`` and cleared after."""
    out = cv2.addWeighted(plane, 255.0, plane, 0.0, 0.0, dtype=cv2.CV_8U)
    nan = cv2.compare(plane, plane, cv2.CMP_NE)  # 255 where x is NaN
    if cv2.countNonZero(nan):
        cv2.bitwise_and(out, cv2.bitwise_not(nan), dst=out)
    return out


def _torch_uint8(image: torch.Tensor, channels: int | None) -> torch.Tensor:
    """``to_uint8_bhwc`` as torch kernels (the GPU path, and the CPU path without OpenCV)."""
    x = image.detach().clamp(0, 1).mul(255).round_().to(torch.uint8)
    b, c, h, w = x.shape
    if channels != 4 or c == 4:
        return x.permute(0, 2, 3, 1).contiguous()
    out = torch.empty((b, h, w, 4), dtype=torch.uint8, device=x.device)
    out[..., 3] = 255
    out[..., :3] = x.permute(0, 2, 3, 1).expand(b, h, w, 3) if c == 1 else x.permute(0, 2, 3, 1)
    return out


def image_to_host(image: torch.Tensor) -> np.ndarray:
    """``(1, C, H, W)`` or ``(C, H, W)`` float in [0, 1] -> ``(H, W, C)`` uint8 numpy (synchronous)."""
    if image.ndim == 4:
        image = image[0]
    return (image.detach().clamp(0, 1).mul(255).round().to(torch.uint8)
            .permute(1, 2, 0).contiguous().cpu().numpy())


@dataclass
class Download:
    """A device-to-host copy in flight; ``wait()`` on the consumer's thread gives the host value."""

    value: Any
    event: torch.cuda.Event | None

    def wait(self) -> Any:
        if self.event is not None:
            self.event.synchronize()
        return self.value


def start_download(value: Any, waits: list, stream: torch.cuda.Stream,
                   uint8: bool = False, channels: int | None = None) -> Download:
    """Enqueue copies of the tensors in ``value`` into pinned host memory on ``stream``
    (``uint8``: images converted to ``(B, H, W, C)`` uint8 on the device first, packed to
    ``channels`` as ``to_uint8_bhwc`` does)."""
    with torch.cuda.stream(stream):
        for ev in waits:
            stream.wait_event(ev)

        def copy(t: torch.Tensor) -> torch.Tensor:
            if not t.is_cuda:
                return t
            t.record_stream(stream)
            if uint8 and t.is_floating_point():
                t = to_uint8_bhwc(t, channels)
            host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
            host.copy_(t, non_blocking=True)
            return host

        out = map_tensors(value, copy)
        event = torch.cuda.Event()
        event.record(stream)
    return Download(out, event)
