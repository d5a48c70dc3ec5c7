"""``cuda.kernel``: the user's own CUDA C kernel as a node, compiled by NVRTC at setup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import field_validator, model_validator

import flowml
from flowml import TENSOR, Field, Input, Node, NodeError, Output, Ports
from flowml.fsutil import from_graph
from flowml.lazy import lazy_import
from flowml.ports import check_port_list, parse_port

torch = lazy_import("torch")

ARG_TYPES = ("float", "int", "bool")


class CudaKernel(Node):
    """A user's CUDA C kernel on every frame (NVRTC through CuPy; a GPU graph and CuPy needed).

    The kernel, in ``path`` (a ``.cu`` file, recompiled by ``--watch`` on save) or ``code``
    (inline), is ``extern "C" __global__ void <function>(...)`` taking, in order: a ``const
    float*`` per input, a ``float*`` per output, a ``float*`` per ``state`` buffer (kept between
    frames, zero at first), then ``int B, int C, int H, int W`` of the ``like`` input (default
    the first), then one argument per ``args`` entry (``name:float|int|bool``) with its value
    from ``values`` (live: ``/<node>/values 0.1 1.2 1.0``). Tensors are float32, contiguous,
    ``(B, C, H, W)``; outputs and state buffers have the ``like`` input's shape, or the one
    given in ``shapes`` (``{hist: [1, 1, 1, 256]}``: zeroed each frame, for kernels that
    accumulate; the launch still covers ``like``). A port named
    ``image`` is an image, any other a tensor unless typed (``out:image``). The launch:
    ``block`` threads (default 16 x 16), a grid covering W x H, ``gridDim.z = B``, on the node's
    stream. A compile error names ``file:line``; on a reload the old kernel keeps running.
    ``flowml validate`` fails on a missing ``path`` or a source without ``function`` and notes
    a machine without CuPy or a CUDA GPU (where the graph will not start).
    """

    type_name = "cuda.kernel"

    class Params(flowml.Params):
        path: str | None = Field(None, description="the .cu file, relative to the graph file",
                                 file="input")
        code: str | None = Field(None, description="inline CUDA C instead of a file", rebuild=True)
        function: str = Field("kernel", description="the extern \"C\" __global__ function", rebuild=True)
        inputs: list[str] = Field(["image"], description="input ports, e.g. [image, mask:tensor]",
                                  live=False)
        outputs: list[str] = Field(["image"], description="output ports", live=False)
        state: list[str] = Field([], description="float buffers kept between frames", live=False)
        like: str | None = Field(None, description="the input whose shape outputs take",
                                 live=False)
        shapes: dict[str, tuple[int, int, int, int]] = Field(
            {}, description="outputs or state buffers of a given (B, C, H, W) shape", live=False)
        args: list[str] = Field([], description="scalar kernel arguments, name:float|int|bool",
                                live=False)
        values: list[float] = Field([], description="the args' values, in order (live)")
        block: tuple[int, int] = Field((16, 16), description="threads per block, x and y",
                                       live=False)

        @field_validator("inputs", "outputs")
        @classmethod
        def _ports(cls, specs: list[str]) -> list[str]:
            return check_port_list(specs, TENSOR)

        @field_validator("args")
        @classmethod
        def _args(cls, specs: list[str]) -> list[str]:
            for s in specs:
                name, _, kind = s.partition(":")
                if not name.isidentifier() or (kind or "float") not in ARG_TYPES:
                    raise ValueError(f"arg {s!r}: write name:float, name:int or name:bool")
            return specs

        @model_validator(mode="after")
        def _consistent(self):
            if (self.path is None) == (self.code is None):
                raise ValueError("give the kernel as path: file.cu or as code: '...', one of them")
            if len(self.values) != len(self.args):
                raise ValueError(f"values has {len(self.values)} numbers for {len(self.args)} args "
                                 f"{self.args}: give one value per arg")
            names = [parse_port(s, TENSOR)[0] for s in self.inputs]
            if not names:
                raise ValueError("cuda.kernel needs at least one input (its shape sizes the launch)")
            if self.like is not None and self.like not in names:
                raise ValueError(f"like: {self.like!r} is not an input; inputs are {names}")
            buffers = [parse_port(s, TENSOR)[0] for s in self.outputs] + list(self.state)
            stray = sorted(set(self.shapes) - set(buffers))
            if stray:
                raise ValueError(f"shapes names {stray}, which are not outputs or state; "
                                 f"those are {buffers}")
            if any(d < 1 for shape in self.shapes.values() for d in shape):
                raise ValueError("shapes: every size must be at least 1")
            if self.block[0] * self.block[1] > 1024 or min(self.block) < 1:
                raise ValueError(f"block {list(self.block)}: 1 to 1024 threads in all")
            return self

    @classmethod
    def ports(cls, params: Params) -> Ports:
        return Ports(tuple(Input(*parse_port(s, TENSOR)) for s in params.inputs),
                     tuple(Output(*parse_port(s, TENSOR)) for s in params.outputs))

    @classmethod
    def validation_notes(cls, params: Params, graph_dir: Path) -> list[str]:
        from .checks import cuda_problem

        why = cuda_problem()
        return [] if why is None else [f"needs a CUDA GPU and CuPy, which this machine "
                                       f"lacks ({why}): the graph will not start here"]

    @classmethod
    def check_upstream(cls, params: Params, upstream: Any, graph_dir: Path) -> list[str]:
        """The kernel file exists and declares ``function`` (read again at setup)."""
        from .checks import function_problem

        if params.path is None:
            source, display = params.code or "", "the inline code"
        else:
            file = from_graph(params.path, graph_dir)
            try:
                source, display = file.read_text(encoding="utf-8"), params.path
            except FileNotFoundError:
                return [f"param 'path': no kernel file {params.path!r} (looked for {file})"]
            except (OSError, UnicodeDecodeError) as e:
                return [f"param 'path': cannot read the kernel {file}: {getattr(e, 'strerror', e)}"]
        problem = function_problem(source, params.function, display)
        return [] if problem is None else [f"param 'function': {problem}"]

    def setup(self, ctx) -> None:
        from .usercode import KernelCompileError

        self._check_device(ctx)
        p = self.params
        if p.path is not None:
            file = ctx.resolve(p.path)
            try:
                source = file.read_text(encoding="utf-8")
            except OSError as e:
                raise NodeError(f"cannot read the kernel {file}: {e.strerror}") from None
            display = p.path
        else:
            source, display = p.code, f"<{ctx.node_id}.code>"
        try:
            self._fn = self._compile(source, display, ctx)
        except KernelCompileError as e:
            raise NodeError("the kernel did not compile:\n" + str(e)) from None
        self._names = [parse_port(s, TENSOR)[0] for s in p.inputs]
        self._outs = [parse_port(s, TENSOR)[0] for s in p.outputs]
        self._state: dict[str, object] = {}

    def _check_device(self, ctx) -> None:
        """Raise NodeError unless CuPy and a CUDA GPU are here and the graph runs on it."""
        from . import cupy_backend

        why = cupy_backend.unavailable()
        if why is not None:
            raise NodeError(f"cuda.kernel needs a GPU and CuPy: {why}")
        if not str(ctx.device).startswith("cuda"):
            raise NodeError(f"cuda.kernel runs on a GPU graph (--device cuda), not {ctx.device}")

    def _compile(self, source: str, display: str, ctx) -> Any:
        """The launchable kernel (NVRTC through CuPy); raises ``KernelCompileError``."""
        from .usercode import compile_kernel

        dev = torch.device(ctx.device)
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return compile_kernel(source, self.params.function, display, index)

    def process(self, **inputs):
        import numpy as np

        p = self.params
        ins = [inputs[n].float().contiguous() for n in self._names]
        like = ins[self._names.index(p.like)] if p.like else ins[0]
        if like.dim() != 4:
            raise ValueError(f"cuda.kernel sizes its launch from a (B, C, H, W) tensor, "
                             f"not {tuple(like.shape)}; name another input with like:")
        b, c, h, w = like.shape
        def shaped(name: str):
            shape = p.shapes.get(name)
            return tuple(shape) if shape else tuple(like.shape)

        outs = [like.new_zeros(p.shapes[n]) if n in p.shapes else torch.empty_like(like)
                for n in self._outs]
        state = []
        for name in p.state:
            buf = self._state.get(name)
            if buf is None or tuple(buf.shape) != shaped(name) or buf.device != like.device:
                buf = self._state[name] = like.new_zeros(shaped(name))
            state.append(buf)
        scalars = []
        for spec, value in zip(p.args, p.values):
            kind = spec.partition(":")[2] or "float"
            scalars.append(np.float32(value) if kind == "float"
                           else np.int32(round(value)) if kind == "int" else np.bool_(value))
        bx, by = p.block
        grid = ((w + bx - 1) // bx, (h + by - 1) // by, b)
        self._launch(grid, (bx, by, 1), [*ins, *outs, *state],
                     (np.int32(b), np.int32(c), np.int32(h), np.int32(w), *scalars))
        return dict(zip(self._outs, outs))

    def _launch(self, grid: tuple[int, int, int], block: tuple[int, int, int], tensors: list,
                scalars: tuple) -> None:
        """Run the kernel over ``grid`` on torch's current stream: ``tensors`` (inputs,
        outputs, state; float32, contiguous) as pointers, then ``scalars`` (B, C, H, W, args)."""
        import cupy

        from . import cupy_backend

        device = tensors[0].device
        with cupy.cuda.Device(device.index), cupy_backend.cupy_stream(torch.cuda.current_stream(device)):
            self._fn(grid, block, (*[cupy.from_dlpack(t.detach()) for t in tensors], *scalars))

    def teardown(self) -> None:
        self._state = {}
