"""Packets that used to be half-applied, crash the handler or grow memory: truncated
packets refused whole, deep JSON answered with /flowml/error while the rest of the bundle is
applied, future-stamped bundles capped in count and bytes, python-osc's own warnings kept off
stderr, and a bounded inbox where the newest value per address wins."""

from __future__ import annotations

import logging
import socket
import struct
import time

import pytest
from control_helpers import LOOPBACK, OscDump, osc_dgram, oscsend, wait_until
from control_nodes import FRAMES
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage

from flowml.control import osc_server
from flowml.control.osc_server import (INBOX_MAX, MAX_HELD, MAX_HELD_BYTES, MAX_MESSAGES, Inbox,
                                       MalformedPacket, check_packet)

GRAPH = """
flowml: 1
clock: {fps: 100}
nodes:
  k1: {type: ctl.knobs}
"""


def last():
    return FRAMES["k1"][-1].params


def bundle(*dgrams: bytes, at: float = IMMEDIATELY) -> bytes:
    b = OscBundleBuilder(at)
    for d in dgrams:
        b.add_content(OscMessage(d))
    return b.build().dgram


@pytest.mark.parametrize("data, words", [
    (b"/k1/gain\x00\x00\x00\x00,f\x00\x00@", "not a multiple of 4"),            # the packet
    (osc_dgram("/k1/gain", 2.0)[:-4], "ends inside an argument"),
    (osc_dgram("/k1/gain", 2.0) + b"\x00" * 4, "4 bytes after the last argument"),
    (osc_dgram("/k1/label", "abcdefgh")[:-4], "not terminated"),
    (b"/k1/gain\x00\x00\x00\x00,x\x00\x00", "unknown OSC type tag 'x'"),
    (b"/k1/gain\x00\x00\x00\x00f\x00\x00\x00", "do not start with ','"),
    (bundle(osc_dgram("/k1/gain", 2.0))[:-4], "does not fit"),
    (b"#bundle\x00" + b"\x00" * 4, "without its time tag"),
    (bundle(*[osc_dgram("/k1/gain", 1.0)] * (MAX_MESSAGES + 1)), f"at most {MAX_MESSAGES}"),
    (b"\x00junk\x00\x00\x00", "not an OSC message"),
])
def test_malformed_packets_are_refused_whole_saying_why(data, words):
    with pytest.raises(MalformedPacket, match=words.replace("'", ".")):
        check_packet(data)


def test_nested_bundles_are_refused_beyond_the_limit():
    inner = osc_dgram("/k1/gain", 1.0)
    for _ in range(osc_server.MAX_NESTING + 1):
        inner = b"#bundle\x00" + struct.pack(">q", 1) + struct.pack(">i", len(inner)) + inner
    with pytest.raises(MalformedPacket, match="nested more than"):
        check_packet(inner)


def test_a_truncated_packet_is_not_applied(live):
    with OscDump() as dump:
        run = live.start(GRAPH, reply=(LOOPBACK, dump.port))
        run.wait_ticks(3)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"/k1/gain\x00\x00\x00\x00,f\x00\x00@", (LOOPBACK, run.osc_port))
            s.sendto(osc_dgram("/k1/count", 7)[:-2], (LOOPBACK, run.osc_port))
        errors = dump.wait_for(lambda m: m.address == "/flowml/error", n=1)
        assert "truncated" in errors[0].args[1] or "multiple of 4" in errors[0].args[1]
        run.wait_ticks(5)
        assert (last().gain, last().count) == (1.0, 3)
        oscsend(run.osc_port, "/k1/gain", "f", 2.0)  # whole packets still apply
        wait_until(lambda: last().gain == 2.0)


def test_deep_json_is_answered_and_the_rest_of_the_bundle_applies(live, caplog):
    with OscDump() as dump:
        run = live.start(GRAPH, reply=(LOOPBACK, dump.port))
        deep = "[" * 30_000 + "]" * 30_000  # 60 KB, far past Python's recursion limit
        data = bundle(osc_dgram("/k1/size", deep), osc_dgram("/k1/gain", 4.0))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(data, (LOOPBACK, run.osc_port))
        wait_until(lambda: last().gain == 4.0)
        errors = dump.wait_for(lambda m: m.address == "/flowml/error" and m.args[0] == "/k1/size")
        assert "nested too deeply" in errors[0].args[1]
        assert last().size == (640, 480)
        assert not [r for r in caplog.records if r.exc_info]  # no traceback logged
        assert run.thread.is_alive()


@pytest.mark.timeout(60)
def test_future_bundles_are_capped_in_count_and_bytes(live):
    with OscDump() as dump:
        run = live.start(GRAPH, reply=(LOOPBACK, dump.port))
        udp = run.session.udp
        filler = "x" * 30_000  # 30 KB each: the byte cap comes before the count cap
        n = MAX_HELD_BYTES // 30_000 + 40
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(n):
                s.sendto(bundle(osc_dgram("/k1/label", filler), at=time.time() + 30),
                         (LOOPBACK, run.osc_port))
                if i % 16 == 15:
                    time.sleep(0.005)  # what a kernel buffer of a busy box takes
            for i in range(MAX_HELD + 20):  # small ones: the count cap
                s.sendto(bundle(osc_dgram("/k1/count", i % 100), at=time.time() + 30),
                         (LOOPBACK, run.osc_port))
                if i % 16 == 15:
                    time.sleep(0.005)
        wait_until(lambda: udp.handled >= n, timeout=20)
        time.sleep(0.5)
        assert len(udp._held) <= MAX_HELD and udp._held_bytes <= MAX_HELD_BYTES
        assert len(udp._held) >= MAX_HELD // 2  # it did hold what it could
        refused = dump.wait_for(lambda m: m.address == "/flowml/error" and "refused" in m.args[1])
        assert f"at most {MAX_HELD}" in refused[0].args[1]
        oscsend(run.osc_port, "/k1/gain", "f", 5.0)  # plain messages are not held up
        wait_until(lambda: last().gain == 5.0)


def test_python_osc_warnings_stay_off_stderr(live, caplog):
    run = live.start(GRAPH)
    before = run.session.udp.suppressed
    with caplog.at_level(logging.DEBUG):
        for _ in range(50):  # python-osc logs a warning per parse of an unknown type tag
            OscMessage(b"/k1/gain\x00\x00\x00\x00,x\x00\x00")
    assert run.session.udp.suppressed >= before + 50
    assert not [r for r in caplog.records if "pythonosc" in r.pathname]


def test_the_inbox_is_bounded_and_the_newest_value_per_address_wins():
    inbox = Inbox()
    for i in range(INBOX_MAX * 4):
        inbox.put(osc_dgram(f"/junk/{i}", 1.0), ("h", 1))   # all different: the oldest go
        inbox.put(osc_dgram("/k1/gain", float(i)), ("h", 1))  # one address: replaced each time
    assert len(inbox) == INBOX_MAX and inbox.dropped == INBOX_MAX * 3 + 1
    items = [inbox.get() for _ in range(INBOX_MAX)]
    assert inbox.get() is None
    gains = [OscMessage(d).params for d, _ in items if d.startswith(b"/k1/gain")]
    assert gains == [[float(INBOX_MAX * 4 - 1)]]                  # only the newest, once
    assert OscMessage(items[-1][0]).address == "/k1/gain"          # at the back, where it came
    bundles = Inbox(max_entries=8)
    for _ in range(5):
        bundles.put(bundle(osc_dgram("/k1/gain", 1.0)), ("h", 1))   # bundles are never merged
    assert len(bundles) == 5


@pytest.mark.timeout(60)
def test_many_bundles_due_at_once_are_released_in_order_in_slices(live):
    run = live.start(GRAPH)
    udp = run.session.udp
    run.wait_ticks(3)
    at = time.time() + 1.0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(200):  # all due at the same moment, 64 messages each
            body = [osc_dgram("/k1/count", i % 100), osc_dgram("/k1/gain", (i % 10) / 2)] * 32
            s.sendto(bundle(*body, at=at), (LOOPBACK, run.osc_port))
            if i % 16 == 15:
                time.sleep(0.005)
    wait_until(lambda: udp.handled >= 200, timeout=20)
    assert len(udp._held) == 200
    wait_until(lambda: not udp._held, timeout=20)
    wait_until(lambda: (last().count, last().gain) == (199 % 100, (199 % 10) / 2))  # the last one wins
    run.wait_ticks(10)
    assert run.thread.is_alive() and run.sched._failure is None
