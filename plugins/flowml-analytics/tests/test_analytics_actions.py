"""action.http against a real local HTTP server, action.osc to a real OSC server, action.log."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from flowml.testing import NodeHarness
from flowml_analytics.actions import HttpAction, LogAction, OscAction


def event(rule: str, state: str = "start", action: str = "http", tracker=None, t: float = 1.0) -> dict:
    return {"rule_name": rule, "state": state, "since": t, "t": t, "frame": 10, "tracker_id": tracker,
            "metadata": {"probability": 42.0}, "action": {"action_name": action}}


class Server:
    """An HTTP server on a free port: answers ``statuses`` in turn (then 200), keeps the bodies;
    with ``hold`` set, each request waits until ``release`` is set."""

    def __init__(self, statuses=(), hold=False):
        self.bodies, self.statuses, self.hits = [], list(statuses), 0
        self.release, self.arrived = threading.Event(), threading.Event()
        if not hold:
            self.release.set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                server.hits += 1
                server.arrived.set()
                server.release.wait(10)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = server.statuses.pop(0) if server.statuses else 200
                if status == 200:
                    server.bodies.append(json.loads(body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/events"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server_factory():
    made = []
    yield lambda **kw: made.append(Server(**kw)) or made[-1]
    for s in made:
        s.close()


def test_http_posts_start_events_and_retries_server_errors(server_factory):
    server = server_factory(statuses=[500, 503])
    with NodeHarness(HttpAction, {"url": server.url, "backoff": 0.01, "action": "http"}) as h:
        h.process(events=[event("hit"), event("hit", "continue"), event("other", action="record")])
        h.process(events=[event("second", tracker=3)])
        poster = h.node.poster
    # teardown sent the queue (bounded wait): two 5xx answers retried, then 200
    assert [b["rule_name"] for b in server.bodies] == ["hit", "second"]
    assert server.bodies[1]["tracker_id"] == 3 and server.hits == 4
    assert (poster.sent, poster.failed, poster.dropped) == (2, 0, 0)


def test_http_never_waits_for_the_server_and_its_queue_is_bounded(server_factory):
    server = server_factory(hold=True)
    with NodeHarness(HttpAction, {"url": server.url, "queue": 2, "timeout": 5}) as h:
        h.process(events=[event("e0")])
        assert server.arrived.wait(5)  # e0 is in flight, and its POST waits in the server
        for i in range(1, 5):
            h.process(events=[event(f"e{i}")])  # returns although the server answers nothing yet
        poster = h.node.poster
        assert poster.dropped == 2 and len(poster.queue) == 2  # e1, e2 dropped, e3 and e4 wait
        server.release.set()
    assert [b["rule_name"] for b in server.bodies] == ["e0", "e3", "e4"]


def test_http_gives_up_on_client_errors_and_dead_servers(server_factory):
    server = server_factory(statuses=[404])
    with NodeHarness(HttpAction, {"url": server.url, "backoff": 0.01}) as h:
        h.process(events=[event("x")])
    assert server.hits == 1 and h.node.poster.failed == 1  # a 4xx is not retried
    port = server.httpd.server_port
    server.close()
    with NodeHarness(HttpAction, {"url": f"http://127.0.0.1:{port}/", "retries": 2, "backoff": 0.01}) as h:
        h.process(events=[event("y")])
    assert h.node.poster.failed == 1 and h.node.poster.sent == 0
    with pytest.raises(Exception, match="must start with http"):
        with NodeHarness(HttpAction, {"url": "ftp://x"}):
            pass


def test_osc_sends_one_message_per_start_event():
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import ThreadingOSCUDPServer

    got, arrived = [], threading.Event()
    dispatcher = Dispatcher()
    dispatcher.map("/flowml/event", lambda address, *args: (got.append(args), arrived.set()))
    server = ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        with NodeHarness(OscAction, {"port": server.server_address[1]}) as h:
            h.process(events=[event("hit", tracker=7, t=2.5), event("hit", "continue")])
        assert arrived.wait(5)
    finally:
        server.shutdown()
        server.server_close()
    (args,) = got
    assert args[:3] == ("hit", 7, 2.5) and json.loads(args[3])["metadata"] == {"probability": 42.0}


def test_log_appends_json_lines(tmp_path):
    for _ in range(2):  # a second run appends
        with NodeHarness(LogAction, {"path": "out/events.jsonl"}, graph_dir=tmp_path) as h:
            h.process(events=[event("a"), event("a", "continue")])
    lines = [json.loads(x) for x in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]
    assert [(e["rule_name"], e["state"]) for e in lines] == [("a", "start"), ("a", "continue")] * 2
