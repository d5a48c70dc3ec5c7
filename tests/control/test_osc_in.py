"""OSC in, driven by liblo's oscsend and read back with oscdump: values, timing, bundles,
wildcards, expressions over OSC, bad input."""

from __future__ import annotations

import socket
import time

from control_helpers import LOOPBACK, OscDump, oscsend, wait_until
from control_nodes import FRAMES
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

GRAPH = """
flowml: 1
clock: {fps: 100}
nodes:
  k1: {type: ctl.knobs}
  k2: {type: ctl.knobs}
  other: {type: ctl.model, inputs: {value: k1/value}}
"""


def last(node: str):
    return FRAMES[node][-1].params


def test_a_change_shows_in_the_next_frame_dispatched_after_it_arrives(live):
    run = live.start(GRAPH)
    run.wait_ticks(3)
    queued: list[float] = []
    submit = run.store.submit

    def timed_submit(changes):
        changes = list(changes)
        submit(changes)
        if changes:
            queued.append(time.perf_counter())

    run.store.submit = timed_submit
    oscsend(run.osc_port, "/k1/gain", "f", 2.5)
    wait_until(lambda: queued)
    run.wait_ticks(3)
    arrived = queued[0]
    first_after = min(i for i, at in run.dispatched if at > arrived)
    by_index = {f.index: f.params.gain for f in FRAMES["k1"]}
    assert by_index[first_after] == 2.5  # the very next frame dispatched after it arrived
    assert all(g == 2.5 for i, g in by_index.items() if i >= first_after)
    assert all(g == 1.0 for i, g in by_index.items() if i < first_after - 1)  # none before (but one in flight)
    assert last("k2").gain == 1.0


def test_every_kind_of_param_converts_from_osc_arguments(live):
    run = live.start(GRAPH)
    port = run.osc_port
    oscsend(port, "/k1/gain", "i", 3)          # an int for a float
    oscsend(port, "/k1/count", "i", 42)
    oscsend(port, "/k1/on", "F")               # OSC false
    oscsend(port, "/k1/mode", "s", "c")
    oscsend(port, "/k1/size", "ii", 1920, 1080)  # a vector: several arguments
    oscsend(port, "/k1/label", "s", "hello world")
    oscsend(port, "/k2/on", "i", 0)            # 0/1 for a bool
    wait_until(lambda: last("k1").label == "hello world" and not last("k2").on)
    p = last("k1")
    assert (p.gain, p.count, p.on, p.mode, p.size) == (3.0, 42, False, "c", (1920, 1080))
    assert isinstance(p.gain, float)


def test_bad_input_is_answered_on_the_reply_address_and_the_graph_runs_on(live):
    with OscDump() as dump:
        run = live.start(GRAPH, reply=(LOOPBACK, dump.port))
        port = run.osc_port
        sent = 0

        def send(*message):  # one at a time: of several to one address, only the last counts
            nonlocal sent
            oscsend(port, *message)
            sent += 1
            dump.wait_for(lambda m: m.address == "/flowml/error", n=sent)

        send("/k1/gain", "f", 50.0)           # out of range
        send("/k1/gain", "s", "loud")         # wrong type
        send("/k1/count", "f", 2.5)           # a fraction for an int
        send("/k1/mode", "s", "z")            # not a choice
        send("/k1/size", "i", 5)              # a vector needs two
        send("/k1/gian", "f", 1.0)            # unknown address (misspelt)
        send("/nope/x", "f", 1.0)             # unknown address
        send("/k1/gain")                      # no value
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"\x00garbage, not OSC", (LOOPBACK, port))   # malformed packet
            s.sendto(b"#bundle\x00\x00\x00", (LOOPBACK, port))  # a truncated bundle
        errors = dump.wait_for(lambda m: m.address == "/flowml/error", n=10)
        by_address: dict[str, list[str]] = {}
        for m in errors:
            assert m.types == "ss"
            by_address.setdefault(m.args[0], []).append(m.args[1])
        gain = " | ".join(by_address["/k1/gain"])
        assert "less than or equal to 10" in gain and "50" in gain
        assert "valid number" in gain
        assert "no value given" in gain
        assert "integer" in by_address["/k1/count"][0]
        assert "'a', 'b' or 'c'" in by_address["/k1/mode"][0]
        assert "takes 2 values (ii), got 1" in by_address["/k1/size"][0]
        assert "did you mean /k1/gain?" in by_address["/k1/gian"][0]
        assert "no such param address" in by_address["/nope/x"][0]
        assert sum("malformed" in r or "not an OSC" in r for rs in by_address.values() for r in rs) == 2
        # nothing changed, and the graph still runs and still takes good values
        assert last("k1").gain == 1.0 and last("k1").count == 3
        run.wait_ticks(5)
        oscsend(port, "/k1/gain", "f", 4.0)
        wait_until(lambda: last("k1").gain == 4.0)
        assert run.sched._failure is None and run.thread.is_alive()


def test_a_bad_address_is_logged_once(live, caplog):
    run = live.start(GRAPH)
    for i in range(1, 6):
        oscsend(run.osc_port, "/k1/gain", "f", 99.0)
        wait_until(lambda: run.session.reporter.counts.get("/k1/gain", 0) == i)
    logged = [r for r in caplog.records if "/k1/gain" in r.getMessage() and r.levelname == "WARNING"]
    assert len(logged) == 1 and "less than or equal to 10" in logged[0].getMessage()


def test_errors_go_back_to_the_sender_without_a_reply_address(live):
    run = live.start(GRAPH)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOOPBACK, 0))
        s.settimeout(5)
        s.sendto(OscMessageBuilder("/k1/gain").build().dgram, (LOOPBACK, run.osc_port))
        data, sender = s.recvfrom(65535)
    assert sender == (LOOPBACK, run.osc_port)  # answered from the port it was sent to
    assert data.startswith(b"/flowml/error")


def test_wildcards_match_as_osc_1_0_says(live):
    run = live.start(GRAPH)
    port = run.osc_port
    oscsend(port, "/k*/gain", "f", 2.0)
    wait_until(lambda: last("k1").gain == 2.0 and last("k2").gain == 2.0)
    oscsend(port, "/k[2]/count", "i", 9)
    oscsend(port, "/{k1,zz}/mode", "s", "b")
    oscsend(port, "/k?/label", "s", "both")
    oscsend(port, "/k[!1]/size", "ii", 1, 2)
    oscsend(port, "/*/scale", "f", 7.0)   # only the model node has 'scale'
    wait_until(lambda: last("k2").label == "both" and last("other").scale == 7.0)
    wait_until(lambda: last("k2").size == (1, 2))
    assert (last("k1").count, last("k2").count) == (3, 9)
    assert (last("k1").mode, last("k2").mode) == ("b", "a")
    assert (last("k1").size, last("k2").size) == ((640, 480), (1, 2))


def test_a_bundle_applies_in_one_tick(live):
    run = live.start(GRAPH)
    run.wait_ticks(2)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for v in range(1, 60):
            b = OscBundleBuilder(IMMEDIATELY)
            for addr in ("/k1/count", "/k2/count"):
                m = OscMessageBuilder(addr)
                m.add_arg(v)
                b.add_content(m.build())
            s.sendto(b.build().dgram, (LOOPBACK, run.osc_port))
            time.sleep(0.002)
    wait_until(lambda: last("k1").count == 59 and last("k2").count == 59)
    run.wait_ticks(2)
    k1 = {f.index: f.params.count for f in FRAMES["k1"]}
    k2 = {f.index: f.params.count for f in FRAMES["k2"]}
    both = sorted(set(k1) & set(k2))
    assert len({k1[i] for i in both}) > 5  # many different values went by
    assert all(k1[i] == k2[i] for i in both)


def test_a_bundle_stamped_in_the_future_waits_for_its_time(live):
    run = live.start(GRAPH)
    run.wait_ticks(3)  # frames exist before we look at the last one
    b = OscBundleBuilder(time.time() + 0.5)
    m = OscMessageBuilder("/k1/gain")
    m.add_arg(6.0)
    b.add_content(m.build())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b.build().dgram, (LOOPBACK, run.osc_port))
    sent = time.monotonic()
    wait_until(lambda: last("k1").gain == 6.0, timeout=3)
    assert time.monotonic() - sent >= 0.4


def test_expressions_can_be_set_and_cleared_over_osc(live):
    run = live.start(GRAPH)
    port = run.osc_port
    oscsend(port, "/k1/gain/expr", "s", "5 + 4*sin(t*20)")
    wait_until(lambda: len({f.params.gain for f in FRAMES["k1"][-10:]}) > 3)
    oscsend(port, "/k1/gain/expr", "s", "")          # stop following it; the value stays
    run.wait_ticks(3)
    held = last("k1").gain
    run.wait_ticks(5)
    assert last("k1").gain == held and 1.0 <= held <= 9.0
    oscsend(port, "/k2/count", "s", "=frame % 7")    # '=' sets an expression
    wait_until(lambda: {f.params.count for f in FRAMES["k2"][-10:]} == set(range(7)))
    oscsend(port, "/k2/count", "i", 50)              # a plain value replaces it
    wait_until(lambda: all(f.params.count == 50 for f in FRAMES["k2"][-5:]))


def test_bad_expressions_over_osc_are_answered(live):
    with OscDump() as dump:
        run = live.start(GRAPH, reply=(LOOPBACK, dump.port))
        oscsend(run.osc_port, "/k1/gain/expr", "s", "sin(")
        oscsend(run.osc_port, "/k1/gain/expr", "s", "__import__('os')")
        oscsend(run.osc_port, "/k1/gain", "s", "=k9.gain")
        found = dump.wait_for(lambda m: m.address == "/flowml/error", n=3)
        reasons = " | ".join(m.args[1] for m in found)
        assert "invalid syntax" in reasons
        assert "unknown function '__import__'" in reasons
        assert "no node 'k9'" in reasons
        assert last("k1").gain == 1.0


def test_get_answers_current_values(live):
    with OscDump() as dump:
        run = live.start(GRAPH, reply=(LOOPBACK, dump.port))
        oscsend(run.osc_port, "/k2/size", "ii", 3, 4)
        wait_until(lambda: last("k2").size == (3, 4))
        oscsend(run.osc_port, "/flowml/get", "s", "/k2/*")
        got = {m.address: m.args for m in dump.wait_for(lambda m: m.address.startswith("/k2/"), n=6)}
        assert got["/k2/size"] == [3, 4]
        assert got["/k2/gain"] == [1.0] and got["/k2/on"] == [True] and got["/k2/mode"] == ["a"]
