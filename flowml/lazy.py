"""Heavy imports deferred until a node runs, so that ``flowml validate`` imports no torch.

Validating a graph needs each node type's ports and ``Params``, never torch, numpy or a
codec. A plugin module writes, instead of ``import torch`` / ``import torch.nn.functional as F``::

    from flowml.lazy import lazy_import

    torch = lazy_import("torch")
    F = lazy_import("torch.nn.functional")

and uses ``torch`` and ``F`` as usual inside its functions. The first attribute read imports
the module and puts the real module in the importing module's globals in place of the stand-in,
so later reads cost what a plain global costs. Code run at import (a module-level
``torch.float32``, a default argument, a base class from torch) imports it then: keep such use
inside functions.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__all__ = ["lazy_import"]


class _Deferred(types.ModuleType):
    """Stands in for a module until one of its attributes is read."""

    def __init__(self, name: str, home: dict[str, Any]):
        super().__init__(name)
        object.__setattr__(self, "_flowml_home", home)

    def _flowml_load(self) -> types.ModuleType:

        module = importlib.import_module(self.__name__)
        home = object.__getattribute__(self, "_flowml_home")
        for key, value in list(home.items()):  # rebind the importer's globals to the real module
            if value is self:
                home[key] = module
        return module

    def __getattr__(self, attr: str) -> Any:  # only for names the stand-in does not have
        if attr.startswith("__") and attr.endswith("__") and attr not in ("__version__", "__file__"):
            raise AttributeError(attr)
        return getattr(self._flowml_load(), attr)

    def __dir__(self) -> list[str]:
        return dir(self._flowml_load())

    def __repr__(self) -> str:
        return f"<module {self.__name__!r} (imported on first use)>"


def lazy_import(name: str) -> Any:
    """``name`` (a module, e.g. ``"torch.nn.functional"``), imported when first used; the
    module itself if it is imported already."""
    if name in sys.modules:
        return sys.modules[name]
    return _Deferred(name, sys._getframe(1).f_globals)
