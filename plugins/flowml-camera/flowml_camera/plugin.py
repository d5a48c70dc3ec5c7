"""Registers flowml-camera's node types (entry point ``camera`` in the ``flowml`` group)."""

import flowml

from .camera import CameraSource


@flowml.hookimpl
def register_node_types(register):
    register(CameraSource)
