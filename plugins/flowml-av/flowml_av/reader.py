"""``capture.video`` and ``capture.stream``: decode a video file or a network stream with PyAV."""

from __future__ import annotations

import os
import threading
from collections import deque
from fractions import Fraction
import time
from pathlib import Path
from typing import Annotated, Any, Iterator, Literal

from flowml.lazy import lazy_import
av = lazy_import("av")
np = lazy_import("numpy")
torch = lazy_import("torch")

import flowml
from flowml import IMAGE, JSON, EndOfStream, Field, Node, NodeError, Output, Stamped
from flowml.batching import FRAMES_KEYS, frames_record, refuse_live_batch
transfer = lazy_import("flowml.gpu.transfer")

from .colour import Colour, frame_to_rgb
from .nvdec import NvdecSizeError, NvdecVideo, engines, nvdec_problem
from .nvdec_caps import PATTERN, URL  # a stream URL; an image-sequence pattern (f_%04d.png)
from .parallel import LONG_GOP, ParallelFrames, key_pieces, keyframe_indices, plan
from .probe import VideoInfo, probe

Pixels = Annotated[int, Field(ge=1, le=16384)]
"""An image-sequence pattern (``f_%04d.png``), read by FFmpeg's image2 demuxer."""
NVDEC_CHUNK = 8
"""Frames NVDEC decodes in one call (sequential reading): fewer calls, one conversion kernel set;
calls start at keyframes (``parallel.key_pieces``: whole GOPs, a longer GOP one call)."""
STATUS_KEYS = frozenset({"frames", "skipped", "reconnects", "colour", "rotation", "decoder", "decoders"})
"""The keys of the ``status`` record."""
MAX_LAG_S = 0.5
"""Realtime playback that falls this far behind the file's clock (a slow graph, a stall)
starts its clock again from the current frame instead of rushing to catch up."""


class VideoSource(Node):
    """Frames of a video file or stream (anything FFmpeg reads), stamped with their own time.

    ``path`` is a file (relative to the graph file) or a URL: ``rtsp://``, ``http(s)://``,
    ``srt://``, ``udp://``, ... (``timeout`` bounds opening and each read; RTSP goes over TCP).

    Output ``image``: ``(K, 3, H, W)`` float32 RGB in [0, 1] on the node's device, K =
    ``batch`` consecutive frames a tick (1 by default), the tick stamped ``t`` = its first
    frame's presentation time in seconds (its pts). Looping adds the file's length to the
    stamps of each later pass, so time keeps going forward. Frames are scaled to ``size`` (by
    FFmpeg before the upload, or on the GPU after GPU decoding).

    Batching over time (``batch: K``, offline graphs; ``flowml.batching``): a tick reads K
    frames, one after another exactly as K ticks of ``batch: 1`` would (from the NVDEC
    decoders' pieces or the CPU decoder), and stacks them on the device, so the graph's
    per-tick cost is paid once for K frames. Output ``frames``: ``{index, count, t, pts}``:
    ``index`` the first frame's place in what this node has emitted (0, 1, ... from ``start``,
    counting on across loops), ``count`` = K, ``t`` each frame's stamp (loop offset included),
    ``pts`` each frame's own time in the file (seconds). A batch runs across the end of the
    file when looping (the frames after the last are those from ``start`` again, their stamps
    going on); without ``loop`` the last tick has the frames that were left (fewer than K),
    and the next ends the stream. ``realtime`` paces each frame of a batch by its own stamp
    (the tick comes when its last frame is due). ``start`` is where the first batch begins.
    A live graph (``capture.stream``, or ``mode: live``) refuses ``batch`` > 1 at start and on
    a live change, as ``capture.pattern`` does. ``batch`` may change between ticks offline.

    Colour: the stream's matrix (BT.601/709/2020), range (limited/full) and bit depth are
    honoured as FFmpeg does (``ffmpeg -i f -pix_fmt rgb24`` gives the same pixels). On a CPU
    node 8-bit video is converted by FFmpeg's swscale; deeper video (10/12-bit), and every
    planar format on a GPU node, is uploaded as decoded and converted once by torch on the
    node's device (``colour.py``). A display matrix (phone video) is applied as FFmpeg's
    autorotate does: a 90-degree file comes out portrait; ``autorotate: false`` keeps the
    frame as stored. A packet the decoder cannot decode (a damaged file) is skipped and
    counted, the first logged with its position; the stream goes on, and ``status`` says
    how many were skipped. An image-sequence pattern (``frames/f_%04d.png``) is read by
    FFmpeg's image2 demuxer at ``fps`` frames a second.

    Pace: offline (the default for files) frames come as fast as the graph takes them; with
    ``realtime`` (default: when the graph runs live) they come at the file's own rate, by their
    pts. ``capture.stream`` is this node with ``live`` set, for network streams.

    ``decode``: ``cpu`` decodes with FFmpeg on the CPU; ``cuda`` with NVDEC through NVIDIA's
    PyNvVideoCodec (``flowml-av[nvdec]``, ``nvdec.py``): frames stay on the GPU and are
    converted from NV12 to RGB there with the stream's matrix and range; ``auto`` takes
    ``cuda`` when the node runs on a CUDA device and falls back to the CPU, with a log line
    saying why, where PyNvVideoCodec is missing or cannot decode the file (streams, image
    sequences, 4:4:4 and 10-bit video decode on the CPU). ``status.decoder`` says which ran.
    A file below NVDEC's minimum size for its codec (``nvdec.MIN_SIZE``, or the decoder's own
    caps: HEVC 144x144) decodes on the CPU, the log line naming the node, size and minimum.

    ``decoders``: a file read offline can be decoded by K decoders at once, each taking
    keyframe-aligned segments (``parallel.py``), frames handed out in order with the same
    indices and stamps as one decoder gives (looping included). None (auto): one a NVDEC
    engine (7 on an H200) for offline NVDEC, else 1 (FFmpeg's frame threads use the cores);
    realtime playback, streams and image sequences always use one. With K > 1 on the CPU,
    ``size`` is scaled by torch after the conversion (not by swscale), and each decoder gets
    ``cores / K`` FFmpeg threads.
    """

    type_name = "capture.video"
    outputs = (Output("image", IMAGE, "(K, 3, H, W) RGB in [0, 1], K = batch"),
               Output("status", JSON, '{"frames", "skipped", "reconnects", "colour", "rotation"}'),
               Output("frames", JSON, "{index: first frame's index, count: K, t: [stamps, s], pts: [file times, s]}"))
    live = False

    class Params(flowml.Params):
        path: str = Field(description="video file (relative to the graph file) or stream URL", file="input")
        loop: bool = Field(False, description="start again at `start` after the last frame")
        start: float = Field(0.0, ge=0.0, description="seconds into the file to begin at", rebuild=True)
        size: tuple[Pixels, Pixels] | None = Field(
            None, description="[width, height] to scale to; none: as is")
        realtime: bool | None = Field(
            None, description="play at the file's own rate; none: when the graph runs live", rebuild=True)
        decode: Literal["auto", "cpu", "cuda"] = Field(
            "auto", description="cuda: NVDEC (PyNvVideoCodec), frames stay on the GPU; auto: cuda on a "
                                "CUDA node if it works",
            rebuild=True)
        timeout: float = Field(10.0, gt=0, le=600, description="streams: seconds to wait to open and for data")
        reconnect: bool = Field(False, description="streams: reopen after an error or the end, with backoff")
        autorotate: bool = Field(True, description="apply the file's display rotation, as FFmpeg does; "
                                                   "false: the frame as stored", rebuild=True)
        fps: float = Field(25.0, gt=0, le=1000, rebuild=True,
                           description="image sequences (f_%04d.png): frames per second (FFmpeg's default 25)")
        decoders: int | None = Field(
            None, ge=1, le=32, rebuild=True,
            description="files read offline: decoders working on keyframe-aligned segments at once; "
                        "none: one a NVDEC engine for offline NVDEC, else 1")
        batch: int = Field(1, ge=1, le=1024, description=(
            "K: frames a tick, stacked as (K, 3, H, W) (offline graphs; video.clip `input: frames` "
            "takes them as one stream's consecutive frames)"))

    @classmethod
    def metadata_keys(cls, params: flowml.Params) -> frozenset[str]:
        return FRAMES_KEYS | STATUS_KEYS | {"pts"}

    # -- lifecycle -----------------------------------------------------------------------------
    def setup(self, ctx: flowml.NodeContext) -> None:
        p = self.params
        refuse_live_batch(ctx.mode, p.batch)
        self.ended = False         # a short last batch was handed out: the next tick ends the stream
        self.is_url = bool(URL.match(p.path))
        self.target = p.path if self.is_url else str(ctx.resolve(p.path))
        self.realtime = p.realtime if p.realtime is not None else ctx.mode == "live"
        self.stopped = threading.Event()
        self.gpu = self._wants_gpu()
        self.offset = 0.0          # added to stamps: the length of the passes already played
        self.first_t: float | None = None
        self.last_t = 0.0          # the last stamp handed out, offset included
        self.raw_last_t = 0.0      # the last frame's own time
        self.index = 0
        self.anchor: tuple[float, float] | None = None  # (wall clock, stamp) of realtime playback
        self.counts = {"frames": 0, "skipped": 0, "reconnects": 0}
        self.first_skip: str | None = None
        self.colour: Colour | None = None
        self.rotation = 0
        self.container = None
        self._connect()

    def on_params(self, old: flowml.Params, new: flowml.Params) -> None:
        refuse_live_batch(self.ctx.mode, new.batch)  # type: ignore[attr-defined]

    def _wants_gpu(self) -> bool:
        p = self.params
        if p.decode == "cpu":
            return False
        on_cuda = self.ctx.device.startswith("cuda")
        if not on_cuda:
            if p.decode == "cuda":
                self.log.warning("capture.video: decode: cuda, but the node runs on %s; decoding on the CPU",
                                 self.ctx.device)
            return False
        problem = nvdec_problem(self.target, self.ctx.device)
        if problem:
            self.log.warning("%s (capture.video): GPU decoding not available (%s); decoding on the CPU",
                             self.ctx.node_id, problem)
            return False
        return True

    def _connect(self) -> None:
        """Open the file on NVDEC (falling back to the CPU) or the container, at ``start``."""
        self.container = None
        self.nv: NvdecVideo | None = None
        self.par: ParallelFrames | None = None
        self.info: VideoInfo | None = None
        self.prev_index: int | None = None
        self.ready: deque = deque()  # NVDEC: (index, image) decoded ahead, in order
        if self.gpu:
            if not self.is_url and not _exists(self.target):
                raise NodeError(f"video file not found: {self.target}; check `path` (relative to the graph file)")
            try:  # decode the first frames now: an NVDEC that cannot take this file says so here
                self.nv = NvdecVideo(self.target, self.ctx.device)
                if self.nv.log_once:
                    self.log.warning("capture.video: %s", self.nv.log_once)
                self.info = self.nv.info
                self.nv_keys = keyframe_indices(self.nv.info)
                self.step = 1.0 / self.nv.info.rate
                self.nv_next = self.nv.info.index_at(self.params.start)
                count = self.decoder_count(nvdec=True)
                if count > 1:
                    self._start_parallel(count)
                else:
                    self._decode_ahead()
                return
            except NvdecSizeError as exc:
                self.log.warning("%s (capture.video): NVDEC cannot take this file: %s; decoding on the CPU",
                                 self.ctx.node_id, exc)
                self.nv, self.gpu = None, False
            except (RuntimeError, ValueError) as exc:
                self.log.warning("%s (capture.video): GPU decoding failed (%s); decoding on the CPU",
                                 self.ctx.node_id, exc)
                self.nv, self.gpu = None, False
        count = self.decoder_count(nvdec=False)
        if count > 1:
            self.info = probe(self.target)
            self.step = 1.0 / self.info.rate
            self._start_parallel(count)
            return
        self.container = _open(self.target, self.is_url, self.params.timeout, fps=self.params.fps)
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"  # frame and slice threads: decoding is bit-exact either way
        self.step = 1.0 / float(self.stream.average_rate or 30)
        self.frames = self._rewind()
        self.pending: av.VideoFrame | None = None

    def decoder_count(self, nvdec: bool) -> int:
        """How many decoders read this file at once (``decoders``; see the class docstring)."""
        p = self.params
        if self.is_url or PATTERN.search(Path(self.target).name) or self.realtime or self.live:
            return 1
        if p.decoders is not None:
            return p.decoders
        return engines(self.target, _gpu_index(self.ctx.device)) if nvdec else 1

    def _start_parallel(self, count: int) -> None:
        """K decoders on keyframe-aligned segments from ``start`` (``parallel.py``)."""
        from .cpudecode import CpuVideo
        from .gpudecode import nv12_to_rgb

        info, device = self.info, self.ctx.device
        first = info.index_at(self.params.start)
        segments = plan(info, first, self.params.loop)
        if self.nv is not None:
            spare = [self.nv]  # the decoder opened to check the file is the first worker's

            def open_video() -> Any:
                try:
                    return spare.pop()  # atomic: one thread gets it
                except IndexError:
                    return NvdecVideo(self.target, device)

            def finish(planes: Any) -> Any:
                return nv12_to_rgb(planes[0], planes[1], info.colorspace, info.full_range)

            self.par = ParallelFrames(open_video, segments, count, lambda v, k: v.nv12(k), finish,
                                      keys=keyframe_indices(info))
        else:
            threads = max(1, (os.cpu_count() or 1) // count)
            self.par = ParallelFrames(lambda: CpuVideo(self.target, device, threads), segments, count,
                                      lambda v, k: v.frames(k))
        self.decoders = count

    def _decode_ahead(self) -> None:
        """NVDEC: decode the next frames (from ``nv_next``) in one call: to the next keyframe, then
        whole GOPs up to ``NVDEC_CHUNK`` frames (a longer GOP whole, up to ``LONG_GOP``)."""
        first, count = self.nv_next, len(self.nv)
        pieces = key_pieces(self.nv_keys, range(first, min(first + LONG_GOP, count)), NVDEC_CHUNK)
        indices = pieces[0] if pieces else []
        if indices:
            images = self.nv.frames(indices)
            self.ready.extend((k, images[n:n + 1]) for n, k in enumerate(indices))
            self.nv_next = indices[-1] + 1

    def _next_gpu(self) -> tuple[float, torch.Tensor] | None:
        """NVDEC: the next (time, image), or None at the end of the file."""
        if not self.ready:
            self._decode_ahead()
        if not self.ready:
            return None
        index, image = self.ready.popleft()
        return self.info.times[index], image

    def _close(self) -> None:
        container, self.container = getattr(self, "container", None), None
        if container is not None:
            container.close()
        par, self.par = getattr(self, "par", None), None
        nv, self.nv = getattr(self, "nv", None), None
        if par is not None:
            par.close()      # closes every decoder it opened, ``nv`` included
        elif nv is not None:
            nv.close()

    def teardown(self) -> None:
        if hasattr(self, "stopped"):
            self.stopped.set()
        self._close()
        counts = getattr(self, "counts", None)
        if counts and counts["skipped"]:
            self.log.warning("%s: %d packet(s) could not be decoded and were skipped (the first %s); "
                             "%d frames decoded", self.params.path, counts["skipped"], self.first_skip,
                             counts["frames"])

    # -- frames ------------------------------------------------------------------------------
    def _rewind(self) -> Iterator[av.VideoFrame]:
        """Decode from ``start``, dropping the frames between the keyframe sought to and ``start``."""
        start = self.params.start
        if start > 0 or self.index > 0:
            self.container.seek(int(start / self.stream.time_base), stream=self.stream)
        return (f for f in self._decode() if f.time is None or f.time >= start - self.step / 2)

    def _decode(self) -> Iterator[av.VideoFrame]:
        """Frames of the stream, packet by packet: a packet the decoder refuses is skipped and
        counted (FFmpeg's CLI does the same), so one damaged packet does not end the file."""
        for packet in self.container.demux(self.stream):
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                self._skipped(packet, exc)
                continue
            yield from frames

    def _skipped(self, packet: av.Packet, exc: Exception) -> None:
        self.counts["skipped"] += 1
        if self.first_skip is None:
            when = f"{float(packet.pts * packet.time_base):.3f} s" if packet.pts is not None else "?"
            self.first_skip = f"at {when}, byte {packet.pos}"
            self.log.warning("%s: a packet at %s (byte %s) could not be decoded (%s); skipping it and "
                             "any other bad packet (counted in status.skipped)", self.params.path, when,
                             packet.pos, exc)
        else:
            self.log.debug("%s: packet at byte %s skipped: %s", self.params.path, packet.pos, exc)

    def _next_frame(self) -> av.VideoFrame | None:
        if self.pending is not None:
            frame, self.pending = self.pending, None
            return frame
        return next(self.frames, None)

    def process(self) -> Stamped:
        """``batch`` frames (fewer at the end of the stream) as one tick; see the class docstring."""
        if self.ended:
            raise EndOfStream
        first, stamps, pts, images = self.index, [], [], []
        for _ in range(self.params.batch):
            try:
                stamp, t, image = self._next_one()
            except EndOfStream:
                if not images:
                    raise
                self.ended = True  # a short last batch now, the end of the stream on the next tick
                break
            stamps.append(stamp)
            pts.append(t)
            images.append(image)
        if self.nv is not None or self.par is not None:  # NVDEC / K decoders: placed once for the batch
            turns = (round(self.info.rotation / 90) % 4) if self.params.autorotate else 0
            self.rotation = 90 * turns
            image = _place(_stack(images), turns, self.params.size)
            colour = f"nvdec {_colour_name(self.info)}" if self.nv is not None else _colour_name(self.info)
        else:
            image = _stack(images)
            colour = self.colour.name if self.colour else self.format_name
        status = {**self.counts, "colour": colour, "rotation": self.rotation, "decoder": self.decoder,
                  "decoders": self.decoders if self.par is not None else 1}
        return Stamped({"image": image, "status": status, "frames": frames_record(first, stamps, pts=pts)},
                       t=stamps[0])

    def _next_one(self) -> tuple[float, float, torch.Tensor]:
        """The next frame: (stamp, its own time in the file, image). The image is ``(1, 3, H, W)``
        as decoded by NVDEC / the K decoders (``_place`` is left to the batch), or as placed by
        ``_to_image`` from the CPU decoder. Raises ``EndOfStream`` at the end."""
        if self.nv is not None or self.par is not None:
            frame, (t, image) = None, self._read_gpu()
        else:
            frame = self._read()
            t = frame.time if frame.time is not None else self.index * self.step
        if self.first_t is None:
            self.first_t = t
        if t + self.offset < self.last_t and self.index > 0:  # a reconnected stream starts over
            self.offset = self.last_t + self.step - t
        self.raw_last_t = t
        stamp = t + self.offset
        self.index += 1
        if self.realtime:
            self._pace(stamp)
        self.last_t = stamp
        if frame is not None:
            image = self._to_image(frame)
            self.format_name = frame.format.name
        self.counts["frames"] += 1
        return stamp, t, image

    @property
    def decoder(self) -> str:
        """Which decoder runs: ``nvdec`` (PyNvVideoCodec) or ``cpu`` (FFmpeg through PyAV)."""
        return "nvdec" if self.nv is not None else "cpu"

    def _read_gpu(self) -> tuple[float, torch.Tensor]:
        """NVDEC (or K decoders): the next (time, image), starting again at ``start`` when looping."""
        if self.par is not None:
            index, image = next(self.par, (None, None))
            if index is None:
                raise EndOfStream
            if self.prev_index is not None and index <= self.prev_index and self.first_t is not None:
                self.offset += self.raw_last_t - self.first_t + self.step  # the plan went round: looped
            self.prev_index = index
            return self.info.times[index], image
        got = self._next_gpu()
        if got is None and self.params.loop and self.first_t is not None:
            self.offset += self.raw_last_t - self.first_t + self.step
            self.nv_next = self.nv.info.index_at(self.params.start)
            got = self._next_gpu()
        if got is None:
            raise EndOfStream
        return got

    def _read(self) -> av.VideoFrame:
        delay = 0.5
        while True:
            try:
                frame = self._next_frame()
            except av.FFmpegError as exc:
                if not (self.is_url and self.params.reconnect):
                    raise NodeError(f"reading {self.params.path}: {exc}") from exc
                frame, why = None, str(exc)
            else:
                why = "the stream ended"
            if frame is not None:
                return frame
            if self.params.loop and not self.is_url and self.first_t is not None:
                self.offset += self.raw_last_t - self.first_t + self.step
                self.frames = self._rewind()
                frame = self._next_frame()
                if frame is not None:
                    return frame
            if not (self.is_url and self.params.reconnect):
                raise EndOfStream
            self.log.warning("%s: %s; reconnecting", self.params.path, why)
            while True:  # reopen with backoff until it works or the graph stops
                if self._stop_within(delay):
                    raise EndOfStream
                delay = min(delay * 2, 5.0)
                try:
                    self._close()  # None after a reopen that failed: nothing to close then
                    self._connect()
                    self.counts["reconnects"] += 1
                    self.log.warning("%s: reconnected", self.params.path)
                    self.anchor = None
                    break
                except (NodeError, av.FFmpegError, OSError) as exc:  # refused, timed out, seek failed
                    self.log.debug("reconnect failed: %s", exc)

    def _stop_within(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True as soon as the graph stops or the node is torn down."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.ctx.stopping.wait(min(left, 0.05)) or self.stopped.is_set():
                return True
        return self.ctx.stopping.is_set() or self.stopped.is_set()

    def _pace(self, stamp: float) -> None:
        """Wait until ``stamp`` is due on the wall clock (realtime playback)."""
        now = time.perf_counter()
        if self.anchor is None or now - (self.anchor[0] + stamp - self.anchor[1]) > MAX_LAG_S:
            self.anchor = (now, stamp)
            return
        due = self.anchor[0] + (stamp - self.anchor[1])
        if due > now and self.stopped.wait(due - now):
            raise EndOfStream

    def _to_image(self, frame: av.VideoFrame) -> Any:
        """The frame as an image on the node's device: colour converted once (swscale for 8-bit
        video on the CPU, torch on the planes otherwise), rotated, scaled to ``size``."""
        size = self.params.size
        turns = (round(frame.rotation / 90) % 4) if self.params.autorotate else 0
        self.rotation = 90 * turns
        device = self.ctx.device
        self.colour = Colour.of(frame)
        if self.colour is not None and (device.startswith("cuda") or self.colour.depth > 8):
            return _place(frame_to_rgb(frame, self.colour, device), turns, size)
        kwargs = {}
        if size is not None:  # swscale scales before the rotation: ask for the size turned back
            width, height = size if turns % 2 == 0 else size[::-1]
            if (width, height) != (frame.width, frame.height):
                kwargs = {"width": width, "height": height}
        pixels = frame.to_ndarray(format="rgb24", **kwargs)
        if turns:
            pixels = np.rot90(pixels, turns)
        return transfer.image_from_host(pixels, device)


class StreamSource(VideoSource):
    """A network stream (RTSP, HTTP, SRT, UDP, ...) as a live source: the graph runs live,
    the newest frame wins. ``capture.video`` with ``live`` set and ``reconnect`` on by default:
    a stream that drops or ends is reopened with backoff (0.5 s doubling to 5 s) while the
    graph waits, and its stamps keep going forward.
    """

    type_name = "capture.stream"
    live = True

    class Params(VideoSource.Params):
        path: str = Field(description="stream URL (rtsp://, http://, srt://, udp://) or a file played live",
                           file="input")
        reconnect: bool = Field(True, description="reopen after an error or the end, with backoff")


def _stack(images: list[torch.Tensor]) -> torch.Tensor:
    """K ``(1, 3, H, W)`` frames as one ``(K, 3, H, W)`` tensor (one copy kernel; one frame as is)."""
    return images[0] if len(images) == 1 else torch.cat(images)


def _place(image: torch.Tensor, turns: int, size: tuple[int, int] | None) -> torch.Tensor:
    """Rotate ``(N, 3, H, W)`` images by ``turns`` quarter turns counter-clockwise (FFmpeg's
    autorotate for a display matrix of ``90 * turns`` degrees) and scale it to ``size``."""
    if turns:
        image = torch.rot90(image, turns, dims=(2, 3)).contiguous()
    if size is not None and (image.shape[3], image.shape[2]) != tuple(size):
        image = torch.nn.functional.interpolate(image, size=(size[1], size[0]), mode="bilinear",
                                                align_corners=False, antialias=True)
    return image


def _gpu_index(device: str) -> int:
    return int(device.split(":")[1]) if device.startswith("cuda:") else 0


def _colour_name(info: Any) -> str:
    from .colour import BT601, MATRICES, NAMES

    matrix = NAMES.get(MATRICES.get(info.colorspace, BT601), "bt601")
    return f"{matrix} {'full' if info.full_range else 'limited'} range, 8-bit"


def _exists(target: str) -> bool:
    """The file is there; for an image-sequence pattern, at least one image matches it."""
    path = Path(target)
    if PATTERN.search(path.name):
        return path.parent.is_dir() and any(path.parent.glob(PATTERN.sub("*", path.name)))
    return path.is_file()


def _open(target: str, is_url: bool, timeout: float, fps: float = 25.0) -> av.container.InputContainer:
    sequence = not is_url and bool(PATTERN.search(Path(target).name))
    if not is_url and not _exists(target):
        what = "no image matches the pattern" if sequence else "video file not found"
        raise NodeError(f"{what}: {target}; check `path` (relative to the graph file)")
    kwargs: dict[str, Any] = {}
    if sequence:
        rate = Fraction(fps).limit_denominator(1001)
        kwargs["format"] = "image2"
        kwargs["options"] = {"framerate": f"{rate.numerator}/{rate.denominator}"}
    if is_url:
        kwargs["timeout"] = (timeout, timeout)
        if target.lower().startswith(("rtsp://", "rtsps://")):
            kwargs["options"] = {"rtsp_transport": "tcp"}
    try:
        container = av.open(target, **kwargs)
    except (av.FFmpegError, OSError) as exc:
        raise NodeError(f"cannot read video {target}: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise NodeError(f"{target} has no video stream")
    return container
