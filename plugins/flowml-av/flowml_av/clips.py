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

from .grouping import Group, Sample, group_samples, one_each
from .nvdec import engines, nvdec_problem, nvdec_size_problem
from .parallel import keyframe_indices
from .probe import probe
from .processing import ProcessDesc, draw, plan, process
from .reader import _gpu_index, _place

DEFAULT = {"frames": ProcessDesc()}
FILES_PER_DECODER = 4
"""Decoders a thread keeps open (one a file, least recently used closed): bounds NVDEC sessions."""


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

    ``decoders``: K threads decode different samples at once, each with its own decoders (one
    a file, the last ``FILES_PER_DECODER`` files it read), up to ``batch + 2 K`` samples ahead
    of the batch being made (the order is known; it is planned ``ahead`` samples at a time,
    default ``batch + 2 K``, so up to ``batch + 2 K + ahead`` decoded samples are held); batches are made in order from them, random
    choices drawn in order, so K changes nothing in the output. None (auto): one a NVDEC
    engine on NVDEC (7 on an H200), half the cores (up to 8) on the CPU.

    ``group``: samples of one file among those read ahead (with one decoder: within a batch)
    whose decode ranges share GOPs are decoded by one call for the union of their frames
    (``grouping.py``): each GOP once, forward from the first keyframe, instead of a seek and
    the frames from the keyframe for every sample. The same frames come out either way;
    ``decode_calls`` and ``decoded_frames`` count the calls and frames asked of the decoders."""

    type_name = "capture.clips"
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
                            description="decode samples of one file that share GOPs (among those read "
                                        "ahead) in one call: each GOP once; the same frames either way")
        ahead: int | None = Field(None, ge=1, le=4096, rebuild=True,
                                  description="with K > 1 decoders: samples planned (grouped) at a time; "
                                              "none: batch + 2 K. More groups better, holds more frames")

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
        infos = [probe(f) for f in self.paths]
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
        self.decode_calls = 0       # decoder calls (one a group)
        self.decoded_frames = 0     # distinct frames those calls asked for
        self.gpu = self._wants_gpu()
        self.pool: ThreadPoolExecutor | None = None
        self.count = self._decoder_count()
        if self.count > 1:
            if self.gpu:  # open one here: an NVDEC that cannot take the files says so before the threads
                first = self.index.locate(self.order[0])[0] if self.order else 0
                self._video(first)
                for video in self.videos.values():
                    video.close()
                self.videos.clear()
            self.local = threading.local()
            self.opened: list[Any] = []
            self.pool = ThreadPoolExecutor(self.count, thread_name_prefix="flowml-av-clips")
            self.jobs: dict[int, Future] = {}   # read position -> the future of its group
            self.submitted = 0

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
                from .nvdec import NvdecVideo

                try:
                    video = NvdecVideo(self.paths[file], self.ctx.device)
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
            for f in set(self.jobs.values()):
                f.cancel()
            pool.shutdown(wait=True)
            for video in self.opened:
                video.close()
        for video in getattr(self, "videos", {}).values():
            video.close()

    # -- K decoders ----------------------------------------------------------------------------
    def _thread_video(self, file: int) -> Any:
        """This thread's decoder of ``file`` (opened here; the least recently used past
        ``FILES_PER_DECODER`` closed)."""
        videos = getattr(self.local, "videos", None)
        if videos is None:
            videos = self.local.videos = OrderedDict()
        video = videos.get(file)
        if video is None:
            if self.gpu:
                from .nvdec import NvdecVideo

                try:
                    video = NvdecVideo(self.paths[file], self.ctx.device)
                except RuntimeError as exc:
                    raise NodeError(f"NVDEC cannot decode {self.paths[file]}: {exc}") from exc
            else:
                from .cpudecode import CpuVideo

                video = CpuVideo(self.paths[file], self.ctx.device, max(1, (os.cpu_count() or 1) // self.count))
            videos[file] = video
            with self.lock:
                self.opened.append(video)
            while len(videos) > FILES_PER_DECODER:
                _, old = videos.popitem(last=False)
                with self.lock:
                    self.opened.remove(old)
                old.close()
        videos.move_to_end(file)
        return video

    def _decode_group(self, group: Group) -> tuple[dict[int, torch.Tensor], Any]:
        """On a worker thread: the group's samples' frames (read position -> ``(T, 3, H, W)``)
        and the CUDA event after them (or None)."""
        video = self._thread_video(group.file)
        if not self.ctx.device.startswith("cuda"):
            return self._split(video, group), None
        stream = getattr(self.local, "stream", None)
        if stream is None:
            stream = self.local.stream = torch.cuda.Stream(torch.device(self.ctx.device))
        with torch.cuda.stream(stream):
            images = self._split(video, group)
            event = torch.cuda.Event()
            event.record(stream)
        return images, event

    def _split(self, video: Any, group: Group) -> dict[int, torch.Tensor]:
        """Decode the union of the group's frames in one call; each sample's frames from it (a
        view where they are consecutive there, as they are for one sample alone)."""
        images = self._placed(video, video.frames(list(group.frames)))
        with self.lock:
            self.decode_calls += 1
            self.decoded_frames += len(group.frames)
        row = {f: k for k, f in enumerate(group.frames)}
        out = {}
        for s in group.samples:
            rows = [row[f] for f in s.frames]
            if rows == list(range(rows[0], rows[0] + len(rows))):
                out[s.position] = images[rows[0]:rows[0] + len(rows)]
            else:
                out[s.position] = torch.stack([images[r] for r in rows])
        return out

    def _groups(self, positions: range) -> list[Group]:
        """The samples at read ``positions`` in decoder calls: grouped (``group``) or one each."""
        samples = []
        for at in positions:
            file, frames = self.index.frames(self.order[at])
            samples.append(Sample(at, file, tuple(frames)))
        return group_samples(samples, self.keys) if self.params.group else one_each(samples)

    def _sequences(self, count: int) -> list[torch.Tensor]:
        """The next ``count`` samples' frames, decoded ahead by the threads, in order."""
        want = min(len(self.order), self.pos + count + 2 * self.count)
        if self.submitted < want:  # plan a window at a time: groups form within it
            chunk = self.params.ahead or self.params.batch + 2 * self.count
            end = min(len(self.order), max(want, self.submitted + chunk))
            for group in self._groups(range(self.submitted, end)):
                future = self.pool.submit(self._decode_group, group)
                for s in group.samples:
                    self.jobs[s.position] = future
            self.submitted = end
        out = []
        for at in range(self.pos, self.pos + count):
            images_at, event = self.jobs.pop(at).result()
            images = images_at.pop(at)
            if event is not None:
                current = torch.cuda.current_stream(torch.device(self.ctx.device))
                current.wait_event(event)
                images.record_stream(current)
            out.append(images)
        return out

    # -- batches -------------------------------------------------------------------------------
    def process(self) -> dict[str, Any]:
        p = self.params
        chosen = self.order[self.pos:self.pos + p.batch]
        if not chosen or (p.drop_last and len(chosen) < p.batch):
            raise EndOfStream
        if self.pool is not None:
            sequences = self._sequences(len(chosen))
        else:
            got: dict[int, torch.Tensor] = {}
            for group in self._groups(range(self.pos, self.pos + len(chosen))):
                got.update(self._split(self._video(group.file), group))
            sequences = [got[at] for at in range(self.pos, self.pos + len(chosen))]
        self.pos += len(chosen)
        draws = [draw(self.generator) for _ in chosen]   # shared by the outputs: they stay aligned
        out = {name: self._output(name, desc, sequences, draws) for name, desc in self.descs.items()}
        out["index"] = torch.tensor(chosen, dtype=torch.int64, device=self.ctx.device)
        return out

    def sequence(self, sample: int) -> torch.Tensor:
        """Sample ``sample``'s frames as ``(T, 3, H, W)`` float RGB in [0, 1] on the device."""
        file, frames = self.index.frames(sample)
        video = self._video(file)
        return self._placed(video, video.frames(frames))

    def _placed(self, video: Any, images: torch.Tensor) -> torch.Tensor:
        turns = (round(video.info.rotation / 90) % 4) if self.params.autorotate else 0
        return _place(images, turns, None) if turns else images

    def _output(self, name: str, desc: ProcessDesc, sequences: list[torch.Tensor], draws: list) -> torch.Tensor:
        try:
            plans = [plan(desc, s.shape[3], s.shape[2], d) for s, d in zip(sequences, draws)]
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
