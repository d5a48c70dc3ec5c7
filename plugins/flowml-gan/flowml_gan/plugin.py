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


@flowml.hookimpl
def register_model_builders(register):
    """The random-weight snapshots graphs/stylegan*.yaml read (``flowml examples copy``);
    torch is imported only when one is built (validating a graph imports none)."""
    def builder(config):
        def build(folder):
            from .build import build

            return [build(folder, config, 256)]
        return build

    for config, arch in (("sg2", "stylegan2"), ("sg3-t", "stylegan3-t"), ("sg3-r", "stylegan3-r")):
        register(f"{arch}-random-256.pkl", builder(config))   # build.default_name(config, 256)
