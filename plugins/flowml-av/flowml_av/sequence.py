"""``capture.sequence``: windows of T consecutive frames, processed on the device (what NVIDIA's
NVVL loader gave PyTorch users: sequences for video models, decoded and prepared on the GPU)."""

from __future__ import annotations

from collections import deque
import keyword
from typing import Annotated, Any, Literal

from flowml.lazy import lazy_import
torch = lazy_import("torch")
from pydantic import model_validator

import flowml
from flowml import IMAGE, SCALAR, TENSOR, EndOfStream, Field, Input, Node, NodeError, Output, Ports, Stamped

from .processing import ProcessDesc, draw, plan, process
from .reader import VideoSource

Pixels = Annotated[int, Field(ge=1, le=16384)]
DTYPES = {"fp32": "float", "fp16": "half", "bf16": "bfloat16"}  # ProcessDesc's names
LEGACY = ("scale", "crop", "mean", "std", "dtype", "layout", "keep")


class FrameWindows(Node):
    """Windows of ``length`` frames, ``step`` frames apart, a new one every ``stride`` frames,
    as one tensor on the node's device: ``frames`` ``(1, T, C, H, W)`` (``layout: TCHW``) or
    ``(1, C, T, H, W)`` (``CTHW``, what 3D-convolution video models take), T = ``length``
    or the number of frames in ``keep``.

    Frames come from a video file (``path``: the node is then a source, decoding like
    ``capture.video``, on the GPU where it can) or from an upstream ``image`` stream.
    Each frame is prepared once, on the device, in this order: scaled to ``scale``
    ``[w, h]`` (bilinear, antialiased), cropped to ``crop`` ``[x, y, w, h]``, normalised per
    channel as ``(x - mean) / std``, cast to ``dtype``. ``keep`` picks frames of the window by
    position (``[0, -1]``: first and last).

    ``outputs`` instead makes several outputs from one decoded window, each described by
    NVVL's processing (``processing.ProcessDesc``: dtype uint8/half/float, scale to a size or
    by a factor with a named interpolation, fixed or random crop, random flip, [0, 1] or
    mean/std, RGB or YCbCr, layout ``BTCHW``/``BCTHW``, ``index_map``), all in one pass on
    the device; random choices come from ``seed``. E.g. a quarter-size input and the full
    middle frame as target::

        outputs: {input: {scale_factor: 0.25, dtype: half},
                  target: {index_map: [-1, -1, 0, -1, -1], dtype: half}}

    From a file each tick is one window (stamped with its first frame's time); the stream ends
    when the file cannot fill another (``loop`` goes on). From a stream every tick gives the
    newest window; a new one is made every ``stride`` frames and held in between, and the
    ``new`` output says whether this tick's window is new (run a model with ``every:
    <stride>`` to see each once). Until ``length`` frames have arrived, the window is filled
    with the first frame, so shapes never change.
    """

    type_name = "capture.sequence"
    inputs = (Input("image", IMAGE, "frames to make windows of (when no `path` is given)"),)
    outputs = (Output("frames", TENSOR, "(1, T, C, H, W) or (1, C, T, H, W)"),
               Output("new", SCALAR, "True when this tick's window was made this tick"))

    class Params(flowml.Params):
        path: str | None = Field(None, description="video file or URL to read; none: use the image input",
                                  file="input")
        length: int = Field(8, ge=1, le=1024, description="frames in a window (T)", rebuild=True)
        stride: int = Field(1, ge=1, le=100_000, description="frames from one window's start to the next")
        step: int = Field(1, ge=1, le=1000, description="frames from one frame of a window to the next",
                           rebuild=True)
        keep: list[int] | None = Field(None, description="positions in the window to output, e.g. [0, -1]",
                                        rebuild=True)
        scale: tuple[Pixels, Pixels] | None = Field(None, description="[width, height] to scale frames to")
        crop: tuple[int, int, Pixels, Pixels] | None = Field(
            None, description="[x, y, width, height] to cut out after scaling")
        mean: list[float] | None = Field(None, description="per-channel mean subtracted, e.g. [0.485, 0.456, 0.406]",
                                          rebuild=True)
        std: list[float] | None = Field(None, description="per-channel divisor, e.g. [0.229, 0.224, 0.225]",
                                         rebuild=True)
        dtype: Literal["fp32", "fp16", "bf16"] = Field("fp32", description="element type of the output")
        layout: Literal["TCHW", "CTHW"] = Field("TCHW", description="(1, T, C, H, W) or (1, C, T, H, W)")
        loop: bool = Field(False, description="files: start again after the last frame", rebuild=True)
        start: float = Field(0.0, ge=0.0, description="files: seconds into the file to begin at", rebuild=True)
        decode: Literal["auto", "cpu", "cuda"] = Field("auto", description="files: as capture.video's decode",
                                                      rebuild=True)
        decoders: int | None = Field(None, ge=1, le=32, rebuild=True,
                                     description="files: as capture.video's (K decoders on keyframe-aligned "
                                                 "segments; none: one a NVDEC engine offline)")
        outputs: dict[str, ProcessDesc] | None = Field(
            None, rebuild=True, description="outputs by name, each with NVVL's processing; none: `frames`")
        seed: int | None = Field(None, rebuild=True, description="seed of random crops and flips")

        @model_validator(mode="after")
        def _check(self) -> "FrameWindows.Params":
            if self.outputs is not None:
                set_ = [k for k in LEGACY if k in self.model_fields_set]
                if set_:
                    raise ValueError(f"{', '.join(set_)}: with `outputs`, give the processing in each output")
                if not self.outputs:
                    raise ValueError("outputs: name at least one, or leave it out for `frames`")
                for name, desc in self.outputs.items():
                    if not name.isidentifier() or keyword.iskeyword(name) or name == "new":
                        raise ValueError(f"outputs: {name!r} is not a usable port name (an identifier, not 'new')")
                    desc.positions(self.length)  # an index_map of the wrong length says so here
            if self.keep is not None:
                if not self.keep:
                    raise ValueError("keep: name at least one position, or leave it out for all")
                bad = [k for k in self.keep if not -self.length <= k < self.length]
                if bad:
                    raise ValueError(f"keep: positions {bad} are outside a window of length {self.length}")
            if (self.mean is None) != (self.std is None):
                raise ValueError("give mean and std together")
            if self.std is not None and any(s == 0 for s in self.std):
                raise ValueError("std: no channel may have a std of 0")
            if self.mean is not None and len(self.mean) != len(self.std):
                raise ValueError(f"mean has {len(self.mean)} values, std {len(self.std)}: one per channel each")
            return self

    @classmethod
    def ports(cls, params: "FrameWindows.Params") -> Ports:
        outputs = cls.outputs
        if params.outputs is not None:
            outputs = tuple(Output(name, TENSOR, "(1, T, C, H, W) or (1, C, T, H, W)")
                            for name in params.outputs) + cls.outputs[1:]
        return Ports(() if params.path else cls.inputs, outputs)

    @staticmethod
    def descriptions(p: "FrameWindows.Params") -> dict[str, tuple[ProcessDesc, list[int] | None]]:
        """Each output's processing and, for the legacy ``keep``, the window positions it takes."""
        if p.outputs is not None:
            return {name: (desc, None) for name, desc in p.outputs.items()}
        crop = p.crop
        desc = ProcessDesc(dtype=DTYPES[p.dtype], scale=p.scale, crop=crop, mean=p.mean, std=p.std,
                           layout="BCTHW" if p.layout == "CTHW" else "BTCHW")
        keep = [k % p.length for k in p.keep] if p.keep is not None else None
        return {"frames": (desc, keep)}

    # -- lifecycle -----------------------------------------------------------------------------
    def setup(self, ctx: flowml.NodeContext) -> None:
        p = self.params
        self.span = (p.length - 1) * p.step + 1            # frames a window covers
        self.descs = self.descriptions(p)
        self.generator = torch.Generator()
        self.generator.manual_seed(p.seed if p.seed is not None else torch.seed())
        self.frames: deque = deque(maxlen=self.span)      # decoded frames (3, H, W), newest last
        self.stamps: deque = deque(maxlen=self.span)
        self.since = 0                                    # frames since the last window
        self.window: dict[str, torch.Tensor] | None = None
        self.reader: VideoSource | None = None
        if p.path:
            reader_params = VideoSource.Params(path=p.path, loop=p.loop, start=p.start, decode=p.decode,
                                               realtime=False, decoders=p.decoders)
            self.reader = VideoSource(reader_params, ctx)
            self.reader.setup(ctx)

    def on_params(self, old: "FrameWindows.Params", new: "FrameWindows.Params") -> None:
        self.descs = self.descriptions(new)  # scale, crop, dtype, layout change live

    def teardown(self) -> None:
        if getattr(self, "reader", None) is not None:
            self.reader.teardown()

    # -- frames --------------------------------------------------------------------------------
    def process(self, image: torch.Tensor | None = None) -> Any:
        if self.reader is None:
            if image is None:
                raise NodeError("no frame: connect the image input or give `path`")
            return self._from_stream(image)
        return self._from_file()

    def _from_stream(self, image: torch.Tensor) -> dict:
        self._push(image, self.ctx.tick.t)
        self.since += 1
        new = self.window is None or self.since >= self.params.stride
        if new:
            self.window, self.since = self._assemble(), 0
        return {**self.window, "new": new}

    def _from_file(self) -> Stamped:
        need = self.span if self.window is None else self.params.stride
        for k in range(need):
            stamped = self.reader.process()  # raises EndOfStream at the end (unless loop)
            if k >= need - self.span:        # frames between windows are decoded, not prepared
                self._push(stamped.outputs["image"], stamped.t)
        self.window = self._assemble()
        return Stamped({**self.window, "new": True}, t=self.stamps[0])

    def _push(self, image: torch.Tensor, t: float) -> None:
        if not (isinstance(image, torch.Tensor) and image.ndim == 4):
            got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise NodeError(f"expected an image (B, C, H, W), got {got}")
        self.frames.append(image[0])
        self.stamps.append(t)

    def _assemble(self) -> dict[str, torch.Tensor]:
        """Each output from the window of the newest ``span`` frames (the first repeated while
        there are fewer), processed in one pass per output."""
        p = self.params
        frames = list(self.frames)
        if len(frames) < self.span:
            frames = [frames[0]] * (self.span - len(frames)) + frames
        window = torch.stack(frames[::p.step])[None]      # (1, T, C, H, W)
        height, width = window.shape[3], window.shape[4]
        out, drawn = {}, draw(self.generator)
        for name, (desc, positions) in self.descs.items():
            try:
                out[name] = process(window, desc, [plan(desc, width, height, drawn)], positions)
            except ValueError as exc:
                raise NodeError(f"output {name}: {exc}") from exc
        return out
