"""Discovery pieces that need no multicast: settings, a failed announcement that leaves the
graph alone, what `flowml discover` prints. (The real announcement and browse run in a
network namespace: test_discovery_netns.py.)"""

from __future__ import annotations

import json

from flowml.control import ControlSettings
from flowml.control.discovery import OSC_UDP, OSCJSON, Advertiser, Found, _label, render
from flowml.graph.spec import OscSpec


def test_mdns_is_on_with_oscquery_unless_the_graph_says_no():
    assert ControlSettings.resolve(OscSpec(oscquery_port=0)).mdns is True
    assert ControlSettings.resolve(OscSpec(oscquery_port=0, mdns=False)).mdns is False
    s = ControlSettings.resolve(OscSpec(allow_origins=["http://panel.example"]))
    assert s.allow_origins == ["http://panel.example"]


def test_an_announcement_that_cannot_be_made_is_reported_not_raised(caplog):
    # 203.0.113.7 (TEST-NET-3) is no address of this machine: binding fails, nothing is sent
    adv = Advertiser("probe", "203.0.113.7", 1234, 1235)
    adv.start()
    assert adv.registered.wait(20)
    adv.stop()
    assert adv.error and "not advertised" in adv.describe()
    assert any("mDNS: cannot advertise" in r.getMessage() and "mdns: false" in r.getMessage()
               for r in caplog.records)


def test_instance_names_fit_dns_sd():
    assert _label("my.graph") == "my-graph"
    assert len(_label("é" * 100).encode()) <= 63
    assert _label("") == "flowml"


def test_what_discover_prints():
    graph = Found("show", OSCJSON, ["192.168.1.20"], 5678, {"flowml": "0.1.0", "graph": "show"},
                  {"NAME": "show", "OSC_PORT": 9000, "OSC_TRANSPORT": "UDP"})
    other = Found("score", OSCJSON, ["192.168.1.30"], 5000, {}, None, "HOST_INFO: timed out")
    osc = Found("show", OSC_UDP, ["192.168.1.20"], 9000, {"flowml": "0.1.0"})
    text = render([other, osc, graph])
    lines = text.splitlines()
    assert lines[0] == "flowml graph 'show': http://192.168.1.20:5678/"
    assert lines[1].split() == ["OSC:", "udp", "192.168.1.20:9000", "name:", "show"]
    assert lines[2:] == ["OSCQuery server 'score': http://192.168.1.30:5000/", "  HOST_INFO: timed out",
                         "OSC (udp) 'show': 192.168.1.20:9000 (flowml)"]
    data = json.loads(render([graph], as_json=True))
    assert data[0]["flowml"] is True and data[0]["url"] == "http://192.168.1.20:5678/"
    assert "nothing found" in render([])
