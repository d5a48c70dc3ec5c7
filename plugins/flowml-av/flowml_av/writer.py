"""``output.video``: encode H.264 or H.265 MP4 with PyAV: libx264/libx265, or NVENC where present."""

from __future__ import annotations

import math
import re
import time
from fractions import Fraction
from typing import Literal

from flowml.lazy import lazy_import
av = lazy_import("av")
torch = lazy_import("torch")
reformatter = lazy_import("av.video.reformatter")
from pydantic import field_validator

import flowml
from flowml import IMAGE, Field, Input, Node, NodeError

from .convert import host_rgb24
from .rates import exact_rate

Preset = Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                 "slower", "veryslow"]
FRAGMENTED = {
    # a fragment per keyframe, flushed to disk at once; delay_moov writes the header with the
    # first fragment, once the B-frame delay is known, so that the first frame's stamp is 0
    "movflags": "frag_keyframe+empty_moov+delay_moov+default_base_moof",
    "flush_packets": "1",
}

# x264 with several threads, or with macroblock-tree rate control (mbtree) even on one thread,
# gave different bytes for the same frames from run to run (x264 core 165 in PyAV 18's FFmpeg).
REPEATABLE = {"threads": "1", "mbtree": "0"}
# x265 (4.2): one frame thread, no thread pool (so no wavefront), no cu-tree: the same idea
X265_REPEATABLE = "frame-threads=1:pools=none:cutree=0"
BT709 = 1  # FFmpeg's AVCOL_SPC_BT709 = AVCOL_PRI_BT709 = AVCOL_TRC_BT709

CPU_ENCODERS = {"h264": "libx264", "h265": "libx265"}
NVENC_ENCODERS = {"h264": "h264_nvenc", "h265": "hevc_nvenc"}
NVENC_PRESETS = {"ultrafast": "p1", "superfast": "p1", "veryfast": "p2", "faster": "p3", "fast": "p4",
                 "medium": "p5", "slow": "p6", "slower": "p7", "veryslow": "p7"}
_probed: dict[tuple[str, str], str | None] = {}


def encoder_problem(name: str, pix_fmt: str = "yuv420p") -> str | None:
    """Why FFmpeg's encoder ``name`` cannot encode here (not built in, no GPU or driver), or
    None when it opened a 256x256 test context. Probed once per process and format."""
    key = (name, pix_fmt)
    if key not in _probed:
        if name not in av.codecs_available:
            _probed[key] = f"{name} is not in this FFmpeg build (PyAV {av.__version__})"
        else:
            try:
                ctx = av.CodecContext.create(name, "w")
                ctx.width, ctx.height, ctx.pix_fmt = 256, 256, pix_fmt
                ctx.time_base, ctx.framerate = Fraction(1, 30), Fraction(30)
                ctx.open()
                _probed[key] = None
            except Exception as exc:  # no GPU, no driver, no NVENC session left, format refused
                _probed[key] = f"{name} did not open: {type(exc).__name__}: {exc}"
    return _probed[key]


def parse_bitrate(value: str | int) -> int:
    """``8000000``, ``"8M"``, ``"2500k"``, ``"2.5M"`` -> bits per second."""
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*(?:b/s|bps)?\s*", value)
    if not m:
        raise ValueError(f"{value!r} is not a bitrate; write e.g. 8M, 2500k or 8000000")
    scale = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


class VideoWriter(Node):
    """Encode frames to an H.264 or H.265 MP4 file with exact timestamps (and, on the CPU
    encoders, repeatable bytes).

    ``image`` ``(B, C, H, W)`` in [0, 1]: batch item 0 is encoded (alpha dropped, grey
    repeated; the graph hands it over as uint8 on the host). The first frame sets the video's
    size (an odd width or height loses its last pixel, as yuv420p needs even sizes). Colours
    are converted with BT.709, limited range, and tagged so.

    ``fps`` is kept as an exact rational: ``29.97`` (or ``"30000/1001"``) is 30000/1001, and
    ``ffprobe`` reads that back as ``r_frame_rate``. Offline, frame k gets pts k (time base
    1/fps). Live, a frame is stamped by its capture time (the tick's ``t``) rounded to the
    frame grid, so the file plays in real time whatever the sink skipped: a skipped frame
    leaves the one before it on screen for longer, and a second frame in the same slot is
    dropped (counted in the log at the end).

    ``fragmented`` (default) writes a fragment at every keyframe and flushes it to disk, so a
    process killed hard still leaves a playable file up to the last whole fragment; otherwise
    the index is written in ``teardown`` (which the scheduler runs on Ctrl-C too). With
    ``deterministic`` (default: on offline, off live, where the frames taken depend on timing
    anyway and one encoder thread is what makes a live sink fall behind) the same frames and
    params give a byte-identical file.
    Encoder params are read at the first frame; live changes to them have no effect.

    ``codec`` h264 or h265 (HEVC, tagged ``hvc1`` so Apple players open it). ``encoder``:
    ``cpu`` is libx264/libx265; ``nvenc`` is NVIDIA's hardware encoder; ``auto`` takes NVENC
    when the node runs on a CUDA device and NVENC opens, else the CPU encoder. An encoder that
    cannot open here falls back to the CPU one with a log line saying why. Quality is ``crf``
    (NVENC: constant quality ``cq`` with the same number), or ``bitrate`` (e.g. ``8M``) when
    set. ``deterministic`` applies to the CPU encoders (NVENC output is not promised stable).
    """

    type_name = "output.video"
    inputs = (Input("image", IMAGE, "(B, C, H, W); item 0 is encoded", uint8=True),)
    blocking = True

    class Params(flowml.Params):
        path: str = Field(description=(
            "the .mp4 file, relative to the graph file; its folder is made; a live change closes "
            "this take and starts one in the new file"), file="output", rebuild=True)
        # the rest is read when the file is opened: changed only in the graph file (a change
        # there starts the take again), never live
        fps: float = Field(30.0, gt=0, le=1000, live=False,
                           description="frame rate, exact: 30, 29.97 (= 30000/1001) or \"30000/1001\"")
        crf: int = Field(20, ge=0, le=51, live=False,
                         description="quality: 0 lossless ... 51 worst; 18-23 look good")
        preset: Preset = Field("medium", live=False, description="x264 speed/size trade-off")
        pix_fmt: Literal["yuv420p", "yuv444p"] = Field(
            "yuv420p", live=False,
            description="yuv420p plays everywhere; yuv444p keeps full colour resolution")
        fragmented: bool = Field(True, live=False,
                                 description="fragmented MP4: playable even after a hard kill")
        keyframe_interval: float = Field(
            1.0, gt=0, le=60, live=False, description="seconds between keyframes (and fragments)")
        deterministic: bool | None = Field(
            None, live=False,
            description="same frames, same bytes: one encoder thread, no mbtree (files a few % larger); "
                        "none: on offline, off live")
        codec: Literal["h264", "h265"] = Field("h264", live=False, description="H.264 (AVC) or H.265 (HEVC)")
        encoder: Literal["auto", "cpu", "nvenc"] = Field(
            "auto", live=False,
            description="cpu: libx264/libx265; nvenc: NVIDIA GPU; auto: NVENC on a CUDA node if it opens")
        bitrate: int | str | None = Field(
            None, live=False,
            description="target bits per second (8M, 2500k) instead of constant quality (crf)")

        @field_validator("bitrate")
        @classmethod
        def _bitrate(cls, value: int | str | None) -> int | str | None:
            if value is not None and parse_bitrate(value) <= 0:
                raise ValueError("bitrate must be positive")
            return value

        @field_validator("fps", mode="before")
        @classmethod
        def _fps(cls, value: object) -> object:
            """``"30000/1001"`` -> its float, which ``exact_rate`` maps back to the fraction."""
            if isinstance(value, str) and "/" in value:
                return float(exact_rate(value))  # raises ValueError with what to write
            return value

        @field_validator("path")
        @classmethod
        def _mp4(cls, path: str) -> str:
            if not path.lower().endswith((".mp4", ".m4v")):
                raise ValueError(f"{path!r}: output.video writes MP4; end the file name in .mp4")
            return path

    def setup(self, ctx: flowml.NodeContext) -> None:
        self.path = ctx.resolve(self.params.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.container: av.container.OutputContainer | None = None
        self.count = 0
        self.rate = exact_rate(self.params.fps)
        self.live = ctx.mode == "live"
        self.t0: float | None = None   # live: the capture time of the first frame
        self.last_pts = -1
        self.held = 0                  # live: frame slots with no frame of their own (shown longer)
        self.merged = 0                # live: frames dropped because their slot was already filled
        self.wall_base = math.inf      # live: the wall clock (perf_counter) of the first frame's slot
        self.last_pixels = None        # live: repeated at the end, up to the moment the take stopped

    def process(self, image: torch.Tensor) -> None:
        pixels = host_rgb24(image)
        if self.container is None:
            self._open(width=pixels.shape[1] // 2 * 2, height=pixels.shape[0] // 2 * 2)
        height, width = self.stream.height, self.stream.width
        if pixels.shape[0] // 2 * 2 != height or pixels.shape[1] // 2 * 2 != width:
            raise NodeError(f"frame {self.count} is {pixels.shape[1]}x{pixels.shape[0]}, but the video "
                            f"is {width}x{height} (set by the first frame); put an image.resize before it")
        pts = self._pts()
        if pts is None:
            return
        self._encode(pixels[:height, :width], pts)
        if self.live:
            self.last_pixels = pixels[:height, :width]
        self.count += 1

    def _encode(self, pixels, pts: int) -> None:
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
        frame = frame.reformat(format=self.params.pix_fmt, dst_colorspace=reformatter.Colorspace.ITU709,
                               dst_color_range=reformatter.ColorRange.MPEG)
        frame.pts = pts
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def _pts(self) -> int | None:
        """Offline: the frame's index. Live: its capture time on the 1/fps grid (None: this
        slot already has a frame)."""
        if not self.live:
            self.last_pts = self.count
            return self.count
        t = self.ctx.tick.t
        if self.t0 is None:
            self.t0 = t
        slot = round((t - self.t0) * self.rate)
        self.wall_base = min(self.wall_base, time.perf_counter() - float(t - self.t0))
        if slot <= self.last_pts:
            self.merged += 1
            return None
        self.held += slot - self.last_pts - 1
        self.last_pts = slot
        return slot

    @property
    def deterministic(self) -> bool:
        d = self.params.deterministic
        return (not self.live) if d is None else d

    def choose_encoder(self) -> str:
        """The FFmpeg encoder this node will use (probing NVENC where it is asked for)."""
        p = self.params
        cpu = CPU_ENCODERS[p.codec]
        wants_gpu = p.encoder == "nvenc" or (p.encoder == "auto" and self.ctx.device.startswith("cuda"))
        if not wants_gpu:
            return cpu
        nvenc = NVENC_ENCODERS[p.codec]
        problem = encoder_problem(nvenc, p.pix_fmt)
        if problem is None:
            return nvenc
        self.log.warning("output.video: NVENC not available (%s); encoding with %s on the CPU", problem, cpu)
        return cpu

    def _open(self, width: int, height: int) -> None:
        p = self.params
        if width < 2 or height < 2:
            raise NodeError(f"a {width}x{height} frame is too small to encode; H.264 needs 2x2 or more")
        rate = self.rate
        self.encoder = self.choose_encoder()
        self.container = av.open(str(self.path), "w", format="mp4",
                                 options=FRAGMENTED if p.fragmented else {})
        self.stream = self.container.add_stream(self.encoder, rate=rate)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, p.pix_fmt
        codec = self.stream.codec_context
        if p.codec == "h265":
            codec.codec_tag = "hvc1"  # HEVC in MP4 as Apple's players want it (FFmpeg's default is hev1)
        codec.time_base = 1 / rate
        codec.gop_size = max(1, round(float(rate) * p.keyframe_interval))
        # tag what process() converts to (BT.709, limited range), so players need not guess
        codec.colorspace, codec.color_primaries, codec.color_trc = BT709, BT709, BT709
        codec.color_range = reformatter.ColorRange.MPEG.value
        bitrate = parse_bitrate(p.bitrate) if p.bitrate is not None else None
        if bitrate is not None:
            codec.bit_rate = bitrate
        if self.live:
            # no B-frames live: with frames stamped by capture time, a gap (frames the sink
            # skipped) before a reordered frame would shift the decode times and make the
            # container's duration longer than the take by the length of that gap
            codec.max_b_frames = 0
        codec.options = self._encoder_options(bitrate)
        self.log.info("output.video: %s, %dx%d at %s fps, %s -> %s", self.encoder, width, height, rate,
                      f"{bitrate} b/s" if bitrate else f"crf {p.crf}", self.path)

    def _encoder_options(self, bitrate: int | None) -> dict[str, str]:
        p = self.params
        if self.encoder.endswith("_nvenc"):
            rate = ({"rc": "vbr", "maxrate": str(bitrate), "bufsize": str(2 * bitrate)} if bitrate
                    else {"rc": "vbr", "cq": str(max(1, p.crf)), "b": "0"})
            return {"preset": NVENC_PRESETS[p.preset], **rate}
        rate = {"maxrate": str(bitrate), "bufsize": str(2 * bitrate)} if bitrate else {"crf": str(p.crf)}
        if self.encoder == "libx265":
            x265 = "log-level=error" + (":" + X265_REPEATABLE if self.deterministic else "")
            return {"preset": p.preset, "x265-params": x265, **rate}
        return {"preset": p.preset, **rate, **(REPEATABLE if self.deterministic else {"threads": "0"})}

    def _fill_to_stop(self) -> None:
        """Live: frames the sink skipped at the very end still count: the last frame is shown
        until the slot in which the graph stopped taking frames (``ctx.stopped_at``, by the
        wall clock, not the later teardown), so the file lasts as long as the recording did."""
        if not self.live or self.last_pixels is None or not math.isfinite(self.wall_base):
            return
        stopped = self.ctx.stopped_at if self.ctx.stopped_at is not None else time.perf_counter()
        end_slot = math.floor((stopped - self.wall_base) * self.rate)
        if end_slot - 1 > self.last_pts:
            self.held += end_slot - 1 - self.last_pts - 1
            self.last_pts = end_slot - 1
            self._encode(self.last_pixels, self.last_pts)
            self.count += 1  # the log at the end counts the frames in the file

    def teardown(self) -> None:
        if getattr(self, "container", None) is None:
            self.log.warning("output.video: no frame arrived, so %s was not written", self.path)
            return
        try:
            self._fill_to_stop()
            for packet in self.stream.encode(None):  # flush the frames x264 still holds
                self.container.mux(packet)
        finally:
            self.container.close()
            self.container = None
        seconds = float((self.last_pts + 1) / self.rate)
        extra = f"; live: {self.held} slot(s) held over, {self.merged} frame(s) merged" if self.live else ""
        self.log.info("output.video: %d frames, %.3f s at %s fps -> %s%s", self.count, seconds, self.rate,
                      self.path, extra)
