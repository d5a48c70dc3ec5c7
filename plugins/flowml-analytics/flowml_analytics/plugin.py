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


@flowml.hookimpl
def register_model_builders(register):
    """graphs/analytics_3dcnn.yaml's r3d_18, random weights, TorchScript (``flowml examples copy``)."""
    def r3d_18(folder):
        from .models import build, export

        return [export(build("r3d_18"), folder / "r3d_18.pt")]

    register("r3d_18.pt", r3d_18)
