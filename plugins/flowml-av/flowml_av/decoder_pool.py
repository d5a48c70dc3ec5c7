"""Open decoders kept for the next graph that reads the same file (``capture.clips``).

``flowml.data.VideoLoader`` builds a graph an epoch, and each epoch's ``capture.clips``
opened an NVDEC decoder a thread and file and closed them all at its end. Opening and
closing one (PyNvVideoCodec's demuxer and decoder made and destroyed) holds the GIL: on an
H200 (2026-12-03, py-spy over ``nvdec_bench.py``'s loader) the closing alone was over a
tenth of the time any thread held it, stalling the decoders and the training loop. So a
node hands its decoders back here when it is done, and the next node to read that file on
that device takes one instead of opening a new one. A decoder is used by one thread at a
time: taken, it belongs to its taker until given back.

At most ``IDLE_LIMIT`` decoders are kept idle (the least recently given back are closed
beyond), so a process holds a bounded number of NVDEC sessions and their memory; all of
them are closed at exit, or by ``clear()``.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from collections import OrderedDict
from typing import Any, Callable

from flowml.lazy import lazy_import
torch = lazy_import("torch")

IDLE_LIMIT = 64
"""Idle decoders kept, at most: two epochs' worth of 7 threads x ``FILES_PER_DECODER`` (4)
files, with room to spare (a 1080p NVDEC session holds tens of MB of surfaces)."""


class DecoderPool:
    """Idle decoders by (file, device): ``take`` one or open it, ``give`` it back when done."""

    def __init__(self, limit: int = IDLE_LIMIT):
        self.limit = limit
        self._lock = threading.Lock()
        self._idle: OrderedDict[int, tuple[tuple[str, str], Any]] = OrderedDict()  # oldest first
        self._keys: weakref.WeakKeyDictionary[Any, tuple[str, str]] = weakref.WeakKeyDictionary()  # video -> key
        self.opened = 0     # decoders opened by take() (for tests and benchmarks)
        self.reused = 0     # takes served by an idle decoder

    @staticmethod
    def key(path: str, device: str) -> tuple[str, str]:
        """``(the file's real path, the device resolved)``: ``cuda`` is the current CUDA device,
        the one a decoder opened now binds to."""
        d = torch.device(device)
        if d.type == "cuda" and d.index is None:
            d = torch.device("cuda", torch.cuda.current_device())
        return os.path.realpath(path), str(d)

    def take(self, path: str, device: str, open_video: Callable[[], Any]) -> Any:
        """An idle decoder of ``path`` on ``device``, or ``open_video()``'s (its errors raised)."""
        key = self.key(path, device)
        with self._lock:
            found = next((vid for vid, (k, _) in self._idle.items() if k == key), None)
            if found is not None:
                _, video = self._idle.pop(found)
                self.reused += 1
                return video
        video = open_video()
        with self._lock:
            self._keys[video] = key
            self.opened += 1
        return video

    def give(self, video: Any) -> None:
        """Hand ``video`` back (taken from this pool; one that was not is closed); beyond
        ``limit`` idle the oldest is closed."""
        with self._lock:
            if id(video) in self._idle:
                return
            key = self._keys.get(video)
            if key is None:
                closing = [video]
            else:
                self._idle[id(video)] = (key, video)
                closing = [self._idle.popitem(last=False)[1][1] for _ in range(len(self._idle) - self.limit)]
                for old in closing:
                    self._keys.pop(old, None)
        for old in closing:   # outside the lock: closing a decoder takes a while
            old.close()

    def idle(self) -> int:
        """Decoders kept idle now."""
        return len(self._idle)

    def clear(self) -> None:
        """Close every idle decoder (those lent stay with their takers)."""
        with self._lock:
            videos = [v for _, v in self._idle.values()]
            self._idle.clear()
            for v in videos:
                self._keys.pop(v, None)
        for v in videos:
            v.close()


NVDEC = DecoderPool()
"""The pool of NVDEC decoders (``nvdec.NvdecVideo``) of this process."""
atexit.register(NVDEC.clear)
