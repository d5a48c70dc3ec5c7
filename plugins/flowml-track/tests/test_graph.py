"""graphs/analytics_tracking.yaml end to end on the CPU, small: a synthetic H.264 scene ->
detect.background -> track.objects -> crop.square -> torch.model (SqueezeNet) ->
classify.join -> overlay.tracks -> output.video and output.image."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from flowml.graph import load_graph
from flowml.plugins import load_registry
from flowml.runtime.scheduler import Scheduler
from flowml_track.models import save_squeezenet
from flowml_track.synth import Scene, write_video

from track_helpers import decoded

GRAPH = Path(__file__).resolve().parents[3] / "graphs" / "analytics_tracking.yaml"
RULES = GRAPH.with_name("analytics_tracking_rules.json")


def test_tracking_graph_writes_an_overlay_video_with_classes_joined_to_tracks(tmp_path):
    if not GRAPH.is_file():
        pytest.skip(f"the repo's graphs/ folder is not here ({GRAPH})")  # an installed copy
    scene = Scene((160, 120), 45, 30, objects=3, seed=1)
    write_video(scene, tmp_path / "out" / "tracking_scene.mp4")
    save_squeezenet(tmp_path / "models" / "squeezenet_tracks.pt", classes=2)
    text = GRAPH.read_text().replace("size: 224", "size: 32").replace("at_frame: 60", "at_frame: 40")
    assert "size: 32" in text and "at_frame: 40" in text
    (tmp_path / "graphs").mkdir()
    path = tmp_path / "graphs" / "analytics_tracking.yaml"
    path.write_text(text)
    rules = RULES.read_text().replace('"value": 1.3', '"value": 0.5')  # the test's video is 1.5 s
    assert '"value": 0.5' in rules
    (tmp_path / "graphs" / RULES.name).write_text(rules)
    seen: dict[int, list] = {}
    graph = load_graph(path, load_registry())
    with Scheduler(graph, device="cpu") as sched:
        sched.after_tick.append(lambda tick, out: seen.setdefault(tick.index, [out["join"]["classes"],
                                                                               out["crops"]["ids"],
                                                                               out["track"]["tracks"]]))
        result = sched.run()
    frames = decoded(tmp_path / "out" / "analytics_tracking.mp4")
    assert len(frames) == 45 and frames[0].shape == (1, 120, 160, 3)
    assert (tmp_path / "out" / "analytics_tracking.png").stat().st_size > 1000
    for i in range(30, 45):
        classes, ids, tracks = seen[i]
        assert [c["tracker_id"] for c in classes] == ids and len(ids) == len(scene.truth(i))  # all, joined
        assert all(c["class"] in ("square", "disc") and 0 <= c["probability"] <= 100 for c in classes)
        assert {t["tracker_id"] for t in tracks} >= set(ids)
    # the rule fired on every track followed for 0.5 s, and a clip was recorded
    events = [json.loads(line) for line in (tmp_path / "out" / "tracking_clips" / "events.jsonl").read_text().splitlines()]
    long_tracks = {(i, t["tracker_id"]) for i, (_, _, tracks) in seen.items() for t in tracks
                   if t["tracking_duration_in_seconds"] >= 0.5 and t["tracking_ended_time"] == "N/A"}
    assert long_tracks and {(e["frame"], e["tracker_id"]) for e in events} == long_tracks
    # each event's record has its track's class of that frame joined in (rules' `extra`)
    classified = {(i, c["tracker_id"]): c for i, (classes, _, _) in seen.items() for c in classes}
    joined = [e for e in events if (e["frame"], e["tracker_id"]) in classified]
    assert len(joined) > len(events) // 2
    for e in joined:
        c = classified[(e["frame"], e["tracker_id"])]
        assert (e["metadata"]["class"], e["metadata"]["probability"]) == (c["class"], c["probability"])
    assert list((tmp_path / "out" / "tracking_clips").glob("*.mp4"))
    # the overlay drew on the frames: they differ from the source where the objects are
    source = decoded(tmp_path / "out" / "tracking_scene.mp4")
    diff = np.abs(frames[40].numpy().astype(int) - source[40].numpy().astype(int)).max(axis=-1)[0]
    assert (diff > 60).sum() > 100


def test_a_rule_on_a_key_track_does_not_emit_fails_validation(tmp_path):
    if not GRAPH.is_file():
        pytest.skip(f"the repo's graphs/ folder is not here ({GRAPH})")
    from flowml.graph.errors import GraphErrors

    (tmp_path / "graphs").mkdir()
    path = tmp_path / "graphs" / GRAPH.name
    path.write_text(GRAPH.read_text())
    (tmp_path / "graphs" / RULES.name).write_text(RULES.read_text().replace("tracking_duration_in_seconds", "tracking_seconds"))
    with pytest.raises(GraphErrors) as errors:
        load_graph(path, load_registry())
    message = str(errors.value)
    assert "'tracking_seconds' is not in the metadata" in message and "tracking_duration_in_seconds" in message
    # a rule on the class of a track: classify.join's key, joined in as rules' `extra`
    with_class = json.loads(RULES.read_text())
    with_class[0]["and"].append({"key": "class", "operator": "==", "value": "disc"})
    (tmp_path / "graphs" / RULES.name).write_text(json.dumps(with_class))
    load_graph(path, load_registry())
    with_class[0]["and"][-1]["key"] = "klass"
    (tmp_path / "graphs" / RULES.name).write_text(json.dumps(with_class))
    with pytest.raises(GraphErrors, match="'klass' is not in the metadata of the nodes feeding `metadata` and `extra`"):
        load_graph(path, load_registry())


def test_offline_detection_overlaps_the_crops_and_is_deterministic(tmp_path):
    """detect.background (a worker) feeding crop.square (inline): the crops of frame k run on
    the scheduler's tail thread while frame k+1 is detected; the boxes are those of the
    detector run frame by frame on its own, in order, the same on every run."""
    import threading
    import torch
    from track_helpers import detect_all, encoded_scene

    _, video = encoded_scene(tmp_path)
    (tmp_path / "g.yaml").write_text(f"""
flowml: 1
mode: offline
max_in_flight: 3
nodes:
  video: {{type: capture.video, params: {{path: {video}}}}}
  detect: {{type: detect.background, inputs: {{image: video/image}}, params: {{scale: 0.5, min_area: 30}}}}
  crops: {{type: crop.square, inputs: {{image: video/image, detections: detect/detections}}, params: {{size: 16}}}}
""")

    def run() -> tuple[list, set]:
        seen, threads = [], set()

        def keep(tick, out):
            threads.add(threading.current_thread().name)
            seen.append((tick.index, out["detect"]["detections"]["boxes"].clone(), out["crops"]["crops"].shape[0]))

        with Scheduler(load_graph(tmp_path / "g.yaml", load_registry()), device="cpu") as sched:
            sched.after_tick.append(keep)
            assert sched.run().ok
        return seen, threads

    first, threads = run()
    second, _ = run()
    alone = detect_all(decoded(video), scale=0.5, min_area=30.0)
    assert "flowml-tail" in threads  # the crops ran off the dispatcher
    assert [i for i, _, _ in first] == list(range(len(alone)))
    assert sum(len(b) for _, b, _ in first) > 100
    for (i, boxes, crops), (_, again, _) in zip(first, second):
        assert torch.equal(boxes, alone[i]["boxes"]) and torch.equal(boxes, again) and crops == len(boxes)



class Saturated(torch.nn.Module):
    """A box detector as a model file: the bounding box of the saturated pixels (the scene's one
    coloured object on its grey background) as an (N, 6) tensor of x1, y1, x2, y2, score, label."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image[0]
        where = torch.nonzero(x.amax(0) - x.amin(0) > 0.4)  # (n, 2) rows, columns
        ys, xs = where[:, 0], where[:, 1]
        if xs.numel() == 0:
            return image.new_zeros(0, 6)
        row = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).to(image.dtype)
        score_label = torch.tensor([0.9, 3.0], dtype=image.dtype, device=image.device)
        return torch.cat([row, score_label])[None]


def test_a_torch_model_detector_feeds_the_tracker_through_the_adapter(tmp_path):
    """capture.video -> torch.model (a TorchScript detector) -> detect.from_tensor ->
    track.objects, scored against the scene's known path with trackers' own evaluation."""
    from flowml_track.score import score

    scene = Scene((160, 120), 45, 30, objects=1, seed=4)
    write_video(scene, tmp_path / "scene.mp4")
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; torch.model still loads it
        warnings.simplefilter("ignore")
        torch.jit.script(Saturated()).save(str(tmp_path / "detector.pt"))
    (tmp_path / "g.yaml").write_text("""
flowml: 1
mode: offline
nodes:
  video: {type: capture.video, params: {path: scene.mp4}}
  model: {type: torch.model, inputs: {image: video/image}, params: {path: detector.pt, outputs: ["rows:tensor"]}}
  adapt: {type: detect.from_tensor, inputs: {value: model/rows}, params: {min_score: 0.5}}
  track: {type: track.objects, inputs: {detections: adapt/detections}, params: {minimum_consecutive_frames: 1}}
""")
    tracked, labels = [], set()

    def keep(tick, out):
        track = out["track"]  # a leaf on a worker: its outputs may still be coming (a Future)
        d = (track.result() if hasattr(track, "result") else track)["detections"]
        labels.update(int(v) for v in out["adapt"]["detections"]["labels"])
        tracked.append((tick.index, [{"id": int(i), "box": b} for i, b in zip(d["tracker_id"], d["boxes"].tolist())]))

    with Scheduler(load_graph(tmp_path / "g.yaml", load_registry()), device="cpu") as sched:
        sched.after_tick.append(keep)
        assert sched.run().ok
    assert len(tracked) == scene.frames and labels == {3}
    assert len({o["id"] for _, objs in tracked for o in objs}) == 1  # one object, one id
    result = score(((i, scene.truth(i)) for i in range(scene.frames)), tracked)
    assert result["MOTA"] >= 0.95 and result["IDSW"] == 0, result
