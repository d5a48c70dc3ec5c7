"""Decode and encode throughput of capture.video / output.video, CPU against GPU paths.

    python plugins/flowml-av/benchmarks/video_gpu.py [--size 1920 1080] [--frames 240]

Makes a test clip with libx264, then times, on the node's device (cuda where present):
capture.video with decode cpu (FFmpeg + RGB conversion on the CPU, upload) and decode cuda
(NVDEC, NV12 -> RGB on the GPU); output.video with libx264 and NVENC, fed frames on the GPU.
Paths that cannot run here are reported with the reason.
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from pathlib import Path

import torch

from flowml.testing import NodeHarness
from flowml_av.reader import VideoSource
from flowml_av.writer import VideoWriter, encoder_problem


def clip(width: int, height: int, frames: int):
    y = torch.linspace(0, 1, height).view(1, 1, height, 1)
    x = torch.linspace(0, 1, width).view(1, 1, 1, width)
    for k in range(frames):
        p = k / frames
        yield torch.cat([((x + p) % 1).expand(1, 1, height, width), y.expand(1, 1, height, width),
                         ((x * y + p) % 1)], 1)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, nargs=2, default=(1920, 1080))
    ap.add_argument("--frames", type=int, default=240)
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"{args.size[0]}x{args.size[1]}, {args.frames} frames, device {device} ({name}), {datetime.date.today()}")
    folder = Path(tempfile.mkdtemp())
    src = folder / "clip.mp4"
    with NodeHarness(VideoWriter, {"path": str(src), "preset": "veryfast", "deterministic": False}) as h:
        for frame in clip(*args.size, args.frames):
            h.process(image=frame)

    for decode in ("cpu", "cuda"):
        with NodeHarness(VideoSource, {"path": str(src), "decode": decode}, device=device) as h:
            used = "cuda (NVDEC)" if h.node.gpu else "cpu"
            h.node.process()
            sync(device)
            t0 = time.perf_counter()
            n = 1
            while n < args.frames:
                h.node.process()
                n += 1
            sync(device)
            took = time.perf_counter() - t0
        print(f"  capture.video decode={decode:4s} -> {used:12s}: {(n - 1) / took:7.1f} fps")

    frames = [f.to(device) for f in clip(*args.size, min(args.frames, 120))]
    for encoder, codec in (("cpu", "h264"), ("nvenc", "h264"), ("nvenc", "h265")):
        out = folder / f"{encoder}-{codec}.mp4"
        with NodeHarness(VideoWriter, {"path": str(out), "encoder": encoder, "codec": codec,
                                       "preset": "fast", "deterministic": False}, device=device) as h:
            h.process(image=frames[0])
            used = h.node.encoder
            t0 = time.perf_counter()
            for f in frames[1:]:
                h.process(image=f)
            took = time.perf_counter() - t0
        print(f"  output.video {codec} encoder={encoder:5s} -> {used:10s}: {(len(frames) - 1) / took:7.1f} fps "
              f"(uint8 conversion and download included)")
    for n in ("h264_nvenc", "hevc_nvenc"):
        print(f"  {n}: {encoder_problem(n) or 'opens'}")


if __name__ == "__main__":
    main()
