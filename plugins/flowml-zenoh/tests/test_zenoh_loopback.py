"""output.zenoh and capture.zenoh in one process, real Zenoh sessions over 127.0.0.1: json and
detections round trips, malformed samples counted and skipped, the header format, bad params."""

from __future__ import annotations

import socket
import struct
import textwrap
import time

import pytest
import torch
import zenoh

from flowml import EndOfStream
from flowml.graph import GraphErrors, load_graph
from flowml.plugins import load_registry
from flowml.testing import NodeHarness
from flowml_zenoh import codec
from flowml_zenoh.header import FIXED_SIZE, Header, Kind, Malformed, unpack
from flowml_zenoh.publisher import ZenohOutput
from flowml_zenoh.subscriber import ZenohCapture

NO_SHM = {"transport/shared_memory/enabled": False}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def receiver(kind: str, port: int, **params) -> NodeHarness:
    h = NodeHarness(ZenohCapture, {"key": f"test/{kind}", "kind": kind, "listen": [f"tcp/127.0.0.1:{port}"],
                                   "live": False, "wait": 10, "timeout": 5, "config": NO_SHM, **params},
                    mode="offline")
    h.ctx.is_clock = True
    return h


def sender(kind: str, port: int, **params) -> NodeHarness:
    return NodeHarness(ZenohOutput, {"key": f"test/{kind}", "kind": kind, "connect": [f"tcp/127.0.0.1:{port}"],
                                     "wait": 10, "config": NO_SHM, **params}, mode="offline")


def drain(rx: NodeHarness) -> list[dict]:
    got = []
    with pytest.raises(EndOfStream):
        for _ in range(100):
            got.append(rx.process())
    return got


def test_json_round_trip_keeps_values_order_and_frame_times():
    port = free_port()
    values = [{"i": 0, "name": "café", "nested": [1, 2.5, None, True]}, [], "text", 3.25]
    with receiver("json", port) as rx:
        with sender("json", port) as tx:
            for i, v in enumerate(values):
                tx.process(t=i / 10, json=v)
        got = drain(rx)
        assert [g["json"] for g in got] == values
        assert [g["meta"]["index"] for g in got] == [0, 1, 2, 3]
        assert rx.last_t == pytest.approx(0.3)
        report = rx.node.report()
        assert report["samples"] == 4 and report["drops"] == 0 and report["malformed"] == 0
        assert report["latency_ms"]["p50"] >= 0 and report["ended"] == "the sender's stream ended"


def test_detections_round_trip_bit_exact():
    port = free_port()
    dets = {"boxes": torch.tensor([[1.5, 2.0, 30.25, 40.0], [0.0, 0.0, 1919.0, 1079.0]]),
            "scores": torch.tensor([0.9, 0.125]), "labels": torch.tensor([3, 17]), "extra": "not sent"}
    empty = {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}
    with receiver("detections", port) as rx:
        with sender("detections", port) as tx:
            tx.process(detections=dets)
            tx.process(detections=empty)
        first, second = (g["detections"] for g in drain(rx))
    assert set(first) == {"boxes", "scores", "labels"}
    assert torch.equal(first["boxes"], dets["boxes"]) and torch.equal(first["scores"], dets["scores"])
    assert first["labels"].dtype == torch.int64 and first["labels"].tolist() == [3, 17]
    assert first["boxes"].shape == (2, 4) and second["boxes"].shape == (0, 4) and second["labels"].numel() == 0


def test_malformed_samples_are_counted_and_skipped_never_raised():
    port = free_port()
    good = torch.arange(12, dtype=torch.int16).reshape(3, 4)
    ok_header = Header(Kind.TENSOR, "int16", (3, 4), stream=5, seq=0, sent=time.time()).pack()
    with receiver("tensor", port) as rx:
        config = zenoh.Config()
        config.insert_json5("scouting/multicast/enabled", "false")
        config.insert_json5("connect/endpoints", f'["tcp/127.0.0.1:{port}"]')
        with zenoh.open(config) as s:
            time.sleep(0.5)  # the connection and the subscription reach this session
            key = "test/tensor"
            s.put(key, b"no attachment", congestion_control=zenoh.CongestionControl.BLOCK)
            s.put(key, codec.tensor_bytes(good), attachment=b"XX" + ok_header[2:],
                  congestion_control=zenoh.CongestionControl.BLOCK)            # wrong magic
            s.put(key, b"\x00" * 7, attachment=ok_header,
                  congestion_control=zenoh.CongestionControl.BLOCK)            # wrong size
            s.put(key, b"{}", attachment=Header(Kind.JSON, seq=1).pack(),
                  congestion_control=zenoh.CongestionControl.BLOCK)            # wrong kind
            s.put(key, codec.tensor_bytes(good), attachment=ok_header,
                  congestion_control=zenoh.CongestionControl.BLOCK)            # the good one
            out = rx.process()
            assert torch.equal(out["tensor"], good)
        report = rx.node.report()
        assert report["malformed"] == 4 and report["samples"] == 1, report
        assert "receives tensor" in report["last_malformed"]


def test_a_big_endian_sender_and_bfloat16_decode_exactly():
    t = torch.randn(2, 3, dtype=torch.float32)
    swapped = t.numpy().astype(">f4").tobytes()  # what a big-endian host sends
    h = Header(Kind.TENSOR, "float32", (2, 3), big_endian=True)
    assert torch.equal(codec.decode(unpack(h.pack()), swapped), t)
    b = torch.randn(5, dtype=torch.bfloat16)
    payload, dtype, shape = codec.encode(Kind.TENSOR, b)
    assert torch.equal(codec.decode(Header(Kind.TENSOR, dtype, shape), payload), b)


def test_the_header_is_versioned_and_checked():
    h = Header(Kind.IMAGE_U8, "uint8", (1, 4, 6, 3), stream=9, seq=41, index=40, t=1.5, sent=2.0)
    data = h.pack()
    assert len(data) == FIXED_SIZE + 4 * 8 and data[:3] == b"FZ\x01"
    assert unpack(data) == h
    with pytest.raises(Malformed, match="version 2"):
        unpack(data[:2] + b"\x02" + data[3:])
    with pytest.raises(Malformed, match="dims"):
        unpack(data[:-8])
    with pytest.raises(Malformed, match="expected"):
        codec.check(h, 10, "image")
    assert struct.unpack_from("<Q", data, 12)[0] == 41  # seq where the README says


def test_bad_endpoints_and_keys_fail_validation_naming_the_line(tmp_path):
    graph = tmp_path / "g.yaml"
    graph.write_text(textwrap.dedent("""\
        flowml: 1
        nodes:
          rx: {type: capture.zenoh, params: {key: a/b, connect: ["198.18.0.1:7447"]}}
          tx: {type: output.zenoh, inputs: {json: rx/meta}, params: {key: /a, kind: json}}
        """))
    with pytest.raises(GraphErrors) as caught:
        load_graph(str(graph), load_registry())
    text = str(caught.value)
    assert "g.yaml:3" in text and "must be <protocol>/<address>" in text
    assert "g.yaml:4" in text and "not a Zenoh key expression" in text and "leading" in text


def test_no_sample_within_wait_is_an_error_naming_the_key():
    with receiver("json", free_port(), wait=0.3) as rx:
        with pytest.raises(Exception, match="no sample on key 'test/json' within 0.3 s"):
            rx.process()


def image_round_trip(device: str) -> None:
    port = free_port()
    image = torch.rand(1, 3, 36, 64)
    with receiver("image", port, queue=2) as rx:
        rx.ctx.device = device
        with sender("image", port, end=False) as tx:
            tx.process(image=image)
            exact = rx.process()["image"]
        with sender("image", port, uint8=True) as tx8:  # another session: after the first arrived
            tx8.process(image=image)
            packed = rx.process()["image"]
    assert exact.device.type == device == packed.device.type
    assert torch.equal(exact.cpu(), image)  # float32 bytes: bit-exact
    want = (image * 255).round() / 255  # 8-bit on the wire, float in [0, 1] again on arrival
    assert packed.shape == (1, 3, 36, 64) and torch.allclose(packed.cpu(), want, atol=1e-6)


def test_images_float_bit_exact_and_uint8_packed():
    image_round_trip("cpu")


@pytest.mark.cuda
def test_images_arrive_on_the_gpu():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    image_round_trip("cuda")
