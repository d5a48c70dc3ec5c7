"""flowml: realtime dataflow graphs for GPU video and ML, written in YAML, driven live over OSC."""

from .node import (EndOfStream, Field, Node, NodeContext, NodeError, Params, Stamped, Tick,
                   function_node)
from .plugins import hookimpl
from .ports import (ANY, DETECTIONS, IMAGE, JSON, MATRIX, SCALAR, TENSOR, Input, Output, Ports,
                    PortType)

__version__ = "0.1.0"

__all__ = [
    "Node", "NodeContext", "Params", "Field", "Tick", "Stamped", "EndOfStream", "NodeError",
    "function_node", "hookimpl", "Input", "Output", "Ports", "PortType",
    "ANY", "TENSOR", "IMAGE", "MATRIX", "SCALAR", "DETECTIONS", "JSON",
]
