"""``kpn.weighted_filter``: filter an image with per-pixel kernels (a KPN's last layer) as a node."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

from pydantic import field_validator, model_validator

import flowml
from flowml import IMAGE, TENSOR, Field, Input, Node, NodeError, Output, Ports
from flowml.lazy import lazy_import

torch = lazy_import("torch")

CUPY_HINT = "install CuPy with: pip install 'flowml-kernels[cuda]', or use backend: auto"


class KpnWeightedFilter(Node):
    """Per-pixel N x N filter of ``image`` with ``weights`` (layerdenoise's WeightedFilter).

    ``image`` ``(B, C, H, W)``, any C (an image or a tensor: feature maps too), ``weights``
    ``(B, N*N, H, W)`` (tap ``i*N + j``, e.g. a ``torch.model``'s output) -> ``image``
    ``(B, C, H, W)``: an image port (1 to 4 channels, for image nodes downstream) with
    ``output: image``, the default, a tensor port of any C with ``output: tensor``. ``splat: false`` gathers
    (``out[p] = sum_k w[k, p] x[p + d_k]``), ``splat: true`` scatters each pixel with its own
    weights. ``normalize``: ``softmax`` over the N*N taps, ``sum`` divides by their sum (for
    non-negative weights), ``none`` uses them as given. ``backend``: ``auto`` runs the CuPy
    kernels on a GPU when CuPy is installed and the unfold reference otherwise; ``cupy`` insists
    on the kernels (a GPU graph and CuPy); ``torch`` always runs the reference. Weights of
    another float dtype are cast to the image's.
    """

    type_name = "kpn.weighted_filter"
    inputs = (Input("image", TENSOR, "(B, C, H, W), any C: an image or a tensor"),
              Input("weights", TENSOR, "(B, N*N, H, W), tap i*N+j"))
    outputs = (Output("image", IMAGE, "(B, C, H, W); a tensor with output: tensor"),)

    class Params(flowml.Params):
        kernel_size: int = Field(5, ge=1, le=15, description="N: odd, 1 to 15")
        splat: bool = Field(False, description="scatter each pixel instead of gathering")
        normalize: Literal["none", "softmax", "sum"] = Field(
            "none", description="of the weights over the N*N taps")
        backend: Literal["auto", "cupy", "torch"] = Field(
            "auto", description="auto: CuPy kernels on a GPU when installed, else the reference")
        output: Literal["image", "tensor"] = Field(
            "image", live=False, description="the result's port type: image (1 to 4 channels, "
            "for image nodes) or tensor (any channel count, e.g. C=32 features)")

        @field_validator("kernel_size")
        @classmethod
        def _odd(cls, v: int) -> int:
            if v % 2 == 0:
                raise ValueError(f"kernel_size must be odd (1, 3, 5, ... 15), not {v}")
            return v

        @model_validator(mode="after")
        def _cupy_installed(self):
            if self.backend == "cupy" and importlib.util.find_spec("cupy") is None:
                raise ValueError(f"backend: cupy needs CuPy, which is not installed; {CUPY_HINT}")
            return self

    @classmethod
    def validation_notes(cls, params: Params, graph_dir: Path) -> list[str]:
        """Says at validation when the CuPy kernels cannot run here (no CuPy, no GPU)."""
        from .checks import cuda_problem

        why = None if params.backend == "torch" else cuda_problem()
        if why is None:
            return []
        if params.backend == "auto":
            return [f"the CuPy kernels cannot run here ({why}): backend auto runs the unfold "
                    f"reference (slower)"]
        return [f"backend: cupy needs a CUDA GPU ({why}): the graph will not start here; "
                f"or use backend: auto"]

    @classmethod
    def ports(cls, params: Params) -> Ports:
        if params.output == "image":
            return Ports(cls.inputs, cls.outputs)
        return Ports(cls.inputs, (Output("image", TENSOR, "(B, C, H, W), any C"),))

    def setup(self, ctx) -> None:
        self._check_backend(self.params)

    def on_params(self, old, new) -> None:
        self._check_backend(new)

    def _check_backend(self, params) -> None:
        if params.backend != "cupy":
            return
        from . import cupy_backend

        why = cupy_backend.unavailable()
        if why is not None:
            raise NodeError(f"backend: cupy cannot run here: {why}; {CUPY_HINT}")
        if not str(self.ctx.device).startswith("cuda"):
            raise NodeError(f"backend: cupy needs a GPU graph (--device cuda), "
                            f"not {self.ctx.device}; or use backend: auto")

    def process(self, image, weights):
        from . import cupy_backend, ops
        from .reference import filter_ref

        p = self.params
        w = weights.to(image.dtype) if weights.dtype != image.dtype else weights
        if p.normalize == "softmax":
            w = torch.softmax(w, dim=1)
        elif p.normalize == "sum":
            s = w.sum(dim=1, keepdim=True)
            w = w / torch.where(s.abs() < 1e-8, torch.full_like(s, 1e-8), s)
        ops.check_args(image, w, p.kernel_size)
        if p.output == "image" and not 1 <= image.shape[1] <= 4:
            raise ValueError(f"image has {image.shape[1]} channels; an image output carries 1 to 4: "
                             f"set output: tensor for any channel count")
        if p.backend == "torch":
            return filter_ref(image, w, p.kernel_size, p.splat)
        if p.backend == "cupy":
            return cupy_backend.filter_cuda(image, w, p.kernel_size, p.splat)
        return ops.weighted_filter(image, w, p.kernel_size, p.splat)
