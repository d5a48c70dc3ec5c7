"""flowml-kernels: custom GPU kernels as torch ops and flowml nodes.

``weighted_filter`` / ``WeightedFilter`` (import torch; CuPy only on the CUDA path). The plugin
module (``flowml_kernels.plugin``) imports neither, so ``flowml validate`` stays torch-free.
"""

from __future__ import annotations

from typing import Any

__all__ = ["WeightedFilter", "weighted_filter"]


def __getattr__(name: str) -> Any:
    if name == "weighted_filter":
        from .ops import weighted_filter
        return weighted_filter
    if name == "WeightedFilter":
        from .module import WeightedFilter
        return WeightedFilter
    raise AttributeError(name)
