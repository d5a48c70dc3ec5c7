"""Opt-in CUDA-graph capture of a node (``cuda_graph: true``).

A launch-bound node (a small model at batch 1) spends most of its time in the CPU launching
kernels; replaying a captured CUDA graph launches them all at once. The node's ``process`` is
captured with its tensor inputs copied into static buffers; each call copies the new inputs in,
replays, and clones the outputs (so frames in flight never share an output buffer). A change
of input shape, dtype or of the node's params captures again; params that keep changing
(animated) run eagerly until they settle (``SETTLE_CALLS``).

Params marked ``in_place`` (``flowml.Field(..., in_place=True)``: a weight edit that
``on_params`` writes into the weight's own storage) are left out of both: the graph reads that
storage at every replay, so it stays valid while they change, even every frame. Their writes
are ordered by the stream: ``on_params`` runs with the node's stream current (see
``flowml.runtime.node_runtime``), after the previous replay was queued there and before this
one. ``captures``, ``replays`` and ``eager_calls`` count what happened.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import torch

from ..node import NodeError
from ..parammeta import in_place_fields
from .lanes import iter_tensors, map_tensors


SETTLE_CALLS = 3
"""After its params change, a node runs eagerly until they have stayed put for this many calls,
then it is captured again: a param animated every frame (an expression, a fader) runs eagerly
instead of being re-captured on every tick."""


def _signature(inputs: dict[str, Any]) -> tuple:
    """What a captured graph depends on besides the params: tensors by shape, dtype and device
    (their values are copied in each call), anything else by value (it is baked in)."""
    def sig(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return ("T", tuple(v.shape), v.dtype, v.device)
        if isinstance(v, dict):
            return tuple((k, sig(x)) for k, x in sorted(v.items()))
        if isinstance(v, (list, tuple)):
            return tuple(sig(x) for x in v)
        if v is None or isinstance(v, (bool, int, float, str, bytes)):
            return ("V", v)
        if hasattr(v, "tobytes") and hasattr(v, "shape"):  # a numpy array: by its contents
            return ("A", tuple(v.shape), str(v.dtype), v.tobytes())
        return ("O", id(v))
    return tuple((k, sig(v)) for k, v in sorted(inputs.items()))


@lru_cache(maxsize=256)
def _kept(model: type) -> tuple[str, ...]:
    skip = in_place_fields(model)
    return tuple(n for n in model.model_fields if n not in skip)


def _structure(params: Any) -> tuple:
    """What of ``params`` a captured graph depends on: every param but the in-place ones."""
    if not hasattr(type(params), "model_fields"):
        return (params,)
    return tuple((n, getattr(params, n)) for n in _kept(type(params)))


class CapturedCall:
    """Replays ``fn(inputs)`` as a CUDA graph. Call it on the stream the node runs on."""

    def __init__(self, fn: Callable[[dict[str, Any]], Any], node_id: str, warmup: int = 3,
                 also: Callable[[], Any] = lambda: None):
        """``also()``: what else the graph depends on (the node's wired outputs); a change
        captures again, as a change of the inputs' shapes does."""
        self.fn, self.node_id, self.warmup, self.also = fn, node_id, warmup, also
        self.key: tuple | None = None
        self.captures = 0             # graphs captured (1 + the recaptures)
        self.replays = 0              # calls answered by replaying the graph
        self.eager_calls = 0          # calls run eagerly while params moved
        self._structure: tuple | None = None  # the params (less in-place ones) of the graph
        self._last_params: Any = None
        self._last_structure: tuple | None = None
        self._calm = 0                # calls since the params (less in-place ones) last changed

    @property
    def recaptures(self) -> int:
        return max(0, self.captures - 1)

    def counters(self) -> dict[str, int]:
        """``captures``, ``recaptures``, ``replays`` and ``eager_calls`` so far."""
        return {"captures": self.captures, "recaptures": self.recaptures,
                "replays": self.replays, "eager_calls": self.eager_calls}

    def __call__(self, inputs: dict[str, Any], params: Any) -> Any:
        if params is not self._last_params:  # a new params instance: compare what matters
            structure = _structure(params)
            same = structure == self._last_structure
            self._last_params, self._last_structure = params, structure
        else:
            same = True
        self._calm = self._calm + 1 if same else 0
        key = (_signature(inputs), self.also())
        if not (self.key is not None and key == self.key and self._last_structure == self._structure):
            if self.key is not None and self._calm < SETTLE_CALLS:
                self.eager_calls += 1
                return self.fn(inputs)  # params on the move: eager until they settle
            self._capture(inputs)
            self.key, self._structure = key, self._last_structure
        for dst, src in zip(iter_tensors(self.static_in), iter_tensors(inputs)):
            dst.copy_(src, non_blocking=True)
        self.graph.replay()
        self.replays += 1
        return map_tensors(self.static_out, lambda t: t.clone())

    def _capture(self, inputs: dict[str, Any]) -> None:
        self.static_in = map_tensors(inputs, lambda t: t.clone())
        caller = torch.cuda.current_stream()
        side = torch.cuda.Stream(caller.device)
        side.wait_stream(caller)
        try:
            with torch.cuda.stream(side):
                for _ in range(self.warmup):
                    self.fn(self.static_in)
            caller.wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            # thread_local: the clock thread and sinks keep working on their own streams
            # while this thread captures; only this thread's calls must be capture-safe
            with torch.cuda.graph(self.graph, stream=side, capture_error_mode="thread_local"):
                out = self.fn(self.static_in)
        except Exception as exc:
            raise NodeError(
                f"cuda_graph: this node cannot be captured as a CUDA graph ({type(exc).__name__}: "
                f"{exc}). Remove `cuda_graph: true` from node '{self.node_id}', or keep host "
                "syncs (.item(), .cpu(), data-dependent shapes) out of its process()") from exc
        caller.wait_stream(side)
        if not any(True for _ in iter_tensors(out)):
            raise NodeError(f"cuda_graph: node '{self.node_id}' returned no tensors to capture")
        self.static_out = out
        self.captures += 1
