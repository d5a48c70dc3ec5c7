"""OSCQuery as HTTP: methods and status codes, and the Origin / Host checks that keep web pages
other than local ones (and DNS-rebinding pages) away from the tree and the websocket."""

from __future__ import annotations

import http.client
import json
import socket

import pytest
from control_helpers import LOOPBACK, wait_until
from control_nodes import FRAMES
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

GRAPH = """
flowml: 1
name: web
clock: {fps: 100}
osc: {port: 0}
nodes:
  k1: {type: ctl.knobs}
"""


def request(port: int, method: str, path: str = "/", body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def raw(port: int, data: bytes) -> bytes:
    """Send bytes as they are and read the whole answer (bounded by a timeout)."""
    with socket.create_connection((LOOPBACK, port), timeout=5) as s:
        s.sendall(data)
        chunks = []
        for _ in range(100):
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def test_head_gives_the_headers_of_get_and_no_body(live):
    port = live.start(GRAPH, oscquery=True).session.oscquery.port
    status, headers, body = request(port, "GET", "/k1")
    assert status == 200 and json.loads(body)["FULL_PATH"] == "/k1"
    answer = raw(port, b"HEAD /k1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    head, _, rest = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and rest == b""
    assert b"content-length: %d" % len(body) in head.lower()
    assert b"application/json" in head


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "TRACE"])
def test_other_methods_get_405_with_allow(live, method):
    port = live.start(GRAPH, oscquery=True).session.oscquery.port
    body = b'{"VALUE": [5]}' if method in ("POST", "PUT", "PATCH") else None
    status, headers, text = request(port, method, "/k1/gain", body=body,
                                    headers={"Content-Type": "application/json"} if body else None)
    assert status == 405
    assert set(headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "OPTIONS"}
    assert "GET" in json.loads(text)["error"]
    wait_until(lambda: FRAMES["k1"])
    assert FRAMES["k1"][-1].params.gain == 1.0            # nothing was set


def test_unknown_methods_and_junk_get_a_status_not_a_closed_socket(live):
    port = live.start(GRAPH, oscquery=True).session.oscquery.port
    assert request(port, "BREW", "/")[0] in (400, 501)     # aiohttp's parser: 400
    assert request(port, "PROPFIND", "/")[0] == 501          # a method it parses, we do not serve
    assert request(port, "OPTIONS", "/")[0] == 204
    for junk in (b"JUNK\r\n\r\n", b"GET\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
                 b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: nope\r\n\r\n"):
        answer = raw(port, junk)
        assert answer.startswith(b"HTTP/1.") and answer.split(b" ")[1] == b"400", (junk, answer[:80])
    # chunked POST: refused with a status too
    answer = raw(port, b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                       b"Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    assert answer.split(b" ")[1] == b"405"
    assert request(port, "GET", "/?HOST_INFO")[0] == 200       # and it still serves


def test_pages_from_other_origins_are_refused(live):
    run = live.start(GRAPH, oscquery=True)
    port = run.session.oscquery.port
    status, headers, body = request(port, "GET", "/", headers={"Origin": "http://evil.example"})
    assert status == 403 and "allow_origins" in json.loads(body)["error"]
    assert "access-control-allow-origin" not in headers
    assert request(port, "GET", "/", headers={"Origin": "null"})[0] == 403
    for local in (f"http://localhost:{port}", "http://127.0.0.1:8080", "http://[::1]:3000",
                  "https://app.localhost"):
        status, headers, _ = request(port, "GET", "/k1", headers={"Origin": local})
        assert status == 200 and headers["access-control-allow-origin"] == local, local
    status, headers, _ = request(port, "GET", "/")                  # no Origin: a native client
    assert status == 200 and "access-control-allow-origin" not in headers
    # a DNS-rebinding page: its own name in Host, pointing at 127.0.0.1
    status, _, body = request(port, "GET", "/", headers={"Host": f"evil.example:{port}"})
    assert status == 403 and "Host" in json.loads(body)["error"]
    assert request(port, "GET", "/", headers={"Host": f"localhost:{port}"})[0] == 200
    assert run.session.oscquery.refused >= 3


def test_the_websocket_refuses_foreign_origins(live):
    run = live.start(GRAPH, oscquery=True)
    port = run.session.oscquery.port
    with pytest.raises(InvalidStatus) as refused:
        with connect(f"ws://127.0.0.1:{port}/", origin="http://evil.example", open_timeout=5):
            pass
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as refused:            # a DNS-rebinding page's Host
        with connect(f"ws://evil.example:{port}/", sock=socket.create_connection((LOOPBACK, port)),
                     open_timeout=5):
            pass
    assert refused.value.response.status_code == 403
    with connect(f"ws://127.0.0.1:{port}/", origin=f"http://localhost:{port}", open_timeout=5) as ws:
        ws.send(json.dumps({"COMMAND": "LISTEN", "DATA": "/k1/count"}))
        assert b"/k1/count" in ws.recv(timeout=5)


def test_allow_origins_in_the_graph_file_lets_a_named_page_in(live):
    text = GRAPH.replace("osc: {port: 0}",
                         "osc: {port: 0, allow_origins: ['http://studio.example:8080', 'panel.example']}")
    port = live.start(text, oscquery=True).session.oscquery.port
    ok = {"Origin": "http://studio.example:8080"}
    status, headers, _ = request(port, "GET", "/", headers=ok)
    assert status == 200 and headers["access-control-allow-origin"] == "http://studio.example:8080"
    assert request(port, "GET", "/", headers={"Origin": "http://studio.example:9999"})[0] == 403
    assert request(port, "GET", "/", headers={"Origin": "https://panel.example"})[0] == 200
    assert request(port, "GET", "/", headers={"Host": "panel.example"})[0] == 200
    with connect(f"ws://127.0.0.1:{port}/", origin="http://studio.example:8080", open_timeout=5) as ws:
        ws.send(json.dumps({"COMMAND": "LISTEN", "DATA": "/k1/gain"}))
        assert b"/k1/gain" in ws.recv(timeout=5)
