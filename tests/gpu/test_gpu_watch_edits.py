"""Issue 21 on CUDA: 200 seeded ``--watch`` edits of a running GPU graph with a recorder; then
the edited graph's outputs equal a fresh run of the final graph file, frame by frame."""

from __future__ import annotations

import random
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "control"))
from control_helpers import LiveGraphs, save_as_editors_do, wait_until  # noqa: E402
from gpu_nodes import ALL, RESULTS  # noqa: E402

from flowml.graph import load_graph  # noqa: E402
from flowml.plugins import load_registry  # noqa: E402
from flowml.runtime.scheduler import Scheduler  # noqa: E402

pytestmark = pytest.mark.cuda

GRAPH = """\
# edit {n}
flowml: 1
clock: scene
mode: live
nodes:
  scene: {{type: capture.pattern, params: {{pattern: scene, size: [128, 72], fps: 30}}}}
  fx: {{type: image.color, inputs: {{image: scene/image}}, params: {{brightness: {brightness}, gamma: {gamma}}}}}
{flip}{extra}  rec: {{type: output.video, inputs: {{image: {out}}}, params: {{path: take.mp4}}}}
  probe: {{type: gpu.collect_by_frame, inputs: {{x: {out}}}}}
"""
FLIP = "  flip: {type: image.flip, inputs: {image: fx/image}, params: {vertical: %s}}\n"
EXTRA = "  extra: {type: image.resize, inputs: {image: %s}, params: {size: [64, 36]}}\n"
BROKEN = "# edit {n}\nflowml: 1\nnodes: {{scene: {{type: capture.patern}}}}\n"  # numbered: each save differs


def _edit(rng: random.Random, n: int) -> str | None:
    if rng.random() < 0.1:
        return None
    flip = FLIP % rng.choice(["true", "false"]) if rng.random() < 0.5 else ""
    out = rng.choice(["fx/image", "scene/image"] + (["flip/image"] * 2 if flip else []))
    extra = EXTRA % rng.choice(["scene/image", "fx/image"]) if rng.random() < 0.4 else ""
    return GRAPH.format(n=n, brightness=round(rng.uniform(0.2, 2), 2),
                        gamma=round(rng.uniform(0.5, 2), 2), flip=flip, extra=extra, out=out)


@pytest.mark.timeout(300)
def test_two_hundred_watch_edits_on_the_gpu_then_outputs_equal_a_fresh_run(tmp_path):
    registry = load_registry()
    for cls in ALL:
        registry.add(cls, "gpu-tests")
    said: list[str] = []
    graphs = LiveGraphs(tmp_path, registry)
    rng = random.Random(2121)
    final = _edit(random.Random(0), 0) or ""
    try:
        run = graphs.start(final, osc=False, watch=True, say=said.append, device="cuda")
        run.session.watcher.interval = run.session.watcher.settle = 0.02
        run.wait_ticks(3, timeout=30)
        rec = run.sched.nodes["rec"].node
        for n in range(1, 201):
            text = _edit(rng, n)
            heard = len(said)
            save_as_editors_do(tmp_path / "graph.yaml", text or BROKEN.format(n=n))
            wait_until(lambda: any("reloaded" in s or "goes on unchanged" in s or "reload failed" in s
                                   for s in said[heard:]), timeout=20)
            assert run.thread.is_alive() and run.sched._failure is None, said[heard:]
            if text is not None:
                assert any("reloaded" in s for s in said[heard:]), said[heard:]
                assert run.sched.nodes["rec"].node is rec
                final = text
        RESULTS.clear()  # from here on, the final graph only
        run.wait_ticks(30, timeout=30)
        result = run.stop()
    finally:
        graphs.stop_all()
    assert result is not None and result.ok
    edited = dict(RESULTS["by_frame"])
    assert len(edited) >= 20
    fresh_dir = tmp_path / "fresh"
    fresh_dir.mkdir()
    (fresh_dir / "graph.yaml").write_text(textwrap.dedent(final))
    RESULTS.clear()
    g = load_graph(fresh_dir / "graph.yaml", registry)
    with Scheduler(g, mode="offline", device="cuda") as sched:
        # the kept source numbered its frames on; the fresh one starts at 0: run it that far
        assert sched.run(frames=max(edited) + 1).ok
    fresh = dict(RESULTS["by_frame"])
    common = sorted(set(edited) & set(fresh))
    assert len(common) >= 20
    assert all(abs(edited[k] - fresh[k]) < 1e-6 for k in common), \
        [(k, edited[k], fresh[k]) for k in common if abs(edited[k] - fresh[k]) >= 1e-6][:5]
