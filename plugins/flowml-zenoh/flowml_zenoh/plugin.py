"""Registers flowml-zenoh's node types (entry point ``zenoh`` in the ``flowml`` group)."""

import flowml

from .publisher import ZenohOutput
from .subscriber import ZenohCapture


@flowml.hookimpl
def register_node_types(register):
    register(ZenohOutput)
    register(ZenohCapture)
