"""Output paths confined to the folder the graph file set (issue 12 item 5): the check itself,
and live changes from oscsend, a preset recall and an expression against a running graph."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from control_helpers import LOOPBACK, LiveGraphs, OscDump, oscsend, wait_until
from control_nodes import ALL

from flowml.control.paths import PathRefused, allowed_folder, check_output_path
from flowml.plugins import load_registry

WHERE = "node 'n' param 'p'"


def test_values_inside_the_graph_files_folder_pass(tmp_path):
    check_output_path("rec/take2.mp4", "rec/take.mp4", tmp_path, where=WHERE)
    check_output_path("rec/sub/../take3.mp4", "rec/take.mp4", tmp_path, where=WHERE)
    check_output_path(str(tmp_path / "rec" / "x.mp4"), "rec/take.mp4", tmp_path, where=WHERE)
    check_output_path("other_{index:05d}.png", "frame_{index:05d}.png", tmp_path, where=WHERE)
    check_output_path(None, "a.png", tmp_path, where=WHERE)
    assert allowed_folder("rec/take.mp4", tmp_path) == Path(os.path.realpath(tmp_path / "rec"))
    assert allowed_folder(None, tmp_path) == Path(os.path.realpath(tmp_path))


@pytest.mark.parametrize("value", [
    "take.mp4",                       # beside the graph, not in rec/
    "../take.mp4",
    "rec/../../take.mp4",
    "/tmp/flowml-escaped.mp4",
    "~/take.mp4",
])
def test_values_outside_are_refused_naming_node_and_param(tmp_path, value):
    with pytest.raises(PathRefused) as info:
        check_output_path(value, "rec/take.mp4", tmp_path, where=WHERE)
    text = str(info.value)
    assert text.startswith(WHERE) and repr(value) in text and "outside" in text


def test_the_graph_files_own_value_is_trusted(tmp_path):
    check_output_path("/elsewhere/take.mp4", "/elsewhere/take.mp4", tmp_path, where=WHERE)
    check_output_path("/elsewhere/take2.mp4", "/elsewhere/take.mp4", tmp_path, where=WHERE)
    with pytest.raises(PathRefused):
        check_output_path("/elsewhere2/take.mp4", "/elsewhere/take.mp4", tmp_path, where=WHERE)


def test_patterns_are_checked_as_written_and_formatted(tmp_path):
    with pytest.raises(PathRefused, match="escaped"):
        check_output_path("../../escaped_{index:05d}.png", "frame_{index:05d}.png", tmp_path, where=WHERE)
    check_output_path("f_{index:/>3}.png", "frame_{index:05d}.png", tmp_path, where=WHERE)


def test_a_symlink_out_of_the_folder_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "show").mkdir()
    (tmp_path / "show" / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PathRefused):
        check_output_path("link/x.png", "x.png", tmp_path / "show", where=WHERE)


def test_nul_and_huge_values_are_refused(tmp_path):
    with pytest.raises(PathRefused, match="not a usable path"):
        check_output_path("a\x00b.png", "a.png", tmp_path, where=WHERE)
    with pytest.raises(PathRefused, match="not a usable path"):
        check_output_path("a" * 5000, "a.png", tmp_path, where=WHERE)


# -- against a running graph ---------------------------------------------------------------------

GRAPH = """
flowml: 1
clock: {fps: 50}
nodes:
  src: {type: capture.pattern, params: {size: [16, 16], pattern: bars}}
  frames: {type: output.images, inputs: {image: src/image},
           params: {dir: show/frames, pattern: "f_{index:05d}.png", every: 5}}
  still: {type: output.image, inputs: {image: src/image}, params: {path: show/still.png}}
"""


@pytest.fixture
def std_graphs(tmp_path):
    registry = load_registry()
    for cls in ALL:
        registry.add(cls, "control-tests")
    graphs = LiveGraphs(tmp_path, registry)
    yield graphs
    graphs.stop_all()


def _errors(dump, n):
    return {(m.args[0], m.args[1]) for m in dump.wait_for(
        lambda m: m.address == "/flowml/error", n=n, timeout=10)}


def test_osc_cannot_make_output_images_write_outside_its_folder(std_graphs, tmp_path):
    with OscDump() as dump:
        run = std_graphs.start(GRAPH, reply=(LOOPBACK, dump.port))
        port = run.osc_port
        oscsend(port, "/frames/pattern", "s", "../../escaped_{index:05d}.png")
        oscsend(port, "/frames/dir", "s", "../elsewhere")
        oscsend(port, "/still/path", "s", "/tmp/flowml-escaped-still.png")
        errors = _errors(dump, 3)
        by_address = dict(errors)
        assert "node 'frames' param 'pattern'" in by_address["/frames/pattern"]
        assert "'../../escaped_{index:05d}.png' is outside" in by_address["/frames/pattern"]
        assert "node 'frames' param 'dir'" in by_address["/frames/dir"]
        assert "node 'still' param 'path'" in by_address["/still/path"]
        # an allowed change goes through: a new pattern in the same folder
        oscsend(port, "/frames/pattern", "s", "take2_{index:05d}.png")
        folder = tmp_path / "show" / "frames"
        wait_until(lambda: list(folder.glob("take2_*.png")), timeout=10)
        run.wait_ticks(10, timeout=10)
        assert run.store.params["/frames/pattern"].value == "take2_{index:05d}.png"
        assert run.store.params["/frames/dir"].value == "show/frames"
        assert run.thread.is_alive()
    run.stop()
    assert not list(tmp_path.parent.glob("escaped_*.png"))
    assert not list(tmp_path.glob("escaped_*.png")) and not (tmp_path / "elsewhere").exists()
    assert not Path("/tmp/flowml-escaped-still.png").exists()
    assert (tmp_path / "show" / "still.png").is_file()


def test_a_preset_cannot_move_an_output_out_of_its_folder(std_graphs, tmp_path):
    presets = tmp_path / "graph.presets.yaml"
    presets.write_text(yaml.safe_dump({
        "bad": {"frames": {"pattern": "../../escaped_{index:05d}.png", "every": 2}},
        "good": {"frames": {"pattern": "good_{index:05d}.png"}},
    }))
    with OscDump() as dump:
        run = std_graphs.start(GRAPH, reply=(LOOPBACK, dump.port))
        oscsend(run.osc_port, "/flowml/preset/recall", "s", "bad")
        (where, reason), = _errors(dump, 1)
        assert "node 'frames' param 'pattern'" in reason and "outside" in reason
        oscsend(run.osc_port, "/flowml/preset/recall", "s", "good")
        wait_until(lambda: list((tmp_path / "show" / "frames").glob("good_*.png")), timeout=10)
    run.stop()
    assert not list(tmp_path.parent.glob("escaped_*.png"))


def test_values_in_the_graph_file_are_trusted(std_graphs, tmp_path):
    out = tmp_path / "elsewhere"
    run = std_graphs.start(GRAPH.replace("dir: show/frames", f"dir: {out}"), osc=False)
    wait_until(lambda: list(out.glob("f_*.png")), timeout=10)
    run.stop()


def test_presets_are_saved_beside_the_graph_only(std_graphs, tmp_path):
    with OscDump() as dump:
        run = std_graphs.start(GRAPH, reply=(LOOPBACK, dump.port))
        oscsend(run.osc_port, "/flowml/preset/save", "s", "../../escaped")
        dump.wait_for(lambda m: m.address == "/flowml/preset/saved", timeout=10)
    run.stop()
    saved = yaml.safe_load((tmp_path / "graph.presets.yaml").read_text())
    assert "../../escaped" in saved  # a name inside the file beside the graph, not a path
    assert [p.name for p in tmp_path.parent.glob("escaped*")] == []
    assert sorted(p.name for p in tmp_path.glob("*.yaml")) == ["graph.presets.yaml", "graph.yaml"]


def test_a_live_path_of_output_video_closes_the_take_and_starts_another(std_graphs, tmp_path):
    import av

    with OscDump() as dump:
        run = std_graphs.start("""
            flowml: 1
            clock: {fps: 30}
            nodes:
              src: {type: capture.pattern, params: {size: [32, 32], pattern: scene}}
              rec: {type: output.video, inputs: {image: src/image}, params: {path: rec/a.mp4}}
        """, reply=(LOOPBACK, dump.port))
        port = run.osc_port
        run.wait_ticks(15, timeout=10)
        oscsend(port, "/rec/path", "s", "../b.mp4")         # outside rec/: refused
        oscsend(port, "/rec/fps", "f", 10.0)                # an encoder setting: not live
        reasons = dict(m.args for m in dump.wait_for(lambda m: m.address == "/flowml/error",
                                                     n=2, timeout=10))
        assert "node 'rec' param 'path'" in reasons["/rec/path"]
        assert "changes only in the graph file" in reasons["/rec/fps"]
        oscsend(port, "/rec/path", "s", "rec/b.mp4")
        wait_until(lambda: (tmp_path / "rec" / "b.mp4").exists(), timeout=15)
        run.wait_ticks(15, timeout=10)
    run.stop()
    for name in ("a.mp4", "b.mp4"):
        with av.open(str(tmp_path / "rec" / name)) as container:
            assert sum(1 for _ in container.decode(video=0)) > 0, name
    assert not (tmp_path / "b.mp4").exists()
