"""``.safetensors`` state dicts loaded into a model (tensors only: nothing in the file runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flowml import NodeError
from flowml.lazy import lazy_import

torch = lazy_import("torch")

__all__ = ["load_safetensors"]


def load_safetensors(model: Any, path: Path, *, shown_as: str, model_shown: str) -> None:
    """Copy the tensors of ``path`` into ``model``'s parameters and buffers of the same names
    (cast to each one's dtype and device). Raises NodeError for a missing file, names that do
    not match (the first few of each side) or shapes that differ."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise NodeError(f"weights file not found: {path} (weights: {shown_as}, relative to the graph file)")
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise NodeError(f"weights {shown_as}: not a readable .safetensors file: {exc}") from None
    own = dict(model.named_parameters())
    own.update(dict(model.named_buffers()))
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise NodeError(f"weights {shown_as} do not fit model {model_shown}: missing "
                        f"{missing[:5]}{' ...' if len(missing) > 5 else ''}, unexpected "
                        f"{unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    wrong = [f"{n}: {tuple(state[n].shape)} for {tuple(t.shape)}" for n, t in own.items()
             if tuple(state[n].shape) != tuple(t.shape)]
    if wrong:
        raise NodeError(f"weights {shown_as} do not fit model {model_shown}: shapes {wrong[:3]}")
    with torch.no_grad():
        for name, t in own.items():
            t.copy_(state[name].to(device=t.device, dtype=t.dtype))
