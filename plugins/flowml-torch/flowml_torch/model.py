"""``torch.model``: run a TorchScript or torch.export model on every frame."""

from __future__ import annotations

from typing import Any, Literal, Optional

from flowml.lazy import lazy_import
torch = lazy_import("torch")
F = lazy_import("torch.nn.functional")
from pydantic import field_validator, model_validator

import flowml
from flowml import Field, Input, Node, NodeError, Output, Ports

from .introspect import Scalar, apply_attributes, arguments, describe_arguments
from .loading import last_line, load_model, optimize
from .specs import EDITS_HELP, check_edits, check_taps, parse_tap
from flowml.ports import TENSOR, check_port_list, parse_port

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}  # torch dtype names


class TorchModel(Node):
    """Run a TorchScript (.pt) or torch.export (.pt2) model on every frame.

    By default ``image`` ``(B, C, H, W)`` -> model -> ``image``. ``inputs`` name the model's
    arguments in order; ``outputs`` name its results: a tensor is the one output, a tuple or
    list maps by position, a dict by name. Ports typed after a colon (``mask:tensor``) have
    that type; else ``image`` is an ``IMAGE`` and any other name a ``TENSOR``.

    Runs under ``torch.inference_mode()`` on the node's device. Floating inputs are cast to
    ``precision`` (weights too); outputs stay in it. ``channels_last`` runs the model with
    NHWC memory (often faster for convolutions in fp16 on tensor cores). ``size: [w, h]``
    resizes image-like inputs (floating, 4-D) to what the model takes, and its 4-D outputs
    at that size back to the first input's size.

    ``optimize`` freezes a TorchScript module (``torch.jit.freeze``: weights become constants,
    BatchNorm is folded into the convolutions) and, on a GPU, applies
    ``torch.jit.optimize_for_inference``: fewer kernels per frame, which pays where launching
    them is the bound (BGMv2 at ``backbone_scale`` 0.25, 1080p fp16: 125 -> 210 fps in a plain
    loop, H100, 2026-11-22). Its settable attributes stay live; changing ``precision`` or
    ``channels_last`` then loads the file again.

    ``taps: [layer.name, ...]`` adds one tensor output per named layer (its output, from a
    forward hook; ``port=layer.name`` names the port, ``name:i`` picks the i-th tensor of a
    tuple). A torch.export program is tapped through ``torch.export.unflatten``, whose
    submodules keep the exported module's names; a TorchScript file cannot be tapped (its
    compiled forward runs no Python hooks): export the model with torch.export instead.
    ``edits: [{name: conv.weight, op: scale|add|set|noise, value: 1.0}]`` changes weights and
    buffers live: each from the kept original (never compounding), in place on the node's
    stream (a captured CUDA graph keeps replaying), restored bit-exactly when removed; each
    value is a live param (``/<node>/edits/<i>/value``) and may follow ``{expr: ...}``.
    ``weights`` loads a ``.safetensors`` state dict into the model (e.g. fine-tuned weights
    for an exported architecture).

    ``attributes`` sets a TorchScript module's top-level attributes: Background Matting V2 is
    steered this way (``{backbone_scale: 0.25, refine_mode: sampling, refine_sample_pixels:
    80000}``). They are checked against the module when it loads (an unknown name is an error
    that lists the settable ones) and set again whenever the param changes live; over OSC the
    whole dict travels as JSON text (``/matte/attributes '{"refine_mode": "full"}'``), and the
    attributes a message leaves out keep their current values.
    """

    type_name = "torch.model"

    class Params(flowml.Params):
        path: str = Field(file="input", rebuild=True, description=(
            "model file, relative to the graph file: .pt (TorchScript) or .pt2 (torch.export); "
            "a change (or a new file there, under --watch) builds the node anew"))
        precision: Literal["fp32", "fp16", "bf16"] = Field(
            "fp32", description="weights and inputs in this float type; fp16/bf16 pay off on GPUs")
        inputs: list[str] = Field(["image"], live=False,
                                  description="the model's arguments in order, e.g. [src, bgr]")
        outputs: list[str] = Field(["image"], live=False,
                                   description="its results, e.g. [fgr, pha:tensor]")
        channels_last: bool = Field(False, description="run with NHWC memory layout (weights and 4-D inputs)")
        size: Optional[tuple[int, int]] = Field(
            None, description="[width, height] the model takes: 4-D inputs are resized to it, outputs back")
        attributes: dict[str, Scalar] = Field(
            {}, description="a TorchScript module's attributes to set, e.g. {refine_mode: sampling}")
        optimize: bool = Field(False, description=(
            "freeze a TorchScript model (BatchNorm folded in) and, on a GPU, optimize it for "
            "inference: fewer kernel launches; attributes stay live"))
        weights: Optional[str] = Field(None, file="input", rebuild=True, description=(
            "a .safetensors state dict loaded into the model (its names must match), relative "
            "to the graph file"))
        taps: list[str] = Field([], live=False, description=(
            "layers whose outputs become tensor ports, e.g. [backbone.layer2, f=head.conv:0]; "
            "a .pt2 (torch.export) model, not TorchScript"))
        edits: list[dict[str, Any]] = Field([], in_place=True, parts=("value",),
                                            description=EDITS_HELP)

        @field_validator("edits")
        @classmethod
        def _edits(cls, edits: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return check_edits(edits)

        @model_validator(mode="after")
        def _taps(self) -> "TorchModel.Params":
            check_taps(self.taps, {parse_port(s, TENSOR)[0] for s in self.outputs})
            return self

        @field_validator("size")
        @classmethod
        def _size(cls, size: tuple[int, int] | None) -> tuple[int, int] | None:
            if size is not None and min(size) < 1:
                raise ValueError("size is [width, height] in pixels, both at least 1")
            return size

        @field_validator("inputs", "outputs")
        @classmethod
        def _ports(cls, specs: list[str]) -> list[str]:
            return check_port_list(specs, TENSOR, at_least_one=True)

    @classmethod
    def ports(cls, params: Params) -> Ports:
        taps = tuple(Output(parse_tap(t)[0], TENSOR, f"the output of layer {parse_tap(t)[1]}")
                     for t in params.taps)  # type: ignore[attr-defined]
        return Ports(tuple(Input(*parse_port(s, TENSOR)) for s in params.inputs),
                     tuple(Output(*parse_port(s, TENSOR)) for s in params.outputs) + taps)

    def setup(self, ctx: flowml.NodeContext) -> None:
        p = self.params
        self.input_names = [parse_port(s, TENSOR)[0] for s in p.inputs]
        self.output_names = [parse_port(s, TENSOR)[0] for s in p.outputs]
        self.taps = self.edits = None
        self.model = self._load(p)
        self._check_arguments()
        self._attach(self.model, p.edits)

    def _attach(self, model: Any, edits: list[dict[str, Any]]) -> None:
        """Taps and edits on ``model`` (set up anew after a reload built another one)."""
        from .edits import WeightEdits
        from .taps import TORCHSCRIPT_TAPS, Taps

        p = self.params
        if self.taps is not None:
            self.taps.remove()
        self.taps = None
        if p.taps:
            if isinstance(model, torch.jit.ScriptModule):
                raise NodeError(f"taps {p.taps}: model {p.path} is TorchScript: {TORCHSCRIPT_TAPS}")
            try:
                self.taps = Taps(model, p.taps)
            except ValueError as exc:
                raise NodeError(f"model {p.path}: {exc}") from None
        if edits and p.optimize:
            raise NodeError(f"edits: model {p.path} is frozen (optimize: true), its weights are "
                            "constants now; set optimize: false to edit them")
        self.edits = WeightEdits(model)
        self._set_edits(edits)

    def _set_edits(self, edits: list[dict[str, Any]]) -> None:
        """Write ``edits`` in place (a wrong name: NodeError with the closest, nothing changed)."""
        try:
            self.edits.set(edits)
        except ValueError as exc:
            raise NodeError(f"model {self.params.path}: {exc}") from None

    def _load(self, p: Params) -> Any:
        """The model file loaded as ``p`` says: precision, memory layout, optimized, attributes.
        ``self.dtype`` follows only once it has loaded (a failed live reload keeps both)."""
        dtype = getattr(torch, DTYPES[p.precision])
        model = load_model(self.ctx.resolve(p.path), self.ctx.torch_device, dtype, shown_as=p.path,
                           unflatten=bool(p.taps))
        if p.weights:
            from .weights import load_safetensors

            load_safetensors(model, self.ctx.resolve(p.weights), shown_as=p.weights, model_shown=p.path)
        if p.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if p.optimize:
            model = optimize(model, self.ctx.torch_device, shown_as=p.path)
        apply_attributes(model, p.attributes, p.path)
        self.dtype = dtype
        return model

    def _check_arguments(self) -> None:
        """The node's inputs must be as many as the model's forward takes."""
        args = arguments(self.model)
        if args is None:
            return
        required = sum(req for _, req in args)
        if not required <= len(self.input_names) <= len(args):
            want = [n for n, _ in args][:max(required, 1)]
            raise NodeError(
                f"model {self.params.path} takes forward{describe_arguments(args)}, but the node's "
                f"inputs are {self.input_names}; set `inputs: [{', '.join(want)}]` (in this order)")

    def on_params(self, old: flowml.Params, new: flowml.Params) -> None:
        if old.path != new.path:  # type: ignore[attr-defined]
            # `path` is a rebuild field: the runtime builds a new node for a new model file
            raise NodeError(f"path changed from {old.path!r} to {new.path!r} without a rebuild "  # type: ignore[attr-defined]
                            "of the node; a new model file needs a new node (this runtime does "
                            "not honour flowml.parammeta.rebuild_fields)")
        layout = ("precision", "channels_last", "optimize")
        if any(getattr(old, k) != getattr(new, k) for k in layout) and (old.optimize or new.optimize):  # type: ignore[attr-defined]
            try:  # a frozen model's weights are constants: load the file again
                model = self._load(new)  # type: ignore[arg-type]
                self._attach(model, new.edits)  # type: ignore[attr-defined]
                self.model = model
            except NodeError as exc:  # a live change must never stop the graph
                self.log.error("node '%s': model not reloaded: %s", self.ctx.node_id, exc)
            return
        if old.edits != new.edits:  # type: ignore[attr-defined]
            # in place, on the node's CUDA stream (current during on_params); a wrong name
            # refuses the change (NodeError) and leaves the weights as they were
            self._set_edits(new.edits)  # type: ignore[attr-defined]
        if (old.precision, old.channels_last) != (new.precision, new.channels_last):  # type: ignore[attr-defined]
            self.dtype = getattr(torch, DTYPES[new.precision])  # type: ignore[attr-defined]
            fmt = torch.channels_last if new.channels_last else torch.contiguous_format  # type: ignore[attr-defined]
            self.model = self.model.to(dtype=self.dtype, memory_format=fmt)
            self.edits.rebind(self.model)  # the kept originals follow, the edits are written again
        changed = {k: v for k, v in new.attributes.items()  # type: ignore[attr-defined]
                   if old.attributes.get(k) != v}  # type: ignore[attr-defined]
        try:
            apply_attributes(self.model, changed, new.path)  # type: ignore[attr-defined]
        except NodeError as exc:  # a live change must never stop the graph
            self.log.error("node '%s': attributes not changed: %s", self.ctx.node_id, exc)

    def process(self, **inputs: Any) -> dict[str, Any]:
        args = [self._cast(inputs[name]) for name in self.input_names]
        back = self._original_size(args)
        if self.params.size is not None:
            args = [_resize(a, self.params.size) for a in args]
        if self.taps is not None:
            self.taps.values.clear()
        try:
            with torch.inference_mode():
                result = self.model(*args)
        except (RuntimeError, ValueError, AssertionError, torch.jit.Error) as exc:
            got = ", ".join(f"{n}: {_describe(a)}" for n, a in zip(self.input_names, args))
            hint = "" if self.params.size else "; `size: [width, height]` resizes the inputs to one it takes"
            raise NodeError(f"model {self.params.path} failed on {got}: {last_line(exc)}{hint}") from exc
        outputs = self._outputs(result)
        if self.params.size is not None and back is not None:
            outputs = {k: _resize_back(v, self.params.size, back) for k, v in outputs.items()}
        if self.taps is not None:
            outputs.update(self.taps.values)
        return outputs

    def teardown(self) -> None:
        if getattr(self, "taps", None) is not None:
            self.taps.remove()

    def _cast(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            value = value.to(device=self.ctx.torch_device, dtype=self.dtype)
            if self.params.channels_last and value.ndim == 4:
                value = value.contiguous(memory_format=torch.channels_last)
        return value

    @staticmethod
    def _original_size(args: list[Any]) -> tuple[int, int] | None:
        """(width, height) of the first image-like input, which resized outputs go back to."""
        for a in args:
            if _image_like(a):
                return a.shape[-1], a.shape[-2]
        return None

    def _outputs(self, result: Any) -> dict[str, Any]:
        names = self.output_names
        if isinstance(result, dict) and set(names) <= set(result):
            return {n: result[n] for n in names}
        positional = isinstance(result, tuple) or (isinstance(result, list) and len(names) > 1)
        if positional and len(result) == len(names):
            return dict(zip(names, result))
        if len(names) == 1 and not isinstance(result, dict):
            return {names[0]: result}
        got = f"a dict with keys {sorted(result)}" if isinstance(result, dict) else (
            f"a {type(result).__name__} of {len(result)}" if isinstance(result, (tuple, list)) else
            type(result).__name__)
        raise NodeError(f"model {self.params.path} returned {got}, but outputs are {names}; "
                        "list its results in `outputs`, in order (tuple) or by key (dict)")


def _image_like(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.ndim == 4 and value.is_floating_point()


def _resize(value: Any, size: tuple[int, int]) -> Any:
    """A 4-D floating tensor at ``size`` (width, height), bilinear; antialiased when shrinking."""
    if not _image_like(value) or (value.shape[-1], value.shape[-2]) == size:
        return value
    shrink = value.shape[-1] > size[0] or value.shape[-2] > size[1]
    return F.interpolate(value, size=(size[1], size[0]), mode="bilinear", align_corners=False,
                         antialias=shrink)


def _resize_back(value: Any, size: tuple[int, int], back: tuple[int, int]) -> Any:
    """Outputs at the model's size go back to the input's; others (coarse maps) stay."""
    if _image_like(value) and (value.shape[-1], value.shape[-2]) == size:
        return _resize(value, back)
    return value


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"{tuple(value.shape)} {str(value.dtype).removeprefix('torch.')} on {value.device}"
    return type(value).__name__
