"""``output.ndi`` against cyndilib's ``Sender`` alone, in the same run: frames a second received
by a second NDI receiver (another process, cyndilib, over 127.0.0.1).

    python plugins/flowml-ndi/benchmarks/ndi_vs_sender.py                    # 720p and 1080p, 30 fps
    python plugins/flowml-ndi/benchmarks/ndi_vs_sender.py --seconds 20 --rounds 3 --fps 60

Each round, for each size: cyndilib's ``Sender`` alone sends ready RGBX frames (the best any
Python NDI sender can do: NDI compresses on its own threads), then ``output.ndi`` sends the
same pictures as a graph hands them over: ``(1, 3, H, W)`` float images through the
scheduler's host conversion (``Input(uint8=True, channels=4)``: float -> RGBX uint8 on the
device the image is on, here the CPU, packed in the same pass), then ``write_video_async``. Both are paced at ``--fps`` as
a live clock would, and, as a live sink does, a frame that comes while the last is still
being sent is skipped. The receiver counts the distinct frames it sees for ``--seconds``.
``--device cuda`` runs the flowml side from CUDA images (the GPU path: conversion and RGBX
packing on the GPU, pinned download). If ``NDI_CONFIG_DIR`` is not set, a loopback config is written.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from ndi_send import RECEIVER, frames  # noqa: E402  (the receiver process and the test pictures)


def cpu_seconds() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def paced(send, count: int, fps: float, seconds: float, rx: subprocess.Popen, connected) -> dict:
    """Call ``send(k)`` at ``fps`` until the receiver is done; a call that runs past its slot
    skips the slots it missed (live-sink behaviour). Returns sent/skipped counts and CPU."""
    period = 1.0 / fps
    deadline = time.monotonic() + 30
    while not connected() and time.monotonic() < deadline and rx.poll() is None:  # receiver connects
        send(0)
        time.sleep(period)
    sent = skipped = 0
    calls: list[float] = []
    cpu0, start = cpu_seconds(), time.perf_counter()
    slot = 0
    limit = time.monotonic() + seconds + 60
    while rx.poll() is None and time.monotonic() < limit:
        t0 = time.perf_counter()
        send(slot % count)
        calls.append(time.perf_counter() - t0)
        sent += 1
        due = int((time.perf_counter() - start) / period) + 1
        skipped += max(0, due - slot - 1)
        slot = max(slot + 1, due)
        wait = start + slot * period - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
    wall = time.perf_counter() - start
    out = rx.communicate(timeout=60)[0].split()
    received = int(out[-1]) if out and out[-1].isdigit() else 0
    calls.sort()
    return {"received_fps": received / seconds, "sent": sent, "skipped": skipped,
            "call_ms_p50": statistics.median(calls) * 1e3 if calls else 0.0,
            "cpu_ms_per_frame": (cpu_seconds() - cpu0) / max(1, sent) * 1e3, "wall": wall}


def receiver(name: str, seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", RECEIVER, name, str(seconds)],
                            stdout=subprocess.PIPE, text=True)


def run_sender_alone(width: int, height: int, fps: float, seconds: float, clip: list[np.ndarray]) -> dict:
    from cyndilib import FourCC, Sender, VideoSendFrame

    name = f"alone-{os.getpid()}-{width}"
    frame = VideoSendFrame()
    frame.set_resolution(width, height)
    frame.set_frame_rate(Fraction(fps).limit_denominator(1001))
    frame.set_fourcc(FourCC.RGBX)
    sender = Sender(name, clock_video=False)
    sender.set_video_frame(frame)
    sender.open()
    try:
        rx = receiver(name, seconds)
        return paced(lambda k: sender.write_video_async(clip[k]), len(clip), fps, seconds, rx,
                     lambda: sender.get_num_connections(0) > 0)
    finally:
        sender.close()


def run_output_ndi(width: int, height: int, fps: float, seconds: float, images: list[torch.Tensor]) -> dict:
    from flowml.testing import NodeHarness
    from flowml_ndi.sender import NdiSender

    name = f"flowml-{os.getpid()}-{width}"
    device = str(images[0].device)
    with NodeHarness(NdiSender, {"name": name, "fps": fps}, mode="live", device=device) as h:
        rx = receiver(name, seconds)

        def send(k: int) -> None:
            if images[k].is_cuda:  # what the scheduler does for a GPU graph's uint8 sink input
                from flowml.gpu.transfer import start_download

                stream = torch.cuda.current_stream()
                h.process(image=start_download(images[k], [], stream, uint8=True, channels=4).wait())
            else:
                h.process(image=images[k])  # the harness converts as the scheduler does (host_ready)

        return paced(send, len(images), fps, seconds, rx, lambda: h.node.connections > 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1280x720,1920x1080")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda for output.ndi's GPU path")
    args = ap.parse_args()
    if "NDI_CONFIG_DIR" not in os.environ:
        from flowml_ndi.common import write_loopback_config

        os.environ["NDI_CONFIG_DIR"] = tempfile.mkdtemp(prefix="ndi-bench-")
        write_loopback_config(os.environ["NDI_CONFIG_DIR"])
    print(f"output.ndi vs cyndilib Sender alone, {args.fps:g} fps, {args.seconds:g} s a run, "
          f"{args.rounds} rounds, flowml side on {args.device} "
          f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{datetime.date.today()})")
    results: dict[tuple[str, str], list[dict]] = {}
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    for width, height in sizes:
        pictures = frames(width, height, 30)
        clip = [np.ascontiguousarray(np.concatenate(
            [f[0].numpy(), np.full((height, width, 1), 255, np.uint8)], 2)).reshape(-1) for f in pictures]
        images = [f[0].permute(2, 0, 1)[None].float().div(255).contiguous().to(args.device) for f in pictures]
        for _ in range(args.rounds):
            for what, fn, data in (("Sender alone", run_sender_alone, clip), ("output.ndi", run_output_ndi, images)):
                r = fn(width, height, args.fps, args.seconds, data)
                results.setdefault((f"{width}x{height}", what), []).append(r)
                print(f"  {width}x{height} {what:13s} received {r['received_fps']:5.1f} fps | sent "
                      f"{r['sent']}, skipped {r['skipped']}, call p50 {r['call_ms_p50']:.2f} ms, "
                      f"CPU {r['cpu_ms_per_frame']:.1f} ms/frame (this process)", flush=True)
    print("summary (mean received fps over rounds):")
    for width, height in sizes:
        size = f"{width}x{height}"
        alone = statistics.mean(r["received_fps"] for r in results[(size, "Sender alone")])
        ours = statistics.mean(r["received_fps"] for r in results[(size, "output.ndi")])
        print(f"  {size}: Sender alone {alone:.1f}, output.ndi {ours:.1f} -> {ours / max(alone, 1e-9):.2f}x")


if __name__ == "__main__":
    main()
