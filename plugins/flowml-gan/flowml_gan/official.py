"""Write a network as a pickle in the layout of NVIDIA's ``.pkl`` snapshots, without their code.

Each module becomes what ``torch_utils.persistence`` pickles: a call of
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` with ``meta = {type: 'class',
version, module_src, class_name, state}``, where ``state`` is the module's ``__dict__``
(``_parameters``, ``_buffers``, ``_modules``, ``_init_args``, ``_init_kwargs``, ...). The
globals are written by name, so neither ``torch_utils`` nor ``dnnlib`` has to exist here.

Used to make random snapshots for tests and demos (``models/build_stylegan.py``) and, with a
``module_src`` or class name of one's choosing, hostile ones for the loader's tests.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

__all__ = ["GlobalRef", "to_records", "dumps_official", "write_official_pickle", "PLACEHOLDER_SRC"]

PLACEHOLDER_SRC = "# module source: not included (written by flowml_gan.official)\n"


class GlobalRef:
    """A global written into the pickle by name (``module.name``); never resolved here."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name
        self.__name__ = name

    def __call__(self, *args: Any) -> Any:  # pickle checks that reducers are callable
        raise TypeError(f"{self.module}.{self.name} is only a name in a pickle")


RECONSTRUCT = GlobalRef("torch_utils.persistence", "_reconstruct_persistent_obj")


class PersistentObject:
    """Pickles as NVIDIA's persistence does: ``RECONSTRUCT(meta)``."""

    def __init__(self, meta: dict[str, Any]):
        self.meta = meta

    def __reduce__(self) -> tuple[Any, ...]:
        return RECONSTRUCT, (self.meta,)


def to_records(module: nn.Module, module_src: str = PLACEHOLDER_SRC,
               init_kwargs: Mapping[str, Any] | None = None,
               class_name: str | None = None) -> PersistentObject:
    """``module`` and its submodules as persistent objects (``init_kwargs`` for the top one:
    ``module.init_kwargs`` when it has them)."""
    children = OrderedDict((name, to_records(child, module_src)) for name, child in module._modules.items()
                           if child is not None)
    kwargs = dict(init_kwargs if init_kwargs is not None else getattr(module, "init_kwargs", {}))
    state = {
        "training": False,
        "_parameters": OrderedDict((k, v) for k, v in module._parameters.items()),
        # non-persistent buffers (derived at init, as StyleGAN3's sampling grid) are not saved
        "_buffers": OrderedDict((k, v) for k, v in module._buffers.items()
                                if k not in module._non_persistent_buffers_set),
        "_non_persistent_buffers_set": set(),
        "_modules": children,
        "_init_args": (),
        "_init_kwargs": kwargs,
    }
    meta = {"type": "class", "version": 4, "module_src": module_src,
            "class_name": class_name or type(module).__name__, "state": state}
    return PersistentObject(meta)


class _Pickler(pickle._Pickler):  # the Python pickler: its dispatch table can be extended
    dispatch = dict(pickle._Pickler.dispatch)

    def _save_ref(self, obj: GlobalRef) -> None:
        self.write(pickle.GLOBAL + obj.module.encode() + b"\n" + obj.name.encode() + b"\n")
        self.memoize(obj)

    dispatch[GlobalRef] = _save_ref


def dumps_official(snapshot: Mapping[str, Any], protocol: int = 4) -> bytes:
    """Pickle bytes of ``snapshot`` (e.g. ``{'G': ..., 'G_ema': ...}``; modules become
    persistent objects)."""
    import io

    obj = {k: to_records(v) if isinstance(v, nn.Module) else v for k, v in snapshot.items()}
    buf = io.BytesIO()
    with torch.no_grad():
        _Pickler(buf, protocol=protocol).dump(obj)
    return buf.getvalue()


def write_official_pickle(path: str | Path, snapshot: Mapping[str, Any]) -> Path:
    """Write ``snapshot`` to ``path`` in NVIDIA's layout; returns the path."""
    path = Path(path)
    path.write_bytes(dumps_official(snapshot))
    return path
