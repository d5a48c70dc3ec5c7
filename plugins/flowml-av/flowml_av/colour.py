"""YCbCr -> RGB as FFmpeg does it, in torch: the decoded planes in, ``(1, 3, H, W)`` float out.

The stream's matrix (BT.601, BT.709, BT.2020, ...), range (limited or full) and bit depth are
read from the frame. Chroma is upsampled as FFmpeg's swscale does by default, so a frame
equals ``ffmpeg -i f -pix_fmt rgb24`` (tests/test_av_colour.py): repeated (nearest) for 8-bit
sources, which swscale converts with its unscaled converters; for deeper sources vertically
by swscale's default bicubic (Keys, a = -0.6, chroma sited between two luma rows) and
horizontally repeated. The same code runs on the CPU and on the GPU (torch ops on the planes
uploaded as they were decoded), so the conversion happens once, where the graph runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from flowml.lazy import lazy_import
av = lazy_import("av")
np = lazy_import("numpy")
torch = lazy_import("torch")
F = lazy_import("torch.nn.functional")

# Kr, Kb by FFmpeg's AVColorSpace number; anything else (unspecified) is BT.601, as swscale assumes
MATRICES: dict[int, tuple[float, float]] = {
    1: (0.2126, 0.0722),            # BT.709
    4: (0.30, 0.11),                # FCC
    5: (0.299, 0.114), 6: (0.299, 0.114),  # BT.470BG, SMPTE 170M (BT.601)
    7: (0.212, 0.087),              # SMPTE 240M
    9: (0.2627, 0.0593), 10: (0.2627, 0.0593),  # BT.2020 (non-constant, constant luminance)
}
BT601 = (0.299, 0.114)
NAMES = {(0.2126, 0.0722): "bt709", (0.299, 0.114): "bt601", (0.2627, 0.0593): "bt2020",
         (0.30, 0.11): "fcc", (0.212, 0.087): "smpte240m"}
# planar YCbCr formats the torch path takes: name -> (log2 chroma width, height divisor, bit depth)
PLANAR = {
    "yuv420p": (1, 1, 8), "yuvj420p": (1, 1, 8), "yuv422p": (1, 0, 8), "yuvj422p": (1, 0, 8),
    "yuv444p": (0, 0, 8), "yuvj444p": (0, 0, 8),
    "yuv420p10le": (1, 1, 10), "yuv422p10le": (1, 0, 10), "yuv444p10le": (0, 0, 10),
    "yuv420p12le": (1, 1, 12), "yuv422p12le": (1, 0, 12), "yuv444p12le": (0, 0, 12),
}
BICUBIC_A = -0.6  # swscale's SWS_BICUBIC default (B = 0, C = 0.6)


@dataclass(frozen=True)
class Colour:
    """How a frame's samples map to RGB."""

    kr: float
    kb: float
    full_range: bool
    depth: int
    chroma_shift: tuple[int, int]  # log2 of the chroma subsampling (width, height)

    @property
    def name(self) -> str:
        matrix = NAMES.get((self.kr, self.kb), f"kr={self.kr}")
        return f"{matrix} {'full' if self.full_range else 'limited'} range, {self.depth}-bit"

    @classmethod
    def of(cls, frame: av.VideoFrame) -> "Colour | None":
        """The frame's colour description, or None for a format the torch path does not take."""
        fmt = frame.format.name
        if fmt not in PLANAR:
            return None
        sw, sh, depth = PLANAR[fmt]
        kr, kb = MATRICES.get(int(frame.colorspace), BT601)
        full = fmt.startswith("yuvj") or int(frame.color_range) == 2
        return cls(kr, kb, full, depth, (sw, sh))


def planes(frame: av.VideoFrame) -> list[np.ndarray]:
    """The Y, Cb, Cr planes of a planar frame as numpy views (line padding cut off);
    ``uint8`` for 8-bit formats, ``int16`` for deeper ones (values fit in 15 bits)."""
    deep = frame.format.components[0].bits > 8
    out = []
    for plane in frame.planes:
        dtype, size = (np.dtype("<i2"), 2) if deep else (np.dtype(np.uint8), 1)
        rows = np.frombuffer(plane, dtype=dtype).reshape(plane.height, plane.line_size // size)
        out.append(rows[:, :plane.width])
    return out


@lru_cache(maxsize=16)
def _affine(colour: Colour) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The 3x3 matrix and offset taking raw (Y, Cb, Cr) sample values to RGB in [0, 1]."""
    scale = float(1 << (colour.depth - 8))
    if colour.full_range:
        ys, yo, cs = 255.0 * scale, 0.0, 255.0 * scale
    else:
        ys, yo, cs = 219.0 * scale, 16.0 * scale, 224.0 * scale
    co = 128.0 * scale
    kr, kb = colour.kr, colour.kb
    kg = 1.0 - kr - kb
    # R = Y + 2(1-kr) Cr; B = Y + 2(1-kb) Cb; G = (Y - kr R - kb B) / kg, Y in [0, 1], C in [-.5, .5]
    m = np.array([[1.0, 0.0, 2 * (1 - kr)],
                  [1.0, -2 * (1 - kb) * kb / kg, -2 * (1 - kr) * kr / kg],
                  [1.0, 2 * (1 - kb), 0.0]])
    pre = np.diag([1 / ys, 1 / cs, 1 / cs])
    full = m @ pre
    offset = -full @ np.array([yo, co, co])
    return tuple(full.ravel()), tuple(offset)


def _keys(x: float, a: float = BICUBIC_A) -> float:
    x = abs(x)
    if x <= 1:
        return (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1
    if x < 2:
        return a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a
    return 0.0


@lru_cache(maxsize=4)
def _vertical_taps() -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Weights for output rows 2i and 2i+1, over chroma rows i-2 .. i+2 (chroma between rows)."""
    even = tuple(_keys(j + 0.25) for j in range(-2, 3))
    odd = tuple(_keys(j - 0.25) for j in range(-2, 3))
    return even, odd


def _upsample_chroma(c: torch.Tensor, colour: Colour, height: int, width: int) -> torch.Tensor:
    """``(2, h, w)`` float chroma -> ``(2, H, W)``, as swscale does for this source."""
    sw, sh = colour.chroma_shift
    if sh:
        if colour.depth > 8:
            # five shifted multiply-adds, not conv2d: cuDNN may run that in TF32 on the GPU
            h = c.shape[1]
            padded = F.pad(c[:, None], (0, 0, 2, 2), mode="replicate")[:, 0]  # (2, h+4, w)
            phases = []
            for taps in _vertical_taps():
                acc = padded[:, 0:h] * taps[0]
                for j in range(1, 5):
                    acc = acc.add_(padded[:, j:j + h], alpha=taps[j])
                phases.append(acc)
            c = torch.stack(phases, dim=2).reshape(2, 2 * h, -1)              # rows 2i, 2i+1
        else:
            c = c.repeat_interleave(2, dim=1)
    if sw:
        c = c.repeat_interleave(2, dim=2)
    return c[:, :height, :width]


def yuv_to_rgb(y: torch.Tensor, cb: torch.Tensor, cr: torch.Tensor, colour: Colour) -> torch.Tensor:
    """Decoded planes (uint8 or int16, on any device) -> ``(1, 3, H, W)`` float32 RGB in [0, 1]."""
    height, width = y.shape
    chroma = torch.stack([cb, cr]).to(torch.float32)
    chroma = _upsample_chroma(chroma, colour, height, width)
    ycc = torch.cat([y.to(torch.float32)[None], chroma]).reshape(3, -1)
    m, offset = _affine(colour)
    mat = torch.tensor(m, dtype=torch.float32).view(3, 3).to(y.device, non_blocking=True)
    off = torch.tensor(offset, dtype=torch.float32).view(3, 1).to(y.device, non_blocking=True)
    rgb = torch.addmm(off, mat, ycc)
    return rgb.clamp_(0.0, 1.0).view(1, 3, height, width)


def frame_to_rgb(frame: av.VideoFrame, colour: Colour, device: str | torch.device) -> torch.Tensor:
    """Upload a planar frame's planes to ``device`` (as decoded: 1-2 bytes a sample) and convert."""
    ys = [torch.from_numpy(np.ascontiguousarray(p)).to(device, non_blocking=True) for p in planes(frame)]
    return yuv_to_rgb(ys[0], ys[1], ys[2], colour)
