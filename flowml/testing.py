"""Run one node without a graph (dora's MockNode is the model)::

    from flowml.testing import NodeHarness, run_node

    out = run_node(Brightness, {"image": img}, params={"gain": 2.0})      # one frame
    with NodeHarness(VideoWriter, params={"path": "x.mp4"}) as h:        # several frames
        for img in frames:
            h.process(image=img)
        h.set_params(crf=30)                                             # as a live change would

Params are validated by the node's own model, exactly as in a graph; ``setup`` and ``teardown``
run as they would in a graph. Outputs are checked against their ports' contracts as the runtime
checks them (``flowml.contracts``); ``check=True`` adds what ``flowml run --check`` adds: image
values in [0, 1], and an error if ``process`` changed an input in place.

``process`` returns ``{output port: value}``, for a one-output node too (``out["image"]``);
a sink returns ``{}``. A source's ``Stamped`` time is in ``NodeHarness.last_t``. An input
given as ``flowml.NO_VALUE`` behaves as in a graph: a required one skips the call (every
output ``NO_VALUE``), an optional one arrives as None.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Mapping

from . import contracts
from .node import NO_VALUE, Node, NodeContext, Tick, normalize_outputs


class NodeHarness:
    """One node instance with its lifecycle: ``setup`` on enter, ``teardown`` on exit."""

    def __init__(self, node_type: type[Node], params: Mapping[str, Any] | None = None, *,
                 device: str = "cpu", graph_dir: str | Path = ".", mode: str = "offline",
                 node_id: str = "node", check: bool = False):
        self.params = node_type.Params.model_validate(dict(params or {}))
        self.ports = node_type.ports(self.params)
        self.ctx = NodeContext(node_id, node_type.type_name, device, Path(graph_dir).resolve(), mode)  # type: ignore[arg-type]
        self.node = node_type(self.params, self.ctx)
        self.check = check
        self.index = 0
        self.last_t: float | None = None
        """The time a source stamped its last frame with (``Stamped``), else None."""

    def __enter__(self) -> "NodeHarness":
        self.node.setup(self.ctx)
        return self

    def __exit__(self, *exc: object) -> None:
        self.node.teardown()

    def process(self, t: float | None = None, **inputs: Any) -> dict[str, Any]:
        """Run one tick with these inputs; returns ``{output_port: value}``."""
        self.ctx.tick = Tick(self.index, float(self.index) if t is None else t)
        missing = [p.name for p in self.ports.inputs if p.name not in inputs and not p.optional]
        if missing:
            raise TypeError(f"missing inputs {missing} for {self.node.type_name}")
        kw = {p.name: inputs.get(p.name) for p in self.ports.inputs}
        if any(kw[p.name] is NO_VALUE and not p.optional for p in self.ports.inputs):
            self.index += 1  # as in a graph: not called, its outputs have no value either
            return {o.name: NO_VALUE for o in self.ports.outputs}
        kw = {k: None if v is NO_VALUE else v for k, v in kw.items()}
        uint8 = {p.name: p.channels for p in self.ports.inputs if p.uint8}
        if uint8:  # as the scheduler delivers them: (B, H, W, C) uint8 on the host
            from .runtime.edges import host_ready

            kw = host_ready(kw, uint8)
        was_checking = contracts.checking()
        contracts.set_checking(self.check or was_checking)
        try:
            versions = contracts.input_versions(kw) if contracts.checking() else {}
            outputs, self.last_t = normalize_outputs(self.node, self.ports, self.node.process(**kw))
            contracts.check_inputs_unchanged(self.node.type_name, versions, kw)
        finally:
            contracts.set_checking(was_checking)
        self.index += 1
        return outputs

    def set_params(self, **changes: Any) -> None:
        """Apply a live parameter change, validated like an OSC message would be."""
        old = self.node.params
        new = type(old).model_validate({**old.model_dump(), **changes})
        self.node.params = new
        self.node.on_params(old, new)


def run_node(node_type: type[Node], inputs: Mapping[str, Any] | None = None,
             params: Mapping[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    """Set up ``node_type``, run it once on ``inputs``, tear it down; return its outputs."""
    with NodeHarness(node_type, params, **kw) as h:
        return h.process(**dict(inputs or {}))


def need_executables(*names: str, missing: str) -> None:
    """In a test that starts real peers (``oscdump``, ...): skip, saying ``missing``, where one of
    ``names`` is not on PATH; under CI (``CI`` set), whose setup installs them, fail instead."""
    import pytest

    if all(shutil.which(n) for n in names):
        return
    if os.environ.get("CI"):  # CI installs them: missing there is a broken setup, not a skip
        pytest.fail(missing)
    pytest.skip(missing)
