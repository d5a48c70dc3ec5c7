"""``capture.clips``: batches of frame sequences at given sample numbers of a list of files
(what ``flowml.data.VideoLoader`` runs: NVVL's ``VideoDataset`` samples, decoded and
processed on the device)."""

from __future__ import annotations

from typing import Any, Literal

from flowml.lazy import lazy_import
torch = lazy_import("torch")
from pydantic import model_validator

import flowml
from flowml import TENSOR, EndOfStream, Field, Node, NodeError, Output, Ports
from flowml.data.index import SequenceIndex

from .nvdec import nvdec_problem
from .probe import probe
from .processing import ProcessDesc, draw, plan, process
from .reader import _place

DEFAULT = {"frames": ProcessDesc()}


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
    PyNvVideoCodec on a CUDA node, else FFmpeg on the CPU, saying why once)."""

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
        self.gpu = self._wants_gpu()

    def _wants_gpu(self) -> bool:
        if self.params.decode == "cpu":
            return False
        problem = nvdec_problem(self.paths[0], self.ctx.device)
        if problem:
            if self.params.decode == "cuda" or self.ctx.device.startswith("cuda"):
                self.log.warning("capture.clips: GPU decoding not available (%s); decoding on the CPU", problem)
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
                    self.log.warning("capture.clips: GPU decoding failed (%s); decoding on the CPU", exc)
                    self.gpu = False
            if video is None:
                from .cpudecode import CpuVideo

                video = CpuVideo(self.paths[file], self.ctx.device)
            self.videos[file] = video
        return video

    def teardown(self) -> None:
        for video in getattr(self, "videos", {}).values():
            video.close()

    # -- batches -------------------------------------------------------------------------------
    def process(self) -> dict[str, Any]:
        p = self.params
        chosen = self.order[self.pos:self.pos + p.batch]
        if not chosen or (p.drop_last and len(chosen) < p.batch):
            raise EndOfStream
        self.pos += len(chosen)
        sequences = [self.sequence(k) for k in chosen]
        draws = [draw(self.generator) for _ in chosen]   # shared by the outputs: they stay aligned
        out = {name: self._output(name, desc, sequences, draws) for name, desc in self.descs.items()}
        out["index"] = torch.tensor(chosen, dtype=torch.int64, device=self.ctx.device)
        return out

    def sequence(self, sample: int) -> torch.Tensor:
        """Sample ``sample``'s frames as ``(T, 3, H, W)`` float RGB in [0, 1] on the device."""
        file, frames = self.index.frames(sample)
        video = self._video(file)
        images = video.frames(frames)
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
