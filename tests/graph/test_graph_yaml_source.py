"""YAML with positions: marks by path, duplicates, the boolean dialect, syntax errors."""

from __future__ import annotations

import pytest

from flowml.graph import GraphErrors
from flowml.graph.yaml_source import Mark, load_yaml

TEXT = """\
# a comment
flowml: 1
nodes:
  align:
    type: cv.homography
    params: {every: 5, size: [640, 480]}
"""


def test_marks_of_keys_and_values() -> None:
    doc = load_yaml(TEXT, "g.yaml")
    assert doc.data["nodes"]["align"]["params"] == {"every": 5, "size": [640, 480]}
    assert doc.marks.key(("nodes", "align", "params", "every")) == Mark(6, 14)
    assert doc.marks.value(("nodes", "align", "params", "every")) == Mark(6, 21)
    assert doc.marks.value(("nodes", "align", "params", "size", 1)) == Mark(6, 36)
    assert doc.marks.value(()) == Mark(2, 1)


def test_unwritten_paths_fall_back_to_the_nearest_ancestor() -> None:
    doc = load_yaml(TEXT, "g.yaml")
    assert doc.marks.key(("nodes", "align", "inputs", "src")) == Mark(4, 3)
    assert doc.marks.value(("nodes", "align", "params", "nope")) == Mark(6, 13)


def test_duplicate_keys_are_reported_and_the_first_kept() -> None:
    doc = load_yaml("a: 1\nb: {x: 1}\na: 2\n", "g.yaml")
    assert doc.data == {"a": 1, "b": {"x": 1}}
    assert [str(e) for e in doc.errors] == ["g.yaml:3:1: error: duplicate key 'a' (first at line 1)"]


def test_key_names_word_the_duplicate() -> None:
    doc = load_yaml("nodes:\n  a: 1\n  a: 2\n", "g.yaml", key_names={("nodes",): "node id"})
    assert str(doc.errors[0]) == "g.yaml:3:3: error: duplicate node id 'a' (first at line 2)"


def test_only_true_and_false_are_booleans_and_dates_stay_text() -> None:
    doc = load_yaml("a: on\nb: no\nc: true\nd: 2024-01-01\ne: 1:30\nf: ~\n1: x\n", "g.yaml")
    assert doc.data == {"a": "on", "b": "no", "c": True, "d": "2024-01-01", "e": 90, "f": None,
                        "1": "x"}


def test_merge_keys_explicit_wins_and_marks_point_at_the_anchor() -> None:
    doc = load_yaml("base: &b {x: 1, y: 2}\nuse: {<<: *b, y: 3}\n", "g.yaml")
    assert doc.data["use"] == {"y": 3, "x": 1}
    assert doc.marks.value(("use", "x")) == Mark(1, 14)
    assert doc.errors == []


def test_recursive_alias_is_an_error_not_a_crash() -> None:
    doc = load_yaml("a: &x [1, *x]\n", "g.yaml")
    assert [str(e) for e in doc.errors] == [
        "g.yaml:1:4: error: an alias refers to a collection that contains it; "
        "YAML graphs must not be recursive"]


def test_unknown_tags_are_errors() -> None:
    doc = load_yaml("a: !python/object 1\n", "g.yaml")
    assert [str(e) for e in doc.errors] == [
        "g.yaml:1:4: error: unsupported YAML tag '!python/object'; remove it"]


@pytest.mark.parametrize(("text", "expected"), [
    ("a: *nope\n", "g.yaml:1:4: error: invalid YAML: found undefined alias 'nope'; "
                   "define the anchor (&name) before using it (*name)"),
    ("a: 1\n---\nb: 2\n", "g.yaml:2:1: error: invalid YAML: expected a single document in the "
                          "stream, but found another document; a graph file holds one YAML "
                          "document; remove the second '---'"),
    ("a: b: c\n", "g.yaml:1:5: error: invalid YAML: mapping values are not allowed here; "
                  "quote a value that contains ': ', or fix the indentation"),
    ("a: 'x\n", "g.yaml:2:1: error: invalid YAML: found unexpected end of stream "
                "(while scanning a quoted scalar at line 1)"),
])
def test_syntax_errors(text: str, expected: str) -> None:
    with pytest.raises(GraphErrors) as caught:
        load_yaml(text, "g.yaml")
    assert str(caught.value) == expected


def test_merges_nest_and_do_not_repeat_problems() -> None:
    doc = load_yaml("base: &b {x: 1, <<: {z: 9}, x: 2}\nuse: {<<: *b, y: 3}\n", "g.yaml")
    assert doc.data["use"] == {"y": 3, "x": 1, "z": 9}
    assert [str(e) for e in doc.errors] == [
        "g.yaml:1:29: error: duplicate key 'x' (first at line 1, column 11)"]


def test_explicit_tag_that_does_not_fit_is_an_error() -> None:
    doc = load_yaml("a: !!int abc\nb: !!timestamp soon\n", "g.yaml")
    assert [str(e) for e in doc.errors] == [
        "g.yaml:1:4: error: 'abc' is not a valid int",
        "g.yaml:2:4: error: 'soon' is not a valid timestamp"]
