"""clip3d_bench's measure, on the CPU with tiny frames: one run, its warm-up left out, exactly
the measured ticks counted (frames, the runtime's completions, each node's calls)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import clip3d_bench as bench  # noqa: E402
from flowml_analytics.ring import due_in  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.filterwarnings("ignore::FutureWarning")]


class Mean(torch.nn.Module):
    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return clip.mean(dim=(2, 3, 4))[:, :1].expand(-1, 400) * torch.arange(400.0)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "W", 40)
    monkeypatch.setattr(bench, "H", 24)
    monkeypatch.setattr(bench, "RESIZE", (12, 16))
    monkeypatch.setattr(bench, "CROP", (8, 8))
    model = tmp_path / "mean.pt"
    torch.jit.save(torch.jit.script(Mean()), str(model))
    return tmp_path, model


@pytest.mark.parametrize("stride, batch, frames", [(8, 64, 400), (1, 8, 100), (8, 1, 100), (1, 1, 60)])
def test_one_run_counts_its_measured_ticks_only(tiny, stride, batch, frames):
    tmp, model = tiny
    nodes: dict = {}
    r = bench.flowml_run(tmp, model, stride, frames, False, batch, device="cpu", node_us=nodes)
    warm = bench.warm_ticks(stride, batch)
    assert warm >= bench.WARM_TICKS and warm * batch >= bench.T - 1 + bench.WARM_CLIPS * stride
    ticks = max(bench.MEASURED_TICKS, -(-frames // batch))  # 400 frames at K = 64: 48 ticks, not 6
    assert r["ticks"] == ticks and r["completions_seen"] == ticks
    assert nodes["clip"]["calls"] == ticks and nodes["clip"]["skipped"] == 0
    with_clips = sum(1 for i in range(warm, warm + ticks)
                     if len(due_in(i * batch, batch, bench.T, stride)) > 0)
    assert nodes["model"]["calls"] == with_clips and nodes["model"]["calls"] + nodes["model"]["skipped"] == ticks
    assert r["wall_fps"] == pytest.approx(ticks * batch / r["seconds"])
    assert r["fps"] > 0 and r["host_cpu_us_a_tick"] > 0 and r["captures"] is None
