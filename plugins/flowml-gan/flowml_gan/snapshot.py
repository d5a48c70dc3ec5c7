"""Load StyleGAN snapshots without running their code.

NVIDIA's ``.pkl`` snapshots (stylegan2-ada-pytorch) are pickles whose networks are
``torch_utils.persistence`` objects: each carries the Python source of its module, and NVIDIA's
loader ``exec``s that source to rebuild the class. A pickle can also name any callable
(``os.system``) and have it called while loading. So a ``.pkl`` is never given to
``pickle.load`` here: ``SafeUnpickler`` resolves only a short allow-list of globals (tensor and
storage rebuilders, ``OrderedDict``, numeric numpy scalars, ``EasyDict`` as a plain dict) and
turns every persistent object into an inert ``PersistentRecord`` (class name, source text kept
as a string and never executed, state). Anything else stops the load with ``SnapshotError``.
From the records of ``G_ema`` (or ``G``) we take the constructor keywords and the tensors and
build *our* ``Generator`` from them.

Also read: ``.pt`` files written by ``save_pt`` (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .stylegan2 import Generator

__all__ = ["SnapshotError", "PersistentRecord", "SafeUnpickler", "NetworkRecord", "read_pickle",
           "read_network", "load_generator", "save_pt", "PT_FORMAT"]

PT_FORMAT = "flowml-gan/stylegan2"
"""The ``format`` key of a ``.pt`` snapshot written by ``save_pt``."""

STYLEGAN2_CLASSES = frozenset({
    "Generator", "MappingNetwork", "SynthesisNetwork", "SynthesisBlock", "SynthesisLayer",
    "ToRGBLayer", "FullyConnectedLayer", "Conv2dLayer",
    # the rest of a training snapshot, read but not used
    "Discriminator", "DiscriminatorBlock", "DiscriminatorEpilogue", "MinibatchStdLayer",
    "MappingNetworkD", "AugmentPipe",
})
STYLEGAN3_CLASSES = frozenset({"SynthesisInput", "SynthesisLayer3"})


class SnapshotError(Exception):
    """A snapshot that cannot (or must not) be loaded; the message says why and what to do."""


@dataclass
class PersistentRecord:
    """What a ``torch_utils.persistence`` object holds, inert: its class name, the source of
    its module (text, never executed) and its pickled ``__dict__``."""

    class_name: str
    module_src: str
    state: dict[str, Any] = field(default_factory=dict)


class EasyDict(dict):
    """Stands in for ``dnnlib.util.EasyDict``: a plain dict (its items are set by the pickle)."""


def _reconstruct_persistent(meta: Any) -> PersistentRecord:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise SnapshotError("refused: a persistent object of unknown form (expected NVIDIA's "
                            "persistence metadata with type 'class')")
    name = meta.get("class_name")
    if not isinstance(name, str) or name not in STYLEGAN2_CLASSES:
        if name in STYLEGAN3_CLASSES:
            raise SnapshotError("this is a StyleGAN3 snapshot; flowml-gan reads StyleGAN2 "
                                "(stylegan2-ada-pytorch) snapshots only, so far")
        raise SnapshotError(f"refused: the snapshot holds an object of class {name!r}, which "
                            "is not part of a StyleGAN2 network; its embedded code was not run")
    state = meta.get("state")
    if not isinstance(state, dict):
        raise SnapshotError(f"refused: the {name} object carries no state dict")
    src = meta.get("module_src")
    return PersistentRecord(name, src if isinstance(src, str) else "", dict(state))


def _storage_from_bytes(data: bytes) -> Any:
    """A tensor storage, pickled by torch as the bytes of a ``torch.save``: read back with
    torch's own restricted loader."""
    if not isinstance(data, (bytes, bytearray)):
        raise SnapshotError("refused: a tensor storage that is not bytes")
    return torch.load(io.BytesIO(data), weights_only=True)


def _numpy_dtype(name: Any, align: bool = False, copy: bool = False) -> np.dtype:
    dtype = np.dtype(name) if isinstance(name, str) else None
    if dtype is None or dtype.kind not in "biufc":
        raise SnapshotError(f"refused: numpy dtype {name!r} (only numeric dtypes are read)")
    return dtype


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc" or not isinstance(data, bytes):
        raise SnapshotError("refused: a numpy scalar that is not a plain number")
    return np.frombuffer(data, dtype=dtype)[0].item()


def _latin1_bytes(text: Any, encoding: str = "latin1") -> bytes:
    """Protocol 2 writes bytes as ``_codecs.encode(text, 'latin1')``; only that is allowed."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise SnapshotError("refused: _codecs.encode other than latin1 text to bytes")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], Callable[..., Any]] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,  # protocol 2 names builtins as Python 2 did
    ("__builtin__", "frozenset"): frozenset,
    ("_codecs", "encode"): _latin1_bytes,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("dnnlib", "EasyDict"): EasyDict,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent,
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
}


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of a StyleGAN2 snapshot (``_ALLOWED``) and
    refuses every other one, before anything is called."""

    def find_class(self, module: str, name: str) -> Any:
        fn = _ALLOWED.get((module, name))
        if fn is None:
            raise SnapshotError(
                f"refused: the pickle asks for {module}.{name}, which a StyleGAN2 snapshot does "
                "not need (nothing was run); if this is a snapshot from a newer NVIDIA "
                "release, open an issue with the name")
        return fn

    def persistent_load(self, pid: Any) -> Any:
        raise SnapshotError("refused: a pickle with persistent ids (a torch.save file?); "
                            "save it with flowml_gan.snapshot.save_pt or give the .pkl")


def read_pickle(data: bytes) -> Any:
    """The unpickled object with every persistent network as a ``PersistentRecord``.
    Raises ``SnapshotError`` for anything outside the allow-list."""
    try:
        return SafeUnpickler(io.BytesIO(data)).load()
    except SnapshotError:
        raise
    except Exception as exc:  # a damaged or foreign pickle
        raise SnapshotError(f"not a readable pickle: {type(exc).__name__}: {exc}") from None


@dataclass
class NetworkRecord:
    """One network of a snapshot: its class, constructor keywords and tensors by name."""

    class_name: str
    init_kwargs: dict[str, Any]
    tensors: dict[str, torch.Tensor]


def _plain(value: Any) -> Any:
    """EasyDicts and OrderedDicts as dicts, tuples as lists, recursively."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _tensors(record: PersistentRecord, prefix: str, out: dict[str, torch.Tensor]) -> None:
    state = record.state
    skip = state.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        for name, t in (state.get(group) or {}).items():
            if t is None or (group == "_buffers" and name in skip):
                continue
            if not isinstance(t, torch.Tensor):
                raise SnapshotError(f"refused: {prefix}{name} is a {type(t).__name__}, not a tensor")
            out[prefix + name] = t.detach()
    for name, child in (state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PersistentRecord):
            raise SnapshotError(f"refused: submodule {prefix}{name} is a {type(child).__name__}")
        _tensors(child, f"{prefix}{name}.", out)


GENERATOR_ARGS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels",
                  "mapping_kwargs", "synthesis_kwargs")


def read_network(snapshot: Any, key: str = "G_ema") -> NetworkRecord:
    """``snapshot[key]`` (from ``read_pickle``) as constructor keywords and tensors."""
    if not isinstance(snapshot, dict):
        raise SnapshotError(f"not a StyleGAN snapshot: the pickle holds a {type(snapshot).__name__}, "
                            "not a dict with G_ema")
    record = snapshot.get(key)
    if not isinstance(record, PersistentRecord):
        raise SnapshotError(f"the snapshot has no network {key!r}; it has {sorted(snapshot)}")
    if record.class_name != "Generator":
        raise SnapshotError(f"{key} is a {record.class_name}, not a Generator")
    kwargs = record.state.get("_init_kwargs")
    args = record.state.get("_init_args") or ()
    if not isinstance(kwargs, dict):
        raise SnapshotError(f"refused: {key} carries no constructor keywords (_init_kwargs)")
    kwargs = _plain(kwargs)
    kwargs.update(zip(GENERATOR_ARGS, _plain(list(args))))
    tensors: dict[str, torch.Tensor] = {}
    _tensors(record, "", tensors)
    return NetworkRecord(record.class_name, kwargs, tensors)


def _build(init_kwargs: dict[str, Any], tensors: dict[str, torch.Tensor], shown_as: str) -> Generator:
    unknown = sorted(set(init_kwargs) - set(GENERATOR_ARGS))
    if unknown:
        raise SnapshotError(f"{shown_as}: generator keywords {unknown} are not StyleGAN2's "
                            "(a StyleGAN3 or other network?); flowml-gan reads StyleGAN2 only")
    try:
        G = Generator(**init_kwargs)
    except (TypeError, ValueError) as exc:
        raise SnapshotError(f"{shown_as}: cannot build a StyleGAN2 generator from {init_kwargs}: {exc}") from None
    result = G.load_state_dict(tensors, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise SnapshotError(f"{shown_as}: the tensors do not fit a StyleGAN2 generator; missing "
                            f"{result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}")
    return G.eval().requires_grad_(False)


def load_generator(path: str | Path, key: str = "G_ema", shown_as: str | None = None) -> Generator:
    """Our ``Generator`` with the weights of a snapshot: an official ``.pkl`` (``key`` picks
    ``G_ema`` or ``G``), or a ``.pt`` written by ``save_pt``. Nothing in the file is run."""
    path = Path(path)
    shown = shown_as or str(path)
    if not path.is_file():
        raise SnapshotError(f"snapshot not found: {path} (path: {shown}); models/build_stylegan.py "
                            "writes a small random one")
    data = path.read_bytes()
    if data[:2] == b"PK":  # a torch.save zip archive
        try:
            saved = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
        except Exception as exc:
            raise SnapshotError(f"{shown}: not a snapshot torch can read safely: {exc}") from None
        if not isinstance(saved, dict) or saved.get("format") != PT_FORMAT:
            raise SnapshotError(f"{shown}: a torch file, but not one written by "
                                f"flowml_gan.snapshot.save_pt (format {PT_FORMAT!r})")
        return _build(saved["init_kwargs"], saved["state_dict"], shown)
    try:
        network = read_network(read_pickle(data), key)
    except SnapshotError as exc:
        raise SnapshotError(f"{shown}: {exc}") from None
    return _build(network.init_kwargs, network.tensors, shown)


def save_pt(G: Generator, path: str | Path) -> None:
    """Write ``G`` as a ``.pt`` that ``load_generator`` reads with ``weights_only=True``."""
    torch.save({"format": PT_FORMAT, "init_kwargs": G.init_kwargs, "state_dict": G.state_dict()}, path)
