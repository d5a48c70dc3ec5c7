"""Graph files no input can crash or exhaust (issue 13, item 1): alias bombs, refused
characters, deep nesting, huge files, binary and non-UTF-8 files, big graphs; and
`flowml validate` without torch."""

from __future__ import annotations

import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from flowml.graph import GraphErrors, load_graph
from flowml.graph import yaml_compose
from flowml.graph.yaml_source import load_yaml

ROOT = Path(__file__).resolve().parents[2]


def bomb(levels: int = 9, width: int = 9) -> str:
    lines = ["flowml: 1", "a0: &a0 [" + ", ".join(["x"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    lines.append(f"nodes: {{cam: {{type: test.camera, params: {{device: *a{levels - 1}}}}}}}")
    return "\n".join(lines) + "\n"


def load_error(text: str) -> str:
    with pytest.raises(GraphErrors) as caught:
        load_yaml(text, "g.yaml")
    return str(caught.value)


def test_alias_bomb_is_an_error_within_a_second_and_50_mb():
    text = bomb()
    assert len(text) < 600  # 9**9: ~387 million values if expanded
    tracemalloc.start()
    start = time.perf_counter()
    try:
        message = load_error(text)
        took = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert message.startswith("g.yaml:")
    assert "aliases expand this file to more values than the limit" in message
    assert peak < 50 * 2**20, f"peak {peak / 2**20:.1f} MB"
    assert took < 10, f"{took:.2f} s"  # ~0.2 s on an idle core; generous for a loaded machine


def test_aliases_within_the_cap_still_work():
    doc = load_yaml("base: &b [1, 2]\nuse: [*b, *b]\n", "g.yaml")
    assert doc.data["use"] == [[1, 2], [1, 2]] and doc.errors == []


@pytest.mark.parametrize(("text", "expected"), [
    ("flowml: 1\nnodes: {}\n\x0c\n", "g.yaml:3:1: error: a form feed (U+000C) is not allowed in a YAML file; remove it"),
    ("flowml: 1\nname: a\x00b\n", "g.yaml:2:8: error: a NUL byte (U+0000): is this a binary file? is not allowed in a YAML file; remove it"),
    ("flowml: 1\nname: \x1b[31m\n", "g.yaml:2:7: error: an escape character (U+001B) is not allowed in a YAML file; remove it"),
    ("a: \ud800\n", "g.yaml:1:4: error: a lone surrogate (U+D800) is not allowed in a YAML file; remove it"),
])
def test_refused_characters_at_their_line_and_column(text, expected):
    assert load_error(text) == expected


@pytest.mark.parametrize("depth", [330, 500, 5_000, 100_000])
def test_deep_flow_nesting_is_an_error_not_a_recursion_error(depth):
    message = load_error("flowml: 1\nx: " + "[" * depth + "]" * depth + "\n")
    assert message == ("g.yaml:2:67: error: lists and mappings are nested more than 64 deep here; "
                       "a graph file needs far fewer levels")


def test_deep_block_nesting_is_an_error_not_a_recursion_error():
    text = "flowml: 1\nx:\n" + "".join(" " * i + "- \n" for i in range(600))
    assert "nested more than 64 deep" in load_error(text)
    text = "flowml: 1\n" + "".join(" " * i + f"k{i}:\n" for i in range(600))
    assert "nested more than 64 deep" in load_error(text)


def test_nesting_a_graph_needs_is_fine():
    doc = load_yaml("a: " + "[" * 60 + "1" + "]" * 60 + "\n", "g.yaml")
    assert doc.errors == []


def test_file_longer_than_the_limit(monkeypatch):
    monkeypatch.setattr(yaml_compose, "MAX_CHARS", 1000)
    assert "the graph file is 2,001 characters long; the limit is 1,000" in load_error("#" * 2000 + "\n")


def test_u2028_lines_match_editors(errors):
    # an editor shows 3 lines before `nodes:`; YAML 1.1 would count the U+2028 as a fourth
    text = errors("flowml: 1\nname: \"a\u2028b\"\nnodes:\n  x: {type: test.nope}\n")
    assert text.startswith("graph.yaml:4:13: error: node 'x': unknown node type 'test.nope'")


def test_crlf_line_numbers(errors):
    text = errors("flowml: 1\r\nnodes:\r\n  x: {type: test.nope}\r\n")
    assert text.startswith("graph.yaml:3:13: error: node 'x': unknown node type")


def test_binary_and_non_utf8_files_are_placed(in_tmp, registry):
    Path("png.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(GraphErrors) as caught:
        load_graph("png.yaml", registry)
    assert str(caught.value) == ("png.yaml:1:1: error: a binary file, not a graph file: byte 0x89 "
                                 "cannot be read as UTF-8; save the file as UTF-8")
    Path("latin.yaml").write_bytes(b"flowml: 1\nname: caf\xe9\n")
    with pytest.raises(GraphErrors) as caught:
        load_graph("latin.yaml", registry)
    assert str(caught.value) == ("latin.yaml:2:10: error: not UTF-8 text: byte 0xE9 cannot be "
                                 "read as UTF-8; save the file as UTF-8")
    Path("dir.yaml").mkdir()
    with pytest.raises(GraphErrors) as caught:
        load_graph("dir.yaml", registry)
    assert "dir.yaml:0:0: error: this is a folder, not a graph file" == str(caught.value)


def chain(n: int, cycle: bool = False) -> str:
    lines = ["flowml: 1", "clock: {fps: 30}" if cycle else "clock: n0", "nodes:",
             f"  n0: {{type: {'test.blur, inputs: {image: n%d/image}' % (n - 1) if cycle else 'test.camera'}}}"]
    lines += [f"  n{i}: {{type: test.blur, inputs: {{image: n{i - 1}/image}}, params: {{radius: 3}}}}"
              for i in range(1, n)]
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(120)
def test_a_10000_node_chain_validates_in_linear_memory(in_tmp, registry):
    Path("big.yaml").write_text(chain(10_000))
    tracemalloc.start()
    try:
        graph = load_graph("big.yaml", registry)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert graph.order[:2] == ["n0", "n1"] and len(graph.order) == 10_000
    assert peak < 400 * 2**20, f"peak {peak / 2**20:.0f} MB"  # ~80 MB measured


@pytest.mark.timeout(120)
def test_a_5000_node_cycle_is_found_without_quadratic_work(in_tmp, registry):
    Path("ring.yaml").write_text(chain(5_000, cycle=True))
    with pytest.raises(GraphErrors) as caught:
        load_graph("ring.yaml", registry)
    message = str(caught.value)
    assert message.count("error:") == 1
    assert "cycle: n0 -> n1 -> n2" in message and message.rstrip().endswith(
        "-> n4999 -> n0; remove one of these connections")


def test_validate_imports_no_torch():
    code = ("import sys\nfrom flowml.plugins import load_registry\nfrom flowml.graph import load_graph\n"
            "r = load_registry()\nassert not r.failures, r.failures\n"
            f"for g in ('demo', 'matting_demo', 'matting'):\n    load_graph('{ROOT}/graphs/' + g + '.yaml', r)\n"
            "heavy = sorted(m for m in ('torch', 'numpy', 'cv2', 'av', 'PIL') if m in sys.modules)\n"
            "assert not heavy, heavy\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
