"""Issue 21: SIGINT and SIGTERM at 50 random moments of a running graph with a decoder, a
blocking producer and a recorder: exit 0 within 2 s of the signal, the recording plays, no
thread of flowml's left alive (``flowml run`` names any that is)."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import pytest

MOMENTS = 50
FLOWML = [sys.executable, "-m", "flowml.cli"]

GRAPH = """\
flowml: 1
clock: src
nodes:
  src:  {type: capture.video, params: {path: in.mp4, loop: true}}
  slow: {type: python.function, inputs: {image: src/image},
         params: {path: fx.py, function: dim, blocking: true}}
  rec:  {type: output.video, inputs: {image: slow/image}, params: {path: out.mp4}}
"""

FX = """\
import time

def dim(image):
    time.sleep(0.004)   # a producer that blocks (a network call, a disk read)
    return image * 0.5
"""


def _make_input(path: Path) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 160, 96, "yuv420p"
        for i in range(60):
            img = np.full((96, 160, 3), (i * 4) % 256, np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def _one(folder: Path, delay: float, signum: int, after: str) -> dict:
    """Start the graph, send ``signum`` ``delay`` s after a stderr line starting with
    ``after`` (the graph runs; the recorder took its first frame); what happened."""
    proc = subprocess.Popen([*FLOWML, "run", "graph.yaml"], cwd=folder, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lines: list[str] = []
    running = threading.Event()

    def read() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.append(line)
            if line.lstrip().startswith(after):
                running.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert running.wait(120), "".join(lines)
        time.sleep(delay)
        sent = time.perf_counter()
        proc.send_signal(signum)
        rc = proc.wait(timeout=30)
        took = time.perf_counter() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    return {"rc": rc, "took": took, "stderr": "".join(lines), "delay": delay, "signal": signum}


def _frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


@pytest.mark.timeout(900)  # 50 starts of flowml run, two at a time: about 2 minutes on 2 cores
def test_sigint_and_sigterm_at_random_moments_always_stop_cleanly(tmp_path):
    rng = random.Random(21)
    runs = []
    for k in range(MOMENTS):
        folder = tmp_path / f"run{k:02d}"
        folder.mkdir()
        (folder / "graph.yaml").write_text(textwrap.dedent(GRAPH))
        (folder / "fx.py").write_text(FX)
        # most moments while frames flow into the recording; every fifth one right as the
        # graph starts, before the recorder may have had a frame
        after = "running " if k % 5 == 0 else "INFO     output.video: libx264"
        runs.append((folder, rng.uniform(0.0, 1.5), signal.SIGINT if k % 2 else signal.SIGTERM,
                     after))
    _make_input(runs[0][0] / "in.mp4")
    for folder, *_ in runs[1:]:
        (folder / "in.mp4").write_bytes((runs[0][0] / "in.mp4").read_bytes())
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda r: _one(*r), runs))
    recorded = 0
    for (folder, _, _, after), r in zip(runs, results):
        said = f"delay {r['delay']:.2f} s, {signal.Signals(r['signal']).name}:\n{r['stderr']}"
        assert r["rc"] == 0, said
        assert r["took"] < 2.0, said
        assert "Traceback" not in r["stderr"] and "still running at exit" not in r["stderr"], said
        assert "stopping (again to abort)" in r["stderr"], said
        out = folder / "out.mp4"
        if out.exists():
            n = _frames(out)  # the file plays to its end
            assert f"output.video: {n} frames" in r["stderr"], said
            recorded += n > 0
        if after != "running ":
            assert out.exists() and n > 0, said
    assert recorded >= MOMENTS * 4 // 5, recorded
