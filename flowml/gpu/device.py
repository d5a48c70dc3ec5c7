"""Which device a node runs on."""

from __future__ import annotations

import functools


@functools.cache
def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_device(name: str | None, default: str = "auto") -> str:
    """``auto`` becomes ``cuda`` where a CUDA GPU is present, else ``cpu``; ``cuda`` becomes
    ``cuda:0``. A CUDA device asked for on a machine without one is an error that says so."""
    name = (name or default).strip().lower()
    if name == "auto":
        return "cuda:0" if cuda_available() else "cpu"
    if name == "cuda":
        name = "cuda:0"
    if name.startswith("cuda") and not cuda_available():
        raise RuntimeError(f"device {name!r} asked for, but torch sees no CUDA GPU here; "
                           "use device: auto or cpu")
    return name
