"""Presets: /flowml/preset/save and /recall over OSC (oscsend), the file beside the graph,
crossfades, expressions in presets, bad recalls."""

from __future__ import annotations

import yaml
from control_helpers import LOOPBACK, OscDump, oscsend, wait_until
from control_nodes import FRAMES

GRAPH = """
flowml: 1
clock: {fps: 100}
nodes:
  k1: {type: ctl.knobs}
  m: {type: ctl.model, inputs: {value: k1/value}, params: {scale: {expr: "2 + sin(t)"}}}
"""


def last(node: str):
    return FRAMES[node][-1].params


def test_save_and_recall_over_osc(live):
    with OscDump() as dump:
        run = live.start(GRAPH, reply=(LOOPBACK, dump.port))
        port = run.osc_port
        oscsend(port, "/k1/gain", "f", 4.0)
        oscsend(port, "/k1/mode", "s", "b")
        oscsend(port, "/k1/size", "ii", 10, 20)
        wait_until(lambda: last("k1").size == (10, 20))
        oscsend(port, "/flowml/preset/save", "i", 3)
        dump.wait_for(lambda m: m.address == "/flowml/preset/saved" and m.args == ["3"])
        saved = yaml.safe_load((run.path.parent / "graph.presets.yaml").read_text())
        assert saved["3"]["k1"] == {"gain": 4.0, "count": 3, "on": True, "mode": "b",
                                    "size": [10, 20], "label": "x"}
        assert saved["3"]["m"]["scale"] == {"expr": "2 + sin(t)"}
        oscsend(port, "/k1/gain", "f", 9.0)
        oscsend(port, "/k1/mode", "s", "c")
        oscsend(port, "/m/scale", "f", 50.0)
        wait_until(lambda: last("k1").mode == "c" and last("m").scale == 50.0)
        oscsend(port, "/flowml/preset/recall", "i", 3)
        dump.wait_for(lambda m: m.address == "/flowml/preset/recalled")
        wait_until(lambda: (last("k1").gain, last("k1").mode, last("k1").size) == (4.0, "b", (10, 20)))
        wait_until(lambda: len({f.params.scale for f in FRAMES["m"][-5:]}) > 1)  # follows its expression again
        assert 1 <= last("m").scale <= 3


def test_recall_with_a_crossfade_moves_numbers_linearly(live):
    run = live.start(GRAPH)
    port = run.osc_port
    oscsend(port, "/flowml/preset/save", "s", "start")
    wait_until(lambda: (run.path.parent / "graph.presets.yaml").exists())
    oscsend(port, "/k1/gain", "f", 9.0)
    oscsend(port, "/k1/count", "i", 43)
    oscsend(port, "/k1/on", "F")
    wait_until(lambda: last("k1").count == 43 and not last("k1").on)
    oscsend(port, "/flowml/preset/recall", "sf", "start", 0.5)
    wait_until(lambda: last("k1").gain == 1.0, timeout=5)
    fading = [f for f in FRAMES["k1"] if 1.0 < f.params.gain < 9.0]
    assert len(fading) >= 30                           # about 0.5 s at 100 fps
    gains = [f.params.gain for f in fading]
    assert gains == sorted(gains, reverse=True)
    first = fading[0]
    mid = next(f for f in fading if f.t - first.t >= 0.2)
    rate = (first.params.gain - mid.params.gain) / (mid.t - first.t)
    assert 14 <= rate <= 18                            # (9 - 1) / 0.5 = 16 per second
    assert all(f.params.on for f in fading)            # a bool switches at the start
    assert last("k1").count == 3


def test_bad_recalls_are_answered_and_the_rest_applies(live):
    with OscDump() as dump:
        run = live.start(GRAPH, reply=(LOOPBACK, dump.port))
        (run.path.parent / "graph.presets.yaml").write_text(yaml.safe_dump({
            "7": {"k1": {"gain": 5.0, "count": 500, "nope": 1}, "gone": {"x": 1}},
        }))
        oscsend(run.osc_port, "/flowml/preset/recall", "i", 9)
        found = dump.wait_for(lambda m: m.address == "/flowml/error")
        assert found[0].args[0] == "/flowml/preset/recall"
        assert "no preset '9' in graph.presets.yaml (presets: 7)" in found[0].args[1]
        oscsend(run.osc_port, "/flowml/preset/recall", "i", 7)
        errors = dump.wait_for(                            # preset 7's own three, not recall 9's
            lambda m: m.address == "/flowml/error" and m.args[1].startswith("preset 7:"), n=3)
        reasons = " | ".join(m.args[1] for m in errors)
        assert "/k1/nope: no such param" in reasons and "/gone: no such node" in reasons
        assert "less than or equal to 100" in reasons      # the whole node is checked together
        run.wait_ticks(3)
        assert last("k1").gain == 1.0 and run.thread.is_alive()
        (run.path.parent / "graph.presets.yaml").write_text(yaml.safe_dump({
            "7": {"k1": {"gain": 5.0, "count": 50}, "gone": {"x": 1}}}))
        oscsend(run.osc_port, "/flowml/preset/recall", "i", 7)
        wait_until(lambda: (last("k1").gain, last("k1").count) == (5.0, 50))
