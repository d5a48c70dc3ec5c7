"""Registers flowml-spout's node types (entry point ``spout`` in the ``flowml`` group)."""

import flowml

from .sender import SpoutSender


@flowml.hookimpl
def register_node_types(register):
    register(SpoutSender)
