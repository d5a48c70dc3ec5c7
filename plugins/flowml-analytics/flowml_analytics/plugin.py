"""Registers flowml-analytics' node types (entry point ``analytics`` in the ``flowml`` group)."""

import flowml

from .actions import HttpAction, LogAction, OscAction
from .clip import VideoClip
from .record import Record
from .rules import Rules
from .topk import TopK


@flowml.hookimpl
def register_node_types(register):
    for node_type in (VideoClip, TopK, Rules, Record, LogAction, OscAction, HttpAction):
        register(node_type)
