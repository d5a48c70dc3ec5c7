"""The demo's model, made with no download and no training: ``flowml.models.toon.build(folder)``.

``Toon``: a cartoon look made of hand-set convolutions (no random weights): colours smoothed and
posterised into bands, outlined with dark Sobel edges. Written as TorchScript (``toon.pt``, for
``torch.jit.load``) and, unless ``export=False``, as a torch.export program (``toon.pt2``, for
``torch.export.load``), both taking any batch and picture size.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn


class Toon(nn.Module):
    """``(B, 3, H, W)`` RGB in [0, 1] -> ``(B, 3, H, W)``: posterised colours with ink lines."""

    def __init__(self, levels: int = 6, edge_threshold: float = 0.06, edge_gain: float = 12.0,
                 band_sharpness: float = 30.0):
        super().__init__()
        self.edge_threshold, self.edge_gain = edge_threshold, edge_gain
        steps = levels - 1

        # 5x5 binomial blur per channel, as a row pass and a column pass (cheaper than 5x5):
        # it flattens texture so that bands and lines stay clean
        taps = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16
        self.blur_x = nn.Conv2d(3, 3, (1, 5), padding=(0, 2), groups=3, bias=False, padding_mode="replicate")
        self.blur_y = nn.Conv2d(3, 3, (5, 1), padding=(2, 0), groups=3, bias=False, padding_mode="replicate")
        self.blur_x.weight.data[:] = taps.view(1, 1, 1, 5)
        self.blur_y.weight.data[:] = taps.view(1, 1, 5, 1)

        # posterise as a soft staircase: sum over k of sigmoid(s * (x * steps - k + 0.5)) / steps
        self.steps = nn.Conv2d(3, 3 * steps, 1, groups=3)
        self.steps.weight.data[:] = band_sharpness * steps
        self.steps.bias.data[:] = -band_sharpness * (torch.arange(steps) + 0.5).repeat(3)
        self.bands = nn.Conv2d(3 * steps, 3, 1, groups=3, bias=False)
        self.bands.weight.data[:] = 1.0 / steps

        # edges: Rec. 601 luma, then Sobel x and y, scaled so a step from 0 to 1 reads 1
        self.luma = nn.Conv2d(3, 1, 1, bias=False)
        self.luma.weight.data[:] = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        self.sobel = nn.Conv2d(1, 2, 3, padding=1, bias=False, padding_mode="replicate")
        gx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 4
        self.sobel.weight.data[:] = torch.stack([gx, gx.T])[:, None]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        smooth = self.blur_y(self.blur_x(image))
        poster = self.bands(torch.sigmoid(self.steps(smooth)))
        grad = self.sobel(self.luma(smooth))
        edges = torch.sqrt(grad[:, :1] ** 2 + grad[:, 1:] ** 2 + 1e-8)
        ink = 1.0 - ((edges - self.edge_threshold) * self.edge_gain).clamp(0.0, 1.0)
        return (poster * ink).clamp(0.0, 1.0)


def ignore_jit_warnings() -> None:
    """torch 2.13 deprecates TorchScript (a DeprecationWarning, a FutureWarning from 2.14); many
    tools still load it (BGMv2 ships in it). Call inside ``warnings.catch_warnings()``."""
    for category in (DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", "`torch.jit", category)


def build(out: Path, export: bool = True) -> list[Path]:
    """Write ``toon.pt`` (and ``toon.pt2`` if ``export``) into ``out``; return their paths.
    Each file is loaded back and checked against the module it came from."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = Toon().eval().requires_grad_(False)
    # batch 2: an example batch of 1 would fix the exported batch size to 1
    example = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    expected = model(example)

    scripted = out / "toon.pt"
    with warnings.catch_warnings():
        ignore_jit_warnings()
        torch.jit.save(torch.jit.script(model), str(scripted))
        loaded = [("TorchScript", torch.jit.load(str(scripted)))]
    paths = [scripted]
    if export:
        exported = out / "toon.pt2"
        dynamic = {"image": {0: torch.export.Dim.DYNAMIC, 2: torch.export.Dim.DYNAMIC,
                             3: torch.export.Dim.DYNAMIC}}
        program = torch.export.export(model, (example,), dynamic_shapes=dynamic)
        torch.export.save(program, str(exported))
        loaded.append(("torch.export", torch.export.load(str(exported)).module()))
        paths.append(exported)
    for name, module in loaded:  # both files must reproduce the module they came from
        if not torch.allclose(module(example), expected, atol=1e-5):
            raise RuntimeError(f"{name} model does not match the module it was exported from")
    return paths
