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

Which frame is which: PyNvVideoCodec finds frame k by seeking to a keyframe and counting the
frames it displays from there, and on the H200 (2.2.4) that count came out wrong (HEVC with
B-frames at frame 7 of a call [0, 1, 3, 4, 5, 7, ...]; clips whose first frame is not a
keyframe). Every decoded frame carries its packet's pts (``DecodedFrame.getPTS()``), so each
is checked against the container's, less the decoder's constant offset from it (2.2.4 on the
H200 gave the container's pts without the edit list's start, -1024 there), which is learned
once a file from frame 0 decoded alone; the wrong ones are decoded again and taken by pts,
and what that does not give (or a decoder error) is decoded on the CPU by PyAV and uploaded,
logged once a file: NVDEC miscounting never takes a graph down (``NvdecVideo.nv12``).

Open GOPs: a leading picture (HEVC's RASL frames: stored after a CRA keyframe, shown before
it, predicted from the GOP before it; ``probe.leading_pictures``) has the right pts however
it is decoded, so the check above cannot see it decoded wrong, and PyNvVideoCodec looks a
frame's keyframe up by the frame's position in decode order, which for a leading picture is
its own CRA: asked for after a seek or a gap, it comes decoded without its references (the
H200 run of 2026-12-03: a few levels off FFmpeg's). So a call gives one only where it runs
frame after frame from the keyframe before that CRA (up to ``FILL`` frames are added to make
it so), else calls of their own do (``_leading``); the first ``CHECKS`` a file gets are
compared with PyAV's (``_check_leading``), and where one differs that file's leading
pictures are decoded on the CPU from then on, logged.

Stream order: the decoder writes on a stream of this object's; before each decode that
stream waits for the copies of the last batch (which read its buffers), and the copy of
its planes, on the caller's stream, waits for the decode, all on the GPU. Nothing waits on
the default stream, which a training loop uses. The decoded frames are kept
until the event after that copy has passed, so the decoder's memory is never reused under
a kernel still reading it; the planes and RGB tensors are torch's own, kept alive by the
graph's ``record_stream`` for their consumers.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from typing import Any, Callable, Iterable, Iterator, Sequence

from flowml.lazy import lazy_import
torch = lazy_import("torch")
np = lazy_import("numpy")

from .colour import planes
from .cpudecode import CpuVideo
from .gpudecode import nv12_to_rgb
from .grouping import key_at_or_before
from .parallel import keyframe_indices, leading_indices
from .probe import VideoInfo, probe
from .nvdec_caps import (  # noqa: F401  (what callers import from here)
    ENGINES_DEFAULT, MIN_SIZE, NV12_SOURCES, PATTERN, URL, NvdecSizeError, decoder_caps, engines,
    minimum_size, nvdec_problem, nvdec_size_problem, size_problem)

log = logging.getLogger("flowml.av.nvdec")

RUN = 16
"""Frames one decoder call returns when frames are decoded again (``NvdecVideo._from_keyframe``;
whole GOPs a call, each from its keyframe: a longer GOP is one call)."""
SLACK = 4
"""Frames decoded past the last one wanted when decoding again: a count off by a few still covers it."""
FILL = 8
"""Frames a call may take beyond those asked for, so that it runs frame after frame from the
keyframe before a leading picture's CRA and gives that picture itself (``_by_index``); a
leading picture that needs more is asked for by calls of its own (``_leading``)."""
FROM_START = 256
"""Frames decoded again from the file's start only when all are before this index (else the CPU takes them)."""


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
        self.log_once: str | None = getattr(self, "log_once", None)
        self._init_state()

    def _init_state(self) -> None:
        """The counters and caches of a newly opened decoder."""
        self.in_use: deque[tuple[Any, list]] = deque()  # (event after the copy, decoded frames)
        self.decoded = 0
        self.misplaced = 0                 # frames the decoder gave wrong (other pts), decoded again
        self.unchecked: str | None = None  # why frames cannot be checked by timestamp, if so
        self.pts_offset: int | None = None  # the decoder's pts minus the container's (learned from frame 0)
        self.cpu_frames = 0                # frames PyAV decoded because NVDEC did not give them
        self.cpu: Any = None               # the CPU decoder of those (opened when first needed)
        self.leading_frames = 0            # leading pictures of open GOPs asked for (``_leading``)
        self.leading_checked: tuple[int, bool] | None = None  # the last (frame, equal to FFmpeg's) checked

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
        ``(N, H/2, W/2, 2)`` uint8, as the decoder wrote them (copied off its buffers).

        Every frame is checked by its timestamp (``DecodedFrame.getPTS()``, the packet's pts)
        against the container's (``probe.py``): PyNvVideoCodec finds frames by counting from
        a keyframe it seeks to, and that count can be off (HEVC with B-frames, a first call
        that starts mid-file). The decoder's pts offset (``pts_offset``, learned from frame 0)
        is taken off first. Frames that are not the ones asked for are decoded again,
        taken by timestamp: a run from the keyframe at or before them, then, if that does
        not give them, from the file's start frame by frame (no index arithmetic). Frames
        no decode gives, or all of them where the decoder fails, are decoded on the CPU
        (PyAV, exact) and uploaded (``cpu_frames`` counts them), logged once a file."""
        if not indices:
            raise ValueError("frames: no indices")
        bad = [i for i in indices if not 0 <= i < len(self)]
        if bad:
            raise IndexError(f"frames {bad} are outside {self.info.path} ({len(self)} frames)")
        unique = sorted(set(indices))
        got = self._by_index(unique)
        y = torch.stack([got[i][0] for i in indices])      # copies: the decoder's buffers are read here
        uv = torch.stack([got[i][1] for i in indices])
        self._converted()
        self.decoded += len(unique)
        return y, uv

    # -- decoding, checked by timestamp --------------------------------------------------------
    def _by_index(self, unique: list[int]) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """``unique`` (sorted) -> their planes (views of the decoder's frames where all came
        right in one call), leading pictures of open GOPs asked for as ``_leading`` says."""
        self._learn_offset_first(unique)
        leading = self._leading_map()
        lead = [i for i in unique if i in leading]
        if not lead:
            return self._checked(unique)
        keys = keyframe_indices(self.info)
        state = _LEADING.get(_file_key(self.info.path))
        self._cpu_given: set[int] = set()
        if state is False or self.unchecked:
            plain = [i for i in unique if i not in leading]
            got = self._checked(plain, keep=True) if plain else {}
            why = ("NVDEC decoded this file's leading pictures unlike FFmpeg (checked once a file)"
                   if state is False else "leading pictures cannot be checked by timestamp")
            got.update(self._on_cpu(lead, why))
            return got
        have = set(unique)
        for i in lead:  # a few frames more make the call run unbroken from the keyframe before the CRA
            fill = [k for k in range(key_at_or_before(keys, i), i) if k not in have]
            if len(fill) <= FILL:
                have.update(fill)
        in_call = {i for i in lead if have.issuperset(range(key_at_or_before(keys, i), i))}
        apart = [i for i in lead if i not in in_call]
        main = sorted(have.difference(apart))
        got = self._checked(main, keep=True) if main else {}
        if apart:
            got.update(self._leading(apart, keys))
        if state is None or state < CHECKS:
            self._check_leading(lead, got, CHECKS - (state or 0))
        self.leading_frames += len(lead)
        return got

    def _leading_map(self) -> dict[int, int]:
        """``parallel.leading_indices`` of this file, made once."""
        table = getattr(self, "_leading_table", None)
        if table is None:
            table = self._leading_table = leading_indices(self.info)
        return table

    def _leading(self, wanted: list[int], keys: list[int]) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """Leading pictures ``wanted`` (sorted) from calls that run, frame after frame, from the
        keyframe at or before each (the one before its CRA: its GOP is closed for it) through
        it, ``RUN`` frames a call, taken by pts; what they do not give is decoded on the CPU.

        PyNvVideoCodec finds a frame's keyframe by the frame's position in decode order, and
        a leading picture's position is at or after its own CRA: asked for on its own (or
        after a gap) it seeks to that CRA and decodes the picture without the GOP before it,
        with the right pts and a few levels off (the H200 run of 2026-12-03: HEVC frame 7
        of 322x182, frame 9 of 210x146). Consecutive frames need no seek."""
        frames = sorted(set().union(*(range(key_at_or_before(keys, i), i + 1) for i in wanted)))
        calls: list[list[int]] = []
        for k in frames:
            if calls and k == calls[-1][-1] + 1 and len(calls[-1]) < RUN:
                calls[-1].append(k)
            else:
                calls.append([k])
        rounds = [(self._call(lambda c=c: self.decoder.get_batch_frames_by_index(c), c) for c in calls)]
        return self._by_pts_else_cpu(rounds, wanted, {}, "not given by pts from the keyframe before their CRA",
                                     lambda exc: f"the decoder failed on them ({exc})")

    def _check_leading(self, lead: list[int], got: dict[int, tuple[torch.Tensor, torch.Tensor]], n: int) -> None:
        """Up to ``n`` of the leading pictures NVDEC gave against FFmpeg's (PyAV, on the CPU),
        until ``CHECKS`` of a file have been equal: from then on NVDEC is trusted with them. One
        unequal (no timestamp can tell: its pts is right): logged, and that file's leading
        pictures come from the CPU from now on, these too."""
        mine = [i for i in lead if i not in self._cpu_given][:n]
        if not mine:
            return
        if self.cpu is None:
            self.cpu = CpuPlanes(self.info.path)
        y, uv = self.cpu.planes(mine)
        key = _file_key(self.info.path)
        for k, i in enumerate(mine):
            ok = torch.equal(got[i][0].cpu(), y[k]) and torch.equal(got[i][1].cpu(), uv[k])
            self.leading_checked = (i, ok)
            if not ok:
                _LEADING[key] = False
                log.warning("%s: NVDEC decoded leading picture %d (shown before its keyframe %d, stored after "
                            "it) unlike FFmpeg, with the right timestamp: this file's leading pictures are "
                            "decoded on the CPU (PyAV) from now on", self.info.path, i, self._leading_map()[i])
                rest = [j for j in lead if j not in self._cpu_given]
                got.update(self._on_cpu(rest, "NVDEC decoded a leading picture unlike FFmpeg (checked)"))
                return
            _LEADING[key] = (_LEADING.get(key) or 0) + 1

    def _checked(self, unique: list[int], keep: bool = False) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """``unique`` (sorted) in one call, checked by pts: views of the decoder's frames where
        all came right (copies with ``keep``: more calls follow), else decoded again.

        Never raises for frames NVDEC gets wrong: what neither the first call nor decoding
        again gives by pts is decoded on the CPU (``_on_cpu``)."""
        try:
            decoded = self._call(lambda: self.decoder.get_batch_frames_by_index(unique), unique)
            if len(decoded) != len(unique):
                raise RuntimeError(f"NVDEC gave {len(decoded)} frames for {len(unique)} indices")
        except RuntimeError as exc:
            return self._on_cpu(unique, f"the decoder failed: {exc}")
        self._pending = decoded
        raw = [frame_pts(f) for f in decoded]
        offset = self.pts_offset or 0
        stamps = [None if p is None else p - offset for p in raw]
        index_of = self._index_of()
        if 2 * sum(p in index_of for p in stamps) <= len(stamps):
            if self.unchecked is None:  # a build with no usable timestamps: the decoder's count decides
                self.unchecked = (f"PyNvVideoCodec's frame timestamps ({raw[:3]}, offset {offset}) are not "
                                  f"the container's ({[self.info.pts[i] for i in unique[:3]]}): frames are "
                                  "not checked by timestamp")
                log.warning("%s: %s", self.info.path, self.unchecked)
            return self._out(dict(zip(unique, decoded)), keep)
        right = {i: f for i, f, p in zip(unique, decoded, stamps) if p == self.info.pts[i]}
        if len(right) == len(unique):
            return self._out(right, keep)
        wrong = [i for i in unique if i not in right]
        shown = ", ".join(f"{i}: pts {p} (want {self.info.pts[i]})"
                          for i, p in zip(unique, stamps) if i in wrong[:4])
        if not self.misplaced and len(_TOLD) < 3 and self.info.path not in _TOLD:  # a few files a process
            _TOLD.add(self.info.path)
            log.warning("%s: PyNvVideoCodec gave other frames than asked for (%s; its pts less %d, its "
                        "offset from the container's); they are decoded again and taken by timestamp",
                        self.info.path, shown, offset)
        self.misplaced += len(wrong)
        got = {i: self._kept(f) for i, f in right.items()}  # the next decode call frees these buffers
        self._converted()
        return self._by_pts_else_cpu((self._from_keyframe(wrong), self._from_start(wrong)), wrong, got,
                                     f"not given by pts after decoding again ({shown}, offset {offset})",
                                     lambda exc: f"the decoder failed decoding again ({exc}); first got {shown}")

    def _out(self, frames: dict[int, Any], keep: bool) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """Decoded frames as planes: views of the decoder's buffers, or copies with ``keep``."""
        if not keep:
            return {i: self._planes(f) for i, f in frames.items()}
        out = {i: self._kept(f) for i, f in frames.items()}
        self._converted()
        return out

    def _learn_offset_first(self, unique: list[int]) -> None:
        """Learn ``pts_offset`` before the first call: from frame 0 alone, decoded from the
        file's start (the simplest request a decoder has: nothing to count), once a file in
        a process. Not from the mode of got - want over a call: a call that starts off a
        keyframe and is late by one for every frame (as on the H200) looks like an offset."""
        if self.pts_offset is not None:
            return
        known = _OFFSETS.get(_file_key(self.info.path))
        if known is not None:
            self.pts_offset = known
            return
        try:
            first = self._call(lambda: self.decoder.get_batch_frames_by_index([0]), [0])
        except RuntimeError as exc:
            log.debug("%s: frame 0 for the pts offset: %s", self.info.path, exc)
            return                          # offset 0 for this call, tried again on the next
        self._pending = first
        self._learn_offset(frame_pts(first[0]) if first else None)
        self._converted()

    def _learn_offset(self, stamp: int | None) -> None:
        """``pts_offset`` from frame 0's pts as the decoder gives it. PyNvVideoCodec 2.2.4 on the
        H200 gave the container's pts less the edit list's start (-1024 = 2 frames of B-frame
        delay, H.264 and HEVC alike): every frame looked wrong until this was taken off."""
        if stamp is None:
            self.pts_offset = 0             # no timestamps: the check in _by_index says so
            return
        self.pts_offset = stamp - self.info.pts[0]
        _OFFSETS[_file_key(self.info.path)] = self.pts_offset
        if self.pts_offset:
            log.debug("%s: PyNvVideoCodec's pts are the container's %+d", self.info.path, self.pts_offset)

    def _on_cpu(self, indices: list[int], why: str) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """Frames ``indices`` decoded by FFmpeg on the CPU (PyAV, exact: the CPU path's frames)
        and uploaded, as planes like NVDEC's; logged once a file with ``why``."""
        if self.cpu is None:
            self.cpu = CpuPlanes(self.info.path)
        y, uv = self.cpu.planes(indices)
        y, uv = y.to(self.device), uv.to(self.device)
        self.cpu_frames += len(indices)
        getattr(self, "_cpu_given", set()).update(indices)
        if self.info.path not in _CPU_TOLD:
            _CPU_TOLD.add(self.info.path)
            log.warning("%s: NVDEC did not give frames %s (%s); those frames are decoded on the CPU (PyAV) "
                        "and uploaded, the others stay on NVDEC (logged once a file)",
                        self.info.path, indices[:8], why)
        return {i: (y[k], uv[k]) for k, i in enumerate(indices)}

    def _by_pts_else_cpu(self, rounds: Iterable[Iterator[list]], wanted: list[int], got: dict, why: str,
                         failed: Callable[[RuntimeError], str]) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """``got`` completed with the frames ``wanted``: taken by pts (``_harvest``) from each
        round of decoder calls in turn while some are missing; a decoder error ends the rounds
        (``failed(error)`` says why); what is still missing is decoded on the CPU (``_on_cpu``,
        saying ``why``)."""
        try:
            for calls in rounds:
                missing = {i for i in wanted if i not in got}
                if not missing:
                    break
                self._harvest(calls, missing, got)
        except RuntimeError as exc:  # a decoder error: the CPU takes the rest
            why = failed(exc)
        finally:
            self._converted()
        missing = [i for i in wanted if i not in got]
        if missing:
            got.update(self._on_cpu(missing, why))
        return got

    def _harvest(self, calls: Iterator[list], want: set[int], got: dict) -> None:
        """Run decoder ``calls`` (each a list of frames), keeping copies of the frames in ``want``."""
        index_of, offset = self._index_of(), self.pts_offset or 0
        for frames in calls:
            self._pending = frames
            for f in frames:
                p = frame_pts(f)
                k = index_of.get(p - offset) if p is not None else None
                if k in want and k not in got:
                    got[k] = self._kept(f)
            self._converted()
            if want <= got.keys():
                return

    def _index_of(self) -> dict[int, int]:
        """pts -> frame index, made once (a long file has many frames)."""
        table = getattr(self, "_pts_index", None)
        if table is None or len(table) != len(self.info.pts):
            table = self._pts_index = {p: k for k, p in enumerate(self.info.pts)}
        return table

    def _from_keyframe(self, wanted: list[int]) -> Iterator[list]:
        """Runs of consecutive indices from the keyframe at or before ``wanted[0]`` to a few past
        ``wanted[-1]`` (a count that is off by some frames still covers them), each starting at
        a keyframe (``key_runs``: a call that starts elsewhere is the one the H200 miscounted)."""
        for run in key_runs(keyframe_indices(self.info), wanted[0], min(len(self) - 1, wanted[-1] + SLACK)):
            yield self._call(lambda: self.decoder.get_batch_frames_by_index(run), run)

    def _from_start(self, wanted: list[int]) -> Iterator[list]:
        """The decoder reset to the file's start, then frame after frame (``get_batch_frames``,
        no seeking, no index arithmetic) until past ``wanted[-1]`` or the end; only for frames
        within ``FROM_START`` of the start (further ones are cheaper on the CPU)."""
        if wanted[-1] >= FROM_START:
            return
        if self.in_use:  # a reset may free buffers outside any stream order: the copies first
            self.in_use[-1][0].synchronize()
        self._call(lambda: self.decoder.reconfigure_decoder(self.info.path), wanted)
        seen, end = 0, min(len(self), wanted[-1] + SLACK + 1)
        while seen < end:
            n = min(RUN, len(self) - seen)  # never past the end (PyNvVideoCodec logs each such index)
            frames = self._call(lambda: self.decoder.get_batch_frames(n), wanted)
            if not frames:
                return
            seen += len(frames)
            yield frames

    def _call(self, fn: Any, indices: Sequence[int]) -> Any:
        """One decoder call, after the copies that read its earlier frames (their buffers may be
        reused now); later copies on the caller's stream wait for what it wrote."""
        current = torch.cuda.current_stream(self.device) if self.device.type == "cuda" else None
        while self.in_use and self.in_use[0][0].query():
            self.in_use.popleft()
        if self.in_use:
            last = self.in_use[-1][0]
            if self.stream is not None:
                self.stream.wait_event(last)
            else:            # a stream of its own, which we cannot order: wait on the host
                last.synchronize()
        try:
            out = fn()
        except Exception as exc:
            raise RuntimeError(f"NVDEC failed on {self.info.path} frames {indices[0]}..{indices[-1]}: "
                               f"{exc}") from exc
        if self.stream is not None and current is not None:  # never the default stream
            current.wait_stream(self.stream)
        return out

    def _kept(self, frame: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Copies of ``frame``'s planes (on the caller's stream), for frames kept across calls."""
        y, uv = self._planes(frame)
        return y.clone(), uv.clone()

    def _converted(self) -> None:
        """Keep the decoded frames until the kernels queued so far (that read them) are done."""
        decoded = getattr(self, "_pending", None)
        if decoded is not None:
            done = _Event() if self.device.type != "cuda" else torch.cuda.Event()
            done.record(torch.cuda.current_stream(self.device) if self.device.type == "cuda" else None)
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
        if getattr(self, "cpu", None) is not None:
            self.cpu.close()
            self.cpu = None


def key_runs(keys: Sequence[int], first: int, last: int, run: int = RUN) -> list[list[int]]:
    """Frames from the keyframe at or before ``first`` to ``last`` as runs that each start at a
    keyframe (``keys``: sorted, 0 first): whole GOPs joined while a run stays within ``run``
    frames, a longer GOP a run of its own."""
    start = max([k for k in keys if k <= first] or [0])
    cuts = [k for k in keys if start < k <= last]
    runs: list[list[int]] = []
    for a, b in zip([start, *cuts], [*cuts, last + 1]):  # GOP [a, b)
        if runs and b - runs[-1][0] <= run:
            runs[-1] = list(range(runs[-1][0], b))
        else:
            runs.append(list(range(a, b)))
    return runs


def frame_pts(frame: Any) -> int | None:
    """A ``DecodedFrame``'s timestamp: the pts of its packet, in the stream's time_base (None
    where the build does not say)."""
    for name in ("getPTS", "timestamp", "pts"):
        value = getattr(frame, name, None)
        if callable(value):
            value = value()
        if isinstance(value, int):
            return int(value)
    return None


_TOLD: set[str] = set()
"""Files whose misplaced frames were logged (the first few only: a dataset has many)."""
_CPU_TOLD: set[str] = set()
"""Files some of whose frames were decoded on the CPU, logged once each."""
CHECKS = 2
"""Leading pictures of a file compared with FFmpeg's before NVDEC is trusted with the rest."""
_LEADING: dict[tuple, int] = {}
"""Per file (``_file_key``): how many of its leading pictures NVDEC gave as FFmpeg does
(``NvdecVideo._check_leading``), or False once one differed; absent: none checked yet."""
_OFFSETS: dict[tuple, int] = {}
"""The decoder's pts offset per file (``_file_key``), learned once a process (files are opened often)."""


def _file_key(path: str) -> tuple:
    """``path`` with its size and modification time: a file written again is learned again."""
    try:
        st = os.stat(path)
        return (path, st.st_size, st.st_mtime_ns)
    except OSError:
        return (path,)


class CpuPlanes(CpuVideo):
    """A file's frames decoded by FFmpeg (PyAV) as NVDEC gives them: ``planes(indices)`` ->
    Y ``(N, H, W)`` and interleaved CbCr ``(N, H/2, W/2, 2)`` uint8 on the CPU (found by pts
    as ``CpuVideo`` finds them); what ``NvdecVideo`` uses for frames NVDEC did not give."""

    def __init__(self, path: str):
        super().__init__(path, "cpu")

    def planes(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        flat = self.frames(indices)  # (N, H*W + 2*ch*cw): Y then CbCr, from _rgb below
        h, w = self.info.height, self.info.width
        ch, cw = (h + 1) // 2, (w + 1) // 2
        return flat[:, :h * w].reshape(-1, h, w), flat[:, h * w:].reshape(-1, ch, cw, 2)

    def _rgb(self, frame: Any) -> torch.Tensor:
        """Not RGB here: the frame's planes, flat, ``(1, H*W + 2*ch*cw)`` uint8."""
        if frame.format.name not in ("yuv420p", "yuvj420p"):
            frame = frame.reformat(format="yuv420p")  # nv12: the same samples, planar
        y, u, v = planes(frame)[:3]
        uv = np.stack([u, v], -1)
        return torch.from_numpy(np.concatenate([y.reshape(-1), uv.reshape(-1)]))[None]


class _Event:
    """A finished event, where the frames are not on a CUDA device (tests)."""

    def record(self, stream: Any = None) -> None:
        pass

    def query(self) -> bool:
        return True

    def synchronize(self) -> None:
        pass


def _truncated(info: VideoInfo, count: int) -> VideoInfo:
    """``info`` with only the first ``count`` frames (the decoder sees fewer than the demuxer)."""
    from dataclasses import replace

    return replace(info, times=info.times[:count], pts=info.pts[:count])
