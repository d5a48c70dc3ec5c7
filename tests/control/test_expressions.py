"""Expressions: the safe evaluator, their checks when a graph loads, and params that follow
them (and each other) while a graph runs; smoothing."""

from __future__ import annotations

import math
import time

import pytest
from control_helpers import wait_until
from control_nodes import FRAMES

from flowml.graph import GraphErrors, load_graph
from flowml.graph.expr import ExprError, parse_expression


# -- the evaluator -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, t, frame, expected", [
    ("0.5 + 0.5*sin(t*0.7)", 1.0, 0, 0.5 + 0.5 * math.sin(0.7)),
    ("frame % 4", 0.0, 10, 2),
    ("clamp(t*2, 0, 1)", 3.0, 0, 1),
    ("mix(10, 20, 0.25)", 0.0, 0, 12.5),
    ("1 if t > 2 and frame < 5 else -1", 2.5, 3, 1),
    ("not (t >= 1)", 0.5, 0, True),
    ("[100 + t, 2*t]", 1.0, 0, [101.0, 2.0]),
    ("2 ** 10", 0.0, 0, 1024.0),
    ("max(1, t, 3) + min(4, 5)", 2.0, 0, 7),
    ("round(pi, 2) + floor(2.7) + ceil(0.2)", 0.0, 0, 3.14 + 3),
    ("tri(0.25) + saw(1.5) + square(0.75)", 0.0, 0, 0.5 + 0.5 + 0.0),
    ("'warm' if sin(t) > 0 else 'cold'", 1.0, 0, "warm"),
    ("1 < t < 3", 2.0, 0, True),
    ("log(8, 2) + sqrt(16) + abs(-1) + hypot(3, 4)", 0.0, 0, 3 + 4 + 1 + 5),
])
def test_expressions_evaluate(text, t, frame, expected):
    value = parse_expression(text).evaluate(t, frame)
    assert value == pytest.approx(expected) if not isinstance(expected, (str, bool)) else value == expected


def test_noise_and_rand_are_repeatable_and_in_range():
    e = parse_expression("noise(t) + 10*rand(t)")
    values = [e.evaluate(t / 10) for t in range(100)]
    assert values == [e.evaluate(t / 10) for t in range(100)]
    n = parse_expression("noise(t)")
    assert all(0 <= n.evaluate(t / 7) < 1 for t in range(200))
    assert len({round(v, 6) for v in values}) > 20


def test_references_are_read_through_the_lookup():
    e = parse_expression("fader.value * 2 + t")
    assert e.refs == {("fader", "value")} and e.uses_time
    assert e.evaluate(1.0, 0, lambda node, name: {"fader": 3}[node]) == 7
    assert not parse_expression("1 + 2").uses_time


@pytest.mark.parametrize("text, words", [
    ("sin(", "invalid syntax"),
    ("1 +", "invalid syntax"),
    ("__import__('os')", "unknown function '__import__'"),
    ("open('f')", "unknown function 'open'"),
    ("(1).__class__", "only node.param or node.output"),
    ("a.b.c", "only node.param or node.output"),
    ("x + 1", "unknown name 'x'"),
    ("sinn(t)", "did you mean 'sin'"),
    ("tt * 2", "did you mean 't'"),
    ("[1, 2][0]", "indexing"),
    ("lambda: 1", "lambda"),
    ("[i for i in [1]]", "comprehension"),
    ("{'a': 1}", "a dict"),
    ("f'{t}'", "f-string"),
    ("t & 1", "the operator '&' is not allowed; use 'and'"),
    ("t is 1", "the operator 'is' is not allowed"),
    ("sin", "sin is a function: call it"),
    ("sin(t, 2)", "sin() takes 1 argument, got 2"),
    ("clamp(t)", "clamp() takes 3 arguments, got 1"),
    ("max(x=1)", "plain arguments"),
    ("1j", "not allowed"),
    ("", "empty"),
    ("1" * 1001, "at most 1000"),
    ("(x := 1)", "':='"),
])
def test_bad_expressions_say_what_is_wrong(text, words):
    with pytest.raises(ExprError) as exc:
        parse_expression(text)
    assert words in exc.value.message


def test_syntax_errors_give_the_column():
    with pytest.raises(ExprError) as exc:
        parse_expression("1 + sin(t))")
    assert exc.value.col == 11


@pytest.mark.parametrize("text, words", [
    ("1 / (t - t)", "division by zero"),
    ("sqrt(-1 - t)", "math domain error"),
    ("9 ** 9 ** 9", "too large"),
    ("[0] * 1000000000", "'*' works on numbers"),
    ("'a' * 1000000000", "'*' works on numbers"),
    ("[t] + [t]", "'+' works on numbers"),
    ("exp(1000)", "too large"),
])
def test_evaluation_errors_are_expr_errors_and_bounded(text, words):
    start = time.perf_counter()
    e = parse_expression(text)
    with pytest.raises(ExprError) as exc:
        e.evaluate(0.0)
    assert words in str(exc.value)
    assert time.perf_counter() - start < 0.5


# -- in graph files ------------------------------------------------------------------------------

def errors_of(registry, text: str) -> list[str]:
    with pytest.raises(GraphErrors) as exc:
        load_graph("g.yaml", registry, text=text)
    return [str(e) for e in exc.value.errors]


def test_a_bad_expression_is_an_error_at_its_line_naming_node_and_param(registry):
    errors = errors_of(registry, """flowml: 1
clock: {fps: 10}
nodes:
  k1: {type: ctl.knobs, params: {count: 2}}
  k2:
    type: ctl.knobs
    params:
      gain: {expr: "1 + sin(t"}
""")
    assert errors == ["g.yaml:8:20: error: node 'k2': param 'gain': bad expression: invalid syntax: "
                      "'(' was never closed (column 8)"]


def test_an_expression_is_checked_by_the_param_field_at_t0(registry):
    errors = errors_of(registry, """flowml: 1
clock: {fps: 10}
nodes:
  k1:
    type: ctl.knobs
    params: {gain: {expr: "20 + t"}, mode: {expr: "'z'"}}
""")
    assert errors[0] == ("g.yaml:6:20: error: node 'k1': param 'gain': Input should be less than or "
                         "equal to 10 (got 20.0) (the value of expression '20 + t' at t=0)")
    assert "param 'mode'" in errors[1] and "expression \"'z'\"" in errors[1]


def test_references_must_name_a_param_or_a_scalar_output(registry):
    errors = errors_of(registry, """flowml: 1
clock: {fps: 10}
nodes:
  k1: {type: ctl.knobs}
  m: {type: ctl.model, inputs: {value: k1/value}, params: {scale: {expr: "k1.gian + kk.gain"}}}
""")
    assert len(errors) == 2
    assert "node 'm': param 'scale': expression 'k1.gian + kk.gain': k1.gian: node 'k1' has no param " \
           "or output 'gian'; did you mean k1.gain?" in errors[0]
    assert "kk.gain: no node 'kk'; nodes: k1, m" in errors[1]


def test_smooth_names_numeric_params(registry):
    errors = errors_of(registry, """flowml: 1
clock: {fps: 10}
nodes:
  k1: {type: ctl.knobs, smooth: {gain: 0.2, mode: 1, gian: 1}}
""")
    assert "g.yaml:4:51: error: node 'k1': smooth: param 'mode' is not a number" in errors[0]
    assert "smooth: unknown param 'gian'; did you mean 'gain'?" in errors[1]


def test_a_dict_param_keeps_an_expr_key_as_a_plain_value(registry):
    import flowml
    from flowml.plugins import Registry

    class Dicty(flowml.Node):
        type_name = "ctl.dicty"

        class Params(flowml.Params):
            args: dict = {}

        def process(self):
            return None

    reg = Registry()
    reg.add(Dicty, "t")
    g = load_graph("g.yaml", reg, text="""flowml: 1
clock: {fps: 10}
nodes:
  d: {type: ctl.dicty, params: {args: {expr: "not an expression"}}}
""")
    assert g.nodes["d"].params.args == {"expr": "not an expression"} and not g.nodes["d"].expressions


def test_flowml_params_shows_expressions_and_smoothing(live, monkeypatch, capsys):
    from flowml import cli

    path = live.write("""
        flowml: 1
        clock: {fps: 10}
        osc: {prefix: show}
        nodes:
          k1: {type: ctl.knobs, params: {gain: {expr: "1 + sin(t)"}}, smooth: {count: 0.5}}
    """)
    monkeypatch.setattr(cli, "_registry", lambda: live.registry)
    assert cli.main(["params", str(path), "--json"]) == 0
    rows = {r["address"]: r for r in __import__("json").loads(capsys.readouterr().out)}
    assert rows["/show/k1/gain"]["expr"] == "1 + sin(t)" and rows["/show/k1/gain"]["value"] == 1.0
    assert rows["/show/k1/count"]["smooth"] == 0.5 and rows["/show/k1/gain"]["smooth"] is None
    assert cli.main(["params", str(path)]) == 0
    text = capsys.readouterr().out
    assert "= 1 + sin(t)" in text and "(smooth 0.5 s)" in text


# -- while running -------------------------------------------------------------------------------

def test_a_param_follows_its_expression_frame_by_frame(live):
    run = live.start("""
        flowml: 1
        clock: {fps: 100}
        nodes:
          k1: {type: ctl.knobs, params: {gain: {expr: "5 + 4*sin(t*3)"}, count: {expr: "frame % 10"},
                                         size: {expr: "[100 + frame, 50]"}}}
    """, osc=False)
    run.wait_ticks(30)
    frames = FRAMES["k1"][1:]
    assert len({f.params.gain for f in frames}) > 10
    for f in frames:
        assert f.params.gain == pytest.approx(5 + 4 * math.sin(f.t * 3))
        assert f.params.count == f.index % 10
        assert f.params.size == (100 + f.index, 50)


def test_expression_values_are_clamped_and_rounded(live):
    live.start("""
        flowml: 1
        clock: {fps: 100}
        nodes:
          k1: {type: ctl.knobs, params: {gain: {expr: "30*sin(t*10)"}, count: {expr: "t*7.4"}}}
    """, osc=False).wait_ticks(30)
    gains = [f.params.gain for f in FRAMES["k1"]]
    assert min(gains) == 0.0 and max(gains) == 10.0
    assert all(f.params.count == min(100, round(f.t * 7.4)) for f in FRAMES["k1"][1:])


def test_an_expression_reads_other_params_and_scalar_outputs(live):
    run = live.start("""
        flowml: 1
        clock: {fps: 100}
        nodes:
          fader: {type: ctl.knobs, params: {gain: 2.0}}
          m: {type: ctl.model, inputs: {value: fader/value}, params: {scale: {expr: "fader.gain * 3"}}}
          k: {type: ctl.knobs, params: {gain: {expr: "m.value / 10"}}}
    """)
    run.wait_ticks(3)
    assert FRAMES["m"][-1].params.scale == 6.0
    wait_until(lambda: FRAMES["k"][-1].params.gain == pytest.approx(1.2))  # m.value = 2 * 6
    run.store.set("/fader/gain", 3.0)
    wait_until(lambda: FRAMES["m"][-1].params.scale == 9.0)
    changed = next(f.index for f in FRAMES["fader"] if f.params.gain == 3.0)
    assert {f.index: f.params.scale for f in FRAMES["m"]}[changed] == 9.0  # in the same frame
    wait_until(lambda: FRAMES["k"][-1].params.gain == pytest.approx(2.7))


def test_a_failing_expression_is_reported_once_and_the_graph_runs_on(live, caplog):
    run = live.start("""
        flowml: 1
        clock: {fps: 100}
        nodes:
          k1: {type: ctl.knobs, params: {gain: {expr: "1 + 1 / (frame % 4 - 1)"}}}
    """, osc=False)
    run.wait_ticks(20)
    warnings = [r for r in caplog.records if "division by zero" in r.getMessage()]
    assert len(warnings) == 1 and "/k1/gain" in warnings[0].getMessage()
    assert run.session.reporter.counts["/k1/gain"] >= 4
    assert run.sched._failure is None and run.thread.is_alive()
    held = {f.index: f.params.gain for f in FRAMES["k1"]}
    assert all(held[i] == held[i - 1] for i in held if i % 4 == 1 and i - 1 in held)


def test_smoothing_glides_to_a_new_value(live):
    run = live.start("""
        flowml: 1
        clock: {fps: 100}
        nodes:
          k1: {type: ctl.knobs, smooth: {gain: 0.5, count: 0.2}}
    """)
    run.wait_ticks(3)
    run.store.set("/k1/gain", 9.0)
    run.store.set("/k1/count", 13)
    wait_until(lambda: FRAMES["k1"][-1].params.gain == 9.0, timeout=10)
    frames = [f for f in FRAMES["k1"] if f.params.gain != 1.0]
    gains = [f.params.gain for f in frames]
    assert gains == sorted(gains) and len(gains) > 20       # rises step by step, never back
    assert gains[0] < 1.8                                    # no jump
    t0 = frames[0].t - 0.01
    at_half_second = next(f.params.gain for f in frames if f.t - t0 >= 0.5)
    assert 1 + 0.93 * 8 <= at_half_second <= 1 + 0.97 * 8    # 95% of the step after 0.5 s
    counts = [f.params.count for f in FRAMES["k1"]]
    assert counts[-1] == 13 and len(set(counts)) > 5 and all(isinstance(c, int) for c in counts)


def test_the_json_schema_accepts_expressions_and_smoothing(registry):
    jsonschema = pytest.importorskip("jsonschema")
    from flowml.graph import graph_json_schema

    validator = jsonschema.Draft202012Validator(graph_json_schema(registry))

    def problems(node: dict) -> list[str]:
        data = {"flowml": 1, "clock": {"fps": 10}, "nodes": {"k": {"type": "ctl.knobs", **node}}}
        return [e.message for e in validator.iter_errors(data)]

    assert problems({"params": {"gain": {"expr": "1 + sin(t)"}, "count": 4}, "smooth": {"gain": 0.2}}) == []
    assert problems({"smooth": 0.5}) == []
    assert any("is not of type 'string'" in p for p in problems({"params": {"gain": {"expr": 3}}}))
    assert any("20 is greater than the maximum of 10" in p for p in problems({"params": {"gain": 20}}))


ORACLE_TEXTS = [
    "1 + 0.5*sin(t*3)", "0.2*sin(t*5)", "2*pi*0.5 + t", "frame * 3 - 1", "frame // 3 + frame % 2",
    "-frame + 2", "-(2*t)", "+t", "+true", "+frame", "-true", "true + true + frame", "(t > 1) * 10 + frame", "t / 2 + 7 // 2",
    "abs(-frame) + floor(t) * 2", "min(frame, 3) * max(t, 1)", "clamp(frame, 0, 1) + 1",
    "1 if frame > 2 else 2.5", "frame and t", "0 or frame", "round(t, 1) * 3", "fract(frame) + 1",
    "tri(frame) * 4", "mix(frame, 10, 0.5)", "int(t * 10) * 3", "sign(t - 5) * frame",
    "10 * fader.v + frame", "fader.v * fader.v", "-fader.v", "sin(fader.v) + 1", "2 - t",
    "10 / (t + 1)", "7 % (frame + 2)", "2.5 - frame",
]


@pytest.mark.parametrize("text", ORACLE_TEXTS)
@pytest.mark.parametrize("t, frame", [(0.0, 0), (1.75, 5), (12.5, 301)])
def test_expressions_equal_plain_python_value_and_type(text, t, frame):
    """The compiler skips the number checks where it knows a value is a number and computes
    constant parts once: the results, value and type, must still be Python's own."""
    from flowml.graph.expr import CONSTANTS, FUNCTIONS

    ref = {"v": 3}
    names = {**CONSTANTS, **{k: f for k, (f, *_rest) in FUNCTIONS.items()}, "t": t, "frame": frame,
             "fader": type("Fader", (), ref)}
    expected = eval(text, {"__builtins__": {}}, names)  # the oracle: plain Python, in this test only
    got = parse_expression(text).evaluate(t, frame, lambda node, name: ref[name])
    assert got == expected and type(got) is type(expected)


def test_constant_parts_are_computed_once_and_their_errors_stay_at_evaluation():
    assert parse_expression("2 * pi * 10").evaluate() == pytest.approx(20 * math.pi)
    e = parse_expression("1/0 + t")  # parses: the division fails each time it is evaluated
    with pytest.raises(ExprError, match="division by zero"):
        e.evaluate(1.0)
    assert parse_expression("int(1e300) // int(1e290) + frame").evaluate(0.0, 1) > 1


def test_a_value_from_another_node_is_still_checked_for_being_a_number():
    e = parse_expression("fader.v * 2 + sin(t)")
    assert e.evaluate(0.0, 0, lambda node, name: 4) == 8
    with pytest.raises(ExprError, match="'\\*' works on numbers, not on list"):
        e.evaluate(0.0, 0, lambda node, name: [0] * 3)
    with pytest.raises(ExprError, match="'sin' works on numbers"):
        parse_expression("sin(fader.v)").evaluate(0.0, 0, lambda node, name: "x")
