"""Port types: what travels on an edge, and which outputs may feed which inputs.

This module imports nothing heavy (no torch) so that graph validation stays fast.

Conventions for the values themselves:

- ``IMAGE``: ``torch.Tensor`` of shape ``(B, C, H, W)``, ``float32`` (or the node's precision),
  RGB or RGBA, values in ``[0, 1]``, on the graph's device. Sources convert once on arrival,
  sinks once on departure.
- ``TENSOR``: any ``torch.Tensor``. An image is a tensor, so an ``IMAGE`` output may feed a
  ``TENSOR`` input, not the other way round.
- ``MATRIX``: ``torch.Tensor`` of shape ``(B, 3, 3)`` or ``(3, 3)``, e.g. a homography.
- ``SCALAR``: a Python ``float``/``int``/``bool``.
- ``DETECTIONS``: ``dict`` with ``boxes (N, 4)`` xyxy pixels, ``scores (N,)``, ``labels (N,)``.
- ``JSON``: any JSON-able value (dicts, lists, strings, numbers).
- ``ANY``: accepts everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PortType:
    """A named kind of edge value. ``parent`` makes a subtype (an image is a tensor)."""

    name: str
    doc: str = ""
    parent: PortType | None = None

    def accepts(self, produced: PortType) -> bool:
        """True if a value of type ``produced`` may be connected to a port of this type."""
        if self is ANY:
            return True
        t: PortType | None = produced
        while t is not None:
            if t == self:
                return True
            t = t.parent
        return False

    def __str__(self) -> str:
        return self.name


ANY = PortType("any", "any value")
TENSOR = PortType("tensor", "torch.Tensor of any shape", parent=ANY)
IMAGE = PortType("image", "torch.Tensor (B, C, H, W) float RGB(A) in [0, 1]", parent=TENSOR)
MATRIX = PortType("matrix", "torch.Tensor (B, 3, 3) or (3, 3), e.g. a homography", parent=TENSOR)
SCALAR = PortType("scalar", "Python float, int or bool", parent=ANY)
DETECTIONS = PortType("detections", "dict: boxes (N,4) xyxy px, scores (N,), labels (N,)", parent=ANY)
JSON = PortType("json", "JSON-able value", parent=ANY)

BUILTIN_TYPES: dict[str, PortType] = {
    t.name: t for t in (ANY, TENSOR, IMAGE, MATRIX, SCALAR, DETECTIONS, JSON)
}


@dataclass(frozen=True)
class Input:
    """An input port. ``optional`` inputs may be left unconnected (the node then gets ``None``).

    ``host=True`` says the node wants this input in host memory (a file writer, a network
    sender): on a GPU graph the scheduler downloads it asynchronously into pinned memory and
    the node's worker thread waits for the copy, never the graph. ``uint8=True`` (images) says
    more: the value arrives as a ``(B, H, W, C)`` uint8 host tensor, converted on the device
    before the copy (4x fewer bytes over the bus than float32). Both hold on CPU graphs too,
    so a sink's code does not depend on where the graph runs."""

    name: str
    type: PortType = ANY
    doc: str = ""
    optional: bool = False
    host: bool = False
    uint8: bool = False


@dataclass(frozen=True)
class Output:
    """An output port."""

    name: str
    type: PortType = ANY
    doc: str = ""


@dataclass(frozen=True)
class Ports:
    """The ports of one node instance (fixed by its type, or computed from its params)."""

    inputs: tuple[Input, ...] = field(default_factory=tuple)
    outputs: tuple[Output, ...] = field(default_factory=tuple)

    def input(self, name: str) -> Input | None:
        return next((p for p in self.inputs if p.name == name), None)

    def output(self, name: str) -> Output | None:
        return next((p for p in self.outputs if p.name == name), None)
