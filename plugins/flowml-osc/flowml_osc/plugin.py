"""Registers flowml-osc's node types (entry point ``osc`` in the ``flowml`` group)."""

import flowml

from .output import OscOutput

NODE_TYPES = (OscOutput,)


@flowml.hookimpl
def register_node_types(register):
    for node_type in NODE_TYPES:
        register(node_type)
