"""Loading a model file: TorchScript (``.pt``, ``.ts``) or a torch.export program (``.pt2``)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import torch

from flowml import NodeError

DEMO_HINT = ("the example graphs' models are built by the scripts in models/: "
             "`python models/build_demo_models.py`, `python models/build_bgmv2.py`")


def load_model(path: Path, device: torch.device, dtype: torch.dtype, *,
               shown_as: str) -> Callable[..., object]:
    """The model in ``path`` on ``device``, its floating weights in ``dtype``, in eval mode.

    ``shown_as`` is the path as the user wrote it, for messages.
    """
    if not path.is_file():
        raise NodeError(f"model file not found: {path} (path: {shown_as}, relative to the graph "
                        f"file); {DEMO_HINT}")
    try:
        if path.suffix == ".pt2":
            model = torch.export.load(str(path)).module()
        else:
            with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; we still load it
                warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
                model = torch.jit.load(str(path), map_location=device)
    except Exception as exc:
        raise NodeError(f"cannot load model {path}: {type(exc).__name__}: {last_line(exc)}; a .pt2 "
                        "file must come from torch.export.save, any other from torch.jit.save") from exc
    model = model.to(device=device, dtype=dtype) if dtype != torch.float32 else model.to(device)
    if isinstance(model, torch.jit.ScriptModule):
        model.eval()  # an exported module is traced in eval mode already, and refuses eval()
    return model


def last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""
