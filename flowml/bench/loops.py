"""The loops flowml is measured against, written the way people write them today.

``naive``: what a TouchDesigner Script TOP or a first script does: pageable copies, the default
stream, a host sync every frame. ``tuned``: what an expert writes by hand: pinned buffers, separate
upload / compute / download streams, ``depth`` frames in flight.
Both download the model's float output, as flowml's host sink does.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np
import torch


def _to_input(t: torch.Tensor) -> torch.Tensor:
    from ..gpu.transfer import hwc_uint8_to_image

    return hwc_uint8_to_image(t)  # the same conversion flowml's sources use


def naive(frames: Sequence, model: Callable, n: int, decode: Callable | None = None) -> float:
    """Frames per second of the naive loop over ``n`` frames."""
    t0 = time.perf_counter()
    for i in range(n):
        f = frames[i % len(frames)]
        if decode is not None:
            f = decode(f)
        x = _to_input(torch.from_numpy(f).cuda())
        with torch.inference_mode():
            y = model(x)
        y.cpu()  # pageable download: syncs the host every frame
    return n / (time.perf_counter() - t0)


def tuned(frames: Sequence, model: Callable, n: int, decode: Callable | None = None,
          depth: int = 3) -> float:
    """Frames per second of the hand-tuned pipelined loop over ``n`` frames."""
    first = frames[0] if decode is None else decode(frames[0])
    up, comp, down = (torch.cuda.Stream() for _ in range(3))
    pin_in = [torch.empty(first.shape, dtype=torch.uint8, pin_memory=True) for _ in range(depth)]
    with torch.inference_mode():
        out_shape = model(_to_input(torch.from_numpy(first).cuda())).shape
    pin_out = [torch.empty(out_shape, dtype=torch.float32, pin_memory=True) for _ in range(depth)]
    done: list[torch.cuda.Event | None] = [None] * depth
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(n):
        s = i % depth
        if done[s] is not None:
            done[s].synchronize()  # slot s is free once frame i - depth is on the host
        f = frames[i % len(frames)]
        if decode is not None:
            f = decode(f)
        pin_in[s].numpy()[...] = f
        with torch.cuda.stream(up):
            g = pin_in[s].cuda(non_blocking=True)
            e_up = torch.cuda.Event()
            e_up.record(up)
        with torch.cuda.stream(comp), torch.inference_mode():
            comp.wait_event(e_up)
            g.record_stream(comp)
            y = model(_to_input(g))
            e_c = torch.cuda.Event()
            e_c.record(comp)
        with torch.cuda.stream(down):
            down.wait_event(e_c)
            y.record_stream(down)
            pin_out[s].copy_(y, non_blocking=True)
            done[s] = torch.cuda.Event()
            done[s].record(down)
    for e in done:
        if e is not None:
            e.synchronize()
    return n / (time.perf_counter() - t0)


def gpu_ms(fn: Callable[[], object], reps: int = 20) -> float:
    """Median GPU time of ``fn`` in ms, from CUDA events (after a warm-up)."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return float(np.median(times))


def host_ms(fn: Callable[[], object], reps: int = 20) -> float:
    """Median host time of ``fn`` in ms."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def calls_per_s(fn: Callable[[], object], n: int = 100) -> float:
    """Calls of ``fn`` per second back to back, GPU work included (after a warm-up), under
    inference mode."""
    with torch.inference_mode():
        for _ in range(10):
            fn()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)
