"""The ``flowml`` command as a user runs it: real processes, real files, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import av
import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOWML = [sys.executable, "-m", "flowml.cli"]


def flowml(*args: str, env: dict | None = None, timeout: float = 120, cwd: Path | None = None):
    return subprocess.run([*FLOWML, *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=cwd)


def decode_frames(path: Path) -> list:
    with av.open(str(path)) as c:
        return [f.pts for f in c.decode(video=0)]


def test_validate_reports_every_error_with_position_and_exit_code_2(tmp_path):
    g = tmp_path / "bad.yaml"
    g.write_text(textwrap.dedent("""\
        flowml: 1
        nodes:
          scene: {type: capture.patern}
          out: {type: output.video, inputs: {image: scene/image}, params: {crf: 99, path: x.mp4}}
    """))
    r = flowml("validate", str(g))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith(f"{g}:3:17: error: node 'scene': unknown node type 'capture.patern'")
    assert "did you mean 'capture.pattern'" in lines[0]
    assert lines[1].startswith(f"{g}:4:")
    assert "param 'crf'" in lines[1] and "51" in lines[1]
    assert lines[-1] == f"2 errors in {g}"


def test_validate_accepts_the_shipped_graphs():
    graphs = [str(p) for p in sorted((ROOT / "graphs").glob("*.yaml"))]
    r = flowml("validate", *graphs)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("ok: ") == len(graphs)


def test_nodes_lists_builtins_with_the_plugin_they_came_from():
    r = flowml("nodes", "--json")
    assert r.returncode == 0, r.stderr
    info = {t["type"]: t for t in json.loads(r.stdout)["node_types"]}
    for name in ("capture.pattern", "capture.video", "output.video", "torch.model", "python.function"):
        assert name in info
    assert info["output.video"]["distribution"] == "flowml-av"
    crf = next(p for p in info["output.video"]["params"] if p["name"] == "crf")
    assert (crf["default"], crf["min"], crf["max"]) == (20, 0, 51)


def test_schema_is_valid_json_schema_and_accepts_the_demo():
    import jsonschema
    import yaml

    r = flowml("schema")
    assert r.returncode == 0, r.stderr
    schema = json.loads(r.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    demo = yaml.safe_load((ROOT / "graphs" / "demo.yaml").read_text())
    jsonschema.validate(demo, schema)
    demo["nodes"]["video"]["params"]["crf"] = 99
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(demo, schema)


def test_example_plugin_installs_with_pip_shows_in_nodes_and_runs_in_a_graph(tmp_path):
    site = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                          "--no-build-isolation", "--target", str(site),
                          str(ROOT / "examples" / "flowml-example-plugin")],
                         capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr
    env = {**os.environ, "PYTHONPATH": str(site)}
    before = json.loads(flowml("nodes", "--json").stdout)
    assert "example.vignette" not in {t["type"] for t in before["node_types"]}
    after = json.loads(flowml("nodes", "--json", env=env).stdout)
    types = {t["type"]: t for t in after["node_types"]}
    assert types["example.vignette"]["distribution"] == "flowml-example-plugin"
    assert types["example.invert"]["plugin"] == "example"

    graph = tmp_path / "g.yaml"
    graph.write_text(textwrap.dedent("""\
        flowml: 1
        nodes:
          scene: {type: capture.pattern, params: {size: [64, 32], frames: 5}}
          inv: {type: example.invert, inputs: {image: scene/image}}
          vig: {type: example.vignette, inputs: {image: inv/image}, params: {strength: 1.0}}
          still: {type: output.image, inputs: {image: vig/image}, params: {path: out.png}}
    """))
    r = flowml("run", str(graph), env=env)
    assert r.returncode == 0, r.stderr
    from PIL import Image

    img = Image.open(tmp_path / "out.png")
    assert img.size == (64, 32)
    corner, centre = img.getpixel((0, 0)), img.getpixel((32, 16))
    assert sum(corner) < sum(centre), "the vignette darkened the corner"


def test_a_broken_plugin_is_reported_and_the_others_still_work(tmp_path):
    pkg = tmp_path / "site" / "broken_flowml_plugin"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('needs libfoo 2.0')\n")
    dist = tmp_path / "site" / "broken_flowml_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-flowml-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[flowml]\nbroken = broken_flowml_plugin\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    r = flowml("nodes", env=env)
    assert r.returncode == 0
    assert "plugin 'broken' failed to load" in r.stderr and "needs libfoo 2.0" in r.stderr
    listing = json.loads(flowml("nodes", "--json", env=env).stdout)
    assert [f["plugin"] for f in listing["failed_plugins"]] == ["broken"]
    assert "capture.pattern" in {t["type"] for t in listing["node_types"]}
    r = flowml("validate", str(ROOT / "graphs" / "demo.yaml"), env=env)
    assert r.returncode == 0, r.stderr


def _make_video(tmp_path: Path, frames: int) -> Path:
    g = tmp_path / "make.yaml"
    g.write_text(textwrap.dedent(f"""\
        flowml: 1
        nodes:
          scene: {{type: capture.pattern, params: {{pattern: scene, size: [320, 180], frames: {frames}}}}}
          video: {{type: output.video, inputs: {{image: scene/image}}, params: {{path: src.mp4, preset: ultrafast}}}}
    """))
    r = flowml("run", str(g))
    assert r.returncode == 0, r.stderr
    return tmp_path / "src.mp4"


def test_offline_300_frames_in_300_out_byte_identical_across_runs(tmp_path):
    _make_video(tmp_path, 300)
    g = tmp_path / "process.yaml"
    outputs = []
    for run in (1, 2):
        g.write_text(textwrap.dedent(f"""\
            flowml: 1
            nodes:
              src: {{type: capture.video, params: {{path: src.mp4}}}}
              flip: {{type: image.flip, inputs: {{image: src/image}}, params: {{horizontal: true}}}}
              col: {{type: image.color, inputs: {{image: flip/image}}, params: {{saturation: 1.5}}}}
              out: {{type: output.video, inputs: {{image: col/image}}, params: {{path: out{run}.mp4, preset: ultrafast}}}}
        """))
        r = flowml("run", str(g), "--stats-json", str(tmp_path / f"stats{run}.json"))
        assert r.returncode == 0, r.stderr
        outputs.append(tmp_path / f"out{run}.mp4")
        stats = json.loads((tmp_path / f"stats{run}.json").read_text())
        assert stats["mode"] == "offline" and stats["completed"] == 300
        assert stats["source_drops"] == 0 and stats["nodes"]["out"]["drops"] == 0
    assert len(decode_frames(outputs[0])) == 300
    assert outputs[0].read_bytes() == outputs[1].read_bytes()


def test_sigint_half_way_stops_cleanly_and_leaves_a_playable_mp4(tmp_path):
    g = tmp_path / "long.yaml"
    g.write_text(textwrap.dedent("""\
        flowml: 1
        clock: {fps: 60}
        mode: live
        nodes:
          scene: {type: capture.pattern, params: {pattern: scene, size: [320, 180]}}
          out: {type: output.video, inputs: {image: scene/image}, params: {path: live.mp4, fragmented: false, fps: 60}}
    """))
    proc = subprocess.Popen([*FLOWML, "run", str(g), "--stats-json", str(tmp_path / "s.json")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    mp4 = tmp_path / "live.mp4"
    while time.time() < deadline and (not mp4.exists() or mp4.stat().st_size < 20_000):
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "SIGINT: stopping" in err and "Traceback" not in err
    frames = decode_frames(mp4)
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["reason"] == "stopped"
    written = stats["completed"] - stats["nodes"]["out"]["drops"]  # live: a busy sink skips
    # (+ 1: live, the last frame is held until the take stopped, so the file keeps real time)
    assert written <= len(frames) <= written + 1 and written > 30
    assert frames == sorted(frames)


def test_a_node_failing_in_setup_is_reported_at_its_line_with_exit_code_1(tmp_path):
    g = tmp_path / "g.yaml"
    g.write_text(textwrap.dedent("""\
        flowml: 1
        nodes:
          scene: {type: capture.pattern, params: {frames: 5}}
          toon: {type: torch.model, inputs: {image: scene/image}, params: {path: nowhere/toon.pt}}
          still: {type: output.image, inputs: {image: toon/image}, params: {path: x.png}}
    """))
    r = flowml("run", str(g))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"{g}:4:3: error: node 'toon' (torch.model) failed in setup: model file not found" in r.stderr
    assert "nowhere/toon.pt" in r.stderr
