"""Registers flowml-av's node types (entry point ``av`` in the ``flowml`` group)."""

import flowml

from .reader import VideoSource
from .writer import VideoWriter


@flowml.hookimpl
def register_node_types(register):
    register(VideoSource)
    register(VideoWriter)
