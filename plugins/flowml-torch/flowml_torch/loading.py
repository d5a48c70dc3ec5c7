"""Loading a model file: TorchScript (``.pt``, ``.ts``) or a torch.export program (``.pt2``)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable

from flowml.lazy import lazy_import
torch = lazy_import("torch")

from flowml import NodeError

DEMO_HINT = ("`flowml examples copy NAME DIR` copies an example graph and builds the models it "
             "reads; in a clone the scripts in models/ build them: "
             "`python models/build_demo_models.py`, `python models/build_bgmv2.py`")


def load_model(path: Path, device: torch.device, dtype: torch.dtype, *,
               shown_as: str, unflatten: bool = False) -> Callable[..., object]:
    """The model in ``path`` on ``device``, its floating weights in ``dtype``, in eval mode.

    ``shown_as`` is the path as the user wrote it, for messages. ``unflatten``: a torch.export
    program as ``torch.export.unflatten`` makes it, a module whose submodules keep the names of
    the module that was exported (what taps hook); else its flat ``.module()``.
    """
    if not path.is_file():
        raise NodeError(f"model file not found: {path} (path: {shown_as}, relative to the graph "
                        f"file); {DEMO_HINT}")
    if path.suffix == ".safetensors":
        raise NodeError(f"model {shown_as}: a .safetensors file holds weights only, not the network "
                        "that uses them; give the network as path (a torch.export .pt2 or a "
                        f"TorchScript .pt) and this file as `weights: {shown_as}`")
    try:
        if path.suffix == ".pt2":
            program = torch.export.load(str(path))
            model = torch.export.unflatten(program) if unflatten else program.module()
        else:
            with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; we still load it
                warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
                warnings.filterwarnings("ignore", "`torch.jit", FutureWarning)  # torch >= 2.14
                model = torch.jit.load(str(path), map_location=device)
    except Exception as exc:
        raise NodeError(f"cannot load model {path}: {type(exc).__name__}: {last_line(exc)}; a .pt2 "
                        "file must come from torch.export.save, any other from torch.jit.save") from exc
    model = model.to(device=device, dtype=dtype) if dtype != torch.float32 else model.to(device)
    if isinstance(model, torch.jit.ScriptModule):
        model.eval()  # an exported module is traced in eval mode already, and refuses eval()
    return model


def optimize(model: Any, device: torch.device, *, shown_as: str) -> Any:
    """``model`` frozen (its settable attributes kept live) and, on a GPU, optimized for inference.

    Raises NodeError for a torch.export program or a module that cannot be frozen."""
    from .introspect import settable

    if not isinstance(model, torch.jit.ScriptModule):
        raise NodeError(f"optimize: model {shown_as} is a torch.export program; only TorchScript (.pt) "
                        "models are frozen and optimized here (set optimize: false)")
    keep = sorted(settable(model))
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
            warnings.filterwarnings("ignore", "`torch.jit", FutureWarning)
            model = torch.jit.freeze(model, preserved_attrs=keep)
            if device.type == "cuda":  # on the CPU it would move convolutions to MKL-DNN layouts
                model = torch.jit.optimize_for_inference(model)
    except Exception as exc:
        raise NodeError(f"optimize: model {shown_as} cannot be frozen: {type(exc).__name__}: "
                        f"{last_line(exc)}; set optimize: false") from exc
    return model


def last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""
