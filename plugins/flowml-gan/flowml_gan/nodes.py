"""The ``stylegan.latent`` and ``stylegan.generator`` nodes."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Literal, Optional

from pydantic import field_validator, model_validator

import flowml
from flowml import IMAGE, TENSOR, Field, Node, NodeError, Output, Ports
from flowml.lazy import lazy_import
from flowml_torch.specs import EDITS_HELP, EditSpec, check_edits, check_taps

torch = lazy_import("torch")

__all__ = ["StyleGANLatent", "StyleGANGenerator", "EditSpec", "seed_z"]

SNAPSHOT_HELP = ("snapshot file, relative to the graph file: an official StyleGAN2 or StyleGAN3 .pkl "
                 "(read without running its code), a .pt from flowml_gan.snapshot.save_pt or a "
                 ".safetensors state dict with its init kwargs (flowml_gan.safetensors_io)")


def _load(node: Node, path: str, key: str) -> Any:
    from .safetensors_io import load_generator_safetensors
    from .snapshot import SnapshotError, load_generator

    try:
        if path.endswith(".safetensors"):
            G = load_generator_safetensors(node.ctx.resolve(path), shown_as=path)
        else:
            G = load_generator(node.ctx.resolve(path), key=key, shown_as=path)
    except SnapshotError as exc:
        raise NodeError(str(exc)) from None
    return G.to(node.ctx.torch_device)


def seed_z(seed: int, z_dim: int) -> "torch.Tensor":
    """z ``(1, z_dim)`` float32 for an integer seed, as NVIDIA's ``generate.py`` makes it
    (``numpy.random.RandomState(seed).randn``), so seed N gives the image their seed N gives."""
    import numpy as np

    return torch.from_numpy(np.random.RandomState(seed).randn(1, z_dim)).float()


class StyleGANLatent(Node):
    """StyleGAN2/3 w from a seed: ``w`` (1, num_ws, w_dim), truncated towards ``w_avg``.

    z is made from the integer seed as NVIDIA's ``generate.py`` does, and mapped by the
    snapshot's mapping network. A fractional seed blends the w of its two neighbouring integer
    seeds (2.25 is 3/4 of seed 2's w and 1/4 of seed 3's), so a seed driven by time or OSC
    glides between images. ``psi`` pulls w towards the average w (1: none, 0: the average
    image); ``cutoff`` limits that to the first ws (coarse layers). With ``keyframes`` the
    seed is a position in that list of seeds instead (1.5: half-way from the second to the
    third, wrapping around to the first after the last). The w of the last 64 seeds
    are kept, so a gliding seed maps each integer seed once.

    ``z_input: true`` adds an input ``z`` used instead of the seed, every frame: a tensor
    ``(B, z_dim)`` (an OSC vector, audio features), or an image ``(B, C, H, W)`` with
    ``H * W == z_dim`` (TouchDesigner's 1x512 noise image), whose first channel in [0, 1] is
    taken as ``2 * x - 1``. The mapping network normalises z's scale, not its offset.

    ``pure``: while its params and its ``z`` stay the same, it is not called again, and the
    generator gets the same ``w``.
    """

    type_name = "stylegan.latent"
    outputs = (Output("w", TENSOR, "(B, num_ws, w_dim) float32"),)
    pure = True

    class Params(flowml.Params):
        path: str = Field(file="input", rebuild=True, description=SNAPSHOT_HELP)
        seed: float = Field(0.0, ge=0, le=2**32 - 2, description=(
            "the image's seed; a fraction blends seed floor(s) into floor(s)+1 in W"))
        psi: float = Field(1.0, ge=-2.0, le=2.0, description="truncation psi around w_avg; 1: none")
        cutoff: Optional[int] = Field(None, ge=0, description="truncate only the first ws; none: all")
        network: Literal["G_ema", "G"] = Field("G_ema", rebuild=True, description=(
            "which network of a training snapshot: G_ema (the averaged weights, usual) or G"))
        keyframes: list[int] = Field([], description=(
            "seeds to travel through: seed s then blends keyframes[floor(s)] into the next "
            "(wrapping around), e.g. [3, 17, 42] with seed {expr: t * 0.2}"))
        z_input: bool = Field(False, live=False, description=(
            "take z from an input port `z` instead of the seed: (B, z_dim), or an image whose "
            "H*W is z_dim (its first channel, [0, 1] -> [-1, 1])"))

    @classmethod
    def ports(cls, params: Params) -> Ports:
        from flowml import Input

        inputs = (Input("z", TENSOR, "(B, z_dim) or an image (B, C, H, W), H*W = z_dim"),) \
            if params.z_input else ()  # type: ignore[attr-defined]
        return Ports(inputs, cls.outputs)

    def setup(self, ctx: flowml.NodeContext) -> None:
        G = _load(self, self.params.path, self.params.network)
        self.mapping = G.mapping
        self.num_ws, self.w_dim = G.num_ws, G.w_dim
        if G.c_dim:
            raise NodeError(f"{self.params.path} is a conditional network (c_dim {G.c_dim}); "
                            "stylegan.latent makes w for unconditional ones only")
        self._ws: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._last: tuple[Any, torch.Tensor] | None = None

    def _w(self, seed: int) -> "torch.Tensor":
        w = self._ws.get(seed)
        if w is None:
            z = seed_z(seed, self.mapping.z_dim).to(self.ctx.torch_device)
            with torch.inference_mode():
                w = self.mapping(z, None)
            self._ws[seed] = w
            if len(self._ws) > 64:
                self._ws.popitem(last=False)
        else:
            self._ws.move_to_end(seed)
        return w

    def _z(self, z: Any) -> "torch.Tensor":
        zd = self.mapping.z_dim
        if isinstance(z, torch.Tensor) and z.ndim == 2 and z.shape[1] == zd:
            return z.to(device=self.ctx.torch_device, dtype=torch.float32)
        if isinstance(z, torch.Tensor) and z.ndim == 4 and z.shape[2] * z.shape[3] == zd:
            x = z[:, 0].reshape(z.shape[0], zd)
            return x.to(device=self.ctx.torch_device, dtype=torch.float32) * 2 - 1
        got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise NodeError(f"z must be (B, {zd}) or an image (B, C, H, W) with H*W = {zd}, got {got}")

    def process(self, z: Any = None) -> dict[str, Any]:
        from .stylegan2 import truncate

        p = self.params
        if p.z_input:
            with torch.inference_mode():
                w = self.mapping(self._z(z), None)
                if p.psi != 1:
                    w = truncate(w, self.mapping.w_avg, p.psi, p.cutoff)
            return {"w": w}
        key = (p.seed, p.psi, p.cutoff, tuple(p.keyframes))
        if self._last is not None and self._last[0] == key:
            return {"w": self._last[1]}
        base = math.floor(p.seed)
        frac = p.seed - base
        a, b = base, base + 1
        if p.keyframes:
            n = len(p.keyframes)
            a, b = p.keyframes[base % n], p.keyframes[(base + 1) % n]
        with torch.inference_mode():
            w = self._w(a)
            if frac > 0:
                w = torch.lerp(w, self._w(b), frac)
            if p.psi != 1:
                w = truncate(w, self.mapping.w_avg, p.psi, p.cutoff)
        self._last = (key, w)
        return {"w": w}


class StyleGANGenerator(Node):
    """StyleGAN2 or StyleGAN3 (T, R) synthesis: ``w`` (B, num_ws, w_dim) -> ``image``
    (B, 3, H, W) in [0, 1].

    Our generators (plain PyTorch, NVIDIA's weights; see the plugin's README). ``taps`` add one
    tensor output per named layer (``synthesis.b16.conv1``, or ``l16=synthesis.b16`` to name
    the port; ``name:i`` picks the i-th tensor of a block's ``(x, img)``; StyleGAN3's ``L6``
    is short for the one layer ``L6_<size>_<channels>``); the default port name is the
    layer's with ``_`` for ``.``. When the graph wires taps but not ``image`` (or with
    ``image: false``) the synthesis stops after the last tap. ``edits`` change weights live, each recomputed
    from the kept original (never compounding) and written into the same storage, on the
    node's stream, so a captured generator (``cuda_graph: true``) keeps replaying its graph;
    an edit taken out of the list restores the original exactly. Each edit's value is a live
    param of its own (``/gen/edits/0/value``) and may follow an expression in the graph file
    (``value: {expr: "sin(t)"}``). ``precision: mixed`` is the fp16 choice: the snapshot's
    fp16 layers (those NVIDIA trained in fp16, with their activation clamp) run in fp16, the
    rest in fp32, as NVIDIA's own code runs them (a GPU choice; on the CPU all is fp32).
    """

    type_name = "stylegan.generator"

    class Params(flowml.Params):
        path: str = Field(file="input", rebuild=True, description=SNAPSHOT_HELP)
        network: Literal["G_ema", "G"] = Field("G_ema", rebuild=True, description=(
            "which network of a training snapshot: G_ema (usual) or G"))
        noise_mode: Literal["const", "random", "none"] = Field(
            "const", description="per-pixel noise: the snapshot's fixed noise, new each frame, or none")
        precision: Literal["fp32", "mixed"] = Field(
            "fp32", description=("fp32 everywhere, or mixed: the layers the snapshot was trained "
                                 "in fp16 run in fp16, the others in fp32 (GPU)"))
        taps: list[str] = Field([], live=False, description=(
            "layers whose outputs become tensor ports, e.g. [synthesis.b16.conv1, l32=synthesis.b32:0]"))
        image: bool = Field(True, live=False, description=(
            "compute and output the image; false: only the taps, stopping after the last one"))
        edits: list[dict[str, Any]] = Field([], in_place=True, parts=("value",),
                                            description=EDITS_HELP)

        @field_validator("edits")
        @classmethod
        def _edits(cls, edits: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return check_edits(edits)  # checked by EditSpec, kept as plain dicts

        @field_validator("taps")
        @classmethod
        def _taps(cls, taps: list[str]) -> list[str]:
            return check_taps(taps, {"image"})

        @model_validator(mode="after")
        def _something_out(self) -> "StyleGANGenerator.Params":
            if not self.image and not self.taps:
                raise ValueError("image: false needs taps: name the layers to output")
            return self

    @classmethod
    def ports(cls, params: Params) -> Ports:
        from flowml import Input
        from flowml_torch.specs import parse_tap

        taps = tuple(Output(parse_tap(t)[0], TENSOR, f"the output of {parse_tap(t)[1]}")
                     for t in params.taps)  # type: ignore[attr-defined]
        image = (Output("image", IMAGE, "(B, 3, H, W) RGB in [0, 1]"),) if params.image else ()  # type: ignore[attr-defined]
        return Ports((Input("w", TENSOR, "(B, num_ws, w_dim) from stylegan.latent"),), image + taps)

    def setup(self, ctx: flowml.NodeContext) -> None:
        from .taps import Taps, WeightEdits

        p = self.params
        self.G = _load(self, p.path, p.network)
        self.synthesis = self.G.synthesis
        try:
            # NVIDIA's visualizer names layers relative to G.synthesis ("b16.conv1", "b16:0",
            # "output"): those work as they are, beside full names ("synthesis.b16.conv1")
            taps = [_full_tap_name(self.G, t) for t in p.taps]
            self.taps = Taps(self.G, taps, also_under=("synthesis",), aliases={"output": "synthesis"})
        except ValueError as exc:
            raise NodeError(f"{p.path}: {exc}") from None
        outside = [n for n in self.taps.names.values() if not n.startswith("synthesis")]
        if outside:
            self.taps.remove()
            raise NodeError(f"taps {outside}: the generator runs only the synthesis network (it "
                            "takes w); tap layers under synthesis")
        self.edits = WeightEdits(self.G)
        self._set_edits(p.edits)

    def _set_edits(self, edits: list[dict[str, Any]]) -> None:
        """Write ``edits`` in place (a wrong name: NodeError with the closest, nothing changed)."""
        try:
            self.edits.set(edits)
        except ValueError as exc:
            raise NodeError(f"{self.params.path}: {exc}") from None

    def on_params(self, old: flowml.Params, new: flowml.Params) -> None:
        if old.edits != new.edits:  # type: ignore[attr-defined]
            # in place, on the node's CUDA stream (current during on_params): after the frames
            # queued before, ahead of the next one, which a captured graph replays unchanged
            self._set_edits(new.edits)  # type: ignore[attr-defined]

    def _image_wanted(self) -> bool:
        """Not when ``image: false``, nor when the graph reads some taps and not the image
        (``ctx.wired``, read each call: a rewiring while the graph runs keeps this node)."""
        p, wired = self.params, self.ctx.wired
        return p.image and not (p.taps and wired and "image" not in wired)

    def process(self, w: Any) -> dict[str, Any]:
        from .taps import TapsDone

        p = self.params
        s = self.synthesis
        if not isinstance(w, torch.Tensor) or w.ndim != 3 or tuple(w.shape[1:]) != (s.num_ws, s.w_dim):
            got = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
            raise NodeError(f"w must be (B, {s.num_ws}, {s.w_dim}) for {p.path}, got {got}; "
                            "make it with stylegan.latent on the same snapshot")
        w = w.to(device=self.ctx.torch_device, dtype=torch.float32)
        self.taps.values.clear()
        image_wanted = self._image_wanted()
        self.taps.stop_when_done = not image_wanted   # the rest is not computed after the last tap
        out: dict[str, Any] = {}
        with torch.inference_mode():
            try:
                img = s(w, noise_mode=p.noise_mode, force_fp32=p.precision == "fp32")
                if image_wanted:
                    out["image"] = (img * 0.5 + 0.5).clamp(0, 1)
            except TapsDone:  # the image is not wanted, the last tap is in: the rest is not computed
                pass
        out.update(self.taps.values)
        return out

    def teardown(self) -> None:
        taps = getattr(self, "taps", None)
        if taps is not None:
            taps.remove()


def _full_tap_name(G: Any, spec: str) -> str:
    """``spec`` with each dotted part that is not a child's name but the start of exactly one
    (``L6`` -> ``L6_148_1024``: StyleGAN3 names layers ``L{i}_{size}_{channels}``) made the
    full name; the port stays as written (``L6``). Other names are left for ``Taps`` to check
    (a relative one made full, so that its error lists full names)."""
    from flowml_torch.specs import parse_tap

    port, name, index = parse_tap(spec)
    root = G if name.split(".")[0] in dict(G.named_children()) else G.synthesis
    parts, module = [], root
    for part in name.split("."):
        children = dict(module.named_children())
        if part not in children:
            matches = [c for c in children if c.startswith(part + "_")]
            if len(matches) > 1:
                raise ValueError(f"tap {spec!r}: {part!r} could be any of {matches}; write one")
            if not matches:  # for Taps to refuse, with the closest full names
                relative = root is G.synthesis and name != "output"
                return f"{port}=synthesis.{spec.partition('=')[2] or spec}" if relative else spec
            part = matches[0]
        parts.append(part)
        module = children[part]
    full = ".".join(parts)
    if full == name:
        return spec
    return f"{port}={full}" + (f":{index}" if index is not None else "")
