"""Expressions are bounded by construction: argument limits on functions whose cost grows
with an argument, integer sizes, operation counts and nesting; the same checks when a graph
file is validated (line and column) and when OSC sets an expression (/flowml/error, the old
value kept, the frame rate unchanged)."""

from __future__ import annotations

import threading
import time

import pytest
from control_helpers import LOOPBACK, OscDump, fps_over, oscsend, wait_until
from control_nodes import FRAMES

from flowml.graph import GraphErrors, load_graph
from flowml.graph.expr import MAX_DEPTH, MAX_INT_BITS, MAX_STEPS, ExprError, parse_expression

ROUND_BOMB = "1 + 0*round(frame, -2*10**6)"
ROUND_BOMB_2 = "round(1, -100000000)"


@pytest.mark.parametrize("text, words, col", [
    (ROUND_BOMB, "round(): the number of digits must be from -400 to 400, got -2e+06", 20),
    (ROUND_BOMB_2, "got -100000000", 10),
    ("round(t, 10**9)", "got 1e+09", 10),
    ("9" * 400, f"at most {MAX_INT_BITS}", 1),
    ("-" * (MAX_DEPTH + 5) + "t", f"nested more than {MAX_DEPTH} deep", MAX_DEPTH + 1),
    ("[" + ",".join(["-t"] * (MAX_STEPS // 2 + 50)) + "]", f"more than {MAX_STEPS} operations", 0),
])
def test_bombs_are_refused_when_parsed_with_the_column(text, words, col):
    start = time.perf_counter()
    with pytest.raises(ExprError) as exc:
        parse_expression(text)
    assert words in exc.value.message
    if col:
        assert exc.value.col == col
    assert time.perf_counter() - start < 1.0  # generous: it takes well under a millisecond


@pytest.mark.parametrize("text, t, frame, words", [
    ("round(t, frame * 1000)", 0.5, 7, "got 7000"),          # a limit computed from frame
    ("int(1e308) * int(1e308) * int(1e308) * int(1e308)", 0.0, 0, "integer of 2047 bits"),
    ("exp(frame * 1000)", 0.0, 3, "too large"),             # floats: overflow, as before
])
def test_limits_computed_at_run_time_are_checked_each_evaluation(text, t, frame, words):
    e = parse_expression(text)
    start = time.perf_counter()
    with pytest.raises(ExprError) as exc:
        e.evaluate(t, frame)
    assert words in str(exc.value)
    assert time.perf_counter() - start < 1.0


def test_values_inside_the_limits_still_work():
    assert parse_expression("round(t, 2)").evaluate(1.23456) == 1.23
    assert parse_expression("round(frame, -2)").evaluate(0, 1234) == 1200
    assert parse_expression("round(t, 400)").evaluate(0.5) == 0.5
    assert parse_expression("int(1e300) // int(1e290)").evaluate() > 0
    assert parse_expression("round(t, frame)").evaluate(1.25, 1) == 1.2


def test_a_round_bomb_in_a_graph_file_is_an_error_at_its_line_and_column(registry):
    with pytest.raises(GraphErrors) as exc:
        load_graph("g.yaml", registry, text="""flowml: 1
clock: {fps: 10}
nodes:
  fx:
    type: ctl.knobs
    params:
      gain: {expr: "1 + 0*round(frame, -2*10**6)"}
""")
    errors = [str(e) for e in exc.value.errors]
    assert len(errors) == 1
    assert errors[0].startswith("g.yaml:7:")
    assert "node 'fx'" in errors[0] and "param 'gain'" in errors[0]
    assert "round(): the number of digits must be from -400 to 400" in errors[0]
    assert "(column 20)" in errors[0]


GRAPH = """
flowml: 1
clock: {fps: 100}
nodes:
  fx: {type: ctl.knobs}
"""


@pytest.mark.timeout(60)
def test_expression_bombs_over_osc_are_refused_and_the_frame_rate_holds(live):
    with OscDump() as dump:
        run = live.start(GRAPH, reply=(LOOPBACK, dump.port))
        port = run.osc_port
        oscsend(port, "/fx/gain", "f", 3.0)
        wait_until(lambda: FRAMES["fx"][-1].params.gain == 3.0)
        before = fps_over(run, 1.5)
        sent = 0
        done = threading.Event()

        def bombs() -> None:
            nonlocal sent
            deadline = time.monotonic() + 1.6
            while time.monotonic() < deadline and sent < 300:
                oscsend(port, "/fx/gain/expr", "s", ROUND_BOMB)
                oscsend(port, "/fx/gain", "s", "=" + ROUND_BOMB_2)
                oscsend(port, "/fx/count/expr", "s", "round(frame, frame * 10**7)")  # at run time
                sent += 3
            done.set()

        threading.Thread(target=bombs, daemon=True).start()
        during = fps_over(run, 1.5)
        assert done.wait(20) and sent >= 6
        errors = dump.wait_for(lambda m: m.address == "/flowml/error", n=3)
        reasons = " | ".join(m.args[1] for m in errors)
        assert "the number of digits must be from -400 to 400" in reasons
        assert {m.args[0] for m in errors} >= {"/fx/gain/expr", "/fx/gain"}
        assert all(f.params.gain == 3.0 for f in FRAMES["fx"][-20:])   # the old value kept
        assert during >= 0.8 * before, f"{during:.1f} fps during the bombs, {before:.1f} before"
        assert run.sched._failure is None and run.thread.is_alive()
