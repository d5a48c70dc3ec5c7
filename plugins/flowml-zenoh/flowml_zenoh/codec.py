"""Port values <-> sample payloads (the header is ``header.py``'s).

- tensor, image: the tensor's bytes, C-contiguous, in the sender's byte order (stated in the
  header), whatever device it was on; the receiver rebuilds it on its own device.
- image_u8: a ``(B, H, W, C)`` uint8 tensor's bytes; the receiver makes the ``(B, C, H, W)``
  float image in [0, 1] on its device.
- json: UTF-8 JSON.
- detections: ``boxes`` float32 (N, 4), ``scores`` float32 (N,), ``labels`` int64 (N,), back to
  back (28 N bytes); other keys of the dict are not sent.

Receiving is two steps: ``to_host`` on the receiving thread (parse, copy into a tensor, pinned
for a CUDA receiver), ``to_device`` on the node's thread and CUDA stream (the upload).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from flowml.lazy import lazy_import

from .header import Header, Kind, Malformed

np = lazy_import("numpy")
torch = lazy_import("torch")

HOST_BIG_ENDIAN = sys.byteorder == "big"
_DETECTION_FIELDS = (("boxes", "float32", 4), ("scores", "float32", 0), ("labels", "int64", 0))


def tensor_bytes(tensor: Any) -> bytes:
    """A tensor's elements as bytes, C order, host byte order (any dtype, any device)."""
    t = tensor.detach()
    if t.device.type != "cpu":  # output.zenoh's input is host=True: this is a fallback
        t = t.cpu()
    t = t.contiguous().reshape(-1)
    return t.view(torch.uint8).numpy().tobytes() if t.numel() else b""


def encode(kind: Kind, value: Any) -> tuple[bytes, str, tuple[int, ...]]:
    """``(payload, dtype name, shape)`` of one port value of ``kind``."""
    if kind in (Kind.TENSOR, Kind.IMAGE, Kind.IMAGE_U8):
        return tensor_bytes(value), str(value.dtype).removeprefix("torch."), tuple(value.shape)
    if kind is Kind.JSON:
        try:
            text = json.dumps(value, separators=(",", ":"), default=_plain)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"json: the value is not JSON-able ({exc})") from None
        return text.encode("utf-8"), "", ()
    if kind is Kind.DETECTIONS:
        n = _detection_count(value)
        parts = []
        for name, dtype, width in _DETECTION_FIELDS:
            t = torch.as_tensor(value[name]).detach().to("cpu", getattr(torch, dtype))
            want = (n, width) if width else (n,)
            if tuple(t.shape) != want:
                raise ValueError(f"detections: {name!r} has shape {tuple(t.shape)}, expected {want}")
            parts.append(tensor_bytes(t))
        return b"".join(parts), "", (n,)
    raise ValueError(f"cannot encode kind {kind.name}")


def _plain(value: Any) -> Any:
    """Tensors and numpy values in a json port's value go as (nested) lists or numbers."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-able")


def _detection_count(value: Any) -> int:
    if not isinstance(value, dict) or not {"boxes", "scores", "labels"} <= set(value):
        raise ValueError("detections must be a dict with 'boxes' (N, 4), 'scores' (N,), 'labels' (N,)")
    boxes = torch.as_tensor(value["boxes"])
    return int(boxes.shape[0]) if boxes.ndim else 0


def decode(h: Header, payload: bytes, device: str = "cpu") -> Any:
    """The port value of a sample on ``device`` (``to_host`` then ``to_device``)."""
    return to_device(h, to_host(h, payload, pinned=device.startswith("cuda")), device)


def to_host(h: Header, payload: bytes, pinned: bool = False) -> Any:
    """The value of a sample in host memory (``pinned`` for a CUDA receiver): parsed JSON, a
    tensor, a detections dict; an image_u8 stays (B, H, W, C) uint8 until ``to_device``.
    Raises ``Malformed`` for a payload that does not match its header. Runs on the receiving
    thread, so the graph's own thread only starts the upload."""
    if h.kind is Kind.JSON:
        try:
            return json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise Malformed(f"json payload does not parse: {exc}") from None
    if h.kind is Kind.DETECTIONS:
        return _detections(h, payload, pinned)
    if h.kind not in (Kind.TENSOR, Kind.IMAGE, Kind.IMAGE_U8):
        raise Malformed(f"a {h.kind.name.lower()} sample has no port value")
    if not h.dtype:
        raise Malformed(f"{h.kind.name.lower()} sample without a dtype")
    t = _tensor(payload, h.dtype, h.shape, h.big_endian, pinned)
    if h.kind is Kind.IMAGE and (t.ndim != 4 or not 1 <= t.shape[1] <= 4 or not t.is_floating_point()):
        raise Malformed(f"image sample of shape {tuple(t.shape)} {h.dtype}: expected (B, C, H, W) "
                        "float with 1 to 4 channels")
    if h.kind is Kind.IMAGE_U8 and (t.ndim != 4 or not 1 <= t.shape[3] <= 4 or h.dtype != "uint8"):
        raise Malformed(f"image_u8 sample of shape {tuple(t.shape)} {h.dtype}: expected "
                        "(B, H, W, C) uint8 with 1 to 4 channels")
    return t


def to_device(h: Header, value: Any, device: str) -> Any:
    """A ``to_host`` value on ``device``: CUDA copies are asynchronous, on the current stream
    (the node's lane), from pinned memory; an image_u8 becomes a (B, C, H, W) float image in
    [0, 1] there (1 byte a channel crosses the bus, not 4)."""
    if h.kind is Kind.JSON:
        return value
    if h.kind is Kind.DETECTIONS:
        return {k: _upload(v, device) for k, v in value.items()}
    t = _upload(value, device)
    if h.kind is Kind.IMAGE_U8:
        return t.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)
    return t


def _upload(t, device: str):
    return t.to(device, non_blocking=True) if device.startswith("cuda") else t


def _tensor(payload: bytes | memoryview, dtype_name: str, shape: tuple[int, ...], big_endian: bool,
            pinned: bool):
    dtype = getattr(torch, dtype_name)
    itemsize = torch.empty((), dtype=dtype).element_size()
    numel = 1
    for d in shape:
        numel *= d
    if numel * itemsize != len(payload):
        raise Malformed(f"payload of {len(payload)} bytes for shape {tuple(shape)} {dtype_name} "
                        f"({numel * itemsize} bytes expected)")
    host = torch.empty(shape, dtype=dtype, pin_memory=pinned)
    if numel:
        raw = np.frombuffer(payload, dtype=np.uint8)
        if big_endian != HOST_BIG_ENDIAN and itemsize > 1:
            raw = raw.reshape(-1, itemsize)[:, ::-1].reshape(-1)
        host.reshape(-1).view(torch.uint8).numpy()[:] = raw
    return host


def _detections(h: Header, payload: bytes, pinned: bool) -> dict:
    if len(h.shape) != 1:
        raise Malformed(f"detections sample with shape {h.shape}: expected (N,)")
    n = h.shape[0]
    if len(payload) != 28 * n:
        raise Malformed(f"detections payload of {len(payload)} bytes for N={n} ({28 * n} expected)")
    out, at, view = {}, 0, memoryview(payload)
    for name, dtype, width in _DETECTION_FIELDS:
        shape = (n, width) if width else (n,)
        size = n * (width or 1) * (8 if dtype == "int64" else 4)
        out[name] = _tensor(view[at:at + size], dtype, shape, h.big_endian, pinned)
        at += size
    return out

_ITEMSIZE = {"bool": 1, "uint8": 1, "int8": 1, "int16": 2, "int32": 4, "int64": 8, "float16": 2,
             "bfloat16": 2, "float32": 4, "float64": 8, "uint16": 2, "uint32": 4, "uint64": 8}
ACCEPTS: dict[str, tuple[Kind, ...]] = {
    "tensor": (Kind.TENSOR, Kind.IMAGE, Kind.IMAGE_U8), "image": (Kind.IMAGE, Kind.IMAGE_U8),
    "json": (Kind.JSON,), "detections": (Kind.DETECTIONS,)}
"""Which sample kinds a receiver of each port kind takes (an image is a tensor too)."""


def check(h: Header, size: int, port_kind: str) -> None:
    """Raise ``Malformed`` unless a payload of ``size`` bytes with header ``h`` decodes to a
    value of ``port_kind`` (no torch, no copy: the receiving thread checks before queueing)."""
    if h.kind is Kind.END:
        return
    if h.kind not in ACCEPTS[port_kind]:
        raise Malformed(f"a {h.kind.name.lower()} sample, but this node receives {port_kind}")
    if h.kind is Kind.DETECTIONS:
        if len(h.shape) != 1 or size != 28 * h.shape[0]:
            raise Malformed(f"detections payload of {size} bytes for shape {h.shape} (28 bytes a detection)")
        return
    if h.kind is Kind.JSON:
        return  # parsed when it is handed out
    numel = 1
    for d in h.shape:
        numel *= d
    want = numel * _ITEMSIZE.get(h.dtype, 0)
    if not h.dtype or want != size:
        raise Malformed(f"payload of {size} bytes for shape {h.shape} {h.dtype or 'without dtype'} "
                        f"({want} bytes expected)")
    if h.kind is Kind.IMAGE and (len(h.shape) != 4 or not 1 <= h.shape[1] <= 4 or "float" not in h.dtype):
        raise Malformed(f"image sample of shape {h.shape} {h.dtype}: expected (B, C, H, W) float, 1 to 4 channels")
    if h.kind is Kind.IMAGE_U8 and (len(h.shape) != 4 or not 1 <= h.shape[3] <= 4 or h.dtype != "uint8"):
        raise Malformed(f"image_u8 sample of shape {h.shape} {h.dtype}: expected (B, H, W, C) uint8, 1 to 4 channels")
