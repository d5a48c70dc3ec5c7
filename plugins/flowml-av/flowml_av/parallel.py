"""One file decoded by K decoders at once: keyframe-aligned segments, frames handed out in order.

One decoder session per stream is a ceiling: the H200 has 7 NVDEC engines and one session
keeps one busy; FFmpeg's frame threads stop scaling well before 16 cores. ``segments`` cuts a
file's frames (presentation order, ``probe.py``) at keyframes into runs of at least
``MIN_SEGMENT`` frames; ``ParallelFrames`` gives them to K worker threads, each with its own
decoder (``NvdecVideo`` or ``CpuVideo``, opened on its thread), at most ``ahead`` segments
beyond the one being read, and hands the frames out in file order with their indices, so
stamps (``info.times``) and counts are those of one decoder. A decoder asked for a segment
seeks to the keyframe at or before its first frame and decodes by index, so frames that an
open GOP shows before a CRA but stores after it (HEVC's RASL frames) come from the segment
they are shown in. PyNvVideoCodec and PyAV release the GIL while they decode, so the threads
run at once.

On CUDA each worker decodes on a stream of its own and records an event after each piece;
the reading thread's stream waits for that event (on the GPU) and the piece is kept for it
(``record_stream``), so nothing is read before it is written and no memory is reused early.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator

from flowml.lazy import lazy_import
torch = lazy_import("torch")

from .probe import VideoInfo

MIN_SEGMENT = 24
"""Frames a segment has at least (the last of a file may have fewer): a seek and the decoder's
start-up (NVDEC holds a few frames before it hands the first out) are paid once a segment."""
PIECE = 8
"""Frames a worker decodes in one call (one conversion kernel set, one event); read when a
``ParallelFrames`` is made, so a benchmark can set it (``nvdec_bench.py --piece``)."""


def keyframe_indices(info: VideoInfo) -> list[int]:
    """Presentation-order indices of the keyframes (0 first, always)."""
    index_of = {pts: k for k, pts in enumerate(info.pts)}
    keys = sorted({index_of[p] for p in info.keyframes if p in index_of} | {0})
    return keys


def leading_indices(info: VideoInfo) -> dict[int, int]:
    """Presentation-order index of each leading picture (``probe.leading_pictures``: stored
    after a keyframe other than the first, shown before it) -> its keyframe's index. A decode
    that wants one starts at a keyframe before that one: the keyframe at or before it in
    presentation order is (it is shown before its own keyframe), so every call planned here
    (``key_pieces``, ``nvdec.key_runs``, ``grouping``'s decode ranges, ``CpuVideo``'s seek)
    starts there; ``NvdecVideo`` asks PyNvVideoCodec for them apart (it finds a frame's
    keyframe by its position in decode order, which for a leading picture is its own CRA)."""
    index_of = {pts: k for k, pts in enumerate(info.pts)}
    return {index_of[p]: index_of[key] for p, key in info.leading if p in index_of and key in index_of}


LONG_GOP = 64
"""A GOP longer than a piece is still one call up to this many frames (``key_pieces``)."""


def key_pieces(keys: list[int], frames: range, piece: int = PIECE, long_gop: int = LONG_GOP) -> list[list[int]]:
    """``frames`` (consecutive) as decoder calls that start at keyframes (``keys``, sorted):
    whole GOPs joined while a call stays within ``piece`` frames, a longer GOP one call up to
    ``long_gop`` frames (then cut). Only a first call that begins mid-GOP starts elsewhere.
    PyNvVideoCodec finds a frame by seeking to a keyframe and counting, and a call that begins
    mid-GOP is the one it miscounted on the H200 (frames then checked by pts and decoded again,
    ``nvdec.py``); a call from a keyframe decodes each GOP once."""
    if not frames:
        return []
    k = bisect.bisect_left(keys, frames.start)
    starts_key = k < len(keys) and keys[k] == frames.start
    cuts: list[int] = []
    for key in keys[k + 1 if starts_key else k:]:
        if key >= frames.stop:
            break
        cuts.append(key)
    out: list[list[int]] = []
    open_call = False  # out[-1] starts at a keyframe and may take the next GOP
    for n, (a, b) in enumerate(zip([frames.start, *cuts], [*cuts, frames.stop])):  # GOP (or its tail) [a, b)
        if out and open_call and b - out[-1][0] <= piece:
            out[-1] = list(range(out[-1][0], b))
            continue
        calls = [list(range(at, min(b, at + long_gop))) for at in range(a, b, long_gop)]
        out.extend(calls)
        open_call = (starts_key or n > 0) and len(calls) == 1
    return out


def segments(info: VideoInfo, first: int = 0, min_frames: int = MIN_SEGMENT) -> list[range]:
    """Frames ``first`` .. the end, cut at keyframes into runs of at least ``min_frames``."""
    bounds = [first]
    for key in keyframe_indices(info):
        if key > first and key - bounds[-1] >= min_frames:
            bounds.append(key)
    if info.frames - bounds[-1] < min_frames // 2 and len(bounds) > 1:
        bounds.pop()  # a short tail joins the segment before it
    bounds.append(info.frames)
    return [range(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def plan(info: VideoInfo, first: int, loop: bool, min_frames: int = MIN_SEGMENT) -> Iterator[range]:
    """The segments to read from ``first``; with ``loop``, from ``first`` again after the end, forever."""
    yield from segments(info, first, min_frames)
    while loop:
        parts = segments(info, first, min_frames)
        if not parts:
            return
        yield from parts


class ParallelFrames(Iterator[tuple[int, Any]]):
    """``(index, image (1, 3, H, W))`` of the frames of ``segments_``, in order, decoded by
    ``decoders`` threads: ``open_video()`` makes a thread's decoder, ``decode(video, indices)``
    decodes a piece (on that thread), ``finish(payload)`` makes it ``(N, 3, H, W)`` images on
    the reading thread (NV12 -> RGB there: what waits in the queue is 1.5 bytes a pixel)."""

    def __init__(self, open_video: Callable[[], Any], segments_: Iterable[range], decoders: int,
                 decode: Callable[[Any, list[int]], Any], finish: Callable[[Any], Any] = lambda x: x,
                 ahead: int | None = None, piece: int | None = None, keys: list[int] | None = None):
        if decoders < 1:
            raise ValueError(f"decoders must be at least 1, got {decoders}")
        self.open_video, self.decode, self.finish = open_video, decode, finish
        self.piece = piece if piece is not None else PIECE
        self.keys = keys  # keyframe indices: pieces start at keyframes (key_pieces); none: every `piece` frames
        self.decoders = decoders
        self.ahead = ahead if ahead is not None else decoders + 1
        self.plan = iter(segments_)
        self.local = threading.local()
        self.videos: list[Any] = []
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(decoders, thread_name_prefix="flowml-av-decode")
        self.futures: deque[Future] = deque()
        self.current: deque[tuple[int, Any]] = deque()
        self.closed = False
        self._fill()

    # -- workers -------------------------------------------------------------------------------
    def _video(self) -> Any:
        video = getattr(self.local, "video", None)
        if video is None:
            video = self.local.video = self.open_video()
            with self.lock:
                self.videos.append(video)
        return video

    def _segment(self, frames: range) -> list[tuple[list[int], Any, Any, Any]]:
        """Decode one segment on this thread: [(indices, payload, CUDA event or None, device)]."""
        video = self._video()
        stream = getattr(self.local, "stream", None)
        device = getattr(video, "device", None)
        cuda = device is not None and str(device).startswith("cuda")
        if cuda and stream is None:
            stream = self.local.stream = torch.cuda.Stream(torch.device(device))
        out = []
        if self.keys is not None:
            parts = key_pieces(self.keys, frames, self.piece)
        else:
            parts = [list(frames[at:at + self.piece]) for at in range(0, len(frames), self.piece)]
        for part in parts:
            if cuda:
                with torch.cuda.stream(stream):
                    payload = self.decode(video, part)
                    event = torch.cuda.Event()
                    event.record(stream)
            else:
                payload, event = self.decode(video, part), None
            out.append((part, payload, event, device))
        return out

    def _fill(self) -> None:
        while len(self.futures) < self.ahead:
            frames = next(self.plan, None)
            if frames is None:
                return
            self.futures.append(self.pool.submit(self._segment, frames))

    # -- reading -------------------------------------------------------------------------------
    def __next__(self) -> tuple[int, Any]:
        while not self.current:
            if self.closed or not self.futures:
                raise StopIteration
            pieces = self.futures.popleft().result()  # a decoder's error is raised here
            self._fill()
            for piece in pieces:
                self.current.extend(self._images(*piece))
        return self.current.popleft()

    def _images(self, part: list[int], payload: Any, event: Any, device: Any) -> list[tuple[int, Any]]:
        """A decoded piece as ``(index, (1, 3, H, W))`` pairs, ordered after its decoding."""
        if event is not None:
            current = torch.cuda.current_stream(torch.device(device))
            current.wait_event(event)
            for t in payload if isinstance(payload, tuple) else (payload,):
                t.record_stream(current)
        images = self.finish(payload)
        return [(k, images[n:n + 1]) for n, k in enumerate(part)]

    def close(self) -> None:
        """Stop: wait for the segments being decoded, close every decoder."""
        self.closed = True
        for f in self.futures:
            f.cancel()
        self.pool.shutdown(wait=True)
        self.futures.clear()
        self.current.clear()
        with self.lock:
            videos, self.videos = self.videos, []
        for video in videos:
            video.close()
