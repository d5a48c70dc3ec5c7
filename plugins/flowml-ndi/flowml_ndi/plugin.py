"""Registers flowml-ndi's node types (entry point ``ndi`` in the ``flowml`` group)."""

import flowml

from .receiver import NdiSource
from .sender import NdiSender


@flowml.hookimpl
def register_node_types(register):
    register(NdiSender)
    register(NdiSource)
