"""``capture.clips``: batches of frame sequences at given sample numbers of a list of files
(what ``flowml.data.VideoLoader`` runs: NVVL's ``VideoDataset`` samples, decoded and
processed on the device)."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal

from flowml.lazy import lazy_import
torch = lazy_import("torch")
from pydantic import model_validator

import flowml
from flowml import TENSOR, EndOfStream, Field, Node, NodeError, Output, Ports
from flowml.data.index import SequenceIndex

from .decoder_pool import NVDEC
from .gpudecode import nv12_to_rgb
from .grouping import Sample, Task, gop_tasks, in_decode_order, key_at_or_before, one_each_task
from .nvdec import engines, nvdec_problem, nvdec_size_problem
from .parallel import LONG_GOP, keyframe_indices
from .probe import probe
from .processing import ProcessDesc, draw, plan, process
from .reader import _gpu_index, _place

DEFAULT = {"frames": ProcessDesc()}
FILES_PER_DECODER = 4
"""Decoders a thread keeps open (one a file, the least recently used handed back to
``decoder_pool``): bounds NVDEC sessions."""
NVDEC_WINDOW = 128
"""Samples a window at least on NVDEC by default: a larger window decodes each GOP once for more
samples (fewer frames decoded a sample), and what it holds is NV12 (``crop_before_convert``).
On the H200 (2026-12-03, ``nvdec_bench.py``, 5-frame samples of a 240-frame 1080p file) the
loader made 189 samples/s with 64 (3.8 frames decoded a sample), 265 with 128 (2.1), 250 with
256 (1.0); eight such files: 147, 214, 237. Only the first window is smaller (``batch + 2 K``),
so that the first batch does not wait for a whole window."""
HELD_WINDOWS = 2
"""Windows of samples decoded or being decoded and not yet taken, at most (with K > 1): the
next window is submitted as soon as the one before it, so no decoder waits for the loop."""


class Clips(Node):
    """Batches of ``batch`` sequences of ``length`` frames (``step`` apart) from ``files``:
    sample k is numbered as NVVL numbers it (``flowml.data.index``: file after file, leaving
    out sequences that would run past a file's end), ``samples`` gives the order to read
    them in (none: all, in order). Each tick is one batch; the stream ends after the last
    (a short last batch unless ``drop_last``).

    Outputs: one per entry of ``outputs`` (NVVL's processing, ``processing.ProcessDesc``;
    none: ``frames``, float RGB in [0, 1], ``(B, T, 3, H, W)``), made in one pass on the
    device from the decoded sequences, random crops and flips drawn from ``seed``; and
    ``index``, the ``(B,)`` sample numbers. ``decode``: as ``capture.video``'s (NVDEC with
    PyNvVideoCodec on a CUDA node, else FFmpeg on the CPU, saying why once; a file below
    NVDEC's minimum size for its codec sends every file to the CPU, the log line naming the
    node, the file, its size and the minimum).

    ``decoders``: K threads decode at once, each with its own decoders (one a file, the last
    ``FILES_PER_DECODER`` files it read; handed back to ``decoder_pool`` at the end, so the
    next epoch's graph takes them rather than opening its own). The read order is known, so it is planned a window
    of ``ahead`` samples at a time (default ``batch + 2 K``; on NVDEC at least
    ``NVDEC_WINDOW``, 128, as it holds NV12, but for the first window), and the windows are
    submitted ahead, ``HELD_WINDOWS`` (2) of them decoded or being decoded and not yet taken
    (at most ``max(2 * ahead, batch + ahead)`` samples held): the next window's tasks wait behind the
    current one's, so no decoder idles while the loop takes a batch. The threads share one
    list of tasks, a thread taking among the next K one of a file it has open first. Batches
    are made in order, random choices drawn in order, so K changes nothing in the output.
    None (auto): one a NVDEC engine on NVDEC (7 on an H200), half the cores (up to 8) on the CPU.

    On NVDEC (``crop_before_convert``) the kept frames stay NV12 and, once a batch's draws are
    known, only the region its outputs read (the union of their crops) is converted to RGB:
    the values of whole frames converted, then processed.

    ``group``: a window's samples become one task a (file, GOP) (``grouping.gop_tasks``):
    the frames from the GOP's keyframe to the last one a sample of the window needs, asked for
    as one contiguous run, longest tasks first. Each GOP is decoded once a window, forward
    from its keyframe, and one sample's GOPs decode on several decoders at once. Off: a task
    a sample. The same frames come out either way; ``decode_calls`` and ``decoded_frames``
    count the tasks and the frames the decoders run through (from the keyframe at or before
    a task's first frame to its last)."""

    type_name = "capture.clips"
    crop_before_convert = True
    """On NVDEC, keep the decoded NV12 and convert to RGB only the part of each sample's frames
    that its outputs read (the crops), once the batch's random draws are known."""
    outputs = (Output("index", TENSOR, "(B,) int64 sample numbers"),)

    class Params(flowml.Params):
        files: list[str] = Field(description="video files (relative to the graph file)", rebuild=True)
        length: int = Field(8, ge=1, le=1024, description="frames in a sequence (T)", rebuild=True)
        step: int = Field(1, ge=1, le=1000, description="frames from one frame of a sequence to the next",
                          rebuild=True)
        samples: list[int] | None = Field(None, description="sample numbers in the order to read; none: all",
                                          rebuild=True)
        batch: int = Field(1, ge=1, le=4096, description="sequences in a batch (B)", rebuild=True)
        drop_last: bool = Field(False, description="leave out a last batch with fewer than `batch`", rebuild=True)
        outputs: dict[str, ProcessDesc] | None = Field(None, rebuild=True,
                                                       description="outputs by name, with NVVL's processing")
        seed: int | None = Field(None, rebuild=True, description="seed of random crops and flips")
        decode: Literal["auto", "cpu", "cuda"] = Field("auto", rebuild=True, description="as capture.video's")
        autorotate: bool = Field(True, rebuild=True, description="apply the files' display rotation")
        decoders: int | None = Field(None, ge=1, le=32, rebuild=True,
                                     description="samples decoded at once, each thread with its own decoders; "
                                                 "none: one a NVDEC engine, or half the cores on the CPU")
        group: bool = Field(True, rebuild=True,
                            description="decode a window's samples as one task a (file, GOP): each GOP "
                                        "once, from its keyframe; the same frames either way")
        ahead: int | None = Field(None, ge=1, le=4096, rebuild=True,
                                  description="with K > 1 decoders: samples planned (grouped) at a time, "
                                              "two such windows held; none: batch + 2 K (NVDEC: at least 128 but the first)")

        @model_validator(mode="after")
        def _check(self) -> "Clips.Params":
            if not self.files:
                raise ValueError("files: give at least one video file")
            for name, desc in (self.outputs or {}).items():
                if not name.isidentifier() or name == "index":
                    raise ValueError(f"outputs: {name!r} is not a usable port name (an identifier, not 'index')")
                desc.positions(self.length)
            return self

    @classmethod
    def ports(cls, params: "Clips.Params") -> Ports:
        names = list(params.outputs or DEFAULT)
        return Ports((), tuple(Output(n, TENSOR, "(B, T, C, H, W) or (B, C, T, H, W)") for n in names)
                     + cls.outputs)

    @classmethod
    def count_frames(cls, path: str) -> int:
        """Frames in ``path`` (demuxed, not decoded): what ``flowml.data`` numbers samples by."""
        return probe(path).frames

    # -- lifecycle -----------------------------------------------------------------------------
    def setup(self, ctx: flowml.NodeContext) -> None:
        p = self.params
        self.paths = [str(ctx.resolve(f)) for f in p.files]
        self.infos = infos = [probe(f) for f in self.paths]
        self.keys = [keyframe_indices(i) for i in infos]
        self.index = SequenceIndex.of([i.frames for i in infos], p.length, p.step)
        order = p.samples if p.samples is not None else range(len(self.index))
        bad = [k for k in order if not 0 <= k < len(self.index)]
        if bad:
            raise NodeError(f"samples {bad[:5]} are outside 0..{len(self.index) - 1} ({len(self.index)} "
                            f"samples of {p.length} frames in {len(self.paths)} files)")
        self.order = list(order)
        self.pos = 0
        self.descs = p.outputs or DEFAULT
        self.generator = torch.Generator()
        self.generator.manual_seed(p.seed if p.seed is not None else torch.seed())
        self.videos: dict[int, Any] = {}
        self.lock = threading.Lock()
        self.decode_calls = 0       # tasks decoded (one a (file, GOP) of a window, grouped)
        self.decoded_frames = 0     # frames the decoders run through: a task's keyframe .. its last frame
        self.taken = 0              # samples handed to batches
        self.gpu = self._wants_gpu()
        self.pool: ThreadPoolExecutor | None = None
        self.count = self._decoder_count()
        if self.count > 1:
            if self.gpu:  # open one here: an NVDEC that cannot take the files says so before the threads
                first = self.index.locate(self.order[0])[0] if self.order else 0
                self._video(first)
                for video in self.videos.values():
                    _release(video)
                self.videos.clear()
            self.local = threading.local()
            self.opened: list[Any] = []
            self.pool = ThreadPoolExecutor(self.count, thread_name_prefix="flowml-av-clips")
            self.jobs: dict[int, list[Future]] = {}   # read position -> the futures of its tasks
            self.pending: list[tuple[Task, Future]] = []  # submitted, not started, in priority order
            self.submitted = 0
            self.window = self.first_window = p.ahead or p.batch + 2 * self.count
            if p.ahead is None and self.gpu and self.crop_before_convert:
                self.window = max(NVDEC_WINDOW, self.window)
            self.windows = 0                          # windows submitted

    def _decoder_count(self) -> int:
        if self.params.decoders is not None:
            return self.params.decoders
        if self.gpu:
            return engines(self.paths[0], _gpu_index(self.ctx.device))
        return max(1, min(8, (os.cpu_count() or 2) // 2))

    def _wants_gpu(self) -> bool:
        if self.params.decode == "cpu":
            return False
        problem = nvdec_problem(self.paths[0], self.ctx.device)
        if problem is None:
            problem = next((f"{p}: {why}" for p in self.paths
                            if (why := nvdec_size_problem(p, self.ctx.device))), None)
        if problem:
            if self.params.decode == "cuda" or self.ctx.device.startswith("cuda"):
                self.log.warning("%s (capture.clips): GPU decoding not available (%s); decoding on the CPU",
                                 self.ctx.node_id, problem)
            return False
        return True

    @property
    def decoder(self) -> str:
        """``nvdec`` or ``cpu``: which decoder this node uses."""
        return "nvdec" if self.gpu else "cpu"

    def _video(self, file: int) -> Any:
        video = self.videos.get(file)
        if video is None:
            if self.gpu:
                try:
                    video = _take_nvdec(self.paths[file], self.ctx.device)
                    if video.log_once and not self.videos:
                        self.log.warning("capture.clips: %s", video.log_once)
                except RuntimeError as exc:
                    if self.videos:  # mixed decoders would make a run depend on the file order
                        raise NodeError(f"NVDEC cannot decode {self.paths[file]}: {exc}") from exc
                    self.log.warning("%s (capture.clips): GPU decoding failed (%s); decoding on the CPU",
                                     self.ctx.node_id, exc)
                    self.gpu = False
            if video is None:
                from .cpudecode import CpuVideo

                video = CpuVideo(self.paths[file], self.ctx.device)
            self.videos[file] = video
        return video

    def teardown(self) -> None:
        pool = getattr(self, "pool", None)
        if pool is not None:
            for futures in self.jobs.values():
                for f in futures:
                    f.cancel()
            pool.shutdown(wait=True)
            for video in self.opened:
                _release(video)
        for video in getattr(self, "videos", {}).values():
            _release(video)

    # -- K decoders ----------------------------------------------------------------------------
    def _thread_video(self, file: int) -> Any:
        """This thread's decoder of ``file`` (taken from ``decoder_pool`` or opened here; the
        least recently used past ``FILES_PER_DECODER`` handed back)."""
        videos = getattr(self.local, "videos", None)
        if videos is None:
            videos = self.local.videos = OrderedDict()
        video = videos.get(file)
        if video is None:
            video = videos[file] = self._open_video(file)
            with self.lock:
                self.opened.append(video)
            while len(videos) > FILES_PER_DECODER:
                _, old = videos.popitem(last=False)
                with self.lock:
                    self.opened.remove(old)
                _release(old)
        videos.move_to_end(file)
        return video

    def _open_video(self, file: int) -> Any:
        """A decoder of ``file`` for one of the K threads."""
        if self.gpu:
            try:
                return _take_nvdec(self.paths[file], self.ctx.device)
            except RuntimeError as exc:
                raise NodeError(f"NVDEC cannot decode {self.paths[file]}: {exc}") from exc
        from .cpudecode import CpuVideo

        return CpuVideo(self.paths[file], self.ctx.device, max(1, (os.cpu_count() or 1) // self.count))

    def _pull(self) -> None:
        """On a worker thread: take a pending task and run it into its future. Among the next
        K in priority order, one of a file this thread has open goes first (opening an NVDEC
        session costs more than a task's place in the queue); else the first."""
        open_here = getattr(self.local, "videos", None) or {}
        with self.lock:
            if not self.pending:
                return
            pick = next((n for n, (t, _) in enumerate(self.pending[:self.count]) if t.file in open_here), 0)
            task, future = self.pending.pop(pick)
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(self._decode_task(task))
        except BaseException as exc:  # noqa: BLE001 - raised where the batch waits for it
            future.set_exception(exc)

    def _decode_task(self, task: Task) -> tuple[Task, Any, Any]:
        """On a worker thread: ``(task, its kept frames (``_run_task``), the CUDA event after
        them or None)``, decoded on this thread's stream."""
        video = self._thread_video(task.file)
        if not self.ctx.device.startswith("cuda"):
            return task, self._run_task(video, task), None
        stream = getattr(self.local, "stream", None)
        if stream is None:
            stream = self.local.stream = torch.cuda.Stream(torch.device(self.ctx.device))
        with torch.cuda.stream(stream):
            images = self._run_task(video, task)
            event = torch.cuda.Event()
            event.record(stream)
        return task, images, event

    def _run_task(self, video: Any, task: Task) -> Any:
        """The task's kept frames: ``(N, 3, H, W)`` RGB, or on NVDEC (``crop_before_convert``,
        no rotation) their NV12 planes ``(Y (N, H, W), CbCr (N, H/2, W/2, 2))``, converted
        later, only where the outputs read (``_regions_to_rgb``). NVDEC is asked for the whole
        run from ``task.start`` (no gap to seek over), ``LONG_GOP`` frames a call, and only the
        kept frames are kept; FFmpeg is asked for the kept ones (it decodes forward over
        small gaps without seeking) and converts those."""
        if self.gpu:
            keep = set(task.frames)
            ys, uvs = [], []
            run = task.run
            for at in range(0, len(run), LONG_GOP):
                part = run[at:at + LONG_GOP]
                y, uv = video.nv12(list(part))
                rows = [k for k, f in enumerate(part) if f in keep]
                if rows:
                    ys.append(_rows(y, rows))
                    uvs.append(_rows(uv, rows))
            y, uv = (ys[0], uvs[0]) if len(ys) == 1 else (torch.cat(ys), torch.cat(uvs))
            if self.crop_before_convert and not self._turns(video):
                images = (y, uv)
            else:
                images = self._placed(video, nv12_to_rgb(y, uv, video.info.colorspace, video.info.full_range))
        else:
            images = self._placed(video, video.frames(list(task.frames)))
        with self.lock:
            self.decode_calls += 1
            self.decoded_frames += task.frames[-1] - key_at_or_before(self.keys[task.file], task.start) + 1
        return images

    def _tasks(self, positions: range) -> list[Task]:
        """The samples at read ``positions`` as decoder tasks: a (file, GOP) each (``group``),
        longest first, or one a sample."""
        samples = []
        for at in positions:
            file, frames = self.index.frames(self.order[at])
            samples.append(Sample(at, file, tuple(frames)))
        return gop_tasks(samples, self.keys) if self.params.group else one_each_task(samples)

    def _submit(self, need: int) -> None:
        """Submit windows until read position ``need`` is submitted, then on while the samples
        submitted and not yet taken stay within ``HELD_WINDOWS`` windows."""
        n = len(self.order)
        while self.submitted < n:
            size = min(self.window if self.windows else self.first_window, n - self.submitted)
            if self.submitted > need and self.submitted - self.taken + size > HELD_WINDOWS * self.window:
                return
            for task in self._tasks(range(self.submitted, self.submitted + size)):
                future: Future = Future()
                with self.lock:
                    self.pending.append((task, future))
                self.pool.submit(self._pull)   # one pull a task: every task runs
                for at in task.positions:
                    self.jobs.setdefault(at, []).append(future)
            self.submitted += size
            self.windows += 1

    def _sequences(self, count: int) -> list[Any]:
        """The next ``count`` samples' frames (``(T, 3, H, W)`` or NV12 planes, as
        ``_run_task`` gives), decoded ahead by the threads, in order."""
        out = []
        current = torch.cuda.current_stream(torch.device(self.ctx.device)) if self.ctx.device.startswith("cuda") \
            else None
        for at in range(self.pos, self.pos + count):
            self._submit(at)
            done = [f.result() for f in self.jobs.pop(at)]   # a decoder's error is raised here
            for _, images, event in done:
                if event is not None:
                    current.wait_event(event)
                    for t in images if isinstance(images, tuple) else (images,):
                        t.record_stream(current)
            out.append(_assemble(self.index.frames(self.order[at])[1], [(t.frames, im) for t, im, _ in done]))
            self.taken += 1
        self._submit(self.pos + count - 1)   # the next window as soon as there is room
        return out

    # -- batches -------------------------------------------------------------------------------
    def process(self) -> dict[str, Any]:
        p = self.params
        chosen = self.order[self.pos:self.pos + p.batch]
        if not chosen or (p.drop_last and len(chosen) < p.batch):
            raise EndOfStream
        if self.pool is not None:
            sequences = self._sequences(len(chosen))
        else:   # one decoder: the batch's tasks in turn, forward through each file
            tasks = in_decode_order(self._tasks(range(self.pos, self.pos + len(chosen))))
            done = [(t.frames, self._run_task(self._video(t.file), t)) for t in tasks]
            sequences = [_assemble(self.index.frames(k)[1], [d for t, d in zip(tasks, done) if at in t.positions])
                         for at, k in enumerate(chosen, self.pos)]
        self.pos += len(chosen)
        draws = [draw(self.generator) for _ in chosen]   # shared by the outputs: they stay aligned
        regions = [None] * len(chosen)
        if sequences and isinstance(sequences[0], tuple):   # NV12: convert what the outputs read
            sequences, regions = self._regions_to_rgb(sequences, [self.index.locate(k)[0] for k in chosen], draws)
        out = {name: self._output(name, desc, sequences, draws, regions) for name, desc in self.descs.items()}
        out["index"] = _index_tensor(chosen, self.ctx.device)
        return out

    def sequence(self, sample: int) -> torch.Tensor:
        """Sample ``sample``'s frames as ``(T, 3, H, W)`` float RGB in [0, 1] on the device."""
        file, frames = self.index.frames(sample)
        video = self._video(file)
        return self._placed(video, video.frames(frames))

    def _turns(self, video: Any) -> int:
        return (round(video.info.rotation / 90) % 4) if self.params.autorotate else 0

    def _placed(self, video: Any, images: torch.Tensor) -> torch.Tensor:
        turns = self._turns(video)
        return _place(images, turns, None) if turns else images

    # -- converting only what the outputs read ---------------------------------------------------
    def _region(self, width: int, height: int, drawn: Any) -> tuple[int, int, int, int]:
        """``(x, y, w, h)`` of a ``width`` x ``height`` decoded frame that the outputs read for
        a sequence with these random draws: the union of their crops (where a flip comes
        first, the mirrored place); the whole frame if one scales before cropping, has no
        crop, or its crop does not fit (``_output`` then says so)."""
        boxes = []
        for desc in self.descs.values():
            crop = desc.crop_size()
            if crop is None or (not desc.crop_first and desc.scaled(width, height) != (width, height)):
                return 0, 0, width, height
            try:
                pl = plan(desc, width, height, drawn)
            except ValueError:
                return 0, 0, width, height
            cw, ch = crop
            boxes.append((width - pl.x - cw if pl.flip else pl.x, pl.y, cw, ch))
        x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        x1, y1 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
        return x0, y0, x1 - x0, y1 - y0

    def _regions_to_rgb(self, planes: list[tuple[torch.Tensor, torch.Tensor]], files: list[int],
                        draws: list) -> tuple[list[torch.Tensor], list[tuple[int, ...]]]:
        """Each sample's NV12 planes ``(T, H, W)``, ``(T, H/2, W/2, 2)`` -> ``(T, 3, h, w)`` RGB of
        its ``_region`` alone, and the regions ``(x, y, w, h, W, H)``. The planes are cut at even
        places a little wider than the region (chroma stays aligned, so every pixel is the
        one a whole-frame conversion gives) and of one size for equal regions, so the batch is
        converted in one call where the files' sizes and colours agree."""
        cuts, regions = [], []
        for (y, uv), d in zip(planes, draws):
            height, width = y.shape[1], y.shape[2]
            bx, by, bw, bh = self._region(width, height, d)
            ex, ew = _even_span(bx, bw, width)
            ey, eh = _even_span(by, bh, height)
            cuts.append((y[:, ey:ey + eh, ex:ex + ew], uv[:, ey // 2:(ey + eh + 1) // 2, ex // 2:(ex + ew + 1) // 2],
                         by - ey, bx - ex))
            regions.append((bx, by, bw, bh, width, height))
        colours = [(self.infos[f].colorspace, self.infos[f].full_range) for f in files]
        if len({(c[0].shape, c[1].shape) for c in cuts}) == 1 and len(set(colours)) == 1:
            rgb = nv12_to_rgb(torch.cat([c[0] for c in cuts]), torch.cat([c[1] for c in cuts]), *colours[0])
            rgbs = rgb.split(cuts[0][0].shape[0])
        else:
            rgbs = [nv12_to_rgb(c[0], c[1], *colour) for c, colour in zip(cuts, colours)]
        out = [r[:, :, oy:oy + reg[3], ox:ox + reg[2]] for r, (_, _, oy, ox), reg in zip(rgbs, cuts, regions)]
        return out, regions

    def _output(self, name: str, desc: ProcessDesc, sequences: list[torch.Tensor], draws: list,
                regions: list) -> torch.Tensor:
        try:
            plans = [plan(desc, s.shape[3], s.shape[2], d) if r is None else _in_region(plan(desc, r[4], r[5], d), r)
                     for s, d, r in zip(sequences, draws, regions)]
            if len({s.shape for s in sequences}) == 1:   # one pass over the whole batch
                return process(torch.stack(sequences), desc, plans)
            parts = [process(s[None], desc, [pl]) for s, pl in zip(sequences, plans)]
        except ValueError as exc:
            raise NodeError(f"output {name}: {exc}") from exc
        if len({t.shape for t in parts}) != 1:
            sizes = sorted({f"{s.shape[3]}x{s.shape[2]}" for s in sequences})
            raise NodeError(f"output {name}: the files have different sizes ({', '.join(sizes)}); give it "
                            "`scale` (or a crop) so that every sample has the same shape")
        return torch.cat(parts)


def _take_nvdec(path: str, device: str) -> Any:
    """An NVDEC decoder of ``path``: one a graph before this one handed back
    (``decoder_pool``: opening and closing one holds the GIL), else a new one."""
    from .nvdec import NvdecVideo

    return NVDEC.take(path, device, lambda: NvdecVideo(path, device))


def _release(video: Any) -> None:
    """Done with ``video``: an NVDEC decoder goes back to the pool, a CPU one is closed."""
    from .cpudecode import CpuVideo

    if isinstance(video, CpuVideo):
        video.close()
    else:
        NVDEC.give(video)


def _rows(t: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """``t[rows]`` without an index tensor (whose upload would wait on the GPU): a view where
    the rows are consecutive, else a stack of views."""
    if rows == list(range(rows[0], rows[0] + len(rows))):
        return t[rows[0]:rows[0] + len(rows)]
    return torch.stack([t[r] for r in rows])


def _even_span(start: int, size: int, limit: int) -> tuple[int, int]:
    """A cut ``(start', size')`` of ``[0, limit)`` holding ``[start, start + size)`` that begins
    at an even place (4:2:0 chroma stays aligned) and is ``size + 2`` wide (the whole ``limit``
    where that does not fit), so equal regions give equal cuts wherever they lie."""
    if size + 2 > limit:
        return 0, limit
    at = start & ~1
    if at + size + 2 > limit:
        at -= 2
    return at, size + 2


def _in_region(pl: Any, region: tuple[int, ...]) -> Any:
    """A plan made for the whole frame, for the frames cut to ``region`` ``(x, y, w, h, W, H)``:
    a flip mirrors the region, so the crop's origin moves by what lies right of it."""
    bx, by, bw, bh, width, _ = region
    x = pl.x - (width - bx - bw) if pl.flip else pl.x - bx
    return type(pl)(x, pl.y - by, pl.flip)


def _assemble(frames: list[int], parts: list[tuple[tuple[int, ...], Any]]) -> Any:
    """One sample's ``(T, 3, H, W)`` from the tasks that hold its ``frames``: ``parts`` are
    (the frames a task kept, sorted; their images, or their NV12 planes: each assembled). A
    view where one task holds them all in a row (as a sample alone has), else a stack."""
    if parts and isinstance(parts[0][1], tuple):
        return tuple(_assemble(frames, [(kept, data[i]) for kept, data in parts]) for i in range(len(parts[0][1])))
    where = {}
    for n, (kept, _) in enumerate(parts):
        for r, f in enumerate(kept):
            where.setdefault(f, (n, r))
    try:
        spots = [where[f] for f in frames]
    except KeyError as exc:
        raise NodeError(f"capture.clips: frame {exc.args[0]} of a sample was in none of its decoder tasks") from exc
    n0, r0 = spots[0]
    if all(n == n0 for n, _ in spots) and [r for _, r in spots] == list(range(r0, r0 + len(spots))):
        return parts[n0][1][r0:r0 + len(spots)]
    return torch.stack([parts[n][1][r] for n, r in spots])


def _index_tensor(values: list[int], device: str) -> torch.Tensor:
    """``(B,)`` int64 on ``device``: on CUDA copied from pinned memory without blocking
    (``flowml.gpu.lanes.upload``: a pageable copy would make the graph thread wait)."""
    from flowml.gpu.lanes import upload

    return upload(torch.tensor(values, dtype=torch.int64), device)
