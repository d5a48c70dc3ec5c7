"""Load StyleGAN snapshots without running their code.

NVIDIA's ``.pkl`` snapshots (stylegan2-ada-pytorch, NVlabs/stylegan3) are pickles whose networks are
``torch_utils.persistence`` objects: each carries the Python source of its module, and NVIDIA's
loader ``exec``s that source to rebuild the class. A pickle can also name any callable
(``os.system``) and have it called while loading. So a ``.pkl`` is never given to
``pickle.load`` here: ``SafeUnpickler`` resolves only a short allow-list of globals (tensor and
storage rebuilders, ``OrderedDict``, numeric numpy scalars and arrays, ``EasyDict`` as a plain
dict) and
turns every persistent object into an inert ``PersistentRecord`` (class name, source text kept
as a string and never executed, state). Anything else stops the load with ``SnapshotError``.
From the records of ``G_ema`` (or ``G``) we take the constructor keywords and the tensors and
build *our* generator from them: StyleGAN2 or StyleGAN3 (T/R), told apart by the network's
content (``flowml_gan.arch``).

Also read (``torch.load(weights_only=True)``): ``.pt`` files written by ``save_pt``, any
``.pt`` holding ``{init_kwargs, state_dict}``, and a bare state dict with a sidecar JSON of the
init kwargs (``G.pt`` + ``G.json``).
"""

from __future__ import annotations

import io
import json
import pickle
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .arch import AnyGenerator, arch_of, build_generator, detect_arch

__all__ = ["SnapshotError", "PersistentRecord", "SafeUnpickler", "NetworkRecord", "read_pickle",
           "read_network", "load_generator", "save_pt", "PT_FORMAT"]

PT_FORMAT = "flowml-gan/stylegan2"
"""The ``format`` key of a StyleGAN2 ``.pt`` snapshot written by ``save_pt``."""
PT_FORMATS = {PT_FORMAT: "stylegan2", "flowml-gan/stylegan3": "stylegan3"}

STYLEGAN2_CLASSES = frozenset({
    "Generator", "MappingNetwork", "SynthesisNetwork", "SynthesisBlock", "SynthesisLayer",
    "ToRGBLayer", "FullyConnectedLayer", "Conv2dLayer",
    # the rest of a training snapshot, read but not used
    "Discriminator", "DiscriminatorBlock", "DiscriminatorEpilogue", "MinibatchStdLayer",
    "MappingNetworkD", "AugmentPipe",
})
STYLEGAN3_CLASSES = frozenset({
    "Generator", "MappingNetwork", "SynthesisInput", "SynthesisNetwork", "SynthesisLayer",
    "FullyConnectedLayer",
})
NETWORK_CLASSES = STYLEGAN2_CLASSES | STYLEGAN3_CLASSES


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
    if not isinstance(name, str) or name not in NETWORK_CLASSES:
        raise SnapshotError(f"refused: the snapshot holds an object of class {name!r}, which "
                            "is not part of a StyleGAN2 or StyleGAN3 network; its embedded code "
                            "was not run")
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


class NumpyArray:
    """A pickled numeric numpy array, rebuilt from its raw bytes (``.array``); numpy's own
    ``__setstate__`` is not used (an object array would unpickle whatever it holds)."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5):
            raise SnapshotError("refused: a numpy array in an unknown pickled form")
        _version, shape, dtype, fortran, raw = state
        if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc" or not isinstance(raw, bytes) \
                or not all(isinstance(n, int) for n in shape):
            raise SnapshotError("refused: a numpy array that is not plain numbers")
        self.array = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()


class _NdarrayName:
    """What ``numpy.ndarray`` resolves to: only a marker for ``_reconstruct``."""


def _numpy_reconstruct(subtype: Any, shape: Any = None, dtype: Any = None) -> NumpyArray:
    if subtype is not _NdarrayName:
        raise SnapshotError("refused: numpy _reconstruct of something other than ndarray")
    return NumpyArray()


def _numpy_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> NumpyArray:
    """Protocol 5's form of an array; rebuilt as ``NumpyArray``."""
    out = NumpyArray()
    out.__setstate__((1, tuple(shape), dtype, order == "F", bytes(buf)))
    return out


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
    ("numpy", "ndarray"): _NdarrayName,
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _numpy_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numpy_frombuffer,
}


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of a StyleGAN snapshot (``_ALLOWED``) and
    refuses every other one, before anything is called."""

    def find_class(self, module: str, name: str) -> Any:
        fn = _ALLOWED.get((module, name))
        if fn is None:
            raise SnapshotError(
                f"refused: the pickle asks for {module}.{name}, which a StyleGAN snapshot does "
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
    """One network of a snapshot: its class, constructor keywords, tensors by name and
    architecture (``stylegan2`` or ``stylegan3``)."""

    class_name: str
    init_kwargs: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    arch: str = "stylegan2"


def _plain(value: Any) -> Any:
    """EasyDicts and OrderedDicts as dicts, tuples and numpy arrays as lists, recursively."""
    if isinstance(value, NumpyArray):
        return value.array.tolist() if value.array is not None else None
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
    return NetworkRecord(record.class_name, kwargs, tensors, _record_arch(record))


def _record_arch(record: PersistentRecord) -> str:
    """StyleGAN3 when the synthesis network starts with Fourier features (``SynthesisInput``)."""
    synthesis = (record.state.get("_modules") or {}).get("synthesis")
    children = (synthesis.state.get("_modules") or {}) if isinstance(synthesis, PersistentRecord) else {}
    first = children.get("input")
    return "stylegan3" if isinstance(first, PersistentRecord) and first.class_name == "SynthesisInput" \
        else "stylegan2"


def _build(init_kwargs: dict[str, Any], tensors: dict[str, torch.Tensor], shown_as: str,
           arch: str | None = None) -> AnyGenerator:
    try:
        return build_generator(init_kwargs, tensors, arch)
    except ValueError as exc:
        raise SnapshotError(f"{shown_as}: {exc}") from None


def _sidecar(path: Path) -> Path | None:
    for p in (path.with_suffix(".json"), path.with_name(path.name + ".json")):
        if p.is_file():
            return p
    return None


def _read_pt(path: Path, data: bytes, shown: str) -> AnyGenerator:
    """A ``.pt``: ``{format?, init_kwargs, state_dict}``, or a bare state dict whose init kwargs
    are in a sidecar ``.json`` (the kwargs, or ``{"init_kwargs": ..., "class_name": ...}``)."""
    try:
        saved = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as exc:
        raise SnapshotError(f"{shown}: not a snapshot torch can read safely: {exc}") from None
    if not isinstance(saved, dict):
        raise SnapshotError(f"{shown}: a torch file holding a {type(saved).__name__}, not a "
                            "state dict or {init_kwargs, state_dict}")
    fmt = saved.get("format")
    if fmt is not None and fmt not in PT_FORMATS:
        raise SnapshotError(f"{shown}: a torch file of format {fmt!r}; flowml-gan reads "
                            f"{sorted(PT_FORMATS)} (flowml_gan.snapshot.save_pt)")
    if isinstance(saved.get("init_kwargs"), dict) and isinstance(saved.get("state_dict"), dict):
        kwargs, tensors, class_path = saved["init_kwargs"], saved["state_dict"], saved.get("class_name")
    elif saved and all(isinstance(v, torch.Tensor) for v in saved.values()):
        side = _sidecar(path)
        if side is None:
            raise SnapshotError(f"{shown}: a bare state dict; its generator's init kwargs are "
                                f"needed beside it, as {path.with_suffix('.json').name} (JSON: "
                                "z_dim, c_dim, w_dim, img_resolution, img_channels, ...)")
        try:
            meta = json.loads(side.read_text())
        except (OSError, ValueError) as exc:
            raise SnapshotError(f"{side}: not readable JSON: {exc}") from None
        if not isinstance(meta, dict):
            raise SnapshotError(f"{side}: a JSON object of init kwargs was expected")
        kwargs = meta.get("init_kwargs", meta)
        class_path = meta.get("class_name") if "init_kwargs" in meta else kwargs.get("class_name")
        tensors = saved
    else:
        raise SnapshotError(f"{shown}: a torch file, but neither {{init_kwargs, state_dict}} "
                            "(flowml_gan.snapshot.save_pt) nor a state dict of tensors")
    arch = PT_FORMATS.get(fmt) if fmt else None
    try:
        arch = arch or detect_arch(tensors, class_path)
    except ValueError as exc:
        raise SnapshotError(f"{shown}: {exc}") from None
    return _build(dict(kwargs), dict(tensors), shown, arch)


def load_generator(path: str | Path, key: str = "G_ema", shown_as: str | None = None) -> AnyGenerator:
    """Our generator (StyleGAN2 or StyleGAN3) with the weights of a snapshot: an official
    ``.pkl`` (``key`` picks ``G_ema`` or ``G``), or a ``.pt`` (see ``_read_pt``). Nothing in the
    file is run."""
    path = Path(path)
    shown = shown_as or str(path)
    if not path.is_file():
        raise SnapshotError(f"snapshot not found: {path} (path: {shown}); models/build_stylegan.py "
                            "writes a small random one")
    data = path.read_bytes()
    if data[:2] == b"PK":  # a torch.save zip archive
        return _read_pt(path, data, shown)
    try:
        network = read_network(read_pickle(data), key)
    except SnapshotError as exc:
        raise SnapshotError(f"{shown}: {exc}") from None
    return _build(network.init_kwargs, network.tensors, shown, network.arch)


def save_pt(G: AnyGenerator, path: str | Path) -> None:
    """Write ``G`` as a ``.pt`` that ``load_generator`` reads with ``weights_only=True``."""
    fmt = {v: k for k, v in PT_FORMATS.items()}[arch_of(G)]
    torch.save({"format": fmt, "init_kwargs": G.init_kwargs, "state_dict": G.state_dict()}, path)
