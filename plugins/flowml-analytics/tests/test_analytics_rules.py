"""Rules: EDGEMATRIX's format from JSON and YAML, file:line:col errors, state, validation."""

from __future__ import annotations

import pytest
from analytics_helpers import write

from flowml import NO_VALUE
from flowml.graph import GraphErrors, load_graph
from flowml.plugins import load_registry
from flowml.testing import NodeHarness
from flowml_analytics.rules import Rules
from flowml_analytics.ruleset import load_rules

GOOD_JSON = """\
[
  {"rule_name": "hit",
   "and": [{"key": "probability", "operator": ">=", "value": 20}],
   "or": [],
   "action": {"action_name": "record", "duration_in_seconds": 5, "max_duration_in_seconds": 60}},
  {"rule_name": "ended",
   "and": [{"key": "tracking_ended_time", "operator": "!=", "value": "N/A"},
           {"key": "tracking_duration_in_seconds", "operator": ">=", "value": 1.3}],
   "action": {"action_name": "http"}}
]
"""


def test_rules_match_as_edgematrix_says(tmp_path):
    hit, ended = load_rules(write(tmp_path / "r.json", GOOD_JSON))
    assert hit.matches({"probability": 20}) and not hit.matches({"probability": 19.9})
    assert not hit.matches({"predicted_class": "x"})  # a missing key never matches
    assert not ended.matches({"tracking_ended_time": "N/A", "tracking_duration_in_seconds": 5})
    assert ended.matches({"tracking_ended_time": 12.5, "tracking_duration_in_seconds": 1.3}) is False  # number vs "N/A": false
    assert ended.matches({"tracking_ended_time": "12.5", "tracking_duration_in_seconds": 1.3})
    assert not ended.matches({"tracking_ended_time": "12.5", "tracking_duration_in_seconds": "1.3"})
    either = load_rules(write(tmp_path / "o.yaml", """
        - rule_name: either
          and: [{key: probability, operator: ">", value: 50}]
          or: [{key: predicted_class, operator: ==, value: dog}, {key: predicted_class, operator: ==, value: cat}]
    """))[0]
    assert either.matches({"probability": 60, "predicted_class": "cat"})
    assert not either.matches({"probability": 60, "predicted_class": "cow"})
    assert not either.matches({"probability": 40, "predicted_class": "dog"})


BAD_JSON = """\
[
  {"rule_name": "a",
   "and": [{"key": "probability", "operator": "=>", "value": 20}]},
  {"rule_name": "b", "and": [{"key": "probability", "operater": ">", "value": 1}]},
  {"rule_name": "c", "and": [{"key": "x", "operator": ">", "value": "N/A"}]},
  {"rule_name": "a", "and": [{"key": "x", "operator": "==", "value": [1]}], "actoin": {}},
  {"and": [], "or": [], "rule_name": "d", "rule_name": "e"},
  {"rule_name": "f", "and": [{"key": "x", "operator": "<", "value": 1}],
   "action": {"action_name": "record", "duration_in_seconds": -1}}
]
"""

BAD_YAML = """\
- rule_name: a
  and:
    - {key: probability, operator: "=>", value: 20}
- rule_name: b
  and: {key: probability}
"""


def test_a_json_rules_file_with_mistakes_gives_every_error_at_its_line(tmp_path):
    with pytest.raises(GraphErrors) as err:
        load_rules(write(tmp_path / "bad.json", BAD_JSON))
    found = [(e.line, e.message) for e in err.value.errors]
    text = "\n".join(f"{line}: {m}" for line, m in found)
    expect = [
        (3, "unknown operator '=>'; use one of > >= < <= == !=; did you mean '>='?"),
        (4, "unknown key 'operater' in a condition; did you mean 'operator'?"),
        (4, "this condition has no `operator`"),
        (5, "operator '>' compares numbers, but the value is the string 'N/A'"),
        (6, "value must be a number or a string"),
        (6, "unknown key 'actoin' in a rule; did you mean 'action'?"),
        (7, "duplicate key 'rule_name'"),
        (7, "rule 'e' has no condition"),
        (9, "duration_in_seconds must be a number of seconds >= 0, not -1"),
    ]
    for line, message in expect:
        assert any(l == line and message in m for l, m in found), f"line {line}: {message!r} not in\n{text}"
    assert str(err.value).startswith(f"{tmp_path / 'bad.json'}:3:")


def test_yaml_rules_errors_and_bad_json_syntax(tmp_path):
    with pytest.raises(GraphErrors) as err:
        load_rules(write(tmp_path / "bad.yaml", BAD_YAML))
    found = {(e.line, e.col): e.message for e in err.value.errors}
    assert "unknown operator '=>'" in found[(3, 36)]
    assert found[(5, 8)].startswith("`and` is a list of conditions, not a mapping")
    with pytest.raises(GraphErrors) as err:
        load_rules(write(tmp_path / "syntax.json", '[{"rule_name": "a",\n "and": [}]'))
    (e,) = err.value.errors
    assert (e.line, e.col) == (2, 10) and e.message.startswith("invalid JSON")


def test_state_per_rule_and_tracker(tmp_path):
    write(tmp_path / "r.json", GOOD_JSON)
    with NodeHarness(Rules, {"path": "r.json"}, graph_dir=tmp_path) as h:
        assert h.process(metadata={"probability": 10})["events"] is NO_VALUE
        first = h.process(t=1.0, metadata={"probability": 30})["events"]
        again = h.process(t=2.0, metadata={"probability": 40})["events"]
        assert [(e["state"], e["since"], e["t"]) for e in first + again] == [("start", 1.0, 1.0), ("continue", 1.0, 2.0)]
        assert first[0]["action"]["duration_in_seconds"] == 5 and first[0]["metadata"] == {"probability": 30}
        h.process(metadata={"probability": 1})  # inactive again
        assert h.process(t=9.0, metadata={"probability": 99})["events"][0]["state"] == "start"
        tracks = [{"tracker_id": 1, "probability": 50}, {"tracker_id": 2, "probability": 5}]
        ev = h.process(t=10.0, metadata=tracks)["events"]
        assert [(e["tracker_id"], e["state"]) for e in ev] == [(1, "start")]
        tracks[1]["probability"] = 25
        ev = h.process(t=11.0, metadata=tracks)["events"]
        assert [(e["tracker_id"], e["state"], e["since"]) for e in ev] == [(1, "continue", 10.0), (2, "start", 11.0)]


GRAPH = """\
flowml: 1
nodes:
  src: {{type: capture.pattern, params: {{size: [32, 32], frames: 2}}}}
  logits: {{type: python.function, inputs: {{image: src/image}}, params: {{function: "x:y", outputs: ["l:tensor"]}}}}
  top: {{type: classify.topk, inputs: {{logits: logits/l}}}}
  rules:
    type: rules.match
    inputs: {{metadata: top/metadata}}
    params: {{path: {path}}}
"""


def test_a_rule_on_a_key_no_node_emits_is_reported_when_the_graph_is_validated(tmp_path):
    write(tmp_path / "r.json", GOOD_JSON)
    registry = load_registry()
    graph = tmp_path / "g.yaml"
    graph.write_text(GRAPH.format(path="r.json"))
    with pytest.raises(GraphErrors) as err:
        load_graph(graph, registry)
    messages = [e.message for e in err.value.errors]
    assert len(messages) == 2, messages
    assert all(m.startswith(f"node 'rules': {tmp_path / 'r.json'}:") for m in messages)
    assert "r.json:7:" in messages[0] and "key 'tracking_ended_time' is not in the metadata" in messages[0]
    assert "predicted_class" in messages[0]  # what the producer does emit
    assert err.value.errors[0].line == 9  # at the rules node's params in the graph file
    write(tmp_path / "ok.json", '[{"rule_name": "hit", "and": [{"key": "probability", "operator": ">=", "value": 20}]}]')
    graph.write_text(GRAPH.format(path="ok.json"))
    load_graph(graph, registry)  # every key emitted: valid
    write(tmp_path / "bad.json", BAD_JSON)
    graph.write_text(GRAPH.format(path="bad.json"))
    with pytest.raises(GraphErrors) as err:
        load_graph(graph, registry)
    assert any("bad.json:3:" in e.message and "unknown operator" in e.message for e in err.value.errors)


CLASS_AND_TIME = """\
- rule_name: disc_followed
  and:
    - {key: class, operator: ==, value: disc}
    - {key: tracking_duration_in_seconds, operator: ">=", value: 1.3}
"""


def test_extra_joins_a_second_nodes_metadata_by_tracker_id(tmp_path):
    """A rule on a track's duration and its class: the tracks from one node, the classes from
    another, joined by tracker_id; a track without a class this tick does not match."""
    write(tmp_path / "r.yaml", CLASS_AND_TIME)
    tracks = [{"tracker_id": 1, "tracking_duration_in_seconds": 2.0},
              {"tracker_id": 2, "tracking_duration_in_seconds": 1.5},
              {"tracker_id": 3, "tracking_duration_in_seconds": 0.4},
              {"tracker_id": 4, "tracking_duration_in_seconds": 3.0}]  # not classified this tick
    classes = [{"tracker_id": 2, "class": "disc", "probability": 70.0},
               {"tracker_id": 1, "class": "square", "probability": 90.0},
               {"tracker_id": 3, "class": "disc", "probability": 60.0}]
    with NodeHarness(Rules, {"path": "r.yaml"}, graph_dir=tmp_path) as h:
        (event,) = h.process(t=1.0, metadata=tracks, extra=classes)["events"]
        assert event["tracker_id"] == 2 and event["metadata"] == {
            "tracker_id": 2, "tracking_duration_in_seconds": 1.5, "class": "disc", "probability": 70.0}
        assert h.process(t=1.1, metadata=tracks)["events"] is NO_VALUE  # no classes: no class key
        # a dict is joined into every record; a key the record has keeps the record's value
        got = h.process(t=1.2, metadata=tracks, extra={"class": "disc", "tracking_duration_in_seconds": 9})["events"]
        assert [(e["tracker_id"], e["state"]) for e in got] == [(1, "start"), (2, "start"), (4, "start")]
        with pytest.raises(Exception, match="extra must be a dict or a list of dicts"):
            h.process(metadata=tracks, extra=[1, 2])


def test_a_rule_may_name_keys_of_the_extra_node_at_validation(tmp_path):
    """capture.pattern's `frames` declares {index, count, t}, classify.topk its own keys: a rule
    on `index` and `probability` validates when both feed the rules, not with `metadata` alone."""
    write(tmp_path / "r.json", '[{"rule_name": "late", "and": [{"key": "index", "operator": ">", "value": 1},'
                               ' {"key": "probability", "operator": ">=", "value": 20}]}]')
    graph = tmp_path / "g.yaml"
    text = ("flowml: 1\nnodes:\n"
            "  src: {type: capture.pattern, params: {size: [32, 32], frames: 2}}\n"
            "  logits: {type: python.function, inputs: {image: src/image}, params: {function: \"x:y\", outputs: [\"l:tensor\"]}}\n"
            "  top: {type: classify.topk, inputs: {logits: logits/l}}\n"
            "  rules: {type: rules.match, inputs: {metadata: top/metadata%s}, params: {path: r.json}}\n")
    registry = load_registry()
    graph.write_text(text % "")
    with pytest.raises(GraphErrors) as err:
        load_graph(graph, registry)
    (message,) = [e.message for e in err.value.errors]
    assert "key 'index' is not in the metadata of the node feeding `metadata`; it emits" in message
    graph.write_text(text % ", extra: src/frames")
    load_graph(graph, registry)  # index comes from extra: valid
    write(tmp_path / "r.json", '[{"rule_name": "x", "and": [{"key": "indx", "operator": ">", "value": 1}]}]')
    with pytest.raises(GraphErrors) as err:
        load_graph(graph, registry)
    (message,) = [e.message for e in err.value.errors]
    assert "key 'indx' is not in the metadata of the nodes feeding `metadata` and `extra`; they emit" in message
    assert message.endswith("they emit class_index, count, frame, index, predicted_class, probability, t, top")
