"""action.record on a video whose frames show their own number, with rules firing at known frames.

10 fps, a keyframe every 10 frames, so frame f is at t = f / 10 s:

- ``a`` matches frames 35-38, pre/post-roll 1 s: its clip starts at the keyframe at or before
  frame 25 (20) and runs 1 s past the last match (48): frames 20-48, extended from 45 to 48.
- ``b`` matches 52-53: its pre-roll would reach back to 42, inside a's clip; it starts right
  after it, at frame 49, which the recorder made a keyframe when a's clip ended: 49-63.
- ``c`` matches from 80 to the end, capped at 2 s: keyframes after b are 64 (forced), 74, ...;
  the one at or before 70 is 64, and the cap leaves 20 frames: 64-83. It keeps matching, but
  a capped clip does not start again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import av
import pytest
from analytics_helpers import clip_numbers, write, write_numbered_video

from flowml.graph import load_graph
from flowml.plugins import load_registry
from flowml.runtime.scheduler import Scheduler

RULES = """\
- rule_name: a
  and: [{key: frame_number, operator: ">=", value: 35}, {key: frame_number, operator: "<=", value: 38}]
  action: {action_name: record, duration_in_seconds: 1}
- rule_name: b
  and: [{key: frame_number, operator: ">=", value: 52}, {key: frame_number, operator: "<=", value: 53}]
  action: {action_name: record, duration_in_seconds: 1}
- rule_name: c
  and: [{key: frame_number, operator: ">=", value: 80}]
  action: {action_name: record, duration_in_seconds: 1, max_duration_in_seconds: 2}
"""

META = """\
def frame_number(image, ctx):
    return {"frame_number": ctx.tick.index}
"""

GRAPH = """\
flowml: 1
nodes:
  video: {{type: capture.video, params: {{path: numbers.mp4, realtime: {realtime}}}}}
  meta:
    type: python.function
    inputs: {{image: video/image}}
    params: {{path: meta.py, function: frame_number, outputs: ["meta:json"]}}
  rules: {{type: rules.match, inputs: {{metadata: meta/meta}}, params: {{path: rules.yaml}}}}
  record:
    type: action.record
    inputs: {{image: video/image, events: rules/events}}
    params: {{folder: clips, fps: 10, gop: 10, threads: 1, preset: ultrafast}}
  log: {{type: action.log, inputs: {{events: rules/events}}, params: {{path: events.jsonl, every: false}}}}
"""


def setup_files(tmp_path, frames: int, realtime: str = "false", rules: str = RULES):
    write_numbered_video(tmp_path / "numbers.mp4", frames)
    write(tmp_path / "rules.yaml", rules)
    write(tmp_path / "meta.py", META)
    return write(tmp_path / "graph.yaml", GRAPH.format(realtime=realtime))


def sidecars(folder):
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def test_clips_hold_exactly_the_expected_frames(tmp_path):
    graph = load_graph(setup_files(tmp_path, 100), load_registry())
    with Scheduler(graph) as sched:
        result = sched.run()
    assert result.ok and result.reason == "end of stream", result.error
    clips = sorted((tmp_path / "clips").glob("*.mp4"))
    assert [p.name for p in clips] == ["clip0001_a_f35.mp4", "clip0002_b_f52.mp4", "clip0003_c_f80.mp4"]
    got = [clip_numbers(p) for p in clips]
    assert [numbers for numbers, _ in got] == [list(range(20, 49)), list(range(49, 64)), list(range(64, 84))]
    assert all(keys[0] for _, keys in got)  # each clip starts on a keyframe
    info = sidecars(tmp_path / "clips")
    assert [(i["rule_name"], i["ended_by"], i["first_frame"], i["last_frame"], i["frames"]) for i in info] == [
        ("a", "post-roll", 20, 48, 29), ("b", "post-roll", 49, 63, 15), ("c", "max_duration", 64, 83, 20)]
    assert info[0]["events"][0]["metadata"] == {"frame_number": 35} and not info[0]["recording"]
    assert info[0]["post_roll_until"] == pytest.approx(4.8)
    logged = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [(e["rule_name"], e["frame"]) for e in logged] == [("a", 35), ("b", 52), ("c", 80)]
    stats = result.stats.nodes
    assert stats["record"].calls == 100 and stats["log"].skipped == 100 - 4 - 2 - 20
    with av.open(str(clips[0])) as c:  # timestamps from 0, at the source's rate
        times = [f.time for f in c.decode(video=0)]
    assert times[0] == 0 and times[-1] == pytest.approx(2.8)


FOREVER = """\
- rule_name: on
  and: [{key: frame_number, operator: ">=", value: 5}]
  action: {action_name: record, duration_in_seconds: 1, max_duration_in_seconds: 600}
"""


def test_sigint_mid_clip_leaves_a_playable_clip(tmp_path):
    graph = setup_files(tmp_path, 300, realtime="true", rules=FOREVER)  # 30 s at the file's rate
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "flowml.cli", "run", str(graph)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, started = time.monotonic() + 60, None
        while time.monotonic() < deadline:  # wait until the clip is open and 1 s more
            info = sidecars(tmp_path / "clips") if (tmp_path / "clips").exists() else []
            if info and info[0]["recording"]:
                started = started or time.monotonic()
                if time.monotonic() - started > 1.0:
                    break
            assert proc.poll() is None, proc.communicate()[0]
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    (clip,) = sorted((tmp_path / "clips").glob("*.mp4"))
    (info,) = sidecars(tmp_path / "clips")
    assert info["ended_by"] == "teardown" and not info["recording"], out
    numbers, keys = clip_numbers(clip)
    assert keys[0] and len(numbers) == info["frames"] >= 10
    assert numbers == list(range(info["first_frame"], info["last_frame"] + 1))
    assert info["first_frame"] == 0  # the keyframe at or before frame 5 - 10


def test_an_event_with_no_keyframe_to_start_from_makes_its_own_frame_one(tmp_path):
    """At frame 0 the ring is empty, and at frame 3, right after the first clip (0-2), the
    only keyframe after it is frame 3 itself: both clips start on the event's own frame."""
    import torch
    from analytics_helpers import draw_number

    from flowml.testing import NodeHarness
    from flowml_analytics.record import Record

    def ev(frame, duration):
        return [{"rule_name": "r", "state": "start", "t": frame / 10, "frame": frame,
                 "action": {"action_name": "record", "duration_in_seconds": duration}}]

    params = {"folder": "clips", "fps": 10, "gop": 50, "threads": 1, "preset": "ultrafast"}
    with NodeHarness(Record, params, graph_dir=tmp_path) as h:
        for i in range(12):
            image = torch.from_numpy(draw_number(i)).permute(2, 0, 1)[None].float() / 255
            h.process(t=i / 10, image=image, events={0: ev(0, 0.2), 3: ev(3, 0.5)}.get(i))
    got = [clip_numbers(p) for p in sorted((tmp_path / "clips").glob("*.mp4"))]
    assert [n for n, _ in got] == [[0, 1, 2], [3, 4, 5, 6, 7, 8]]
    assert all(keys[0] for _, keys in got)


def test_the_packet_ring_keeps_from_the_last_keyframe_before_its_seconds():
    """After every frame, the ring starts at the last keyframe at or before newest - seconds
    (the first frame while there is none) and holds every frame from there: any pre-roll up to
    ``seconds`` starts on a keyframe, and nothing older is kept."""
    from flowml_analytics.packets import Coded, PacketRing

    for seconds, gop, fps in ((1.0, 4, 10), (0.5, 7, 30), (2.0, 1, 25), (0.05, 30, 30)):
        ring, added = PacketRing(seconds), []
        for i in range(200):
            item = Coded(None, i / fps, i, i, i % gop == 0)
            ring.add(item)
            added.append(item)
            early = [c for c in added if c.key and c.t <= item.t - seconds]
            first = early[-1].index if early else 0
            assert [c.index for c in ring.items] == list(range(first, i + 1)), (seconds, gop, i)
        assert len(ring.items) <= seconds * fps + gop + 1


def test_a_1080p_ring_holds_packets_not_raw_frames(tmp_path):
    """30 frames of 1080p at 10 fps, a 1 s buffer, a keyframe every 5: the ring holds frames
    15-29 (from the keyframe at or before 2.9 - 1 s), as H.264 packets far smaller than the
    6 MB a raw frame takes."""
    import torch

    from flowml.testing import NodeHarness
    from flowml_analytics.record import Record

    height, width = 1080, 1920
    y, x = torch.linspace(0, 1, height).view(-1, 1), torch.linspace(0, 1, width).view(1, -1)
    params = {"folder": "clips", "fps": 10, "gop": 5, "threads": 1, "preset": "ultrafast", "buffer_seconds": 1.0}
    with NodeHarness(Record, params, graph_dir=tmp_path) as h:
        for i in range(30):
            moving = torch.stack([(x + 0.03 * i) % 1 * y, 0.5 + 0 * x * y, (x * y + 0.01 * i) % 1])
            h.process(t=i / 10, image=moving[None])
        held = list(h.node.ring.items)
    assert [c.index for c in held] == list(range(15, 30)) and held[0].key
    raw = len(held) * height * width * 3
    assert sum(c.packet.size for c in held) < raw / 100  # measured ~0.4%
    assert not list((tmp_path / "clips").glob("*.mp4"))  # no event, no clip
