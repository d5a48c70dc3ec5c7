"""Output contracts, checked at the node that produces a value (not at the one that trips on it).

Always on (a few attribute reads per output): the port names a node returns (the nearest name
suggested), the kind of value each port type carries, and for ``image`` outputs the
``(B, C, H, W)`` float convention (4 dimensions, 1 to 4 channels, a floating dtype).

In check mode (``flowml run --check``, ``FLOWML_CHECK=1``, ``set_checking(True)``, or
``flowml.testing.run_node(..., check=True)``) also the costlier ones: image values in
``[0, 1]`` and finite (a device sync), JSON outputs serialisable, and inputs left as they came:
a node that changes an input tensor in place (``image.mul_(0)``) changes it for every other
consumer of that output, so ``input_versions`` / ``check_inputs_unchanged`` compare each input
tensor's version counter before and after ``process``.

Every error is a ``ContractError`` (a ``NodeError``: shown without a traceback) naming the port;
the runtime prefixes the producer's node id and type.
"""

from __future__ import annotations

import difflib
import json
import numbers
import os
import sys
from collections.abc import Mapping
from typing import Any

from .node import NO_VALUE, NodeError
from .ports import ANY, DETECTIONS, IMAGE, JSON, MATRIX, SCALAR, TENSOR, Output, Ports, PortType

__all__ = ["ContractError", "checking", "set_checking", "check_output_names", "check_outputs",
           "input_versions", "check_inputs_unchanged"]

_checking = os.environ.get("FLOWML_CHECK", "") not in ("", "0")


def checking() -> bool:
    """Whether the costlier checks run (``--check``)."""
    return _checking


def set_checking(on: bool) -> None:
    """Turn the costlier checks on or off for this process."""
    global _checking
    _checking = bool(on)


class ContractError(NodeError):
    """A value that breaks its port's contract; ``port`` names the output (or input)."""

    def __init__(self, port: str, message: str):
        super().__init__(message)
        self.port = port


_make = ContractError


def _nearest(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; its outputs: {', '.join(names)}"


def check_output_names(type_name: str, result: Mapping[str, Any], names: list[str]) -> None:
    """Every key ``process`` returned must be an output port."""
    for key in result:
        if key not in names:
            raise _make(str(key), f"process() returned output {key!r}, which {type_name} does not "
                        f"have{_nearest(str(key), names)}")


def _torch_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")  # no torch imported: the value cannot be a tensor
    return torch is not None and isinstance(value, torch.Tensor)


def _kind(value: Any) -> str:
    t = type(value)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def check_outputs(type_name: str, ports: Ports, outputs: Mapping[str, Any]) -> None:
    """The value of each output fits its port type (and, in check mode, its range)."""
    for port in ports.outputs:
        if port.name in outputs:
            problem = _value_problem(port, outputs[port.name])
            if problem:
                raise _make(port.name, f"output {port.name!r} ({port.type}) of {type_name}: {problem}")


def _value_problem(port: Output, value: Any) -> str | None:
    kind: PortType = port.type
    if value is NO_VALUE:  # no value this tick: every port type may say so
        return None
    if kind is ANY or (value is None and kind is not IMAGE):  # None: no value this frame
        return None
    if port.host:  # any kind: the scheduler uploads it from an (H, W, C) uint8 host array
        ndim = getattr(value, "ndim", None)
        return None if ndim == 3 else (f"a host output is an (H, W, C) uint8 array, got "
                                       f"{_kind(value)}" + (f" with {ndim} dimensions" if ndim else ""))
    if kind in (IMAGE, TENSOR, MATRIX) or (kind.parent is not None and kind.parent in (TENSOR, IMAGE)):
        if not _torch_tensor(value):
            hint = (" (convert it: torch.from_numpy(array), or declare Output(..., host=True) "
                    "for an (H, W, C) uint8 frame)" if type(value).__module__ == "numpy" else "")
            return f"expected a torch.Tensor, got {_kind(value)}{hint}"
        if kind is IMAGE:
            return _image_problem(value)
        if kind is MATRIX and tuple(value.shape[-2:]) != (3, 3):
            return f"expected shape (3, 3) or (B, 3, 3), got {tuple(value.shape)}"
        return None
    if kind is SCALAR:
        if isinstance(value, numbers.Number) or (_torch_tensor(value) and value.ndim == 0):
            return None
        return f"expected a number (float, int or bool), got {_kind(value)}"
    if kind is DETECTIONS:
        if isinstance(value, Mapping) and {"boxes", "scores", "labels"} <= set(value):
            return None
        return "expected a dict with 'boxes' (N, 4), 'scores' (N,) and 'labels' (N,)"
    if kind is JSON and checking():
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            return f"not JSON-able: {exc}"
    return None


def _image_problem(image: Any) -> str | None:
    """The image convention: (B, C, H, W), C in 1..4, floating point; [0, 1] in check mode."""
    if image.ndim != 4:
        hint = " (add the batch axis: image[None])" if image.ndim == 3 else ""
        return f"expected (B, C, H, W), got shape {tuple(image.shape)}{hint}"
    channels = image.shape[1]
    if not 1 <= channels <= 4:
        hint = " (channels last? use image.permute(0, 3, 1, 2))" if image.shape[-1] in (1, 3, 4) else ""
        return f"expected 1 to 4 channels (RGB(A)) at dim 1, got shape {tuple(image.shape)}{hint}"
    if not image.dtype.is_floating_point:
        return f"expected float values in [0, 1], got dtype {image.dtype} (divide by 255: image.float() / 255)"
    if checking() and image.numel():
        low, high = float(image.min()), float(image.max())
        if not (low >= -1e-3 and high <= 1 + 1e-3):  # also false for NaN
            return f"values must be in [0, 1], got [{low:.4g}, {high:.4g}] (clamp: image.clamp(0, 1))"
    return None


def input_versions(inputs: Mapping[str, Any]) -> dict[str, int]:
    """The version counter of each tensor input (it grows with every in-place change).
    Inference tensors (made under ``torch.inference_mode``, as ``torch.model`` and the
    StyleGAN nodes make their outputs) have none and are left out: torch itself refuses
    to change one in place outside inference mode."""
    return {name: value._version for name, value in inputs.items()
            if _torch_tensor(value) and not value.is_inference()}


def check_inputs_unchanged(type_name: str, before: Mapping[str, int], inputs: Mapping[str, Any]) -> None:
    """Raise if ``process`` changed an input tensor in place (compare ``input_versions``)."""
    for name, version in before.items():
        if inputs[name]._version != version:
            raise _make(name, f"{type_name} changed its input {name!r} in place; inputs are shared "
                        "with the other nodes that read the same output, so compute a new tensor "
                        f"(e.g. {name} * 0 instead of {name}.mul_(0), or {name}.clone() first)")
