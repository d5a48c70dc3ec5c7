"""StyleGAN generators as ``.safetensors`` state dicts (tensors only: nothing in them can run).

A safetensors file holds tensors and a string-to-string metadata table, not the network's
shape, so its init kwargs (what NVIDIA's pickles keep as ``init_kwargs``) travel with it:

- in the metadata, ``{"flowml.format": "flowml-gan/1", "flowml.arch": "stylegan2",
  "flowml.init_kwargs": "<JSON>"}`` (``save_generator_safetensors`` writes it so);
- or in a sidecar JSON next to it, ``<name>.json`` (``{"init_kwargs": {...}, "class_name":
  ...}`` or the kwargs alone), for files written by other tools.

StyleGAN2 or StyleGAN3 is told from ``flowml.arch``, the sidecar's ``class_name`` or the
tensor names (``flowml_gan.arch``).

Without either the file is refused, saying what to add.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .snapshot import SnapshotError

__all__ = ["load_generator_safetensors", "save_generator_safetensors", "FORMAT"]

FORMAT = "flowml-gan/1"


def save_generator_safetensors(G: Any, path: str | Path) -> None:
    """Write ``G``'s state dict and init kwargs as a ``.safetensors`` file."""
    from safetensors.torch import save_file

    from .arch import arch_of

    state = {k: v.detach().cpu().contiguous() for k, v in G.state_dict().items()}
    save_file(state, str(path), metadata={"flowml.format": FORMAT, "flowml.arch": arch_of(G),
                                          "flowml.init_kwargs": json.dumps(G.init_kwargs)})


def load_generator_safetensors(path: str | Path, shown_as: str | None = None) -> Any:
    """Our generator with the weights of a ``.safetensors`` state dict (module docstring).
    Raises ``SnapshotError`` with what to do."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    shown = shown_as or str(path)
    if not path.is_file():
        raise SnapshotError(f"snapshot not found: {path} (path: {shown})")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise SnapshotError(f"{shown}: not a readable .safetensors file: {exc}") from None
    from .arch import build_generator, detect_arch

    kwargs, hint = _init_kwargs(path, meta, shown)
    try:
        return build_generator(kwargs, tensors, detect_arch(tensors, hint))
    except ValueError as exc:
        raise SnapshotError(f"{shown}: {exc}") from None


def _init_kwargs(path: Path, meta: dict[str, str], shown: str) -> tuple[dict[str, Any], str | None]:
    """The init kwargs, and the architecture or NVIDIA's class path where written (else None)."""
    sidecar = path.with_suffix(".json")
    if "flowml.init_kwargs" in meta:
        text, where = meta["flowml.init_kwargs"], "its metadata's flowml.init_kwargs"
    elif sidecar.is_file():
        text, where = sidecar.read_text(), sidecar.name
    else:
        raise SnapshotError(
            f"{shown}: a .safetensors file holds tensors only, not the generator's shape; its "
            f"init kwargs are in neither its metadata (flowml.init_kwargs) nor a sidecar "
            f'{sidecar.name} (write {{"init_kwargs": {{"z_dim": 512, "w_dim": 512, '
            '"img_resolution": 1024, ...}} there, or save the file with '
            "flowml_gan.safetensors_io.save_generator_safetensors)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"{shown}: {where} is not JSON: {exc}") from None
    arch = meta.get("flowml.arch")
    if where == sidecar.name and isinstance(data, dict) and "init_kwargs" in data:
        arch = arch or data.get("class_name")
        data = data["init_kwargs"]
    if not isinstance(data, dict) or not isinstance(data.get("img_resolution", 0), int):
        raise SnapshotError(f"{shown}: {where} must be a JSON object of the generator's init "
                            "kwargs (z_dim, w_dim, img_resolution, ...)")
    return data, arch or data.get("class_name")
