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

# Kr, Kb of the YUV matrices by FFmpeg's AVColorSpace number
MATRICES = {1: (0.2126, 0.0722), 5: (0.299, 0.114), 6: (0.299, 0.114), 9: (0.2627, 0.0593),
            10: (0.2627, 0.0593)}
BT601 = (0.299, 0.114)  # what FFmpeg's swscale assumes for untagged video: the CPU path agrees


def nv12_to_rgb(y: torch.Tensor, uv: torch.Tensor, colorspace: int = 2, full_range: bool = False,
                size: tuple[int, int] | None = None) -> torch.Tensor:
    """NV12 planes -> ``(N, 3, H, W)`` float32 RGB in [0, 1], on their device.

    ``y`` ``(H, W)`` or ``(N, H, W)`` uint8, ``uv`` ``(H/2, W/2, 2)`` or ``(N, H/2, W/2, 2)``
    uint8 (interleaved Cb, Cr; rounded up for odd sizes); ``colorspace`` is FFmpeg's
    AVColorSpace (1: BT.709, 5/6: BT.601, 9: BT.2020; else BT.601 as swscale does),
    ``full_range`` for JPEG-range video. Chroma samples are repeated (nearest), as FFmpeg's
    swscale does in the CPU path, so both paths give the same picture (within 0.012 here)."""
    kr, kb = MATRICES.get(colorspace, BT601)
    kg = 1.0 - kr - kb
    if y.ndim == 2:
        y, uv = y[None], uv[None]
    height, width = y.shape[1:]
    luma = y.to(torch.float32)[:, None]
    chroma = uv.to(torch.float32).permute(0, 3, 1, 2)
    chroma = chroma.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)[:, :, :height, :width]
    if full_range:
        luma = luma / 255.0
        chroma = (chroma - 128.0) / 255.0
    else:
        luma = (luma - 16.0) / 219.0
        chroma = (chroma - 128.0) / 224.0
    cb, cr = chroma[:, :1], chroma[:, 1:]
    r = luma + 2 * (1 - kr) * cr
    b = luma + 2 * (1 - kb) * cb
    g = (luma - kr * r - kb * b) / kg
    rgb = torch.cat([r, g, b], dim=1).clamp_(0.0, 1.0)
    if size is not None and (width, height) != tuple(size):
        rgb = torch.nn.functional.interpolate(rgb, size=(size[1], size[0]), mode="bilinear",
                                              align_corners=False, antialias=True)
    return rgb
