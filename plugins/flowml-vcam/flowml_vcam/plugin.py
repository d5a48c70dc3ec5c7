"""Registers flowml-vcam's node types (entry point ``vcam`` in the ``flowml`` group)."""

import flowml

from .virtualcam import VirtualCamera


@flowml.hookimpl
def register_node_types(register):
    register(VirtualCamera)
