"""A flood of OSC on loopback while the graph runs at its rate: 10,000 messages a second for
10 s. No crash, the last value wins, the frame rate moves less than 5%."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from control_helpers import LOOPBACK, wait_until
from control_nodes import FRAMES
from pythonosc.osc_message_builder import OscMessageBuilder

FPS = 100
RATE = 10_000      # messages a second
SECONDS = 10.0


def dgram(address: str, value) -> bytes:
    b = OscMessageBuilder(address)
    b.add_arg(value)
    return b.build().dgram


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_flood_of_messages(live):
    run = live.start(f"""
        flowml: 1
        clock: {{fps: {FPS}}}
        nodes:
          k1: {{type: ctl.knobs}}
          k2: {{type: ctl.knobs, smooth: {{gain: 0.1}}}}
          m: {{type: ctl.model, inputs: {{value: k1/value}}, params: {{scale: {{expr: "1 + sin(t)"}}}}}}
    """)
    port = run.osc_port
    # prebuilt datagrams, so the sender costs little: good values, a few bad ones, wildcards
    pool = [dgram("/k1/gain", (i % 1000) / 100) for i in range(1000)]
    pool += [dgram("/k1/count", i % 100) for i in range(200)]
    pool += [dgram("/k*/gain", 5.0), dgram("/k2/gain", 3.0)]
    pool += [dgram("/k1/gain", 99.0), dgram("/nope", 1), b"\x00junk"]  # bad input in the mix
    last = [dgram("/k1/gain", 7.25), dgram("/k1/count", 42), dgram("/k2/gain", 2.5)]
    sent = 0

    def flood() -> None:
        nonlocal sent
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            start = time.perf_counter()
            batch = RATE // 200  # every 5 ms
            total = int(RATE * SECONDS)
            k = 0
            while sent < total:
                due = min(total, int((time.perf_counter() - start) * RATE) + batch)
                while sent < due:
                    s.sendto(pool[k % len(pool)], (LOOPBACK, port))
                    k += 7
                    sent += 1
                time.sleep(0.005)
            for d in last:
                s.sendto(d, (LOOPBACK, port))
                sent += 1

    run.wait_ticks(20)
    sender = threading.Thread(target=flood)
    t0, ticks0 = time.perf_counter(), run.sched.stats.completed
    sender.start()
    sender.join(timeout=SECONDS + 20)
    t1, ticks1 = time.perf_counter(), run.sched.stats.completed
    assert not sender.is_alive()
    assert sent >= RATE * SECONDS

    # the last value wins
    wait_until(lambda: (FRAMES["k1"][-1].params.gain, FRAMES["k1"][-1].params.count) == (7.25, 42))
    wait_until(lambda: FRAMES["k2"][-1].params.gain == 2.5)
    # the graph kept its rate, and runs on
    fps = (ticks1 - ticks0) / (t1 - t0)
    assert abs(fps - FPS) / FPS < 0.05, f"{fps:.1f} fps under the flood, not {FPS}"
    assert run.sched._failure is None and run.thread.is_alive()
    received = run.session.udp.received
    assert received > 0.5 * sent, f"only {received} of {sent} datagrams read"
    print(f"\nflood: {sent} sent, {received} read, {fps:.2f} fps (nominal {FPS})")
    run.wait_ticks(10)
