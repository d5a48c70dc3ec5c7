"""Batching over time (issue 16): capture.pattern ``batch: K`` -> video.clip ``input: frames`` ->
torch.model -> classify.topk -> rules.match -> action.log / action.record gives exactly what the
one-frame-a-tick graph gives: the same clips, the same topk records, rules firing at the same
frames with the same state, the same recorded clips, a last short batch included.

The model is a TorchScript slice of its clip (every 10th value of it as logits), so the topk
records depend on the clip's values exactly, and are the same at any batch size."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest
import torch

from flowml import NO_VALUE
from flowml.graph import GraphErrors, load_graph
from flowml.plugins import load_registry
from flowml.runtime.scheduler import Scheduler
from flowml.testing import NodeHarness
from flowml_analytics.clip import VideoClip
from flowml_std.pattern import PatternSource

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.filterwarnings("ignore::FutureWarning")]
FRAMES, T, FPS = 29, 5, 10  # 29 frames: K = 3 ends on a batch of 2, K = 8 on one of 5

SOURCE = ("  src: {{type: capture.pattern, params: {{pattern: noise, size: [48, 32], frames: %d, fps: %d, "
          "seed: 3{batch}}}}}\n" % (FRAMES, FPS))
CLIP = ("  clip: {{type: video.clip, inputs: {{image: src/image{wire}}}, "
        "params: {{frames: %d, stride: {stride}, resize: [24, 18], crop: [16, 16]{mode}}}}}\n" % T)
REST = """\
  model:
    type: torch.model
    inputs: {{clip: clip/clip}}
    cuda_graph: {cuda_graph}
    params: {{path: net.pt, inputs: ["clip:tensor"], outputs: ["logits:tensor"]}}
  top: {{type: classify.topk, inputs: {{logits: model/logits{top_wire}}}, params: {{k: 3}}}}
  rules: {{type: rules.match, inputs: {{metadata: top/metadata}}, params: {{path: rules.json}}}}
  log: {{type: action.log, inputs: {{events: rules/events}}, params: {{path: out/events.jsonl, action: "*"}}}}
  record:
    type: action.record
    inputs: {{image: src/image, events: rules/events{wire}}}
    params: {{folder: out/clips, fps: %d, gop: 4, threads: 1, preset: ultrafast, duration_in_seconds: 0.3,
             max_duration_in_seconds: 0.8}}
""" % FPS

RULES = [  # every clip (its record logged), and about half of them (recorded): the top class is
    # a blue-channel value (index 256-383), blue having the smallest std
    {"rule_name": "every", "and": [{"key": "probability", "operator": ">=", "value": 0}],
     "action": {"action_name": "log"}},
    {"rule_name": "half", "and": [{"key": "class_index", "operator": "<", "value": 320}],
     "action": {"action_name": "record"}},
]


class Slice(torch.nn.Module):
    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return clip.flatten(1)[:, ::10] * 4.0


def run_graph(tmp: Path, batch: int | None, stride: int, device: str = "cpu", cuda_graph: bool = False,
              counters: dict | None = None) -> tuple[list[dict], list[dict], list]:
    """The graph, one frame a tick as shipped (``batch`` None) or batched; its logged events,
    the recorded clips' sidecars and their decoded frames. ``counters`` gets the captured
    model's (``cuda_graph``)."""
    tmp.mkdir()
    torch.jit.save(torch.jit.script(Slice()), str(tmp / "net.pt"))
    (tmp / "rules.json").write_text(json.dumps(RULES))
    batched = batch is not None
    wire = ", frames: src/frames" if batched else ""
    text = ("flowml: 1\nmode: offline\nmax_in_flight: 3\nnodes:\n"
            + SOURCE.format(batch=f", batch: {batch}" if batched else "")
            + CLIP.format(wire=wire, stride=stride, mode=", input: frames" if batched else "")
            + REST.format(top_wire=", frames: clip/frames" if batched else "", wire=wire,
                          cuda_graph=str(cuda_graph).lower()))
    (tmp / "graph.yaml").write_text(text)
    with Scheduler(load_graph(tmp / "graph.yaml", load_registry()), device=device) as sched:
        result = sched.run()
        if counters is not None and sched.nodes["model"].captured is not None:
            counters.update(sched.nodes["model"].captured.counters())
    assert result.ok, result.error
    ticks = -(-FRAMES // batch) if batched else FRAMES
    assert result.stats.nodes["src"].calls == ticks
    events = [json.loads(x) for x in (tmp / "out" / "events.jsonl").read_text().splitlines()]
    sidecars, pictures = [], []
    for clip in sorted((tmp / "out" / "clips").glob("*.mp4")):
        sidecars.append(json.loads(clip.with_suffix(".json").read_text()))
        with av.open(str(clip)) as c:
            pictures.append([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    return events, sidecars, pictures


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The one-frame-a-tick graph's results, per stride."""
    return {s: run_graph(tmp_path_factory.mktemp("ref") / f"s{s}", None, s) for s in (1, 8)}


@pytest.mark.parametrize("stride", [1, 8])
@pytest.mark.parametrize("batch", [1, 3, 8])
def test_a_batched_graph_gives_what_one_frame_a_tick_gives(tmp_path, reference, batch, stride):
    events, sidecars, pictures = run_graph(tmp_path / "b", batch, stride)
    ref_events, ref_sidecars, ref_pictures = reference[stride]
    due = [i for i in range(FRAMES) if i + 1 >= T and (i + 1 - T) % stride == 0]
    assert [e["frame"] for e in ref_events if e["rule_name"] == "every"] == due
    assert due[-1] == FRAMES - 1  # the last clip comes in the last, short batch
    for e in events + [e for s in sidecars for e in s["events"]]:  # each record says which
        meta = e["metadata"]  # frame it is, and the event agrees (the one-a-tick graph's do not)
        assert (meta.pop("frame"), meta.pop("t")) == (e["frame"], e["t"]) and e["t"] == e["frame"] / FPS
    assert events == ref_events  # topk records, rules' state (start/continue, since), frames, times
    half = [e for e in events if e["rule_name"] == "half"]
    assert 0 < len(half) < len(due) or stride == 8  # the rule fires on some clips, not all
    assert sidecars == ref_sidecars and len(sidecars) >= (2 if stride == 1 else 1)
    assert len(pictures) == len(ref_pictures)
    for got, want in zip(pictures, ref_pictures):
        assert len(got) == len(want) and all((a == b).all() for a, b in zip(got, want))


@pytest.mark.cuda
def test_a_captured_model_captures_again_when_the_number_of_clips_changes(tmp_path):
    """K = 8, stride 1, T = 5 on 29 frames: 4, 8, 8 and 5 clips a tick. Each call of the
    captured model is answered (a replay, or eager while it settles after a change) and it
    captures again for a new batch; the results are the eager one-frame-a-tick graph's."""
    counters: dict = {}
    want = run_graph(tmp_path / "eager", None, 1, device="cuda")
    got = run_graph(tmp_path / "captured", 8, 1, device="cuda", cuda_graph=True, counters=counters)
    assert counters["replays"] + counters["eager_calls"] == 4 and counters["recaptures"] >= 1, counters
    for e in got[0] + [e for s in got[1] for e in s["events"]]:
        del e["metadata"]["frame"], e["metadata"]["t"]
    assert got[0] == want[0] and got[1] == want[1]


def frames_info(first: int, count: int) -> dict:
    return {"index": first, "count": count, "t": [(first + i) / FPS for i in range(count)]}


@pytest.mark.parametrize("layout", ["BCTHW", "BTCHW"])
def test_clips_of_batches_of_any_size_equal_those_of_single_frames(layout):
    """Batches of 2, then 7 (longer than the ring was made for), 1, 4, 5: every clip that came
    due, in order, equal value for value to the single-frame node's."""
    video = torch.rand(19, 3, 27, 48, generator=torch.Generator().manual_seed(1))
    params = {"frames": 4, "stride": 2, "resize": [40, 22], "crop": [16, 16], "layout": layout}
    with NodeHarness(VideoClip, params) as h:
        single = [(i, out["clip"]) for i in range(len(video))
                  if (out := h.process(image=video[i:i + 1]))["clip"] is not NO_VALUE]
    got, first = [], 0
    with NodeHarness(VideoClip, {**params, "input": "frames"}) as h:
        for k in (2, 7, 1, 4, 5):
            out = h.process(image=video[first:first + k], frames=frames_info(first, k))
            if out["clip"] is not NO_VALUE:
                assert out["clip"].shape[0] == len(out["frames"])
                got += [(f["frame"], clip) for f, clip in zip(out["frames"], out["clip"])]
            first += k
    assert [i for i, _ in got] == [i for i, _ in single] == [3, 5, 7, 9, 11, 13, 15, 17]
    for (_, a), (_, b) in zip(single, got):
        assert torch.equal(a[0], b)


def test_a_batch_of_eight_at_stride_one_is_eight_clips_in_one_tensor():
    video = torch.rand(24, 3, 18, 24, generator=torch.Generator().manual_seed(2))
    with NodeHarness(VideoClip, {"frames": 16, "resize": None, "crop": None, "input": "frames"}) as h:
        outs = [h.process(image=video[s:s + 8], frames=frames_info(s, 8)) for s in (0, 8, 16)]
    assert outs[0]["clip"] is NO_VALUE
    assert outs[1]["clip"].shape == (1, 3, 16, 18, 24) and outs[1]["frames"] == [{"frame": 15, "t": 1.5}]
    assert outs[2]["clip"].shape == (8, 3, 16, 18, 24)
    assert [f["frame"] for f in outs[2]["frames"]] == list(range(16, 24))
    for j, end in enumerate(range(16, 24)):  # no resize or crop: the frames themselves, normalised
        mean = torch.tensor((0.43216, 0.394666, 0.37645)).view(3, 1, 1, 1)
        std = torch.tensor((0.22803, 0.22145, 0.216989)).view(3, 1, 1, 1)
        want = (video[end - 15:end + 1].transpose(0, 1) - mean) / std
        torch.testing.assert_close(outs[2]["clip"][j], want, atol=1e-5, rtol=0)


def test_the_source_batches_the_same_frames():
    params = {"pattern": "noise", "size": [32, 18], "frames": 7, "fps": 5}
    with NodeHarness(PatternSource, params) as h:
        one = torch.cat([h.process()["image"] for _ in range(7)])
    with NodeHarness(PatternSource, {**params, "batch": 3}) as h:
        outs = [h.process() for _ in range(3)]
        stamps = h.last_t
        with pytest.raises(Exception, match="EndOfStream|"):
            h.process()
    assert [o["image"].shape[0] for o in outs] == [3, 3, 1]
    assert torch.equal(torch.cat([o["image"] for o in outs]), one)
    assert [o["frames"] for o in outs] == [frames_info(0, 3) | {"t": [0.0, 0.2, 0.4]},
                                           {"index": 3, "count": 3, "t": [0.6, 0.8, 1.0]},
                                           {"index": 6, "count": 1, "t": [1.2]}]
    assert stamps == 1.2  # a tick is stamped with its first frame's time


def test_batch_is_refused_live_and_frames_mode_needs_the_frame_info(tmp_path):
    with pytest.raises(Exception, match="run it offline"):
        with NodeHarness(PatternSource, {"batch": 4}, mode="live"):
            pass
    graph = tmp_path / "g.yaml"
    graph.write_text("flowml: 1\nnodes:\n"
                     "  src: {type: capture.pattern, params: {batch: 4, frames: 8}}\n"
                     "  clip: {type: video.clip, inputs: {image: src/image}, params: {input: frames}}\n")
    with pytest.raises(GraphErrors, match="connect the source's frame info, e.g. `frames: src/frames`"):
        load_graph(graph, load_registry())
    with NodeHarness(VideoClip, {"frames": 2}) as h:
        with pytest.raises(Exception, match="set input: frames"):
            h.process(image=torch.rand(4, 3, 130, 180), frames=frames_info(0, 4))


@pytest.mark.parametrize("suffix", [".pt", ".pt2"])
def test_the_exported_models_take_any_batch_of_clips(tmp_path, suffix):
    from flowml_analytics import models

    path = models.export(models.build("r3d_18", classes=10), tmp_path / f"r3d{suffix}", frames=4, size=32)
    net = torch.export.load(str(path)).module() if suffix == ".pt2" else torch.jit.load(str(path))
    clips = torch.rand(3, 3, 4, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        together, alone = net(clips), torch.cat([net(clips[i:i + 1]) for i in range(3)])
    assert together.shape == (3, 10)
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)
