"""Registers flowml-preview's node types (entry point ``preview`` in the ``flowml`` group)."""

import flowml

from .window import PreviewWindow


@flowml.hookimpl
def register_node_types(register):
    register(PreviewWindow)
