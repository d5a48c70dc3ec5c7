"""Registers flowml-cv's node types (entry point ``cv`` in the ``flowml`` group)."""

import flowml

from .homography import Homography
from .scene import SyntheticScene
from .warp import Warp

NODE_TYPES = (Homography, Warp, SyntheticScene)


@flowml.hookimpl
def register_node_types(register):
    for node_type in NODE_TYPES:
        register(node_type)
