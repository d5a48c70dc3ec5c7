"""The loops flowml is measured against, written the way people write them today.

``naive``: what a TouchDesigner Script TOP or a first script does: pageable copies, the default
stream, a host sync every frame. ``tuned``: what an expert writes by hand: pinned buffers, separate
upload / compute / download streams, ``depth`` frames in flight.
Both download the model's float output, as flowml's host sink does.
"""

from __future__ import annotations

import time
from typing import Callable, Iterator, Sequence

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


def _paced(n: int, fps: float) -> Iterator[int]:
    """``range(n)``, each step released at its time on a ``1/fps`` s grid (live pacing)."""
    next_at = time.perf_counter()
    for i in range(n):
        next_at += 1 / fps
        time.sleep(max(0.0, next_at - time.perf_counter()))
        yield i


def latency(frames: Sequence, model: Callable, n: int, fps: float) -> np.ndarray:
    """Host frame in to uint8 host frame out, ms, one frame at a time every ``1/fps`` s, as
    tight as a hand-written loop gets: a preallocated pinned buffer in and out, one sync.
    Frames already in pinned memory are uploaded from where they are."""
    from ..gpu.transfer import to_uint8_bhwc

    pin_in = torch.empty(frames[0].shape, dtype=torch.uint8, pin_memory=True)
    with torch.inference_mode():
        out_shape = to_uint8_bhwc(model(_to_input(pin_in.cuda()))).shape
    pin_out = torch.empty(out_shape, dtype=torch.uint8, pin_memory=True)
    torch.cuda.synchronize()
    times = []
    for i in _paced(n, fps):
        t0 = time.perf_counter()
        frame = torch.from_numpy(frames[i % len(frames)])
        if not frame.is_pinned():
            pin_in.numpy()[...] = frames[i % len(frames)]  # numpy's copy: no torch CPU threads
            frame = pin_in
        with torch.inference_mode():
            y = model(_to_input(frame.cuda(non_blocking=True)))
            pin_out.copy_(to_uint8_bhwc(y), non_blocking=True)
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1000)
    return np.array(times)


def paced_ms(fn: Callable[[], object], n: int, fps: float) -> np.ndarray:
    """Host ms of ``fn()`` and a sync, called once every ``1/fps`` s (the GPU idles between
    calls, as it does for live input): a model's own latency under the latency scenario's
    conditions, with no transfer."""
    times = []
    with torch.inference_mode():
        for _ in _paced(n, fps):
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            times.append((time.perf_counter() - t0) * 1000)
    return np.array(times)


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


def graphed(fn: Callable[[torch.Tensor], object], x: torch.Tensor) -> Callable[[], None]:
    """``fn(x)`` captured once as a CUDA graph (after a warm-up); returns its replay."""
    static, side = x.clone(), torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.inference_mode():
        with torch.cuda.stream(side):
            for _ in range(3):
                fn(static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn(static)
    return graph.replay


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
