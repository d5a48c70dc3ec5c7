"""The attachment of every sample flowml publishes: a small, versioned, binary header.

Layout (version 1), all fields little-endian whatever the host, 44 bytes then ``ndim`` dims::

    offset size type  field
    0      2    bytes magic    b"FZ"
    2      1    u8    version  1 (a receiver refuses another version, naming both)
    3      1    u8    kind     1 tensor, 2 image (float, (B, C, H, W)), 3 image_u8 ((B, H, W, C)
                               uint8, 4x fewer bytes), 4 json, 5 detections, 6 end (of stream)
    4      1    u8    dtype    DTYPES below (0 for json and end)
    5      1    u8    ndim     number of dims that follow (at most 8)
    6      2    u16   flags    bit 0: the payload's numbers are big-endian (the sender's host
                               byte order; 0: little-endian, what x86 and ARM hosts send)
    8      4    u32   stream   a random id per publisher: sequence numbers count per stream
    12     8    u64   seq      the publisher's sequence number (0, 1, ...; a gap = samples lost)
    20     8    i64   index    the frame's index (the sending graph's tick)
    28     8    f64   t        the frame's presentation time in seconds (the tick's t)
    36     8    f64   sent     the sender's wall clock when it published (Unix seconds):
                               latency = receive time - sent, meaningful when clocks agree
    44     8*n  u64   dims     the shape (tensor, image: the tensor's; detections: (N,))

The payload follows the kind (``codec.py``): a tensor's bytes, C-contiguous; UTF-8 JSON;
detections as boxes float32 (N, 4), scores float32 (N,), labels int64 (N,) back to back.
This module imports no torch: it is the format, nothing else.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

MAGIC = b"FZ"
VERSION = 1
_FIXED = struct.Struct("<2sBBBBHIQqdd")
FIXED_SIZE = _FIXED.size  # 44
MAX_DIMS = 8
BIG_ENDIAN = 1


class Kind(IntEnum):
    """What a sample's payload is."""

    TENSOR = 1
    IMAGE = 2
    IMAGE_U8 = 3
    JSON = 4
    DETECTIONS = 5
    END = 6


DTYPES: dict[int, str] = {
    1: "bool", 2: "uint8", 3: "int8", 4: "int16", 5: "int32", 6: "int64", 7: "float16",
    8: "bfloat16", 9: "float32", 10: "float64", 11: "uint16", 12: "uint32", 13: "uint64",
}
"""Wire code -> torch dtype name (``torch.<name>``)."""
DTYPE_CODES: dict[str, int] = {name: code for code, name in DTYPES.items()}


class Malformed(ValueError):
    """A sample that is not what the header format says: its reason is reported, never raised
    into the graph."""


@dataclass(frozen=True)
class Header:
    """One sample's header. ``dtype`` is a torch dtype name or ``""``; ``shape`` its dims."""

    kind: Kind
    dtype: str = ""
    shape: tuple[int, ...] = ()
    stream: int = 0
    seq: int = 0
    index: int = 0
    t: float = 0.0
    sent: float = 0.0
    big_endian: bool = False

    def pack(self) -> bytes:
        if len(self.shape) > MAX_DIMS:
            raise ValueError(f"a sample has at most {MAX_DIMS} dims, got shape {self.shape}")
        code = DTYPE_CODES[self.dtype] if self.dtype else 0
        fixed = _FIXED.pack(MAGIC, VERSION, int(self.kind), code, len(self.shape),
                            BIG_ENDIAN if self.big_endian else 0, self.stream, self.seq,
                            self.index, self.t, self.sent)
        return fixed + struct.pack(f"<{len(self.shape)}Q", *self.shape)


def unpack(data: bytes) -> Header:
    """Parse an attachment; raise ``Malformed`` saying what is wrong with it."""
    if len(data) < FIXED_SIZE:
        raise Malformed(f"attachment of {len(data)} bytes is shorter than the {FIXED_SIZE}-byte header")
    magic, version, kind, code, ndim, flags, stream, seq, index, t, sent = _FIXED.unpack_from(data)
    if magic != MAGIC:
        raise Malformed(f"attachment does not start with {MAGIC!r} (got {magic!r}): not a flowml sample")
    if version != VERSION:
        raise Malformed(f"header version {version}, this flowml-zenoh reads version {VERSION}: "
                        "run the same flowml-zenoh release on both hosts")
    try:
        kind = Kind(kind)
    except ValueError:
        raise Malformed(f"unknown kind {kind}") from None
    if code and code not in DTYPES:
        raise Malformed(f"unknown dtype code {code}")
    if ndim > MAX_DIMS or len(data) != FIXED_SIZE + 8 * ndim:
        raise Malformed(f"header says {ndim} dims but has {len(data) - FIXED_SIZE} bytes after the fixed part")
    shape = struct.unpack_from(f"<{ndim}Q", data, FIXED_SIZE)
    return Header(kind, DTYPES.get(code, ""), tuple(shape), stream, seq, index, t, sent,
                  bool(flags & BIG_ENDIAN))
