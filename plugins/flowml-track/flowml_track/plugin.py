"""Registers flowml-track's node types (entry point ``track`` in the ``flowml`` group)."""

import flowml

from .adapter import FromTensor
from .background import BackgroundDetector
from .crops import CropSquare
from .hog import HogPeople
from .join import ClassifyJoin
from .overlay import Overlay
from .track import Track


@flowml.hookimpl
def register_node_types(register):
    for node_type in (BackgroundDetector, HogPeople, FromTensor, Track, CropSquare, ClassifyJoin, Overlay):
        register(node_type)
