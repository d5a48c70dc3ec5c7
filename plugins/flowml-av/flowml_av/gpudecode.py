"""GPU decoding for ``capture.video``: NVDEC through PyAV's hardware decoding, frames kept on
the GPU and handed to torch through DLPack, NV12 -> RGB converted there.

No package beyond PyAV is needed: PyAV's wheels carry FFmpeg with the CUDA hwaccel (``h264``,
``hevc``, ``av1``, ``vp9`` ... through NVDEC); the NVIDIA driver provides ``libnvcuvid``. Where
any of that is missing, ``capture.video`` decodes on the CPU and says why.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from flowml.lazy import lazy_import
av = lazy_import("av")
torch = lazy_import("torch")

# Kr, Kb of the YUV matrices by FFmpeg's AVColorSpace number
MATRICES = {1: (0.2126, 0.0722), 5: (0.299, 0.114), 6: (0.299, 0.114), 9: (0.2627, 0.0593),
            10: (0.2627, 0.0593)}
BT601 = (0.299, 0.114)  # what FFmpeg's swscale assumes for untagged video: the CPU path agrees


def gpu_decode_problem() -> str | None:
    """Why frames cannot be decoded on the GPU here, or None."""
    from av.codec.hwaccel import hwdevices_available

    if "cuda" not in hwdevices_available():
        return f"this FFmpeg build (PyAV {av.__version__}) has no CUDA hwaccel"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    return None


def hwaccel_choices(device: str) -> list[tuple[str, Any]]:
    """PyAV's NVDEC settings for a torch device like ``cuda:1``, best first, as (what, HWAccel).

    The decoder must work in torch's CUDA context, so torch can read the frames it leaves on
    the GPU. If torch has not started CUDA yet, FFmpeg retains the primary context itself
    (``primary_ctx``; seen working on H200). Once torch has (always, inside a graph), FFmpeg's
    ``primary_ctx`` refuses the context torch made ("already active with incompatible flags",
    ENOTSUP, seen on H200), so FFmpeg is told to use the context current on this thread
    (``current_ctx``), which torch's is after ``torch.cuda.set_device``."""
    from av.codec.hwaccel import HWAccel

    dev = torch.device(device)
    index = dev.index if dev.index is not None else torch.cuda.current_device()

    def accel(option: str) -> Any:
        return HWAccel("cuda", device=str(index), allow_software_fallback=True,
                       options={option: "1"}, is_hw_owned=True)

    if torch.cuda.is_initialized():
        torch.cuda.set_device(index)
        torch.empty(1, device=dev)  # the runtime binds torch's (primary) context to this thread
        return [("current_ctx", accel("current_ctx")), ("primary_ctx", accel("primary_ctx"))]
    return [("primary_ctx", accel("primary_ctx")), ("current_ctx", accel("current_ctx"))]


def nv12_to_rgb(y: torch.Tensor, uv: torch.Tensor, colorspace: int = 2, full_range: bool = False,
                size: tuple[int, int] | None = None) -> torch.Tensor:
    """NV12 planes -> ``(1, 3, H, W)`` float32 RGB in [0, 1], on their device.

    ``y`` ``(H, W)`` uint8, ``uv`` ``(H/2, W/2, 2)`` uint8 (interleaved Cb, Cr); ``colorspace``
    is FFmpeg's AVColorSpace (1: BT.709, 5/6: BT.601, 9: BT.2020; else BT.601 as swscale does),
    ``full_range`` for JPEG-range video. Chroma samples are repeated (nearest), as FFmpeg's
    swscale does in the CPU path, so both paths give the same picture (within 0.012 here)."""
    kr, kb = MATRICES.get(colorspace, BT601)
    kg = 1.0 - kr - kb
    height, width = y.shape
    luma = y.to(torch.float32)[None, None]
    chroma = uv.to(torch.float32).permute(2, 0, 1)[None]
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


class GpuFrames:
    """Turns NVDEC frames left on the GPU by PyAV into images on the current torch stream.

    FFmpeg writes the frames on its own CUDA stream (the legacy default stream of the shared
    context); the conversion waits for it on the GPU, not on the host. A frame's memory goes
    back to FFmpeg's pool when its Python object dies, so each one is kept until the event
    recorded after its conversion has passed."""

    def __init__(self, device: str):
        self.device = torch.device(device)
        self.in_use: deque[tuple[torch.cuda.Event, av.VideoFrame]] = deque()

    @staticmethod
    def needs_cpu(frame: av.VideoFrame) -> bool:
        """True for a frame NVDEC did not keep on the GPU as 8-bit NV12 (software fallback)."""
        if frame.format.name != "cuda":
            return True
        sw = frame.sw_format
        return sw is None or sw.name != "nv12"

    def to_image(self, frame: av.VideoFrame, size: tuple[int, int] | None) -> torch.Tensor:
        from torch.utils.dlpack import from_dlpack

        while self.in_use and self.in_use[0][0].query():
            self.in_use.popleft()
        stream = torch.cuda.current_stream(self.device)
        stream.wait_stream(torch.cuda.default_stream(self.device))  # FFmpeg's copies are done
        y = from_dlpack(frame.planes[0].__dlpack__())
        uv = from_dlpack(frame.planes[1].__dlpack__())
        image = nv12_to_rgb(y, uv, frame.colorspace, frame.color_range == 2, size)
        done = torch.cuda.Event()
        done.record(stream)
        self.in_use.append((done, frame))
        return image
