"""Pinned staging: a pageable host frame copied into page-locked memory on a few threads.

A copy to the GPU from pageable memory is synchronous: the calling thread waits while the
driver stages the bytes through its own small pinned buffer (about 0.6 ms for a 1080p RGB
frame at 10.5 GB/s on an H100 host). Copying the frame into pinned memory ourselves, in row
bands on a few threads, makes the upload that follows an asynchronous DMA (about 0.12 ms at
50 GB/s). Whether that pays depends on the frame and the host: ``transfer.PAGEABLE_STAGING``
says what was measured.

The bands are copied with ``numpy.copyto``, which releases the GIL. Not torch's ``copy_``:
that would wake torch's OpenMP pool, whose spinning threads take cores from decoders.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

MIN_BAND_BYTES = 3 << 20
"""The smallest band worth a thread (so a 1080p RGB frame of 6.2 MB gets 2 bands, a 4K frame 4).
Measured on H100 hosts over five runs: 1080p took 0.53 - 0.70 ms on 1 thread, 0.35 - 0.68 on 2
and 0.27 / 0.55 on 4 (two runs): the gain depends on the host. 4K took 2.12 - 3.08 ms on 1
thread and 0.71 - 1.12 on 4."""


def default_threads() -> int:
    """Copy threads for staging: a quarter of the cores, at most 4 (1 on a 2-core machine)."""
    return max(1, min(4, (os.cpu_count() or 1) // 4))


class Stager:
    """Copies ``(H, W, C)`` uint8 frames into pinned buffers from PyTorch's caching host
    allocator (a buffer is reused only after the copies that read it have finished)."""

    def __init__(self, threads: int | None = None, pin: bool | None = None):
        self.threads = default_threads() if threads is None else max(1, threads)
        self.pin = torch.cuda.is_available() if pin is None else pin  # False: plain memory (tests)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def stage(self, array: np.ndarray) -> torch.Tensor:
        """A pinned CPU tensor holding a copy of ``array`` (any strides; same shape and dtype)."""
        dtype = torch.from_numpy(np.empty(0, array.dtype)).dtype
        staged = torch.empty(array.shape, dtype=dtype, pin_memory=self.pin)
        dst = staged.numpy()
        bands = self._bands(array)
        if len(bands) == 1:
            np.copyto(dst, array, casting="no")
            return staged
        pool = self._workers()
        jobs = [pool.submit(np.copyto, dst[a:b], array[a:b], casting="no") for a, b in bands[1:]]
        a, b = bands[0]
        np.copyto(dst[a:b], array[a:b], casting="no")  # the calling thread takes a band too
        for job in jobs:
            job.result()
        return staged

    def _bands(self, array: np.ndarray) -> list[tuple[int, int]]:
        rows = array.shape[0] if array.ndim else 1
        n = max(1, min(self.threads, rows, array.nbytes // MIN_BAND_BYTES))
        edges = [rows * i // n for i in range(n + 1)]
        return list(zip(edges[:-1], edges[1:]))

    def _workers(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="flowml-stage")
            return self._pool


_default = Stager()


def stage(array: np.ndarray) -> torch.Tensor:
    """``array`` copied into pinned memory by the process-wide ``Stager``."""
    return _default.stage(array)


def set_threads(threads: int) -> None:
    """How many threads stage each frame from now on (1: the calling thread alone)."""
    global _default
    _default = Stager(threads)
