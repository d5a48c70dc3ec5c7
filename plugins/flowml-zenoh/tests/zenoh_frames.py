"""Functions the test graphs run as ``python.function`` nodes: frames whose every byte follows
from their index (so a receiver can check every byte), a checker that logs what arrived, and a
sleep that makes a receiver slow.

Frame ``i`` is the (1, 3, H, W) uint8 window at offset ``i mod 4093`` of one long random byte
string of ``seed``: a byte in the wrong place, a frame of another index or a torn frame all
differ, and making a frame costs nothing (a view), so the tests measure the transport.
"""

from __future__ import annotations

import json
import time

import torch

SHIFTS = 4093  # a prime: frames 0..4092 are all different
_BASES: dict[tuple[int, int, str], torch.Tensor] = {}


def expected(index: int, seed: int, width: int, height: int, device: str = "cpu") -> torch.Tensor:
    n = 3 * width * height
    if (seed, n, device) not in _BASES:
        g = torch.Generator().manual_seed(seed)
        base = torch.randint(0, 256, (n + SHIFTS,), generator=g, dtype=torch.uint8)
        _BASES[(seed, n, device)] = base.to(device)
    at = index % SHIFTS
    return _BASES[(seed, n, device)][at:at + n].view(1, 3, height, width)


def frame(*, ctx, seed: int, width: int, height: int, device: str = "cpu") -> torch.Tensor:
    """The sender's source: frame ``ctx.tick.index`` (on ``device``: cuda tests send from the GPU)."""
    return expected(ctx.tick.index, seed, width, height, device)


def check(frame, meta, *, seed: int, log: str) -> None:
    """Append ``{index, seq, ok, latency_ms, dropped}`` for the frame that arrived to ``log``."""
    want = expected(meta["index"], seed, frame.shape[-1], frame.shape[-2], str(frame.device))
    ok = (frame.dtype == torch.uint8 and tuple(frame.shape) == tuple(want.shape)
          and torch.equal(frame, want))
    with open(log, "a") as f:
        f.write(json.dumps({"index": meta["index"], "seq": meta["seq"], "ok": ok,
                            "device": str(frame.device), "latency_ms": meta["latency_ms"],
                            "dropped": meta["dropped"]}) + "\n")


def slow(frame, meta, *, seconds: float):
    """Hold the receiving graph up for ``seconds`` a frame (on the dispatcher: a slow receiver)."""
    time.sleep(seconds)
    return {"frame": frame, "meta": meta}
