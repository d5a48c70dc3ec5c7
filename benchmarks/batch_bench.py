"""Files per minute: ``flowml batch`` with N workers against ``flowml run`` in a shell loop.

Makes ``--files`` short videos (PyAV, libx264), then times, over the same files and graph
(capture.video -> image.flip -> output.video, on ``--device``):

- ``loop``: ``for g in graphs; do flowml run $g; done`` (one process per file: interpreter,
  imports, plugin loading and setup paid every time, as a shell script would);
- ``local``: ``flowml batch --workers 1 --local`` (one process, the graph loaded once);
- ``ray N``: ``flowml batch --workers N`` on a local Ray it starts (N workers; with
  ``--device cuda`` they share the GPU: ``--gpus-per-worker 1/N``).

Every time is the whole command's wall time, Ray's start included. With ``--first-wave``, each
Ray row also runs over its first N files alone (one file a worker: Ray's start, the workers'
imports and graph loading, one file each), and ``steady_files_per_minute`` is the rate of
the rest: ``(files - N) / (full run - first-wave run)``. ``--loop-files K`` times the shell
loop on the first K files only (its cost per file is the same for every file) and gives its
rate per minute from those. Every output is checked
to equal the loop's (byte-identical: the encoder is deterministic offline). Prints JSON (and
writes it to ``--json``). Without Ray installed the Ray rows are left out and say so.

    python benchmarks/batch_bench.py --workers 1 2                     # CPU, this machine
    python benchmarks/batch_bench.py --device cuda --workers 1 2 4 8   # N workers on one GPU
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FLOWML = [sys.executable, "-m", "flowml.cli"]

GRAPH = """\
flowml: 1
name: bench
clock: src
device: {device}
nodes:
  src: {{type: capture.video, params: {{path: {src}}}}}
  flip: {{type: image.flip, inputs: {{image: src/image}}}}
  out: {{type: output.video, inputs: {{image: flip/image}}, params: {{path: {out}, preset: ultrafast}}}}
"""


def make_videos(folder: Path, n: int, frames: int, width: int, height: int) -> list[Path]:
    import av

    paths = []
    rng = np.random.default_rng(0)
    for i in range(n):
        p = folder / "in" / f"clip{i:03d}.mp4"
        p.parent.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        with av.open(str(p), "w") as c:
            s = c.add_stream("libx264", rate=30)
            s.width, s.height, s.pix_fmt = width, height, "yuv420p"
            s.options = {"preset": "ultrafast"}
            for k in range(frames):
                f = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.roll(base, 4 * k, axis=1)), format="rgb24")
                f.pts = k
                for pkt in s.encode(f):
                    c.mux(pkt)
            for pkt in s.encode(None):
                c.mux(pkt)
        paths.append(p)
    return paths


def timed(cmd: list[str] | str, env: dict, shell: bool = False) -> tuple[float, str]:
    t = time.perf_counter()
    r = subprocess.run(cmd, shell=shell, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"failed ({r.returncode}): {cmd}\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
    return dt, r.stderr


def same_outputs(a: Path, b: Path, names: list[str]) -> bool:
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=12)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--size", default="320x240", help="WIDTHxHEIGHT of the videos")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--workers-list", help="comma-separated worker counts (1,2,4,8); overrides --workers")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--loop-files", type=int, help="time the shell loop on the first K files only")
    ap.add_argument("--first-wave", action="store_true",
                    help="also time each Ray row over its first N files: steady rate after the start")
    ap.add_argument("--out", help="folder for batch_bench.json and batch_bench.txt (a files/min table)")
    a = ap.parse_args()
    if a.workers_list:
        a.workers = [int(x) for x in a.workers_list.split(",") if x.strip()]
    width, height = map(int, a.size.split("x"))
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    with tempfile.TemporaryDirectory(prefix="flowml-batch-bench-") as tmp:
        root = Path(tmp)
        videos = make_videos(root, a.files, a.frames, width, height)
        names = [f"{v.stem}.mp4" for v in videos]
        graph = root / "bench.yaml"
        graph.write_text(GRAPH.format(device=a.device, src=videos[0], out=root / "example.mp4"))
        graphs = []
        looped = videos[: a.loop_files] if a.loop_files else videos
        for v in looped:
            g = root / f"run_{v.stem}.yaml"
            g.write_text(GRAPH.format(device=a.device, src=v, out=root / "loop" / f"{v.stem}.mp4"))
            graphs.append(str(g))
        flowml = " ".join(shlex.quote(x) for x in FLOWML)
        loop_s, _ = timed(f"for g in {' '.join(map(shlex.quote, graphs))}; do {flowml} run \"$g\" || exit 1; done",
                          env, shell=True)
        result: dict = {"files": a.files, "frames_per_file": a.frames, "size": a.size, "device": a.device,
                        "cpus": os.cpu_count(),
                        "loop": {"seconds": round(loop_s, 2), "files": len(looped),
                                 "files_per_minute": round(60 * len(looped) / loop_s, 1)}}
        names = [f"{v.stem}.mp4" for v in looped] if a.loop_files else names

        def batch(label: str, out: str, *extra: str, inputs: str = "in") -> float:
            cmd = [*FLOWML, "batch", str(graph), "--inputs", str(root / inputs / "*.mp4"),
                   "--set", "src.path={input}", "--set", f"out.path={root / out}/{{stem}}.mp4",
                   "--manifest", str(root / f"{out}.jsonl"), "--summary-json", str(root / f"{out}.json"), *extra]
            dt, _ = timed(cmd, env)
            summary = json.loads((root / f"{out}.json").read_text())
            if inputs != "in":
                return dt
            result[label] = {"seconds": round(dt, 2), "files_per_minute": round(60 * a.files / dt, 1),
                             "done": summary["done"],
                             "identical_to_loop": same_outputs(root / "loop", root / out, names)}
            return dt

        batch("local", "local", "--workers", "1", "--local")
        try:
            import ray  # noqa: F401

            have_ray = True
        except ImportError:
            have_ray = False
            result["ray"] = "not installed: pip install 'flowml[batch]'"
        if have_ray:
            for n in a.workers:
                extra = ["--workers", str(n), "--cpus-per-worker", str(max(1, (os.cpu_count() or 1) // n))
                         if a.device == "cpu" else "1"]
                if a.device.startswith("cuda"):
                    extra += ["--gpus-per-worker", f"{1.0 / n:.4f}"]
                full = batch(f"ray_{n}", f"ray{n}", *extra)
                if a.first_wave and n < a.files:
                    wave = root / f"in_first{n}"
                    wave.mkdir()
                    for v in videos[:n]:
                        (wave / v.name).symlink_to(v)
                    first = batch(f"ray_{n}_first", f"ray{n}_first", *extra, inputs=wave.name)
                    result[f"ray_{n}"].update(first_wave_s=round(first, 2), steady_files_per_minute=round(
                        60 * (a.files - n) / max(full - first, 1e-6), 1))
        print(json.dumps(result, indent=2))
        if a.json:
            Path(a.json).write_text(json.dumps(result, indent=2) + "\n")
        if a.out:
            out = Path(a.out)
            out.mkdir(parents=True, exist_ok=True)
            (out / "batch_bench.json").write_text(json.dumps(result, indent=2) + "\n")
            (out / "batch_bench.txt").write_text(table(result) + "\n")
            print(table(result))


def table(result: dict) -> str:
    """Markdown table: one row per way of running, files per minute side by side."""
    rows = [f"{result['files']} files x {result['frames_per_file']} frames {result['size']}, "
            f"device {result['device']}, {result['cpus']} cores", "",
            "| run | seconds | files/min | first wave s | files/min after it | identical to loop |",
            "| --- | --- | --- | --- | --- | --- |"]
    for k, v in result.items():
        if isinstance(v, dict) and "files_per_minute" in v:
            rows.append(f"| {k} | {v['seconds']} | {v['files_per_minute']} | {v.get('first_wave_s', '-')} | "
                        f"{v.get('steady_files_per_minute', '-')} | {v.get('identical_to_loop', '-')} |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
