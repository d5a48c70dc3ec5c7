"""Zenoh between two `flowml run` processes on loopback: throughput and latency of a uint8
(1, 3, H, W) tensor stream at 1080p and 4K, made on the CPU or on the GPU.

    python benchmarks/zenoh_bench.py                      # every size, cpu (and cuda if present)
    python benchmarks/zenoh_bench.py --sizes 1080p --devices cpu --transport tcp --out r.json

Two runs per case, each a real pair of graphs (a python.function source -> output.zenoh;
capture.zenoh as the clock -> a sink):

- throughput: both graphs offline (congestion control BLOCK, nothing lost), the sender as fast
  as the receiver takes it; frames/s and MB/s over the receiver's stream.
- latency: both live, the sender paced at --fps; send -> hand-out to the receiving graph
  p50/p99 (both processes read this host's clock) and what was dropped.

``--transport shm`` lets Zenoh hand payloads over shared memory (its default on one host),
``tcp`` turns that off so every byte crosses the loopback socket, as between hosts; ``both``
runs each. A device of ``cuda`` makes the frames on the GPU (the sender downloads each once,
into pinned memory) and uploads them on the receiver. Numbers go to stdout as a table and to
``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

SIZES = {"1080p": (1920, 1080), "4k": (3840, 2160)}
FUNCTIONS = '''
import torch
_BASE = {}

def frame(*, ctx, width, height, device):
    key = (width, height, device)
    if key not in _BASE:
        _BASE[key] = torch.randint(0, 256, (3 * width * height + 257,), dtype=torch.uint8).to(device)
    at = ctx.tick.index % 257
    return _BASE[key][at:at + 3 * width * height].view(1, 3, height, width)

def sink(frame):
    return None
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphs(folder: Path, *, width: int, height: int, device: str, live: bool, shm: bool,
           fps: float) -> tuple[Path, Path]:
    port, key = free_port(), "flowml/bench/frames"
    config = {"transport/shared_memory/enabled": shm}
    fn = {"type": "python.function", "params": {"path": str(folder / "bench_functions.py")}}
    send = {"flowml": 1, "name": "bench-send", "mode": "live" if live else "offline", "device": device,
            "clock": {"fps": fps}, "nodes": {
                "gen": {**fn, "params": {**fn["params"], "function": "frame", "inputs": [],
                                         "outputs": ["frame:tensor"],
                                         "args": {"width": width, "height": height, "device": device}}},
                "pub": {"type": "output.zenoh", "inputs": {"tensor": "gen/frame"},
                        "params": {"key": key, "connect": [f"tcp/127.0.0.1:{port}"], "wait": 30,
                                   "config": config}}}}
    recv = {"flowml": 1, "name": "bench-recv", "device": device, "clock": "rx", "nodes": {
        "rx": {"type": "capture.zenoh", "params": {"key": key, "live": live, "wait": 60, "timeout": 10,
                                                    "listen": [f"tcp/127.0.0.1:{port}"], "config": config}},
        "sink": {**fn, "inputs": {"frame": "rx/tensor"},
                 "params": {**fn["params"], "function": "sink", "inputs": ["frame:tensor"], "outputs": []}}}}
    (folder / "bench_functions.py").write_text(FUNCTIONS)
    (folder / "send.yaml").write_text(yaml.safe_dump(send, sort_keys=False))
    (folder / "recv.yaml").write_text(yaml.safe_dump(recv, sort_keys=False))
    return folder / "send.yaml", folder / "recv.yaml"


def run_case(size: str, device: str, shm: bool, live: bool, seconds: float, fps: float) -> dict:
    width, height = SIZES[size]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        send, recv = graphs(folder, width=width, height=height, device=device, live=live, shm=shm,
                            fps=fps if live else 1000.0)
        flowml = [sys.executable, "-m", "flowml.cli", "run"]
        rx = subprocess.Popen(flowml + [str(recv), "--stats-json", str(folder / "rx.json")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            tx = subprocess.run(flowml + [str(send), "--duration", str(seconds), "--stats-json",
                                          str(folder / "tx.json")],
                                capture_output=True, text=True, timeout=seconds + 120)
            _, rx_err = rx.communicate(timeout=60)
        finally:
            if rx.poll() is None:
                rx.kill()
                rx.wait()
        if tx.returncode or rx.returncode:
            raise SystemExit(f"{size} {device}: sender {tx.returncode}: {tx.stderr[-1500:]}\n"
                             f"receiver {rx.returncode}: {rx_err[-1500:]}")
        r = json.loads((folder / "rx.json").read_text())["nodes"]["rx"]["report"]
        t = json.loads((folder / "tx.json").read_text())["nodes"]["pub"]
    return {"size": size, "device": device, "transport": "shm" if shm else "tcp",
            "run": "latency" if live else "throughput", "frame_mb": round(3 * width * height / 1e6, 2),
            "sent": t["report"]["samples"], "received": r["samples"], "dropped": r["drops"],
            "fps": r["fps"], "mb_per_s": r["mb_per_s"], "latency_ms": r["latency_ms"],
            "transit_ms": r["transit_ms"], "put_ms": t["report"]["put_ms"],
            "sender_mean_us": t["mean_us"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1080p,4k")
    ap.add_argument("--devices", default="auto", help="cpu,cuda or auto (cpu, and cuda if present)")
    ap.add_argument("--transport", choices=["tcp", "shm", "both"], default="both")
    ap.add_argument("--seconds", type=float, default=5.0, help="sender run time per case")
    ap.add_argument("--fps", type=float, default=30.0, help="the latency runs' frame rate")
    ap.add_argument("--out", help="write the results as JSON here")
    a = ap.parse_args()
    devices = a.devices.split(",")
    if a.devices == "auto":
        import torch

        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    shms = {"tcp": [False], "shm": [True], "both": [False, True]}[a.transport]
    results = []
    print(f"{'size':6} {'device':6} {'link':4} {'run':10} {'sent':>5} {'recv':>5} {'drop':>5} "
          f"{'fps':>7} {'MB/s':>8} {'lat p50':>8} {'lat p99':>8} ms")
    for size in a.sizes.split(","):
        for device in devices:
            for shm in shms:
                for live in (False, True):
                    t0 = time.perf_counter()
                    r = run_case(size, device, shm, live, a.seconds, a.fps)
                    r["wall_s"] = round(time.perf_counter() - t0, 1)
                    results.append(r)
                    lat = r["latency_ms"] or {}
                    print(f"{size:6} {device:6} {r['transport']:4} {r['run']:10} {r['sent']:5d} "
                          f"{r['received']:5d} {r['dropped']:5d} {r['fps'] or 0:7.1f} "
                          f"{r['mb_per_s'] or 0:8.1f} {lat.get('p50', 0):8.2f} {lat.get('p99', 0):8.2f}",
                          flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
