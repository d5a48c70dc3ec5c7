"""Taps: a layer's output, by name, from forward hooks on any ``torch.nn.Module``.

``name:i`` picks the i-th tensor of a module that returns a tuple (a StyleGAN2 block returns
``(x, img)``: ``synthesis.b16:0`` is x, ``synthesis.b16:1`` the image so far); a bare name of
such a module is its first tensor. A torch.export program is tapped through
``torch.export.unflatten`` (its submodules keep the names of the module that was exported);
a TorchScript module cannot be (``hookable`` says why). Unknown names raise ``ValueError``
listing the closest valid names.
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import nn

from .specs import parse_tap

__all__ = ["closest", "parse_tap", "Taps", "TapsDone", "hookable", "TORCHSCRIPT_TAPS"]

TORCHSCRIPT_TAPS = (
    "a TorchScript module runs compiled code that calls no Python forward hooks, so its layers "
    "cannot be tapped; export the model with torch.export (torch.export.save(torch.export."
    "export(model, args), 'model.pt2')) and use the .pt2 file, whose layers keep their names")


def closest(name: str, names: Iterable[str], n: int = 5) -> list[str]:
    """The names most like ``name`` (for a "did you mean" message)."""
    names = list(names)
    near = difflib.get_close_matches(name, names, n=n, cutoff=0.4)
    if len(near) < n:  # also names that share the last part (conv1.weight, ...)
        tail = name.rsplit(".", 1)[-1]
        near += [x for x in names if x.endswith(tail) and x not in near][: n - len(near)]
    return near


def hookable(model: Any) -> nn.Module:
    """``model`` as a module whose named submodules can carry forward hooks: an ``nn.Module``
    as it is, a ``torch.export.ExportedProgram`` unflattened. Raises ValueError for a
    TorchScript module (``TORCHSCRIPT_TAPS``) or anything else."""
    if isinstance(model, torch.jit.ScriptModule):
        raise ValueError(TORCHSCRIPT_TAPS)
    if isinstance(model, torch.export.ExportedProgram):
        return torch.export.unflatten(model)
    if isinstance(model, nn.Module):
        return model
    raise ValueError(f"cannot tap a {type(model).__name__}: taps need an nn.Module or a "
                     "torch.export program")


class TapsDone(Exception):
    """Raised by the last tap's hook when ``Taps.stop_when_done``: the rest of the forward pass
    is not needed (catch it around the call)."""


class Taps:
    """Forward hooks that keep the outputs of named submodules of ``model``.

    ``specs`` are ``parse_tap`` strings. After a forward call, ``values`` maps each port to the
    tapped tensor (whatever shape the module returned, e.g. ``(B, C, H, W)``). ``remove()``
    takes the hooks off. A name not found is looked up under each of ``also_under`` too
    (``b16.conv1`` under ``synthesis``); ``aliases`` maps names to module names (``output`` ->
    ``synthesis``). With ``stop_when_done`` set, the hook that completes ``values`` raises
    ``TapsDone``, so a caller that needs only the taps skips the rest of the network.
    ``names``: the modules tapped, by port.
    """

    def __init__(self, model: nn.Module, specs: Iterable[str], also_under: Sequence[str] = (),
                 aliases: Mapping[str, str] | None = None):
        if isinstance(model, torch.jit.ScriptModule):
            raise ValueError(TORCHSCRIPT_TAPS)
        modules = dict(model.named_modules())
        self.values: dict[str, torch.Tensor] = {}
        self.ports: list[str] = []
        self.names: dict[str, str] = {}
        self.stop_when_done = False
        self._handles: list[Any] = []
        try:
            for spec in specs:
                self._add(spec, modules, also_under, aliases or {})
        except ValueError:
            self.remove()
            raise

    def _add(self, spec: str, modules: dict[str, nn.Module], also_under: Sequence[str],
             aliases: Mapping[str, str]) -> None:
        port, name, index = parse_tap(spec)
        name = aliases.get(name, name)
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
