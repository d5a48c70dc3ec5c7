"""``python.function``: a user's Python function as a node."""

from __future__ import annotations

import inspect
from typing import Any

from pydantic import field_validator, model_validator

import flowml
from flowml import ANY, Field, Input, Node, NodeError, Output, Ports

from flowml.ports import check_port_list, parse_port
from .userfunc import load_function


class PythonFunction(Node):
    """Run a Python function on every frame: inputs in as keyword arguments, outputs back.

    ``function: "package.module:name"`` imports a module; ``path: effects.py`` with
    ``function: name`` loads a file (relative to the graph file). The call is
    ``fn(**inputs, **args)``, plus ``ctx=`` (the ``NodeContext``, with ``ctx.tick``) when the
    function has a ``ctx`` parameter. It returns the output's value (one output), a dict by
    output name, or a tuple in output order; nothing when ``outputs`` is empty.

    Ports come from params: ``inputs: [image, mask:tensor]`` (default ``[image]``), ``outputs``
    likewise. A port typed after a colon has that type (any, tensor, image, matrix, scalar,
    detections, json); else ``image`` is an ``IMAGE`` and any other name ``ANY``. An output
    that feeds an image input must be typed image. ``blocking: true`` runs the function on a
    worker thread of its own (for I/O), as blocking node types run.
    """

    type_name = "python.function"

    class Params(flowml.Params):
        function: str = Field(description="'module:function', or with `path` the function's name in the file",
                              rebuild=True)
        path: str | None = Field(None, description="a .py file with the function, relative to the graph file",
                                  file="input")
        inputs: list[str] = Field(["image"], description="input ports, e.g. [image, mask:tensor]", live=False)
        outputs: list[str] = Field(["image"], description="output ports, e.g. [image, count:scalar]", live=False)
        args: dict[str, Any] = Field({}, description="more keyword arguments for the function")
        blocking: bool = Field(False, live=False, description=
                               "the function blocks (file or network I/O, waiting): run it on a "
                               "worker thread of its own, in order, so the graph is not held up")

        @field_validator("inputs", "outputs")
        @classmethod
        def _ports(cls, specs: list[str]) -> list[str]:
            return check_port_list(specs, ANY)

        @model_validator(mode="after")
        def _args_apart(self) -> "PythonFunction.Params":
            inputs = {parse_port(s, ANY)[0] for s in self.inputs}
            if "ctx" in inputs:
                raise ValueError("'ctx' is reserved for the node context; name the input otherwise")
            clash = sorted(set(self.args) & (inputs | {"ctx"}))
            if clash:
                raise ValueError(f"args {clash} clash with input ports or 'ctx'; rename them")
            return self

    @classmethod
    def is_blocking(cls, params: Params) -> bool:
        return params.blocking

    @classmethod
    def ports(cls, params: Params) -> Ports:
        return Ports(tuple(Input(*parse_port(s, ANY)) for s in params.inputs),
                     tuple(Output(*parse_port(s, ANY)) for s in params.outputs))

    def setup(self, ctx: flowml.NodeContext) -> None:
        p = self.params
        path = ctx.resolve(p.path) if p.path else None
        self.fn = load_function(p.function, path, module_name=f"flowml_user_{ctx.node_id}")
        self.input_names = [parse_port(s, ANY)[0] for s in p.inputs]
        self.output_names = [parse_port(s, ANY)[0] for s in p.outputs]
        self.wants_ctx = self._check_signature()

    def _check_signature(self) -> bool:
        """Fail now, not on the first frame, if the function cannot take the inputs and args."""
        try:
            sig = inspect.signature(self.fn)
        except (TypeError, ValueError):  # some builtins have none
            return False
        wants_ctx = "ctx" in sig.parameters
        names = [*self.input_names, *self.params.args, *(["ctx"] if wants_ctx else [])]
        try:
            sig.bind(**dict.fromkeys(names))
        except TypeError as exc:
            raise NodeError(f"function {self.params.function}{sig} cannot be called with inputs "
                            f"{self.input_names} and args {list(self.params.args)} ({exc}); "
                            "name its parameters after the node's inputs") from exc
        return wants_ctx

    def process(self, **inputs: Any) -> Any:
        kwargs = {**inputs, **self.params.args}
        if self.wants_ctx:
            kwargs["ctx"] = self.ctx
        return self._outputs(self.fn(**kwargs))

    def _outputs(self, result: Any) -> dict[str, Any] | None:
        names = self.output_names
        if not names:
            return None
        if len(names) == 1:
            one = isinstance(result, dict) and set(result) == set(names)
            return {names[0]: result[names[0]] if one else result}
        if isinstance(result, dict) and set(result) == set(names):
            return result
        if isinstance(result, (tuple, list)) and len(result) == len(names):
            return dict(zip(names, result))
        got = f"dict with keys {sorted(result)}" if isinstance(result, dict) else type(result).__name__
        raise NodeError(f"function {self.params.function} returned a {got}; with outputs {names} "
                        f"return a dict with exactly those keys or a tuple of {len(names)}")
