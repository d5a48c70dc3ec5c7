"""Taps (a layer's output, by name) and weight edits for any ``torch.nn.Module``.

- ``Taps``: forward hooks on named submodules keep each one's output of the current call.
  ``name:i`` picks the i-th tensor of a module that returns a tuple (a StyleGAN2 block
  returns ``(x, img)``: ``synthesis.b16:0`` is x, ``synthesis.b16:1`` the image so far);
  a bare name of such a module is its first tensor.
- ``WeightEdits``: ``[{name, op, value}]`` on parameters and buffers. Each time the list
  changes every edited tensor is recomputed from a copy of its original kept when it was first
  edited (never from the edited tensor, so edits never compound), and written *in place* into
  the same storage (``copy_``), so anything holding the tensor (a captured CUDA graph) sees
  it. An edit removed from the list restores the original bit-exactly.

Unknown names raise ``ValueError`` listing the closest valid names.
"""

from __future__ import annotations

import difflib
import zlib
from dataclasses import dataclass
from typing import Any, Iterable, Literal, Mapping, Sequence

import torch
from torch import nn

from .tapnames import parse_tap

__all__ = ["closest", "parse_tap", "Taps", "TapsDone", "Edit", "WeightEdits", "EditOp"]

EditOp = Literal["scale", "add", "set", "noise"]


def closest(name: str, names: Iterable[str], n: int = 5) -> list[str]:
    """The names most like ``name`` (for a "did you mean" message)."""
    names = list(names)
    near = difflib.get_close_matches(name, names, n=n, cutoff=0.4)
    if len(near) < n:  # also names that share the last part (conv1.weight, ...)
        tail = name.rsplit(".", 1)[-1]
        near += [x for x in names if x.endswith(tail) and x not in near][: n - len(near)]
    return near


class TapsDone(Exception):
    """Raised by the last tap's hook when ``Taps.stop_when_done``: the rest of the forward pass
    is not needed (catch it around the call)."""


class Taps:
    """Forward hooks that keep the outputs of named submodules of ``model``.

    ``specs`` are ``parse_tap`` strings. After a forward call, ``values`` maps each port to the
    tapped tensor ``(B, C, H, W)`` (whatever the module returned). ``remove()`` takes the hooks
    off. A name not found is looked up under each of ``also_under`` too (``b16.conv1`` under
    ``synthesis``); ``aliases`` maps names to module names (``output`` -> ``synthesis``).
    With ``stop_when_done`` set, the hook that completes ``values`` raises ``TapsDone``, so a
    caller that needs only the taps skips the rest of the network. ``names``: the modules
    tapped, by port.
    """

    def __init__(self, model: nn.Module, specs: Iterable[str], also_under: Sequence[str] = (),
                 aliases: Mapping[str, str] | None = None):
        modules = dict(model.named_modules())
        self.values: dict[str, torch.Tensor] = {}
        self.ports: list[str] = []
        self.names: dict[str, str] = {}
        self.stop_when_done = False
        self._handles: list[Any] = []
        for spec in specs:
            port, name, index = parse_tap(spec)
            name = (aliases or {}).get(name, name)
            if name not in modules:  # relative to a submodule (NVIDIA's visualizer's names)
                name = next((f"{u}.{name}" for u in also_under if f"{u}.{name}" in modules), name)
            if name not in modules or name == "":
                near = closest(name, [n for n in modules if n])
                raise ValueError(f"tap {name!r}: no such layer; closest: {near}")
            if port in self.ports:
                raise ValueError(f"tap {spec!r}: port {port!r} is used twice")
            self.ports.append(port)
            self.names[port] = name
            self._handles.append(modules[name].register_forward_hook(self._hook(port, name, index)))

    def _hook(self, port: str, name: str, index: int | None):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            value = output
            if isinstance(output, (tuple, list)):
                tensors = [o for o in output if isinstance(o, torch.Tensor)]
                i = 0 if index is None else index
                if i >= len(tensors):
                    raise ValueError(f"tap {name}:{i}: the layer returned {len(tensors)} tensors")
                value = tensors[i]
            elif index not in (None, 0):
                raise ValueError(f"tap {name}:{index}: the layer returns one tensor; drop ':{index}'")
            self.values[port] = value
            if self.stop_when_done and len(self.values) == len(self.ports):
                raise TapsDone
        return hook

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


@dataclass(frozen=True)
class Edit:
    """One weight edit: ``scale`` multiplies the original, ``add`` adds to it, ``set`` fills,
    ``noise`` adds ``value`` times a fixed standard normal noise (the same for a given name and
    shape every time, so an animated amplitude never flickers)."""

    name: str
    op: EditOp
    value: float

    def apply(self, original: torch.Tensor) -> torch.Tensor:
        if self.op == "scale":
            return original * self.value
        if self.op == "add":
            return original + self.value
        if self.op == "set":
            return torch.full_like(original, self.value)
        if self.op == "noise":
            seed = zlib.crc32(self.name.encode())
            noise = torch.randn(original.shape, generator=torch.Generator().manual_seed(seed))
            return original + self.value * noise.to(device=original.device, dtype=original.dtype)
        raise ValueError(f"edit {self.name}: op {self.op!r}; use scale, add, set or noise")


class WeightEdits:
    """Edits of ``model``'s parameters and buffers by name, from kept originals."""

    def __init__(self, model: nn.Module):
        self.tensors: dict[str, torch.Tensor] = dict(model.named_parameters())
        self.tensors.update(dict(model.named_buffers()))
        self.originals: dict[str, torch.Tensor] = {}
        self.active: tuple[Edit, ...] = ()

    def check(self, edits: Iterable[Edit]) -> None:
        """Raise ``ValueError`` for an edit of a name the model does not have."""
        for e in edits:
            if e.name not in self.tensors:
                raise ValueError(f"edit {e.name!r}: no such weight; closest: "
                                 f"{closest(e.name, self.tensors)}")

    def set(self, edits: Iterable[Edit | Mapping[str, Any]]) -> None:
        """Make ``edits`` the edits in force (an empty list restores every original)."""
        edits = tuple(e if isinstance(e, Edit) else Edit(**dict(e)) for e in edits)
        self.check(edits)
        touched = {e.name for e in edits} | {e.name for e in self.active}
        with torch.no_grad():
            for name in touched:
                target = self.tensors[name]
                if name not in self.originals:
                    self.originals[name] = target.detach().clone()
                value = self.originals[name]
                for e in edits:
                    if e.name == name:
                        value = e.apply(value)
                target.copy_(value)
        for name in touched - {e.name for e in edits}:
            del self.originals[name]  # restored: nothing left to keep
        self.active = edits

    def rebind(self, model: nn.Module) -> None:
        """After ``model.to(...)`` moved or cast its tensors: find them again (originals follow)."""
        self.tensors = dict(model.named_parameters())
        self.tensors.update(dict(model.named_buffers()))
        for name, orig in list(self.originals.items()):
            t = self.tensors[name]
            self.originals[name] = orig.to(device=t.device, dtype=t.dtype)
