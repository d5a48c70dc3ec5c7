"""Registers flowml-torch's node type (entry point ``torch`` in the ``flowml`` group)."""

import flowml

from .model import TorchModel


@flowml.hookimpl
def register_node_types(register):
    register(TorchModel)
