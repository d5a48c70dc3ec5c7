"""Address patterns that used to freeze the graph (a backtracking regex per '*' under the
GIL): matched in linear time now, or refused when too long; the frame rate does not move."""

from __future__ import annotations

import threading
import time

import pytest
from control_helpers import LOOPBACK, OscDump, fps_over, oscsend, wait_until
from control_nodes import FRAMES

from flowml import Field, Node, Params
from flowml.control.addresses import MAX_PATTERN_LENGTH, PatternError, compile_pattern


class Grade(Node):
    """A node with long param names: where a backtracking matcher took forever."""

    type_name = "ctl.grade"

    class Params(Params):
        gamma_correction_amount: float = Field(1.0, ge=0, le=10)
        contrast_around_middle_grey: float = Field(1.0, ge=0, le=10)

    def process(self):
        FRAMES[self.ctx.node_id].append(self.params)


@pytest.fixture
def registry(registry):
    registry.add(Grade, "control-tests")
    return registry


GRAPH = """
flowml: 1
clock: {fps: 100}
nodes:
  fx: {type: ctl.knobs}
  grade: {type: ctl.grade}
  k2: {type: ctl.knobs}
"""
STARS_22 = "/*/" + "*" * 22 + "x"        # matches nothing (no param ends in x)
STARS_22_HIT = "/fx/" + "*" * 22 + "n"   # matches /fx/gain
STARS_3000 = "/fx/" + "*" * 3000 + "x"


@pytest.mark.parametrize("pattern, address, hit", [
    ("/k*/gain", "/k1/gain", True), ("/k*/gain", "/k1/x/gain", False),   # '*' never crosses '/'
    ("/k?/g[a-c]in", "/k1/gain", True), ("/k[!1]/gain", "/k1/gain", False),
    ("/k[!1]/gain", "/k2/gain", True), ("/{k1,k2}/gain", "/k2/gain", True),
    ("/{k1,k2}/gain", "/k3/gain", False), ("/k[0-9]/*", "/k5/a b", True),
    ("/a.b", "/axb", False), ("/a+", "/aa", False), ("/[/]x", "//x", False),
    ("/k[!a-z]/*", "/k1/x", True), ("/[.-0]", "/.", True), ("/[.-0]", "//", False),
    ("/" + "*" * 40 + "a" + "*" * 40 + "b", "/" + "a" * 60, False),
])
def test_patterns_match_as_osc_1_0_says(pattern, address, hit):
    assert bool(compile_pattern(pattern).fullmatch(address)) is hit


def test_a_pattern_of_many_stars_costs_what_a_short_one_costs():
    hostile = "/fx/" + "*a" * 120 + "x"  # a backtracking matcher takes years on this
    start = time.perf_counter()
    matcher = compile_pattern(hostile)
    for _ in range(100):
        assert not matcher.fullmatch("/fx/" + "a" * 300)
    assert time.perf_counter() - start < 2.0  # generous: it takes about a millisecond


@pytest.mark.parametrize("pattern, words", [
    ("/a" * (MAX_PATTERN_LENGTH // 2) + "/*", "at most 256"),
    ("/k[1/gain", "unclosed '['"), ("/{a,b/gain", "unclosed '{'"), ("/k[]/x", "empty '[]'"),
    ("/k[z-a]/x", "bad range"), ("/k}/x", "unexpected '}'"),
])
def test_bad_patterns_are_refused_saying_why(pattern, words):
    with pytest.raises(PatternError, match=words.replace("[", r"\[").replace("{", r"\{")):
        compile_pattern(pattern)


@pytest.mark.timeout(60)
def test_star_bombs_over_oscsend_are_answered_at_once_and_the_frame_rate_holds(live):
    with OscDump() as dump:
        run = live.start(GRAPH, reply=(LOOPBACK, dump.port))
        port = run.osc_port
        run.wait_ticks(20)
        before = fps_over(run, 1.5)
        done = threading.Event()
        sent = 0

        def bombs() -> None:  # the three patterns, over and over, with liblo's oscsend
            nonlocal sent
            deadline = time.monotonic() + 1.6
            while time.monotonic() < deadline and sent < 300:
                for pattern in (STARS_22, STARS_3000, STARS_22_HIT):
                    oscsend(port, pattern, "f", 2.0)
                    sent += 1
            done.set()

        sender = threading.Thread(target=bombs, daemon=True)
        sender.start()
        during = fps_over(run, 1.5)
        assert done.wait(20)
        assert sent >= 6
        errors = dump.wait_for(lambda m: m.address == "/flowml/error", n=3)
        reasons = {m.args[0]: m.args[1] for m in errors}
        assert any("at most 256" in r for r in reasons.values()), reasons
        assert any("no param matches" in r for r in reasons.values()), reasons
        wait_until(lambda: FRAMES["fx"][-1].params.gain == 2.0)   # the matching one applied
        assert FRAMES["k2"][-1].params.gain == 1.0
        assert during >= 0.8 * before, f"{during:.1f} fps during the bombs, {before:.1f} before"
        assert run.sched._failure is None and run.thread.is_alive()


@pytest.mark.timeout(60)
def test_get_with_a_star_bomb_answers_at_once(live):
    with OscDump() as dump:
        run = live.start(GRAPH, reply=(LOOPBACK, dump.port))
        start = time.monotonic()
        oscsend(run.osc_port, "/flowml/get", "s", STARS_22)
        oscsend(run.osc_port, "/flowml/get", "s", STARS_3000)
        oscsend(run.osc_port, "/flowml/get", "s", "/fx/" + "*" * 22 + "in")
        errors = dump.wait_for(lambda m: m.address == "/flowml/error", n=2, timeout=10)
        got = dump.wait_for(lambda m: m.address == "/fx/gain", timeout=10)
        assert got[0].args == [1.0]
        assert time.monotonic() - start < 10
        assert any("at most 256" in m.args[1] for m in errors)
        assert run.thread.is_alive()
