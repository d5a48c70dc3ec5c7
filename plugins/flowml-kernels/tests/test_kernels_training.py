"""A KPN training step: a tiny UNet predicts N*N weights, WeightedFilter applies them, L1."""

from __future__ import annotations

import torch
from torch import nn

from flowml_kernels import WeightedFilter


class TinyUNet(nn.Module):
    """(B, C, H, W) noisy image -> (B, N*N, H, W) kernel logits; H, W even."""

    def __init__(self, c: int = 3, n: int = 5, width: int = 16):
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(c, width, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU())
        self.up = nn.Sequential(nn.ConvTranspose2d(width, width, 2, stride=2), nn.ReLU())
        self.head = nn.Conv2d(width + c, n * n, 3, padding=1)

    def forward(self, x):
        return self.head(torch.cat([self.up(self.down(x)), x], dim=1))


class Kpn(nn.Module):
    def __init__(self, n: int = 5, splat: bool = False):
        super().__init__()
        self.net = TinyUNet(n=n)
        self.filter = WeightedFilter(n, splat=splat)

    def forward(self, noisy):
        return self.filter(noisy, torch.softmax(self.net(noisy), dim=1))


def train(device: str, steps: int = 12, splat: bool = False) -> list[float]:
    """Denoise smooth images: returns the L1 loss of each step."""
    torch.manual_seed(0)
    model = Kpn(splat=splat).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    clean = torch.stack([xx, yy, 0.5 * (xx + yy)]).expand(4, 3, 32, 32).to(device)
    noisy = (clean + 0.2 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))
             .to(device))
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = (model(noisy) - clean).abs().mean()
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
        opt.step()
        losses.append(loss.item())
    return losses


def test_kpn_training_step_lowers_the_loss_on_cpu():
    for splat in (False, True):
        losses = train("cpu", splat=splat)
        assert losses[-1] < 0.9 * losses[0], losses
