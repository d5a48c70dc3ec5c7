"""Which of our generators a snapshot is for, and building it from init kwargs and tensors.

A StyleGAN2 snapshot (stylegan2-ada-pytorch, or ``training.networks_stylegan2`` of
NVlabs/stylegan3) and a StyleGAN3 one (``training.networks_stylegan3``) both hold a class named
``Generator`` with the same first five keywords, so the architecture is told by what NVIDIA's
training config names (``class_name``), else by the network's content: a StyleGAN3 synthesis
network starts with ``input`` (Fourier features, ``synthesis.input.freqs``).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Union

import torch
from torch import nn

from . import stylegan2, stylegan3

__all__ = ["ARCHS", "AnyGenerator", "detect_arch", "arch_of", "generator_kwargs", "build_generator"]

ARCHS: dict[str, type[nn.Module]] = {"stylegan2": stylegan2.Generator, "stylegan3": stylegan3.Generator}
AnyGenerator = Union[stylegan2.Generator, stylegan3.Generator]

# NVIDIA's training configs name the generator class by module path
_CLASS_PATHS = {
    "training.networks.Generator": "stylegan2",  # stylegan2-ada-pytorch
    "training.networks_stylegan2.Generator": "stylegan2",  # NVlabs/stylegan3, --cfg stylegan2
    "training.networks_stylegan3.Generator": "stylegan3",
}
_TOP = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs")


def detect_arch(tensor_names: Iterable[str], class_path: str | None = None) -> str:
    """``stylegan2`` or ``stylegan3``, from NVIDIA's class path when given, else from the names."""
    if class_path:
        if class_path in _CLASS_PATHS:
            return _CLASS_PATHS[class_path]
        if class_path in ARCHS:
            return class_path
        raise ValueError(f"generator class {class_path!r} is not one flowml-gan builds; known: "
                         f"{sorted(_CLASS_PATHS)}")
    names = set(tensor_names)
    return "stylegan3" if "synthesis.input.freqs" in names else "stylegan2"


def arch_of(G: nn.Module) -> str:
    """The architecture name of one of our generators."""
    for name, cls in ARCHS.items():
        if isinstance(G, cls):
            return name
    raise TypeError(f"{type(G).__name__} is not a flowml-gan generator")


def generator_kwargs(arch: str, init_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The keywords our ``arch`` generator takes. StyleGAN2 from NVlabs/stylegan3 passes the
    synthesis keywords flat (as StyleGAN3 does): they are gathered into ``synthesis_kwargs``;
    ``fused_modconv_default`` (a training speed switch) is dropped, inference always fuses."""
    kw = dict(init_kwargs)
    kw.pop("class_name", None)
    if arch == "stylegan2":
        kw.pop("fused_modconv_default", None)
        flat = {k: kw.pop(k) for k in list(kw) if k not in _TOP and k != "synthesis_kwargs"}
        if flat:
            kw["synthesis_kwargs"] = {**dict(kw.get("synthesis_kwargs") or {}), **flat}
    return kw


def build_generator(init_kwargs: Mapping[str, Any], tensors: Mapping[str, torch.Tensor],
                    arch: str | None = None) -> AnyGenerator:
    """Our generator with ``tensors`` loaded (every name must match), in eval mode without
    gradients. ``arch`` None: told from the tensor names. Raises ``ValueError`` saying what
    does not fit."""
    arch = arch or detect_arch(tensors, init_kwargs.get("class_name"))
    kw = generator_kwargs(arch, init_kwargs)
    try:
        G = ARCHS[arch](**kw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot build a {arch} generator from {kw}: {exc}") from None
    try:
        result = G.load_state_dict(dict(tensors), strict=False)
    except RuntimeError as exc:  # a shape that does not fit
        raise ValueError(f"the tensors do not fit a {arch} generator built from its keywords: "
                         f"{str(exc).strip().splitlines()[-1].strip()}") from None
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"the tensors do not fit a {arch} generator built from its keywords; "
                         f"missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}")
    return G.eval().requires_grad_(False)
