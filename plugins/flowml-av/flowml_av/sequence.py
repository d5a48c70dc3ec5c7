"""``capture.sequence``: windows of T consecutive frames, processed on the device (what NVIDIA's
NVVL loader gave PyTorch users: sequences for video models, decoded and prepared on the GPU)."""

from __future__ import annotations

from collections import deque
from typing import Annotated, Any, Literal

from flowml.lazy import lazy_import
torch = lazy_import("torch")
from pydantic import model_validator

import flowml
from flowml import IMAGE, SCALAR, TENSOR, EndOfStream, Field, Input, Node, NodeError, Output, Ports, Stamped

from .reader import VideoSource

Pixels = Annotated[int, Field(ge=1, le=16384)]
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}  # torch dtype names


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

        @model_validator(mode="after")
        def _check(self) -> "FrameWindows.Params":
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
        return Ports(() if params.path else cls.inputs, cls.outputs)

    # -- lifecycle -----------------------------------------------------------------------------
    def setup(self, ctx: flowml.NodeContext) -> None:
        p = self.params
        self.span = (p.length - 1) * p.step + 1            # frames a window covers
        self.positions = [k % p.length for k in (p.keep or range(p.length))]
        self.frames: deque = deque(maxlen=self.span)      # prepared frames, newest last
        self.stamps: deque = deque(maxlen=self.span)
        self.norm: tuple[torch.Tensor, torch.Tensor] | None = None
        self.since = 0                                    # frames since the last window
        self.window: torch.Tensor | None = None
        self.reader: VideoSource | None = None
        if p.path:
            reader_params = VideoSource.Params(path=p.path, loop=p.loop, start=p.start, decode=p.decode,
                                               realtime=False)
            self.reader = VideoSource(reader_params, ctx)
            self.reader.setup(ctx)

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
        return {"frames": self.window, "new": new}

    def _from_file(self) -> Stamped:
        need = self.span if self.window is None else self.params.stride
        for k in range(need):
            stamped = self.reader.process()  # raises EndOfStream at the end (unless loop)
            if k >= need - self.span:        # frames between windows are decoded, not prepared
                self._push(stamped.outputs["image"], stamped.t)
        self.window = self._assemble()
        return Stamped({"frames": self.window, "new": True}, t=self.stamps[0])

    def _push(self, image: torch.Tensor, t: float) -> None:
        if not (isinstance(image, torch.Tensor) and image.ndim == 4):
            got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise NodeError(f"expected an image (B, C, H, W), got {got}")
        self.frames.append(self._prepare(image[:1]))
        self.stamps.append(t)

    def _prepare(self, image: torch.Tensor) -> torch.Tensor:
        """One frame ``(1, C, H, W)`` -> ``(C, h, w)`` scaled, cropped, normalised, cast."""
        p = self.params
        x = image
        if p.scale is not None and (x.shape[3], x.shape[2]) != tuple(p.scale):
            x = torch.nn.functional.interpolate(x.float(), size=(p.scale[1], p.scale[0]), mode="bilinear",
                                                align_corners=False, antialias=True)
        if p.crop is not None:
            cx, cy, cw, ch = p.crop
            if cx + cw > x.shape[3] or cy + ch > x.shape[2]:
                raise NodeError(f"crop [{cx}, {cy}, {cw}, {ch}] does not fit in a {x.shape[3]}x{x.shape[2]} "
                                "frame (after scale)")
            x = x[:, :, cy:cy + ch, cx:cx + cw]
        if p.mean is not None:
            if self.norm is None or self.norm[0].device != x.device:
                shape = (1, len(p.mean), 1, 1)
                self.norm = (torch.tensor(p.mean, device=x.device).view(shape),
                             torch.tensor(p.std, device=x.device).view(shape))
            if x.shape[1] != len(p.mean):
                raise NodeError(f"mean/std have {len(p.mean)} channels, the frames {x.shape[1]}")
            x = (x - self.norm[0]) / self.norm[1]
        return x[0].to(getattr(torch, DTYPES[p.dtype]))

    def _assemble(self) -> torch.Tensor:
        """The window of the newest ``span`` frames (the first repeated while there are fewer)."""
        p = self.params
        frames = list(self.frames)
        if len(frames) < self.span:
            frames = [frames[0]] * (self.span - len(frames)) + frames
        chosen = [frames[pos * p.step] for pos in self.positions]
        window = torch.stack(chosen).unsqueeze(0)        # (1, T, C, H, W)
        if p.layout == "CTHW":
            window = window.permute(0, 2, 1, 3, 4).contiguous()
        return window
