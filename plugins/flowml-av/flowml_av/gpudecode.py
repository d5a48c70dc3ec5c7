"""NV12 -> RGB on the GPU for NVDEC frames (``nvdec.py``), as FFmpeg's swscale converts on the CPU.

Why flowml no longer decodes through PyAV's NVDEC (FFmpeg's CUDA hwaccel) in graphs: FFmpeg
must work in torch's CUDA context so torch can read the frames, and in a graph torch has made
that context before any decoder opens. FFmpeg's ``primary_ctx`` option then refuses it: it
wants the primary context with ``CU_CTX_SCHED_BLOCKING_SYNC`` and torch's is active with
other flags ("Primary context already active with incompatible flags", ENOTSUP, seen on the
H200 on 2026-11-22). Its ``current_ctx`` option answered EINVAL there: FFmpeg found no
current context on the thread that opened the codec (``benchmarks/pyav_nvdec_probe.py``
prints what that thread sees). Setting the flags before torch starts would change how every
torch sync waits, for the whole process; NVIDIA's PyNvVideoCodec retains the primary context
as it is, so it is the GPU decoder now.
"""

from __future__ import annotations

from flowml.lazy import lazy_import
torch = lazy_import("torch")

from .colour import BT601, MATRICES, Colour, _affine  # noqa: F401  (MATRICES, BT601: what callers import)


def nv12_to_rgb(y: torch.Tensor, uv: torch.Tensor, colorspace: int = 2, full_range: bool = False,
                size: tuple[int, int] | None = None) -> torch.Tensor:
    """NV12 planes -> ``(N, 3, H, W)`` float32 RGB in [0, 1], on their device.

    ``y`` ``(H, W)`` or ``(N, H, W)`` uint8, ``uv`` ``(H/2, W/2, 2)`` or ``(N, H/2, W/2, 2)``
    uint8 (interleaved Cb, Cr; rounded up for odd sizes); ``colorspace`` is FFmpeg's
    AVColorSpace (``colour.MATRICES``: 1 BT.709, 5/6 BT.601, 9/10 BT.2020, ...; else BT.601 as
    swscale does), ``full_range`` for JPEG-range video. Chroma samples are repeated (nearest),
    as FFmpeg's swscale does in the CPU path, so both paths give the same picture (within
    0.012 here); the matrix is ``colour.py``'s, the one its GPU path applies to CPU-decoded planes.

    Seven kernels for the whole batch, whatever N is: chroma repeated once (uint8), then
    ``R = a Y + c Cr + o``, ``G = a Y + d Cb + e Cr + o``, ``B = a Y + f Cb + o`` written in
    place into the output (uint8 operands promote to float32), clamped."""
    if y.ndim == 2:
        y, uv = y[None], uv[None]
    n, height, width = y.shape
    ch, cw = uv.shape[1:3]
    m, off = _affine(Colour(*MATRICES.get(colorspace, BT601), bool(full_range), 8, (1, 1)))
    up = uv[:, :, None, :, None, :].expand(n, ch, 2, cw, 2, 2).reshape(n, 2 * ch, 2 * cw, 2)
    cb, cr = up[:, :height, :width, 0], up[:, :height, :width, 1]       # uint8 views
    rgb = torch.add(_offsets(off, y.device), y[:, None], alpha=m[0])    # (N, 3, H, W): a Y + o
    rgb[:, 0].add_(cr, alpha=m[2])
    rgb[:, 1].add_(cb, alpha=m[4]).add_(cr, alpha=m[5])
    rgb[:, 2].add_(cb, alpha=m[7])
    rgb.clamp_(0.0, 1.0)
    if size is not None and (width, height) != tuple(size):
        rgb = torch.nn.functional.interpolate(rgb, size=(size[1], size[0]), mode="bilinear",
                                              align_corners=False, antialias=True)
    return rgb


_OFFSETS: dict[tuple, torch.Tensor] = {}


def _offsets(off: tuple[float, float, float], device: torch.device) -> torch.Tensor:
    """The ``(1, 3, 1, 1)`` float32 offsets on ``device``, made once per matrix and device (the
    upload waited for once: the tensor is then read from any stream)."""
    key = (off, str(device))
    t = _OFFSETS.get(key)
    if t is None:
        t = torch.tensor(off, dtype=torch.float32).view(1, 3, 1, 1).to(device)
        if t.is_cuda:
            torch.cuda.current_stream(t.device).synchronize()
        _OFFSETS[key] = t
    return t
