"""Weight edits by name on any ``torch.nn.Module`` (or torch.export program), from kept originals.

``WeightEdits.set([{name, op, value}, ...])`` makes a list of edits the ones in force. Every
edited tensor is recomputed from a copy of its original, kept when it was first edited (never
from the edited tensor, so edits never compound: 100 edits ``scale 2`` then ``scale 2`` is one
``scale 2``), and written *in place* into the parameter's own storage (``out=`` / ``copy_``
on the current CUDA stream), so anything that reads the tensor, a captured CUDA graph
included, sees the new numbers without being rebuilt. An edit removed from the list restores
the original bit-exactly (``copy_`` of the kept copy), and the copy is dropped.

Ops: ``scale`` multiplies the original by ``value``, ``add`` adds ``value``, ``set`` fills with
it, ``noise`` adds ``value`` times a fixed standard normal noise (seeded by the name and the
edit's ``seed``: an animated amplitude never flickers, and a run is repeatable). Several edits
of one name apply in list order. Unknown names raise ``ValueError`` listing the closest ones.
"""

from __future__ import annotations

import zlib
from typing import Any, Iterable, Mapping, NamedTuple

import torch
from torch import nn

from .specs import EditOp
from .taps import closest

__all__ = ["Edit", "WeightEdits", "EditOp", "edits_from"]


class Edit(NamedTuple):
    """One weight edit (see the module docstring for the ops). A named tuple: made from a
    node's params at every live change of a value (each tick, for one following ``t``)."""

    name: str
    op: EditOp = "scale"
    value: float = 1.0
    seed: int = 0

    def write(self, source: torch.Tensor, target: torch.Tensor, noise: "NoiseBank") -> None:
        """``target = op(source)``, in place (``source`` may be ``target`` itself)."""
        v = float(self.value)
        if self.op == "scale":
            torch.mul(source, v, out=target)
        elif self.op == "add":
            torch.add(source, v, out=target)
        elif self.op == "set":
            target.fill_(v)
        elif self.op == "noise":
            torch.add(source, noise.get(self, target), alpha=v, out=target)
        else:
            raise ValueError(f"edit {self.name}: op {self.op!r}; use scale, add, set or noise")


def edits_from(specs: Iterable[Edit | Mapping[str, Any]]) -> tuple[Edit, ...]:
    """Edits from ``Edit``s or dicts (``EditSpec``'s fields)."""
    return tuple(e if isinstance(e, Edit) else Edit(**e) for e in specs)


def _by_name(edits: tuple[Edit, ...]) -> dict[str, tuple[Edit, ...]]:
    """The edits of each name, in list order (names in order of first appearance)."""
    out: dict[str, tuple[Edit, ...]] = {}
    for e in edits:
        out[e.name] = out.get(e.name, ()) + (e,)
    return out


class NoiseBank:
    """The fixed noise of each (name, seed), made once on the CPU (repeatable on any device),
    kept on the tensor's device and in its dtype."""

    def __init__(self) -> None:
        self._noise: dict[tuple, torch.Tensor] = {}

    def get(self, edit: Edit, like: torch.Tensor) -> torch.Tensor:
        key = (edit.name, edit.seed, tuple(like.shape), like.device, like.dtype)
        noise = self._noise.get(key)
        if noise is None:
            seed = (zlib.crc32(edit.name.encode()) + edit.seed) % 2**63
            cpu = torch.randn(tuple(like.shape), generator=torch.Generator().manual_seed(seed))
            noise = self._noise[key] = cpu.to(device=like.device, dtype=like.dtype)
        return noise


def _keep_until_done(t: torch.Tensor) -> None:
    """A CUDA tensor about to be dropped while a copy from it is queued on the current stream:
    tell the caching allocator, so its memory is not handed out again (on the stream it was
    made on, e.g. the one ``setup`` ran on) before that copy has read it. Without this, a
    restore queued behind a few frames could copy memory already reused by other work and the
    weight would stay wrong: frames after an edit was removed not bit-equal to the first."""
    if t.is_cuda:
        t.record_stream(torch.cuda.current_stream(t.device))


class WeightEdits:
    """Edits of ``model``'s parameters and buffers by name, from kept originals."""

    def __init__(self, model: nn.Module):
        self.tensors: dict[str, torch.Tensor] = {}
        self.bind(model)
        self.originals: dict[str, torch.Tensor] = {}  # in the tensor's current dtype/device
        self.pristine: dict[str, torch.Tensor] = {}  # as first kept (never cast: see rebind)
        self.active: tuple[Edit, ...] = ()
        self._active_by_name: dict[str, tuple[Edit, ...]] = {}
        self.noise = NoiseBank()
        self.writes = 0  # tensors written so far (a test and a benchmark read it)

    def bind(self, model: nn.Module) -> None:
        self.tensors = dict(model.named_parameters(remove_duplicate=False))
        self.tensors.update(dict(model.named_buffers(remove_duplicate=False)))
        self._checked: set[str] = set()  # names ``check`` passed, for these tensors

    def check(self, edits: Iterable[Edit]) -> None:
        """Raise ``ValueError`` for an edit of a name the model does not have, or of an
        integer tensor (a counter such as BatchNorm's ``num_batches_tracked``)."""
        for e in edits:
            if e.name in self._checked:
                continue
            t = self.tensors.get(e.name)
            if t is None:
                raise ValueError(f"edit {e.name!r}: no such weight; closest: "
                                 f"{closest(e.name, self.tensors)}")
            if not t.is_floating_point():
                raise ValueError(f"edit {e.name!r}: a {str(t.dtype).removeprefix('torch.')} "
                                 "tensor (a counter or an index), not a weight; edit a float one")
            self._checked.add(e.name)

    def set(self, edits: Iterable[Edit | Mapping[str, Any]]) -> None:
        """Make ``edits`` the edits in force (an empty list restores every original). Runs on
        the current CUDA stream; raises ValueError (nothing changed) for a wrong name."""
        edits = edits_from(edits)
        self.check(edits)
        new, old = _by_name(edits), self._active_by_name
        with torch.no_grad():
            for name in {**old, **new}:  # every name touched, the ones edited before first
                mine = new.get(name, ())
                if mine and mine == old.get(name):
                    continue  # unchanged: already written
                target = self.tensors[name]
                original = self.originals.get(name)
                if original is None:
                    original = self.originals[name] = self.pristine[name] = target.detach().clone()
                if not mine:
                    target.copy_(original)  # restored: bit-exact
                    del self.originals[name], self.pristine[name]
                    _keep_until_done(original)
                for i, e in enumerate(mine):
                    e.write(original if i == 0 else target, target, self.noise)
                self.writes += 1
        self.active, self._active_by_name = edits, new

    def rebind(self, model: nn.Module) -> None:
        """After ``model.to(...)`` moved or cast its tensors: find them again, move the kept
        originals with them and write the edits in force again (from the originals). Each is
        made from the copy first kept, not from the last one: fp32 -> fp16 -> fp32 gives back
        the fp32 original bit-exactly, not its fp16 rounding."""
        self.bind(model)
        for name in list(self.originals):
            t, first = self.tensors[name], self.pristine[name]
            self.originals[name] = first if (first.device, first.dtype) == (t.device, t.dtype) \
                else first.to(device=t.device, dtype=t.dtype)
        active, self.active, self._active_by_name = self.active, (), {}
        self.set(active)  # every edit in force written again (none counts as already written)
