"""The authoring API: a node type is a class with typed ports and a pydantic ``Params`` model.

A minimal node::

    from flowml import Node, Input, Output, Params, Field, IMAGE

    class Brightness(Node):
        \"\"\"Multiply an image by a gain.\"\"\"
        type_name = "example.brightness"
        inputs = (Input("image", IMAGE),)
        outputs = (Output("image", IMAGE),)

        class Params(Params):
            gain: float = Field(1.0, ge=0.0, le=4.0, description="multiplier")

        def process(self, image):
            return (image * self.params.gain).clamp(0, 1)

The framework owns ``__init__``: state is made in ``setup(ctx)``, work is done in
``process(**inputs)``, resources are released in ``teardown()``. ``self.params`` is replaced
between ticks when a live parameter changes (never during ``process``); ``on_params`` is
called when that happens.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, create_model

from .parammeta import Field, ParamMeta
from .ports import ANY, Input, Output, Ports, PortType

__all__ = [
    "Params", "Field", "ParamMeta", "Node", "NodeContext", "Tick", "EndOfStream", "Stamped",
    "function_node", "NodeError", "NO_VALUE",
]


class _NoValue:
    """The type of ``NO_VALUE`` (one instance, falsy, survives copy and pickle as itself)."""

    _instance: "_NoValue | None" = None

    def __new__(cls) -> "_NoValue":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "flowml.NO_VALUE"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "NO_VALUE"


NO_VALUE = _NoValue()
"""What ``process`` returns on an output port that has no value this tick (a clip window
not yet full, a rule that did not fire): ``return NO_VALUE`` (every output), or
``{"clip": NO_VALUE, "count": 3}`` (that port only). A consumer whose required input has no
value is not called this tick (its outputs have no value either, so it spreads downstream);
an ``Input(..., optional=True)`` gets ``None`` instead and the consumer runs. ``None`` is a
different thing: a value (the consumer is called with it)."""


class Params(BaseModel):
    """Base class of every node's parameters: strict about unknown names, immutable.

    Live changes build a new instance (validated by the same fields) and swap it in
    between ticks.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class EndOfStream(Exception):
    """Raised by a source's ``process()`` when it has no more frames (end of a file)."""


class NodeError(Exception):
    """Raised by a node for a problem the user can fix (missing file, bad shape).

    The message is shown as it is, prefixed with the node id; no traceback.
    """


@dataclass(frozen=True)
class Stamped:
    """What a source may return instead of its outputs to give the frame's own time.

    ``outputs`` is what ``process`` would otherwise return; ``t`` is the presentation
    time in seconds (e.g. a video frame's pts). The clock source's stamp becomes the tick's ``t``.
    """

    outputs: Any
    t: float


@dataclass(frozen=True)
class Tick:
    """One frame of the whole graph. ``t`` is in seconds from the start of the stream."""

    index: int
    t: float


@dataclass
class NodeContext:
    """What a node may know about where it runs. Given to ``setup``; kept as ``self.ctx``."""

    node_id: str
    type_name: str
    device: str = "cpu"
    graph_dir: Path = Path(".")
    mode: Literal["live", "offline"] = "offline"
    is_clock: bool = False
    """True for the source whose frames drive the ticks: it may block until a frame comes
    (on a clock thread of its own, or on the dispatcher if it ``captures_in_background``).
    Any other source runs on the dispatcher and must not wait."""
    tick: Tick = Tick(0, 0.0)
    log: logging.Logger = logging.getLogger("flowml.node")
    stopping: threading.Event = field(default_factory=threading.Event)
    """Set when the graph is asked to stop: a source that waits for a frame gives up (raises
    ``EndOfStream``) instead of holding the stop up."""
    wired: frozenset[str] | None = None
    """The names of this node's outputs that some input in the graph reads, set before
    ``setup``; None where that is not known (a node made outside a graph, e.g. by
    ``flowml.testing``): then a node computes all its outputs. A node may skip the work of an
    unwired output. A reload that changes which outputs are wired keeps the node and sets this
    anew between two ticks (a captured node captures again), so read it in ``process`` rather
    than once in ``setup``."""
    stopped_at: float | None = None
    """When the graph stopped taking frames (``time.perf_counter()``; a run for a ``duration``:
    when that ran out, however late the loop saw it), set as the run loop ends, before the
    frames in flight are drained and the nodes torn down: a live recorder ends its take there,
    however long the shutdown after it takes."""

    def resolve(self, path: str | Path) -> Path:
        """A path from the graph file, made absolute relative to the graph file's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.graph_dir / p).resolve()

    @property
    def torch_device(self):
        """This node's device as a ``torch.device`` (imports torch)."""
        import torch

        return torch.device(self.device)


class Node:
    """Base class of node types. Subclasses set the class attributes below and override
    ``setup`` / ``process`` / ``teardown`` as needed."""

    type_name: ClassVar[str] = ""
    """The name used in graph files, e.g. ``"image.resize"``: ``<family>.<name>``."""
    Params: ClassVar[type[Params]] = Params
    inputs: ClassVar[tuple[Input, ...]] = ()
    outputs: ClassVar[tuple[Output, ...]] = ()
    blocking: ClassVar[bool] = False
    """True for host-blocking work (file or network I/O, feature matching): the scheduler runs
    ``process`` on the node's own worker thread, in order, so the graph is not held up."""
    live: ClassVar[bool] = False
    """For sources: True when frames arrive in real time (camera, network), so the graph runs
    in live mode (latest frame wins); False for files (offline: every frame, back-pressure)."""
    pure: ClassVar[bool] = False
    """True when ``process`` gives the same outputs for the same params and the same input
    values, and does nothing else (no clock, randomness, I/O or count of calls in it): a
    latent from a seed, a filter. When a tick would call it with the params of its last call
    and with inputs its producers handed on unchanged (they were not called either, or hold
    their outputs, or it has no inputs), the scheduler hands its last outputs on instead,
    counted in the node's ``held``: what TouchDesigner calls cooking only on change."""
    captures_in_background: ClassVar[bool] = False
    """For live sources with a capture thread of their own (a camera's reader): ``process``
    only waits for the newest frame that thread has, and returns when ``ctx.stopping`` is set.
    As the clock of a live graph such a source is called on the dispatcher, not on a clock
    thread: one thread hand-off fewer between a frame and its upload. Leave it False for a
    source that does its work in ``process`` (a decoder), so reading overlaps the graph."""

    def __init__(self, params: Params, ctx: NodeContext):
        self.params = params
        self.ctx = ctx
        self.log = ctx.log

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "__init__" in cls.__dict__:
            raise TypeError(
                f"{cls.__name__}: the framework owns __init__; make state in setup(ctx) instead"
            )

    @classmethod
    def ports(cls, params: Params) -> Ports:
        """The ports of a node with these params. Override for ports that depend on params
        (a model node whose inputs are named in its params, say)."""
        return Ports(tuple(cls.inputs), tuple(cls.outputs))

    @classmethod
    def is_live(cls, params: Params) -> bool:
        """Does a source with these params deliver frames in real time? Default: ``live``.
        Override when it depends on params (a URL is live, a file is not)."""
        return cls.live

    @classmethod
    def is_blocking(cls, params: Params) -> bool:
        """Does ``process`` block the host (I/O, waiting) with these params, so that it must
        run on a worker thread of its own? Default: ``blocking``. Override when it depends on
        params (a user function that says it does I/O)."""
        return cls.blocking

    @classmethod
    def is_pure(cls, params: Params) -> bool:
        """Are this node's outputs a function of its params and inputs alone, with these params
        (``pure``)? Override when it depends on params (random noise is not). Asked when the
        node is built and when the graph is reloaded, with the graph file's params."""
        return cls.pure

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this node type cannot run on this machine (wrong OS, missing package or
        driver), or None when it can. Checked when a graph is validated, so a graph that uses
        e.g. Spout on Linux fails before it starts, with this message. Import optional
        libraries lazily, here and in ``setup``, never at module level."""
        return None

    @classmethod
    def describe(cls) -> str:
        """First line of the class docstring."""
        return (inspect.getdoc(cls) or "").strip().splitlines()[0] if cls.__doc__ else ""

    # -- lifecycle -------------------------------------------------------------------------
    def setup(self, ctx: NodeContext) -> None:
        """Make state: open files, load models. Raise ``NodeError`` with a clear message."""

    def process(self, **inputs: Any) -> Any:
        """Do one frame's work. Return a dict of outputs, a bare value when the node has
        exactly one output, ``Stamped(...)`` from a source, or ``None`` from a sink.
        ``NO_VALUE`` (for all outputs, or as one port's value) says "nothing this tick"."""
        raise NotImplementedError(f"{type(self).__name__}.process")

    def teardown(self) -> None:
        """Release resources: flush and close files. Called once, also after errors."""

    def on_params(self, old: Params, new: Params) -> None:
        """Called between ticks after ``self.params`` changed from ``old`` to ``new``."""

    def report(self) -> Mapping[str, Any] | None:
        """The node's own counters for ``--stats`` and ``--stats-json`` (a network receiver's
        latency and losses, say): a small JSON-able mapping, or None. Called from another
        thread while the graph runs, so read only what is safe to read there."""
        return None

    # -- what validation may ask ---------------------------------------------------------
    @classmethod
    def metadata_keys(cls, params: Params) -> frozenset[str] | None:
        """The keys of the JSON records (a dict, or a list of dicts) this node's outputs carry
        with these params, or None (the default) when they are not known: then nothing
        downstream is checked against them (``check_upstream``)."""
        return None

    @classmethod
    def check_upstream(cls, params: Params, upstream: Mapping[str, frozenset[str] | None],
                       graph_dir: Path) -> list[str]:
        """Problems with what this node's producers declare, found when the graph is validated
        (e.g. a rule on a key that no producer emits). ``upstream`` maps each connected input
        port to its producer's ``metadata_keys`` (None: unknown); ``graph_dir`` resolves the
        node's file params. Return messages (each may begin with ``file:line:``); each is
        reported at the node in the graph file. Default: none."""
        return []

    @classmethod
    def validation_notes(cls, params: Params, graph_dir: Path) -> list[str]:
        """Non-fatal remarks on a valid graph, e.g. "needs a CUDA GPU and CuPy; this machine has
        none: the graph will not start here" or a slower fallback taken. ``flowml validate``
        prints them at the node's ``type`` line and still succeeds. Default: none."""
        return []


def _caller() -> str:
    """``file:line`` of the code that called the function calling this (the decorator line)."""
    frame = inspect.currentframe()
    outer = frame.f_back.f_back if frame is not None and frame.f_back is not None else None
    return f"{outer.f_code.co_filename}:{outer.f_lineno}" if outer is not None else "<unknown>"


def _check_port_mapping(where: str, type_name: str, what: str, ports: Any) -> None:
    """``inputs=`` / ``outputs=`` of ``function_node``: a mapping of names to port types."""
    if ports is None:
        return
    example = f"{what}={{'image': flowml.IMAGE}}"
    if not isinstance(ports, Mapping):
        raise TypeError(f"{where}: @function_node({type_name!r}): {what} must be a mapping of "
                        f"port name to port type, e.g. {example}; got a {type(ports).__name__}")
    for name, kind in ports.items():
        if not (isinstance(name, str) and name.isidentifier()):
            raise TypeError(f"{where}: @function_node({type_name!r}): {what}: port name {name!r} "
                            "must be a Python identifier")
        if not isinstance(kind, PortType):
            raise TypeError(f"{where}: @function_node({type_name!r}): {what}[{name!r}] must be a "
                            f"port type (flowml.IMAGE, TENSOR, SCALAR, ...), got {kind!r}")


def normalize_outputs(node: Node, ports: Ports, result: Any) -> tuple[dict[str, Any], float | None]:
    """Turn what ``process`` returned into ``({port: value}, stamp)``, checking the output
    contracts at the producer (``flowml.contracts``): port names, value kinds, the image
    convention. Raises ``ContractError`` naming the port."""
    from .contracts import check_output_names, check_outputs

    stamp = None
    if isinstance(result, Stamped):
        stamp, result = result.t, result.outputs
    names = ports.output_names
    if not names:
        return {}, stamp
    if result is NO_VALUE:
        return {n: NO_VALUE for n in names}, stamp
    if isinstance(result, Mapping) and result and ports.output_set.issuperset(result):
        outputs = dict(result)
    elif len(names) == 1 and not (isinstance(result, Mapping) and _returns_ports(ports.outputs[0].type)):
        outputs = {names[0]: result}
    elif isinstance(result, Mapping):
        check_output_names(node.type_name, result, names)
        outputs = dict(result)
    else:
        raise NodeError(f"process() must return a dict with keys from {names}, got "
                        f"{type(result).__name__}")
    check_outputs(node.type_name, ports, outputs)
    return outputs, stamp


def _returns_ports(port_type: PortType) -> bool:
    """Whether a mapping returned by a one-output node is ``{port: value}`` (its type's values
    are never mappings), rather than the value itself (json, detections, any)."""
    return port_type.name in ("image", "tensor", "matrix", "scalar") or (
        port_type.parent is not None and port_type.parent.name in ("tensor", "image"))


def function_node(
    type_name: str,
    *,
    inputs: Mapping[str, PortType] | None = None,
    outputs: Mapping[str, PortType] | None = None,
    blocking: bool = False,
) -> Callable[[Callable[..., Any]], type[Node]]:
    """Make a stateless node type from a function.

    Positional parameters are input ports (typed by ``inputs``, else ``ANY``); keyword-only
    parameters with defaults are the node's params (their annotations and ``Annotated[...,
    Field(...)]`` give types and ranges). The return value is the output (one output named
    ``out`` unless ``outputs`` says otherwise)::

        @function_node("example.invert", inputs={"image": IMAGE}, outputs={"image": IMAGE})
        def invert(image, *, amount: Annotated[float, Field(ge=0, le=1)] = 1.0):
            return image * (1 - amount) + (1 - image) * amount
    """

    where = _caller()
    _check_port_mapping(where, type_name, "inputs", inputs)
    _check_port_mapping(where, type_name, "outputs", outputs)

    def wrap(fn: Callable[..., Any]) -> type[Node]:
        sig = inspect.signature(fn)
        at = f"{fn.__code__.co_filename}:{fn.__code__.co_firstlineno}"
        in_names, fields = [], {}
        hints = inspect.get_annotations(fn, eval_str=True)
        for p in sig.parameters.values():
            if p.kind is p.KEYWORD_ONLY:
                if p.default is p.empty:
                    raise TypeError(f"{at}: {fn.__name__}: param {p.name!r} needs a default")
                fields[p.name] = (hints.get(p.name, type(p.default)), p.default)
            elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                in_names.append(p.name)
            else:
                raise TypeError(f"{at}: {fn.__name__}: *args/**kwargs are not supported in nodes")
        types = dict(inputs or {})
        for name in types:
            if name not in in_names:
                import difflib

                close = difflib.get_close_matches(name, in_names, n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]!r}?" if close else (
                    f"; its inputs (positional parameters): {', '.join(in_names) or 'none'}")
                raise TypeError(f"{at}: @function_node({type_name!r}): inputs names {name!r}, "
                                f"which is not a positional parameter of {fn.__name__}(){hint}")
        params_model = create_model(f"{fn.__name__}_Params", __base__=Params, **fields)
        param_names = tuple(fields)

        def process(self: Node, **kw: Any) -> Any:
            return fn(**kw, **{n: getattr(self.params, n) for n in param_names})

        return type(
            fn.__name__,
            (Node,),
            {
                "__doc__": fn.__doc__,
                "__module__": fn.__module__,
                "type_name": type_name,
                "Params": params_model,
                "inputs": tuple(Input(n, types.get(n, ANY)) for n in in_names),
                "outputs": tuple(Output(n, t) for n, t in (outputs or {"out": ANY}).items()),
                "blocking": blocking,
                "process": process,
            },
        )

    return wrap
