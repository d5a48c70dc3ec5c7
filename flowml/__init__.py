"""flowml: realtime dataflow graphs for GPU video and ML, written in YAML, driven live over OSC."""

from .node import (NO_VALUE, EndOfStream, Field, Node, NodeContext, NodeError, ParamMeta, Params,
                   Stamped, Tick, function_node)
from .plugins import hookimpl
from .ports import (ANY, DETECTIONS, IMAGE, JSON, MATRIX, SCALAR, TENSOR, Input, Output, Ports,
                    PortType)

__version__ = "0.1.0"

_LAZY = {  # frame conversions for sources and sinks; imported on first use (they import torch)
    "image_from_host": "flowml.gpu.transfer",
    "image_to_host": "flowml.gpu.transfer",
    "to_uint8_bhwc": "flowml.gpu.transfer",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'flowml' has no attribute {name!r}")

__all__ = [
    "Node", "NodeContext", "Params", "Field", "ParamMeta", "Tick", "Stamped", "EndOfStream", "NodeError",
    "function_node", "hookimpl", "NO_VALUE", "Input", "Output", "Ports", "PortType",
    "ANY", "TENSOR", "IMAGE", "MATRIX", "SCALAR", "DETECTIONS", "JSON",
    "image_from_host", "image_to_host", "to_uint8_bhwc",
]
