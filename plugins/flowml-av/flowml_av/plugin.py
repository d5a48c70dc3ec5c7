"""Registers flowml-av's node types (entry point ``av`` in the ``flowml`` group)."""

import flowml

from .clips import Clips
from .reader import StreamSource, VideoSource
from .sequence import FrameWindows
from .writer import VideoWriter


@flowml.hookimpl
def register_node_types(register):
    for node_type in (VideoSource, StreamSource, FrameWindows, Clips, VideoWriter):
        register(node_type)
