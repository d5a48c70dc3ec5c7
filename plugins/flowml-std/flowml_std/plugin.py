"""Registers flowml-std's node types (entry point ``std`` in the ``flowml`` group)."""

import flowml

from .color import ColorAdjust
from .composite import Composite
from .flip import Flip
from .pattern import PatternSource
from .pyfunc import PythonFunction
from .resize import Resize
from .sequence import ImageSequence
from .snapshot import ImageSnapshot
from .still import ImageSource

NODE_TYPES = (PatternSource, ImageSource, Resize, ColorAdjust, Flip, Composite,
              PythonFunction, ImageSequence, ImageSnapshot)


@flowml.hookimpl
def register_node_types(register):
    for node_type in NODE_TYPES:
        register(node_type)
