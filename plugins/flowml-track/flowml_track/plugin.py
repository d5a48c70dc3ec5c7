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


@flowml.hookimpl
def register_model_builders(register):
    """graphs/analytics_tracking.yaml's secondary classifier: SqueezeNet, 2 classes, random weights."""
    def squeezenet(folder):
        from .models import save_squeezenet

        return [save_squeezenet(folder / "squeezenet_tracks.pt", classes=2)]

    register("squeezenet_tracks.pt", squeezenet)
