"""graphs/analytics_3dcnn.yaml end to end on the CPU: a tiny variant (T=4, 32x32 clips, a
10-class r3d_18 built by flowml_analytics.models) on a real H.264 file, batched over time as
shipped (the video's ``batch: K`` -> video.clip ``input: frames``), with a small K."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from analytics_helpers import clip_numbers, write_numbered_video

from flowml.graph import load_graph
from flowml.plugins import load_registry
from flowml.runtime.scheduler import Scheduler
from flowml_analytics import models

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
GRAPH = Path(__file__).resolve().parents[3] / "graphs" / "analytics_3dcnn.yaml"


def test_the_3dcnn_graph_validates_as_shipped_batched_over_time():
    graph = load_graph(GRAPH, load_registry())
    assert graph.order[:4] == ["video", "clip", "model", "top"]
    nodes = graph.spec.nodes  # the configuration docs/benchmarks.md measured at >= 3x the loop
    assert graph.spec.mode == "offline" and graph.nodes["video"].params.batch >= 64
    assert graph.nodes["clip"].params.input == "frames"
    assert all(nodes[n].inputs["frames"] == f"{src}/frames"
               for n, src in (("clip", "video"), ("top", "clip"), ("record", "video")))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_a_tiny_3dcnn_graph_classifies_clips_and_records_on_a_rule(tmp_path, device):
    write_numbered_video(tmp_path / "input.mp4", 16)
    models.export(models.build("r3d_18", classes=10), tmp_path / "r3d.pt", frames=4, size=32)
    (tmp_path / "rules.json").write_text(json.dumps([{
        "rule_name": "any", "and": [{"key": "probability", "operator": ">=", "value": 0}],
        "action": {"action_name": "record", "duration_in_seconds": 0.4, "max_duration_in_seconds": 1.0}}]))
    spec = yaml.safe_load(GRAPH.read_text())
    nodes = spec["nodes"]
    nodes["video"]["params"].update(path="input.mp4", size=None, batch=3)  # ticks of 3 frames, the last of 1
    nodes["clip"]["params"].update(frames=4, stride=4, resize=[43, 32], crop=[32, 32])
    nodes["model"]["params"]["path"] = "r3d.pt"
    nodes["rules"]["params"]["path"] = "rules.json"
    nodes["record"]["params"].update(folder="clips", fps=10, gop=10, threads=1, preset="ultrafast")
    nodes["log"]["params"]["path"] = "clips/events.jsonl"
    (tmp_path / "graph.yaml").write_text(yaml.safe_dump(spec))
    with Scheduler(load_graph(tmp_path / "graph.yaml", load_registry()), device=device) as sched:
        result = sched.run()
    assert result.ok, result.error
    stats = result.stats.nodes
    due = [3, 7, 11, 15]  # every 4th frame once 4 are there: in the ticks of frames 3-5, 6-8, 9-11, 15
    assert stats["video"].calls == 6 and (stats["model"].calls, stats["model"].skipped) == (4, 2)
    assert stats["top"].calls == stats["rules"].calls == 4
    events = [json.loads(x) for x in (tmp_path / "clips" / "events.jsonl").read_text().splitlines()]
    assert [e["frame"] for e in events] == due
    assert [e["state"] for e in events] == ["start"] + ["continue"] * (len(due) - 1)
    top = events[0]["metadata"]
    assert set(top) == {"predicted_class", "class_index", "probability", "top", "frame", "t"} and len(top["top"]) == 5
    assert [(e["metadata"]["frame"], e["t"]) for e in events] == [(f, pytest.approx(f / 10)) for f in due]
    assert 0 < top["probability"] <= 100
    # every 4th frame extends the post-roll by 0.4 s; the cap is 1 s = 10 frames from frame 0
    (clip,) = sorted((tmp_path / "clips").glob("*.mp4"))
    numbers, keys = clip_numbers(clip)
    assert numbers == list(range(0, 10)) and keys[0]
