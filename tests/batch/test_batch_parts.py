"""The parts of ``flowml batch`` on their own: inputs and templates, the manifest, staged
outputs, the checks of ``--set``, and the message without Ray."""

from __future__ import annotations

import json
import os
import sys

import pytest

from batch_helpers import cli

from flowml.batch.inputs import BatchUsageError, expand_inputs, fields_of, make_items, parse_set
from flowml.batch.manifest import Manifest, finished_inputs, read_manifest
from flowml.batch.runner import check_bindings, check_distinct_outputs, load_batch_graph
from flowml.batch.staging import Staging


def test_inputs_expand_recursively_sorted_once_and_keep_a_missing_plain_path(tmp_path):
    for rel in ("v/b.mp4", "v/a.mp4", "v/deep/c.mp4", "v/notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    got = expand_inputs(["v/**/*.mp4", "v/a.mp4", "gone.mp4"], tmp_path)
    assert got == [str(tmp_path / p) for p in ("v/a.mp4", "v/b.mp4", "v/deep/c.mp4", "gone.mp4")]
    with pytest.raises(BatchUsageError, match=r"'v/\*\.mov' matches no file"):
        expand_inputs(["v/*.mov"], tmp_path)


def test_templates_fill_every_field_keep_escaped_braces_and_name_a_bad_field():
    f = fields_of("/data/in/cam1/clip.take2.mp4", 7)
    assert f == {"input": "/data/in/cam1/clip.take2.mp4", "stem": "clip.take2", "name": "clip.take2.mp4",
                 "parent": "cam1", "index": 7}
    items = make_items(["/d/cam1/x.mp4"], [parse_set("out.path=o/{parent}_{stem}_{index:03d}.mp4"),
                                            parse_set("snap.pattern={stem}_{{index:05d}}.png")])
    assert items[0].params == {"out": {"path": "o/cam1_x_000.mp4"}, "snap": {"pattern": "x_{index:05d}.png"}}
    with pytest.raises(BatchUsageError, match=r"unknown field \{steem\}.*\{stem\}"):
        parse_set("out.path=o/{steem}.mp4")
    with pytest.raises(BatchUsageError, match="write node.param=value"):
        parse_set("outpath=o.mp4")


def test_manifest_lines_are_whole_a_torn_last_line_is_skipped_and_the_last_line_counts(tmp_path):
    path = tmp_path / "m.jsonl"
    out = tmp_path / "a.mp4"
    out.write_bytes(b"x")
    with Manifest(path) as m:
        m.append({"input": "/a", "status": "failed", "outputs": [], "error": "boom"})
        m.append({"input": "/a", "status": "done", "outputs": [str(out)]})
        m.append({"input": "/b", "status": "done", "outputs": [str(tmp_path / "gone.mp4")]})
    with path.open("ab") as f:
        f.write(b'{"input": "/c", "status": "do')  # a crash in the middle of a line
    assert set(read_manifest(path)) == {"/a", "/b"}
    assert finished_inputs(path, ["/a", "/b", "/c"]) == {"/a"}  # /b's output is gone
    with Manifest(path) as m:  # appending after a torn line starts a new line
        m.append({"input": "/c", "status": "done", "outputs": []})
    assert read_manifest(path)["/c"]["status"] == "done"
    assert all(json.loads(x) for x in path.read_text().splitlines()[:3])


def test_staging_renames_on_commit_merges_folders_and_discards_partial_outputs(tmp_path):
    final = tmp_path / "out" / "clip.mp4"
    s = Staging()
    part = s.stage(str(final))
    assert os.path.basename(part) == "clip.mp4" and os.path.dirname(part) != str(final.parent)
    open(part, "wb").write(b"video")
    assert not final.exists()
    assert s.commit() == [str(final)] and final.read_bytes() == b"video"
    assert sorted(os.listdir(final.parent)) == ["clip.mp4"]

    frames = tmp_path / "out" / "frames"
    frames.mkdir()
    (frames / "old.png").write_bytes(b"1")
    s = Staging()
    part = s.stage(str(frames))
    os.makedirs(part)
    (tmp_path / part / "f_0.png").write_bytes(b"2")
    s.commit()
    assert sorted(os.listdir(frames)) == ["f_0.png", "old.png"]

    s = Staging()
    part = s.stage(str(tmp_path / "out" / "b.mp4"))
    open(part, "wb").write(b"half")
    leftover = Staging().stage(str(tmp_path / "out" / "c.mp4"))  # a killed run's part
    open(leftover, "wb").write(b"half")
    s.discard()
    again = Staging().stage(str(tmp_path / "out" / "c.mp4"))  # staging c again clears the leftover
    assert not os.path.exists(leftover)
    entries = sorted(os.listdir(tmp_path / "out"))
    assert entries == sorted(["clip.mp4", "frames", os.path.basename(os.path.dirname(again))])
    assert entries[0].startswith(".c.mp4.flowml-part-")  # b's part is gone, b.mp4 never appeared


def test_set_is_checked_against_the_graph_before_anything_runs(media):
    graph, _ = load_batch_graph(str(media.graph))
    first = make_items([str(media.good[0])], [parse_set("src.path={input}")])[0]
    with pytest.raises(BatchUsageError, match="has no node 'scr'; did you mean 'src'"):
        check_bindings(graph, [parse_set("scr.path={input}")])
    with pytest.raises(BatchUsageError, match="has no param 'pth'; did you mean 'path'"):
        check_bindings(graph, [parse_set("src.pth={input}")])
    with pytest.raises(BatchUsageError, match=r"writes the same output for every input.*out/\{stem\}"):
        check_bindings(graph, [parse_set("src.path={input}"), parse_set("out.path=out/x.mp4")])
    with pytest.raises(BatchUsageError, match=r"node 'out' writes 'ref/example.mp4' for every input"):
        check_bindings(graph, [parse_set("src.path={input}")], first)
    with pytest.raises(BatchUsageError, match=r"--set out\.path='o/clip0\.avi'.*end the file name in \.mp4"):
        items = make_items([str(media.good[0])], [parse_set("out.path=o/{stem}.avi")])
        check_bindings(graph, [parse_set("out.path=o/{stem}.avi")], items[0])


def test_two_inputs_that_would_write_the_same_output_are_refused(media):
    graph, _ = load_batch_graph(str(media.graph))
    same_stem = ["/d/cam1/clip.mp4", "/d/cam2/clip.mp4"]
    items = make_items(same_stem, [parse_set("src.path={input}"), parse_set("out.path=o/{stem}.mp4")])
    with pytest.raises(BatchUsageError, match=r"cam1/clip.mp4 and /d/cam2/clip.mp4 would both write /w/o/clip.mp4"):
        check_distinct_outputs(graph, items, "/w")
    items = make_items(same_stem, [parse_set("src.path={input}"), parse_set("out.path=o/{parent}_{stem}.mp4")])
    check_distinct_outputs(graph, items, "/w")


def test_without_ray_the_command_says_how_to_install_it(media, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as where it is not installed
    code = cli("batch", *media.args(str(media.root / "never"), "--workers", "2"))
    assert code == 2
    assert "pip install 'flowml[batch]'" in capsys.readouterr().err
    assert not (media.root / "never").exists()
