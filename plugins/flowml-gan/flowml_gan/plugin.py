"""Registers flowml-gan's node types (entry point ``gan`` in the ``flowml`` group)."""

import flowml

from .beside import Beside
from .noise import SmoothNoise
from .nodes import StyleGANGenerator, StyleGANLatent
from .to_image import TensorToImage


@flowml.hookimpl
def register_node_types(register):
    register(StyleGANLatent)
    register(StyleGANGenerator)
    register(TensorToImage)
    register(SmoothNoise)
    register(Beside)
