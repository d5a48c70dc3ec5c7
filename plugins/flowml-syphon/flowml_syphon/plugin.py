"""Registers flowml-syphon's node types (entry point ``syphon`` in the ``flowml`` group)."""

import flowml

from .server import SyphonServer


@flowml.hookimpl
def register_node_types(register):
    register(SyphonServer)
