"""examples/train_superres.py runs: a few training steps on the CPU, on the clips it makes itself
(flowml-av's encoder), through flowml.data's loader (a smoke test: it must stay fast)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_superres.py"


def test_train_superres_example_trains_a_few_steps_on_the_cpu():
    spec = importlib.util.spec_from_file_location("train_superres", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = example.main(["--steps", "4", "--batch", "2", "--crop", "32", "--device", "cpu", "--clip-frames", "16"])
    assert len(out["losses"]) == 4 and all(math.isfinite(x) and x > 0 for x in out["losses"])
    assert out["decoder"] == "cpu" and out["samples_per_s"] > 0
    assert out["shapes"]["input"] == (2, 5, 3, 8, 8) and out["shapes"]["target"] == (2, 1, 3, 32, 32)
    assert out["shapes"]["index"] == (2,)
