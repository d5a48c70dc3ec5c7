"""``torch.model``: run a TorchScript or torch.export model on every frame."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import field_validator

import flowml
from flowml import Field, Input, Node, NodeError, Output, Ports

from .loading import last_line, load_model
from flowml.ports import TENSOR, check_port_list, parse_port

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class TorchModel(Node):
    """Run a TorchScript (.pt) or torch.export (.pt2) model on every frame.

    By default ``image`` ``(B, C, H, W)`` -> model -> ``image``. ``inputs`` name the model's
    arguments in order; ``outputs`` name its results: a tensor is the one output, a tuple or
    list maps by position, a dict by name. Ports typed after a colon (``mask:tensor``) have
    that type; else ``image`` is an ``IMAGE`` and any other name a ``TENSOR``.

    Runs under ``torch.inference_mode()`` on the node's device. Floating inputs are cast to
    ``precision`` (weights too); outputs stay in it.
    """

    type_name = "torch.model"

    class Params(flowml.Params):
        path: str = Field(description=(
            "model file, relative to the graph file: .pt (TorchScript) or .pt2 (torch.export)"))
        precision: Literal["fp32", "fp16", "bf16"] = Field(
            "fp32", description="weights and inputs in this float type; fp16/bf16 pay off on GPUs")
        inputs: list[str] = Field(["image"], description="the model's arguments in order, e.g. [src, bgr]")
        outputs: list[str] = Field(["image"], description="its results, e.g. [fgr, pha:tensor]")

        @field_validator("inputs", "outputs")
        @classmethod
        def _ports(cls, specs: list[str]) -> list[str]:
            return check_port_list(specs, TENSOR, at_least_one=True)

    @classmethod
    def ports(cls, params: Params) -> Ports:
        return Ports(tuple(Input(*parse_port(s, TENSOR)) for s in params.inputs),
                     tuple(Output(*parse_port(s, TENSOR)) for s in params.outputs))

    def setup(self, ctx: flowml.NodeContext) -> None:
        p = self.params
        self.dtype = DTYPES[p.precision]
        self.model = load_model(ctx.resolve(p.path), ctx.torch_device, self.dtype, shown_as=p.path)
        self.input_names = [parse_port(s, TENSOR)[0] for s in p.inputs]
        self.output_names = [parse_port(s, TENSOR)[0] for s in p.outputs]

    def process(self, **inputs: Any) -> dict[str, Any]:
        args = [self._cast(inputs[name]) for name in self.input_names]
        try:
            with torch.inference_mode():
                result = self.model(*args)
        except (RuntimeError, ValueError, AssertionError) as exc:
            got = ", ".join(f"{n}: {_describe(a)}" for n, a in zip(self.input_names, args))
            raise NodeError(f"model {self.params.path} failed on {got}: {last_line(exc)}") from exc
        return self._outputs(result)

    def _cast(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value.to(device=self.ctx.torch_device, dtype=self.dtype)
        return value

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


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"{tuple(value.shape)} {str(value.dtype).removeprefix('torch.')} on {value.device}"
    return type(value).__name__
