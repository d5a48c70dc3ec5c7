"""Sustained NDI sending through ``output.ndi`` on the CPU path: achieved fps and CPU per frame.

    python plugins/flowml-ndi/benchmarks/ndi_send.py                 # 1920x1080 at 60 fps, 10 s
    python plugins/flowml-ndi/benchmarks/ndi_send.py --size 3840 2160 --fps 30 --seconds 5

The sink gets frames as a graph hands them over (``(1, H, W, 3)`` uint8 on the host, what
``Input(uint8=True)`` delivers), paced at ``--fps`` as a live clock would, with a receiver in
another process connected over 127.0.0.1 (NDI may skip work nobody watches). CPU per frame is
this process's user+system time (NDI compresses on its own threads) divided by frames sent.
If ``NDI_CONFIG_DIR`` is not set, a loopback discovery config is written to a temp folder.
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

import torch

RECEIVER = r"""
import sys, time
from cyndilib import Finder, Receiver, RecvBandwidth, RecvColorFormat, VideoFrameSync
name, seconds = sys.argv[1], float(sys.argv[2])
finder = Finder(); finder.open()
deadline = time.monotonic() + 20
while not any(name in n for n in finder.get_source_names()):
    if time.monotonic() > deadline: sys.exit("receiver: source not found")
    finder.wait_for_sources(0.2)
source = finder.get_source(next(n for n in finder.get_source_names() if name in n))
receiver = Receiver(color_format=RecvColorFormat.RGBX_RGBA, bandwidth=RecvBandwidth.highest)
frame = VideoFrameSync(); receiver.frame_sync.set_video_frame(frame); receiver.set_source(source)
print("ready", flush=True)
seen, last, end = 0, None, None
while end is None or time.monotonic() < end:
    receiver.frame_sync.capture_video()
    stamp = frame.get_timestamp_posix()
    if frame.xres and stamp != last:
        seen, last = seen + 1, stamp
        if end is None: end = time.monotonic() + seconds
    time.sleep(0.002)
print(seen, flush=True)
"""


def frames(width: int, height: int, count: int) -> list[torch.Tensor]:
    """``count`` different uint8 frames: a moving gradient with a little noise, like video."""
    y = torch.linspace(0, 1, height).view(height, 1, 1)
    x = torch.linspace(0, 1, width).view(1, width, 1)
    out = []
    gen = torch.Generator().manual_seed(0)
    for k in range(count):
        phase = k / count
        img = torch.cat([((x + phase) % 1).expand(height, width, 1), y.expand(height, width, 1),
                         ((x + y) / 2 + phase) % 1], 2)
        img = img + 0.03 * torch.rand(height, width, 3, generator=gen)
        out.append(img.clamp(0, 1).mul(255).round().to(torch.uint8)[None].contiguous())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs=2, default=(1920, 1080), metavar=("W", "H"))
    ap.add_argument("--fps", type=float, default=60.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--alpha", action="store_true", help="send RGBA frames (4 channels)")
    args = ap.parse_args()
    if "NDI_CONFIG_DIR" not in os.environ:
        from flowml_ndi.common import write_loopback_config

        os.environ["NDI_CONFIG_DIR"] = tempfile.mkdtemp(prefix="ndi-bench-")
        write_loopback_config(os.environ["NDI_CONFIG_DIR"])

    from flowml.testing import NodeHarness
    from flowml_ndi.sender import NdiSender

    width, height = args.size
    clip = frames(width, height, 60)
    if args.alpha:
        clip = [torch.cat([f, torch.full_like(f[..., :1], 200)], 3) for f in clip]
    name = f"bench-{os.getpid()}"
    with NodeHarness(NdiSender, {"name": name, "fps": args.fps, "alpha": args.alpha}, mode="live") as h:
        h.process(image=clip[0])
        rx = subprocess.Popen([sys.executable, "-c", RECEIVER, name, str(args.seconds)],
                              stdout=subprocess.PIPE, text=True)
        period = 1 / args.fps
        start = time.perf_counter()
        while True:  # keep sending until the receiver is connected
            h.process(image=clip[0])
            if rx.poll() is not None or h.node.connections > 0:
                break
            time.sleep(period)
        calls: list[float] = []
        sent, late = 0, 0
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        next_due = start
        while time.perf_counter() - start < args.seconds:
            t0 = time.perf_counter()
            h.process(image=clip[sent % len(clip)])
            calls.append(time.perf_counter() - t0)
            sent += 1
            next_due += period
            wait = next_due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            else:
                late += 1
        wall = time.perf_counter() - start
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        received = rx.communicate(timeout=60)[0].split()
        converter = "OpenCV" if h.node.cv2 is not None else "torch"
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    calls.sort()
    print(f"output.ndi {width}x{height} {'RGBA' if args.alpha else f'RGB->RGBX ({converter})'} at {args.fps:g} fps for "
          f"{args.seconds:g} s, CPU path ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, {datetime.date.today()})")
    print(f"  sent {sent} frames in {wall:.2f} s: {sent / wall:.1f} fps achieved, {late} late")
    print(f"  process() wall ms: p50 {statistics.median(calls) * 1e3:.2f}, "
          f"p99 {calls[int(0.99 * (len(calls) - 1))] * 1e3:.2f}")
    print(f"  CPU per frame (this process, all threads): {cpu / sent * 1e3:.2f} ms "
          f"({cpu / wall * 100:.0f}% of one core)")
    print(f"  frames seen by a receiver in another process: {received[-1] if received else '?'}")


if __name__ == "__main__":
    main()
