"""Issue 21, "must show": a live graph with a blocking sink and three animated params for 30 s,
and 200 randomised ``--watch`` edits of a running graph with a recorder."""

from __future__ import annotations

import random
import time

import av
import pytest
from control_helpers import LiveGraphs, oscsend, save_as_editors_do, wait_until
from live_nodes import ALL, SEEN

from flowml.plugins import load_registry


@pytest.mark.timeout(120)
def test_a_blocking_sink_with_three_animated_params_drops_only_when_it_is_slower(live, tmp_path):
    """A 60 Hz expression, a smoothed param moved over OSC every second and a preset
    crossfaded in and out: for 30 s the sink (4 ms a frame at 60 fps) drops next to nothing;
    made slower than the source (30 ms), it drops and says so."""
    run = live.start("""
        flowml: 1
        clock: {fps: 60}
        nodes:
          src: {type: test.counter}
          sink:
            type: live.tunable
            inputs: {value: src/value}
            params: {delay: 0.004, a: {expr: "sin(t*tau*2)"}, b: 0.0, c: 0.0}
            smooth: {b: 0.5}
    """)
    port, rng = run.osc_port, random.Random(7)
    oscsend(port, "/flowml/preset/save", "i", 1)          # c = 0
    t0 = time.monotonic()
    second = 0
    while time.monotonic() - t0 < 30:
        second += 1
        oscsend(port, "/sink/b", "f", round(rng.uniform(0, 10), 2))
        if second % 4 == 1:
            oscsend(port, "/sink/c", "f", 10.0)
        elif second % 4 == 2:
            oscsend(port, "/flowml/preset/recall", "if", 1, 1.5)  # crossfade c back to 0
        time.sleep(max(0.0, t0 + second - time.monotonic()))
    steady = run.sched.stats.nodes["sink"].as_dict()
    ticks = run.sched.stats.ticks
    seen = list(SEEN["sink"])
    assert steady["calls"] >= 0.99 * ticks - 2 and steady["drops"] <= 0.01 * ticks + 2, (steady, ticks)
    a = [s[1] for s in seen]
    b = [s[2] for s in seen]
    c = [s[3] for s in seen]
    moved = sum(x != y for x, y in zip(a, a[1:]))
    assert moved > 0.95 * (len(a) - 1), "the expression moves every frame"
    assert len({round(x, 3) for x in b}) > 200, "smoothing moves b through many values"
    assert any(0.5 < x < 9.5 for x in c), "the preset crossfade passes through c's middle"
    # now the sink is really slower than the source: it drops, and the drops are counted
    oscsend(port, "/sink/delay", "f", 0.03)
    wait_until(lambda: abs(run.sched.params_of("sink").delay - 0.03) < 1e-6)  # OSC sends float32
    before = dict(drops=run.sched.stats.nodes["sink"].drops, ticks=run.sched.stats.ticks)
    time.sleep(3)
    slow_drops = run.sched.stats.nodes["sink"].drops - before["drops"]
    slow_ticks = run.sched.stats.ticks - before["ticks"]
    assert slow_drops >= 0.3 * slow_ticks, (slow_drops, slow_ticks)
    assert run.stop().ok


WATCHED = """\
# edit {n}
flowml: 1
clock: {{fps: 30}}
nodes:
  scene: {{type: capture.pattern, params: {{pattern: scene, size: [64, 48]}}}}
  count: {{type: test.counter}}
  calls: {{type: test.calls, inputs: {{value: count/value}}}}
  fx: {{type: image.color, inputs: {{image: scene/image}}, params: {{brightness: {brightness}, gamma: {gamma}}}}}
{flip}{extra}  rec: {{type: output.video, inputs: {{image: {rec_in}}}, params: {{path: take.mp4}}}}
"""
FLIP = "  flip: {type: image.flip, inputs: {image: fx/image}, params: {vertical: %s}}\n"
EXTRA = "  extra: {type: image.resize, inputs: {image: %s}, params: {size: [32, 24]}}\n"
BROKEN = ["flowml: 1\nnodes: {scene: {type: capture.patern}}\n", "flowml: 1\nnodes: [\n",
          "flowml: 1\nclock: {fps: 30}\nnodes:\n  a: {type: image.color, inputs: {image: nobody/image}}\n"]


def _edit(rng: random.Random, n: int) -> tuple[str, bool]:
    """A random edit of the watched graph: (text, valid?)."""
    if rng.random() < 0.1:  # numbered, so that two broken saves in a row still differ
        return f"# edit {n}\n" + rng.choice(BROKEN), False
    flip = FLIP % rng.choice(["true", "false"]) if rng.random() < 0.5 else ""
    rec_in = rng.choice(["fx/image", "scene/image"] + (["flip/image"] * 2 if flip else []))
    extra = EXTRA % rng.choice(["scene/image", "fx/image"]) if rng.random() < 0.4 else ""
    return WATCHED.format(n=n, brightness=round(rng.uniform(0.2, 2), 2),
                          gamma=round(rng.uniform(0.5, 2), 2), flip=flip, extra=extra,
                          rec_in=rec_in), True


@pytest.mark.timeout(240)
def test_two_hundred_random_watch_edits_never_crash_and_keep_what_they_keep(tmp_path):
    registry = load_registry()
    import runtime_nodes
    for cls in (*ALL, runtime_nodes.Counter, runtime_nodes.Calls):
        registry.add(cls, "runtime-tests")
    said: list[str] = []
    graphs = LiveGraphs(tmp_path, registry)
    rng = random.Random(2112)
    first, _ = _edit(random.Random(0), 0)
    try:
        run = graphs.start(first, osc=False, watch=True, say=said.append)
        watcher = run.session.watcher
        watcher.interval, watcher.settle = 0.02, 0.02
        run.wait_ticks(3, timeout=20)
        rec, calls = run.sched.nodes["rec"].node, run.sched.nodes["calls"].node
        valid = 0
        for n in range(1, 201):
            text, ok = _edit(rng, n)
            heard = len(said)
            save_as_editors_do(tmp_path / "graph.yaml", text)
            wait_until(lambda: any("reloaded" in s or "goes on unchanged" in s or "reload failed" in s
                                   for s in said[heard:]), timeout=20)
            assert run.thread.is_alive() and run.sched._failure is None, said[heard:]
            valid += ok
            if ok:
                assert any("reloaded" in s for s in said[heard:]), said[heard:]
                # the recorder and the stateful node were never rebuilt: same instances
                assert run.sched.nodes["rec"].node is rec and run.sched.nodes["calls"].node is calls
            else:
                assert any("goes on unchanged" in s for s in said[heard:]), said[heard:]
        before = calls.n
        run.wait_ticks(5, timeout=20)
        assert calls.n > before > 0, "the kept counter counts on from where it was"
        result = run.stop()
    finally:
        graphs.stop_all()
    assert result is not None and result.ok
    assert not [s for s in said if "Traceback" in s]
    assert valid > 150
    with av.open(str(tmp_path / "take.mp4")) as c:  # one take, never reopened: it plays
        frames = sum(1 for _ in c.decode(video=0))
    assert frames >= result.stats.nodes["rec"].calls - 2 > 100
