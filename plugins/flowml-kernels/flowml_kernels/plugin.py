"""Registers flowml-kernels' node types (entry point ``kernels`` in the ``flowml`` group).

Imports neither torch nor CuPy: ``flowml validate`` stays fast and works without a GPU."""

import flowml

from .cudakernel import CudaKernel
from .kpn import KpnWeightedFilter

NODE_TYPES = (KpnWeightedFilter, CudaKernel)


@flowml.hookimpl
def register_node_types(register):
    for node_type in NODE_TYPES:
        register(node_type)
