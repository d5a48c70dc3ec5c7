"""A seeded fuzz burst of hostile OSC (issue 12): more than 20,000 packets of random bytes,
truncated messages, bad types, deep JSON, huge wildcards, expression bombs, floods and
future-stamped bundles, from a raw UDP socket and a few from liblo's oscsend, while a graph
runs at 100 fps. The graph lives, keeps >= 0.9x its frame rate (measured before and during,
in the same run), applies a valid message sent right after the burst within 100 ms, logs
fewer than 100 lines, and grows by less than 20 MB."""

from __future__ import annotations

import logging
import random
import socket
import struct
import threading
import time

import pytest
from control_helpers import LOOPBACK, fps_over, osc_dgram, oscsend, rss_mb, wait_until
from control_nodes import FRAMES, _lock

SEED = 12
PACKETS = 24_000
BURST_SECONDS = 8.0
FPS = 100

GRAPH = f"""
flowml: 1
clock: {{fps: {FPS}}}
nodes:
  k1: {{type: ctl.knobs}}
  k2: {{type: ctl.knobs}}
  m: {{type: ctl.model, inputs: {{value: k1/value}}, params: {{scale: {{expr: "1 + sin(t)"}}}}}}
"""

BOMBS = ["1 + 0*round(frame, -2*10**6)", "round(1, -100000000)", "9" * 900, "-" * 900 + "1",
         "(" * 150 + "1" + ")" * 150, " * ".join(["int(1e308)"] * 60), "round(t, frame * 10**9)",
         "+".join(["sin(t)"] * 140), "__import__('os').system('true')", "[0] * 10**9"]


def bundle(stamp: float, *dgrams: bytes) -> bytes:
    """A bundle by hand (seconds since the epoch -> NTP time tag)."""
    ntp = int((stamp + 2208988800) * 2**32) if stamp > 1 else 1
    out = b"#bundle\x00" + struct.pack(">Q", ntp)
    for d in dgrams:
        out += struct.pack(">i", len(d)) + d
    return out


def hostile(rng: random.Random) -> bytes:
    """One packet of a random hostile kind."""
    kind = rng.randrange(10)
    if kind == 0:  # random bytes, some that start like OSC
        data = rng.randbytes(rng.randint(1, 300))
        return rng.choice([b"", b"/", b"#bundle\x00"]) + data
    if kind == 1:  # a valid message cut short, or with bytes after it
        whole = osc_dgram(rng.choice(["/k1/gain", "/k2/count", "/k1/label"]),
                          rng.choice([1.5, 7, "some text here"]))
        return whole[:rng.randrange(1, len(whole))] if rng.random() < 0.7 else whole + b"\x00" * 4
    if kind == 2:  # bad types and values
        return rng.choice([osc_dgram("/k1/gain", "loud"), osc_dgram("/k1/count", 2.5),
                           osc_dgram("/k2/gain", 1e30), osc_dgram("/k1/mode", "zz"),
                           osc_dgram("/k1/size", 1), osc_dgram("/k2/on", "maybe"),
                           b"/k1/gain\x00\x00\x00\x00,x\x00\x00", osc_dgram("/k1/gain"),
                           osc_dgram("/k1/gain", True, False, None)])
    if kind == 3:  # deep JSON in a vector param
        depth = rng.choice([2_000, 30_000])
        return osc_dgram("/k2/size", "[" * depth + "]" * depth)
    if kind == 4:  # huge wildcards, for params and for /flowml/get
        pattern = rng.choice(["/k*/" + "*" * 3000 + "x", "/*/" + "*" * 22 + "x",
                              "/" + "*a" * 250, "/{" + ",".join("k%d" % i for i in range(120)) + "}/gain",
                              "/k[1/gain", "/k1/" + "?" * 400])
        if rng.random() < 0.3:
            return osc_dgram("/flowml/get", pattern)
        return osc_dgram(pattern, 1.0)
    if kind == 5:  # expression bombs
        address = rng.choice(["/k1/gain/expr", "/k2/count/expr", "/k1/gain"])
        text = rng.choice(BOMBS)
        return osc_dgram(address, ("=" + text) if address == "/k1/gain" else text)
    if kind == 6:  # future-stamped bundles (not to k1.gain, which the check after reads)
        body = osc_dgram("/k2/label", "x" * rng.choice([10, 20_000]))
        return bundle(time.time() + rng.uniform(20, 50), body)
    if kind == 7:  # unknown addresses, a new one each time
        return osc_dgram("/%s/%s" % (rng.randbytes(4).hex(), rng.randbytes(3).hex()), 1.0)
    if kind == 8:  # presets without a name, junk control
        return rng.choice([osc_dgram("/flowml/preset/recall"), osc_dgram("/flowml/preset/recall", "nope", -1.0),
                           osc_dgram("/flowml/nothing", 1)])
    return osc_dgram(rng.choice(["/k1/gain", "/k2/gain"]), rng.uniform(0, 10))  # a flood of good ones


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_fuzz_burst_does_not_hurt_the_graph(live, caplog, capfd):
    caplog.set_level(logging.WARNING)
    rng = random.Random(SEED)
    pool = [hostile(rng) for _ in range(PACKETS)]
    assert len(pool) >= 20_000 and len({p[:1] for p in pool}) > 3
    run = live.start(GRAPH)
    port = run.osc_port
    run.wait_ticks(30)
    fps_over(run, 0.5)  # warm up
    rss0 = rss_mb()
    before = fps_over(run, 3.0)

    sent = 0

    def burst() -> None:
        nonlocal sent
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            start = time.perf_counter()
            for i, data in enumerate(pool):
                while (time.perf_counter() - start) * PACKETS / BURST_SECONDS < i:
                    time.sleep(0.002)
                try:
                    s.sendto(data, (LOOPBACK, port))
                    sent += 1
                except OSError:  # e.g. a packet over the datagram limit: the sender's problem
                    pass

    def with_oscsend() -> None:  # a few from a real, independent client
        for address, types, value in (("/k*/" + "*" * 3000 + "x", "f", 1.0),
                                      ("/k1/gain/expr", "s", BOMBS[0]),
                                      ("/k1/gain", "s", "=" + BOMBS[1]),
                                      ("/k2/size", "s", "[" * 5000),
                                      ("/flowml/get", "s", "/*/" + "*" * 22 + "x")):
            oscsend(port, address, types, value)
            time.sleep(0.5)

    sender, liblo = threading.Thread(target=burst), threading.Thread(target=with_oscsend)
    t0, n0 = time.perf_counter(), run.sched.stats.completed
    sender.start()
    liblo.start()
    sender.join(timeout=BURST_SECONDS + 30)
    liblo.join(timeout=30)
    during = (run.sched.stats.completed - n0) / (time.perf_counter() - t0)
    assert not sender.is_alive() and sent >= 20_000

    # a valid message right after the burst is applied within 100 ms
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        sent_at = time.perf_counter()
        s.sendto(osc_dgram("/k1/gain", 7.5), (LOOPBACK, port))

    def applied() -> float | None:
        with _lock:
            hits = [f.at for f in FRAMES["k1"][-200:] if f.params.gain == 7.5 and f.at >= sent_at]
        return hits[0] if hits else None
    latency = wait_until(applied, timeout=5) - sent_at

    run.wait_ticks(20)  # alive, and still ticking
    rss1 = rss_mb()
    assert run.sched._failure is None and run.thread.is_alive()
    udp = run.session.udp
    logged = [r for r in caplog.records if r.levelno >= logging.WARNING]
    err = capfd.readouterr().err.splitlines()
    lines = len(logged) + len(err)
    print(f"\n{len(logged)} records, {len(err)} stderr lines:", *err[:5], sep="\n")
    report = (f"fuzz: {sent} packets in {BURST_SECONDS:g} s, {udp.received} read, {udp.handled} handled, "
              f"{udp.dropped} dropped; "
              f"{before:.1f} fps before, {during:.1f} during; valid message applied after "
              f"{latency * 1000:.1f} ms; {lines} log lines; RSS +{rss1 - rss0:.1f} MB")
    print("\n" + report)
    assert during >= 0.9 * before, report
    assert latency < 0.100, report
    assert lines < 100, report
    assert rss1 - rss0 < 20, report
