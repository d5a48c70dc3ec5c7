"""Two `flowml run` processes in two network namespaces joined by a veth pair: a sending graph
publishes a 1080p uint8 tensor stream with output.zenoh, a receiving graph takes it with
capture.zenoh as its clock and checks every byte of every frame (zenoh_frames.py).

Measured, not asserted as speed: latency p50/p99 (send -> hand-out to the graph; both
namespaces share this host's clock) and throughput, written to zenoh_report.json in the test's
folder and, when FLOWML_ZENOH_REPORT names a folder, there too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from zenoh_netns import Pair, loopback, problem, veth_pair

pytestmark = pytest.mark.slow  # each starts two flowml processes and streams for seconds
HERE = Path(__file__).resolve().parent
FRAMES = HERE / "zenoh_frames.py"
KEY = "flowml/test/frames"
W, H, SEED = 1920, 1080, 7
# across the veth, not through /dev/shm (which both namespaces share)
NO_SHM = {"transport/shared_memory/enabled": False}


def sender(pair: Pair, *, mode: str, device: str) -> str:
    args = {"seed": SEED, "width": W, "height": H, "device": device}
    return yaml.safe_dump({"flowml": 1, "name": "zenoh-send", "mode": mode, "device": device,
                           "clock": {"fps": 30}, "nodes": {
        "gen": fn("frame", [], ["frame:tensor"], args),
        "pub": {"type": "output.zenoh", "inputs": {"tensor": "gen/frame"},
                "params": {"key": KEY, "connect": [f"tcp/{pair.addr_b}:{pair.port}"], "wait": 30,
                           "config": NO_SHM}}}}, sort_keys=False)


def receiver(pair: Pair, log: Path, *, live: bool, device: str, slow: float = 0.0) -> str:
    ports = ["frame:tensor", "meta:json"]
    nodes = {"rx": {"type": "capture.zenoh", "params": {
        "key": KEY, "live": live, "listen": [f"tcp/{pair.addr_b}:{pair.port}"], "wait": 60,
        "timeout": 10, "config": NO_SHM}}}
    src = "rx"
    if slow:
        nodes["slow"] = fn("slow", ports, ports, {"seconds": slow}, frame="rx/tensor", meta="rx/meta")
        src = "slow"
    nodes["check"] = fn("check", ports, [], {"seed": SEED, "log": str(log)},
                        frame=f"{src}/{'frame' if slow else 'tensor'}", meta=f"{src}/meta")
    return yaml.safe_dump({"flowml": 1, "name": "zenoh-recv", "device": device, "clock": "rx",
                           "nodes": nodes}, sort_keys=False)


def fn(function: str, inputs: list[str], outputs: list[str], args: dict, **wiring: str) -> dict:
    """A python.function node running ``function`` of zenoh_frames.py."""
    node = {"type": "python.function", "params": {"path": str(FRAMES), "function": function,
                                                   "inputs": inputs, "outputs": outputs, "args": args}}
    if wiring:
        node["inputs"] = wiring
    return node


def run_pair(tmp_path: Path, pair: Pair, send_yaml: str, recv_yaml: str, until: list[str],
             timeout: float = 120) -> tuple[dict, dict, list[dict]]:
    """Start the receiver (namespace b), then the sender (namespace a) with ``until``
    (``--duration 10``, ``--frames 60``); wait for both; return both --stats-json and the
    checker's log."""
    (tmp_path / "send.yaml").write_text(send_yaml)
    (tmp_path / "recv.yaml").write_text(recv_yaml)
    flowml = [sys.executable, "-m", "flowml.cli", "run"]
    out = {"rx": tmp_path / "rx.log", "tx": tmp_path / "tx.log"}
    procs: dict[str, subprocess.Popen] = {}
    try:
        procs["rx"] = subprocess.Popen(
            pair.exec(pair.b) + flowml + [str(tmp_path / "recv.yaml"), "--stats-json", str(tmp_path / "rx.json")],
            stdout=out["rx"].open("w"), stderr=subprocess.STDOUT, cwd=tmp_path)
        procs["tx"] = subprocess.Popen(
            pair.exec(pair.a) + flowml + [str(tmp_path / "send.yaml"), *until,
                                          "--stats-json", str(tmp_path / "tx.json")],
            stdout=out["tx"].open("w"), stderr=subprocess.STDOUT, cwd=tmp_path)
        procs["tx"].wait(timeout)
        if procs["tx"].returncode == 0:
            procs["rx"].wait(30)  # it ends at the sender's end-of-stream sample
    except subprocess.TimeoutExpired:
        pass  # reported below, with both logs
    finally:
        for p in procs.values():  # nothing outlives the test (and the namespaces can go)
            if p.poll() is None:
                p.kill()
                p.wait()
    logs = "\n".join(f"--- {name} (exit {procs[name].returncode if name in procs else '-'}):\n"
                      f"{path.read_text()[-3000:] if path.exists() else ''}" for name, path in out.items())
    assert all(p.returncode == 0 for p in procs.values()) and len(procs) == 2, logs
    log = tmp_path / "checks.jsonl"
    lines = [json.loads(ln) for ln in log.read_text().splitlines()] if log.exists() else []
    return (json.loads((tmp_path / "tx.json").read_text()), json.loads((tmp_path / "rx.json").read_text()),
            lines)


def check_stream(tx: dict, rx: dict, seen: list[dict]) -> dict:
    """What must hold in every mode: every frame byte-exact, order kept, the receiver's drop
    count equal to the sequence numbers that never arrived. Returns the receiver's report."""
    assert seen, "no frame arrived"
    bad = [s["index"] for s in seen if not s["ok"]]
    assert not bad, f"frames not byte-exact: {bad[:10]}"
    indices, seqs = [s["index"] for s in seen], [s["seq"] for s in seen]
    assert indices == sorted(set(indices)), "frames out of order or repeated"
    assert seqs == sorted(set(seqs))
    sent = tx["nodes"]["pub"]["report"]["samples"]
    report = rx["nodes"]["rx"]["report"]
    assert report["malformed"] == 0 and report["ended"] == "the sender's stream ended"
    never = (seqs[-1] - seqs[0] + 1 - len(seqs)) + (sent - 1 - seqs[-1])
    assert report["drops"] == never, (report, seqs[0], seqs[-1], sent)
    assert report["samples"] == len(seen)
    return report


def write_report(tmp_path: Path, name: str, data: dict) -> None:
    text = json.dumps(data, indent=2)
    (tmp_path / "zenoh_report.json").write_text(text)
    folder = os.environ.get("FLOWML_ZENOH_REPORT")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"zenoh_{name}.json").write_text(text)
    print(f"zenoh {name}: {json.dumps(data)}")


def measured(tx: dict, rx: dict, seen: list[dict]) -> dict:
    r = rx["nodes"]["rx"]["report"]
    return {"frames_sent": tx["nodes"]["pub"]["report"]["samples"], "ticks_sender": tx["completed"],
            "sender_skipped": tx["nodes"]["pub"]["drops"] + tx["source_drops"],
            "frames_received": len(seen), "drops": r["drops"], "latency_ms": r["latency_ms"],
            "transit_ms": r["transit_ms"], "fps": r["fps"], "mb_per_s": r["mb_per_s"],
            "sender_put_ms": tx["nodes"]["pub"]["report"]["put_ms"], "frame_bytes": 3 * W * H}


@pytest.fixture
def pair():
    with veth_pair() as p:
        yield p


def stream_10s(tmp_path: Path, pair: Pair, device: str) -> dict:
    log = tmp_path / "checks.jsonl"
    tx, rx, seen = run_pair(tmp_path, pair, sender(pair, mode="live", device=device),
                            receiver(pair, log, live=True, device=device), ["--duration", "10"])
    report = check_stream(tx, rx, seen)
    sent = tx["nodes"]["pub"]["report"]["samples"]
    assert sent >= 60, f"the sender published only {sent} frames in 10 s"
    assert len(seen) >= sent // 2, f"only {len(seen)} of {sent} frames arrived (drops {report['drops']})"
    assert {s["device"].split(":")[0] for s in seen} == {device}
    return measured(tx, rx, seen)


def test_a_1080p_tensor_stream_at_30_fps_for_10_s_arrives_byte_exact_and_in_order(tmp_path, pair,
                                                                                    record_property):
    data = stream_10s(tmp_path, pair, "cpu")
    data["link"] = pair.link
    record_property("zenoh_1080p_cpu", json.dumps(data))
    write_report(tmp_path, "1080p_30fps_cpu", data)


@pytest.mark.cuda
def test_a_1080p_stream_from_gpu_to_gpu(tmp_path, record_property):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    if problem() is None:
        with veth_pair() as pair:
            data = stream_10s(tmp_path, pair, "cuda")
    else:  # a GPU host without iproute2 or root: the same graphs over its loopback
        data = stream_10s(tmp_path, loopback(), "cuda")
    data["link"] = "veth" if problem() is None else f"loopback ({problem()})"
    record_property("zenoh_1080p_cuda", json.dumps(data))
    write_report(tmp_path, "1080p_30fps_cuda", data)


def test_a_slow_live_receiver_drops_for_the_newest_and_keeps_latency_bounded(tmp_path, pair):
    log = tmp_path / "checks.jsonl"
    tx, rx, seen = run_pair(tmp_path, pair, sender(pair, mode="live", device="cpu"),
                            receiver(pair, log, live=True, device="cpu", slow=0.2), ["--duration", "3"])
    report = check_stream(tx, rx, seen)
    sent = tx["nodes"]["pub"]["report"]["samples"]
    # 3 s at 30 fps into a graph taking 0.2 s a frame: most must be dropped, and counted
    assert report["drops"] >= sent // 2, report
    # newest wins: a frame handed out is at most about a frame period old, never a queue's worth
    assert report["latency_ms"]["p99"] < 1000, report
    write_report(tmp_path, "slow_live", measured(tx, rx, seen))


def test_a_slow_offline_receiver_gets_every_frame_once_in_order(tmp_path, pair):
    log = tmp_path / "checks.jsonl"
    frames = 60
    tx, rx, seen = run_pair(tmp_path, pair, sender(pair, mode="offline", device="cpu"),
                            receiver(pair, log, live=False, device="cpu", slow=0.03), ["--frames", str(frames)])
    report = check_stream(tx, rx, seen)
    assert [s["index"] for s in seen] == list(range(frames))
    assert report["drops"] == 0 and tx["nodes"]["pub"]["drops"] == 0
    write_report(tmp_path, "slow_offline", measured(tx, rx, seen))
