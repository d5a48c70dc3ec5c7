"""``flowml batch`` on a real local Ray cluster (head + 2 worker nodes, 1 CPU each), shared by
the tests here: 12 inputs with bad ones and a worker killed mid-run; Ctrl-C of the command
then ``--resume``. Few runs, since each worker's start (torch, PyAV, the plugins) is the cost."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import ray  # requirements-dev.txt installs it (the optional extra flowml[batch])
from ray.cluster_utils import Cluster
from rich.console import Console

from batch_helpers import outputs_in, read_lines

from flowml.batch.run import BatchConfig, run_batch

RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0"}
NODE = {"num_cpus": 1, "object_store_memory": 80 * 1024 * 1024}


def _ray_processes(temp: str) -> dict[int, str]:
    """Processes of this cluster: its raylets, GCS and workers (``ray::`` titles)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if temp in cmd or cmd.startswith("ray::"):
            found[int(entry)] = cmd[:120]
    return found


@pytest.fixture(scope="module")
def cluster():
    saved = {k: os.environ.get(k) for k in [*RAY_ENV, "RAY_TMPDIR"]}
    os.environ.update(RAY_ENV)
    temp = tempfile.mkdtemp(prefix="fb", dir="/tmp")  # short: Ray's socket paths must fit
    # Cluster() writes the head's address to $RAY_TMPDIR/ray/ray_current_cluster (default
    # /tmp/ray) whatever temp_dir is given, and does not make that folder: on a clean machine
    # with no earlier Ray run it does not exist. Keep it inside this cluster's own folder.
    os.environ["RAY_TMPDIR"] = temp
    os.makedirs(os.path.join(temp, "ray"), exist_ok=True)
    c = Cluster(initialize_head=True,
                head_node_args={**NODE, "include_dashboard": False, "temp_dir": temp})
    for _ in range(2):
        c.add_node(**NODE)
    ray.init(address=c.address, log_to_driver=False, logging_level=logging.WARNING)
    try:
        yield c
    finally:
        started = _ray_processes(temp)
        ray.shutdown()
        c.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        deadline = time.monotonic() + 20
        while (left := {p: c for p, c in started.items() if os.path.exists(f"/proc/{p}")
                        and "zombie" not in Path(f"/proc/{p}/status").read_text().lower()}) \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        shutil.rmtree(temp, ignore_errors=True)
        assert not left, f"Ray processes left after the tests: {left}"


def _config(media, out: Path, manifest: Path, inputs=None, **kw) -> BatchConfig:
    return BatchConfig(str(media.graph), inputs or [str(media.root / "videos" / "**" / "*.mp4"), str(media.missing)],
                       sets=["src.path={input}", f"out.path={out}/{{stem}}.mp4", *kw.pop("sets", [])],
                       manifest=str(manifest), **kw)


def test_ray_batch_over_12_files_with_a_worker_killed_mid_run(cluster, media, reference):
    """Every good file's output appears once, equal to `flowml run`'s; the missing, corrupt and
    raising files are in the manifest with their errors; the killed worker is replaced."""
    out, manifest = media.root / "out_ray", media.root / "ray.jsonl"
    killed: list[int] = []

    def kill(worker: str) -> None:
        time.sleep(0.05)  # it has its next input by now: die in the middle of it
        pid = int(worker.rsplit(":", 1)[1])
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    def on_result(result):
        if result.status == "done" and not any(t.name == "kill" for t in threading.enumerate()) \
                and not killed:
            threading.Thread(target=kill, args=(result.worker,), name="kill", daemon=True).start()

    summary = run_batch(_config(media, out, manifest, workers=2, retries=1,
                                sets=["check.args={{delay: 0.02}}"]),
                        Console(quiet=True), on_result=on_result)
    assert killed and summary.restarts == 1
    assert (summary.done, summary.failed, summary.total) == (9, 3, 12)
    assert outputs_in(out) == sorted(f"{p.stem}.mp4" for p in media.good)  # once each, nothing staged
    for p in media.good:
        assert (out / f"{p.stem}.mp4").read_bytes() == reference[p.stem], p
    lines = read_lines(manifest)
    assert len(lines) == 12 and len({r["input"] for r in lines}) == 12
    by_input = {r["input"]: r for r in lines}
    assert "not found" in by_input[str(media.missing)]["error"]
    assert by_input[str(media.missing)]["attempts"] == 1  # a missing file is not tried again
    assert "node 'src' (capture.video) failed in setup" in by_input[str(media.corrupt)]["error"]
    assert "48x32 frames are not wanted here" in by_input[str(media.odd)]["error"]
    assert by_input[str(media.odd)]["attempts"] == 2  # retried once
    pids = [int(r["worker"].rsplit(":", 1)[1]) for r in lines]
    # two workers and the one that replaced the killed one (which may start after the other
    # has done the rest): the graph was loaded at most 3 times for 12 inputs
    assert killed[0] in pids and 2 <= len(set(pids)) <= 3
    assert pids[-1] != killed[0]


def test_sigint_stops_cleanly_and_resume_does_only_what_is_left(cluster, media, reference):
    out, manifest = media.root / "out_sigint", media.root / "sigint.jsonl"
    cmd = [sys.executable, "-m", "flowml.cli", "batch", *media.args(str(out)), "--workers", "2",
           "--ray-address", cluster.address, "--manifest", str(manifest), "--retries", "0",
           "--set", "check.args={{delay: 0.03}}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **RAY_ENV})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if manifest.exists() and sum('"done"' in ln for ln in manifest.read_text().splitlines()) >= 2:
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()[0]
        proc.send_signal(signal.SIGINT)
        text, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, text
    assert "--resume" in text
    first = read_lines(manifest)  # every line whole
    done_before = {r["input"] for r in first if r["status"] == "done"}
    assert 2 <= len(done_before) < 9
    assert outputs_in(out) == sorted(f"{Path(i).stem}.mp4" for i in done_before)  # nothing partial

    # the resume runs in this process (--local): what it must show is the manifest's doing,
    # the same for both drivers, and it spares two more workers' start
    summary = run_batch(_config(media, out, manifest, local=True, retries=0, resume=True),
                        Console(quiet=True))
    assert summary.skipped == len(done_before) and summary.done == 9 - len(done_before)
    again = read_lines(manifest)[len(first):]
    assert sorted(r["input"] for r in again) == sorted(str(p) for p in media.inputs
                                                       if str(p) not in done_before)
    assert outputs_in(out) == sorted(f"{p.stem}.mp4" for p in media.good)
    for p in media.good:
        assert (out / f"{p.stem}.mp4").read_bytes() == reference[p.stem], p
    assert json.loads(manifest.read_text().splitlines()[-1])["input"]
