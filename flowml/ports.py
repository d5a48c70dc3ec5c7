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
from functools import cached_property
from typing import Any


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
    before the copy (4x fewer bytes over the bus than float32). ``channels=4`` (with
    ``uint8``) packs it as ``(B, H, W, 4)`` for senders that take 4 bytes a pixel (NDI, Spout,
    Syphon): a 3-channel image gets an opaque fourth channel (255), grey is repeated, in the
    same pass as the conversion (on the GPU on a GPU graph, in OpenCV's merge on the CPU).
    All of it holds on CPU graphs too, so a sink's code does not depend on where the graph runs."""

    name: str
    type: PortType = ANY
    doc: str = ""
    optional: bool = False
    host: bool = False
    uint8: bool = False
    channels: int | None = None

    def __post_init__(self) -> None:
        if self.channels not in (None, 4):
            raise ValueError(f"Input {self.name!r}: channels is None or 4, not {self.channels!r}")
        if self.channels is not None and not self.uint8:
            raise ValueError(f"Input {self.name!r}: channels=4 packs uint8 frames; add uint8=True")


@dataclass(frozen=True)
class Output:
    """An output port.

    ``host=True`` (sources of images) says the node returns this output as an ``(H, W, C)``
    uint8 host array (numpy or tensor), as a decoder or camera gives it. The scheduler uploads
    and converts it to ``(1, C, H, W)`` float in [0, 1] on the node's device when the frame
    arrives, on the dispatcher thread, so a clock source's own thread only reads and decodes."""

    name: str
    type: PortType = ANY
    doc: str = ""
    host: bool = False


@dataclass(frozen=True)
class Ports:
    """The ports of one node instance (fixed by its type, or computed from its params)."""

    inputs: tuple[Input, ...] = field(default_factory=tuple)
    outputs: tuple[Output, ...] = field(default_factory=tuple)

    def input(self, name: str) -> Input | None:
        return next((p for p in self.inputs if p.name == name), None)

    def output(self, name: str) -> Output | None:
        return next((p for p in self.outputs if p.name == name), None)

    @cached_property  # read at each call of the node
    def output_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.outputs)

    @cached_property
    def output_set(self) -> frozenset[str]:
        return frozenset(self.output_names)


def ports_problem(cls: Any, ports: Any) -> str | None:
    """What is wrong with what ``cls.ports(params)`` returned (a tuple, a list of names...),
    naming the type; None when it is a proper ``Ports``."""
    name = getattr(cls, "type_name", "") or getattr(cls, "__name__", "?")
    if not isinstance(ports, Ports):
        return (f"{name}: ports() must return flowml.Ports(inputs=(Input(...), ...), "
                f"outputs=(Output(...), ...)), not a {type(ports).__name__}")
    for kind, items, want in (("inputs", ports.inputs, Input), ("outputs", ports.outputs, Output)):
        if not isinstance(items, tuple) or not all(isinstance(p, want) for p in items):
            return (f"{name}: ports().{kind} must be a tuple of flowml.{want.__name__}, "
                    f"got {items!r:.80}")
    return None


def parse_port(spec: str, default: PortType = ANY) -> tuple[str, PortType]:
    """A port named in params: ``"mask:tensor"`` -> ``("mask", TENSOR)``.

    The type after the colon is one of ``BUILTIN_TYPES``; without one, a port called ``image``
    is an ``IMAGE`` and any other gets ``default``. Raises ``ValueError`` saying what to write.
    """
    import keyword

    name, _, type_name = spec.partition(":")
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"port name {name!r} must be a Python identifier, e.g. 'image' or 'mask'")
    if not type_name:
        return name, IMAGE if name == "image" else default
    port_type = BUILTIN_TYPES.get(type_name)
    if port_type is None:
        raise ValueError(f"port {spec!r}: unknown type {type_name!r}; use one of {sorted(BUILTIN_TYPES)}")
    return name, port_type


def check_port_list(specs: list[str], default: PortType = ANY, *, at_least_one: bool = False) -> list[str]:
    """A pydantic field validator for a list of port specs: each parses, names are unique."""
    names = [parse_port(s, default)[0] for s in specs]
    if at_least_one and not names:
        raise ValueError("name at least one port")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"port names must be unique; repeated: {duplicates}")
    return specs
