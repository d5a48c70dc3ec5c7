"""``VideoLoader``: batches of a ``VideoDataset`` from a flowml graph running ahead of the loop.

Each epoch builds a two-node graph: ``capture.clips`` (flowml-av) decodes the samples in the
sampler's order, on the GPU where it can (NVDEC), and makes every output in one pass on its
own CUDA stream; ``data.queue`` hands each batch, with the event that marks its end, to a
bounded queue. The graph runs offline on a thread of its own and runs ahead by at most
``3 * prefetch + 1`` batches: ``prefetch`` in the queue, ``prefetch`` ticks in flight (the
graph's ``max_in_flight``), ``prefetch`` read ahead by its clock thread, one being decoded.
The loop's stream waits on each batch's event, on the GPU, and the batch's memory is kept
for that stream (``record_stream``).

Epochs overlap (``overlap_epochs``): when an epoch starts, the next one's graph is started too
where its order is known ahead (a sampler with ``upcoming()``, as ``ShuffleSampler``), so its
setup (decoders opened, files probed) and its first window of samples are done while this
epoch is read; it runs ahead as boundedly as any epoch's graph. Measured on an H200
(2026-12-03, ``nvdec_bench.py``): without it, the first batch of each epoch came 0.73 s after
the epoch began, about half of the loop's time for an epoch of 29 batches.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from typing import Any, Iterator

import torch

from .dataset import CLIPS, VideoDataset
from .queue_node import close_queue, open_queue
from .sampler import ShuffleSampler

STOP_WAIT_S = 10.0


class VideoLoader:
    """Batches ``{output name: tensor (B, ...), "index": (B,) sample numbers}`` of ``dataset``.

    ``sampler`` gives the sample order (default: ``ShuffleSampler(len(dataset), seed=seed,
    shuffle=shuffle)``); random crops and flips are seeded with ``seed + epoch``. ``device``:
    where batches are made (default: cuda if present); ``decode``: as ``capture.video``'s
    (auto: NVDEC on CUDA where PyNvVideoCodec is installed); ``decoders``: decoder
    threads, each with its own decoders (none: one a NVDEC engine, 7 on an H200, or half the
    cores on the CPU; ``capture.clips``); the sample order is planned a window of ``ahead``
    samples at a time (default ``batch_size + 2 * decoders``, on NVDEC at least 128 but the
    first), at most two windows decoded or being decoded and not yet taken; ``group``: a window's samples
    decoded as one task a (file, GOP), each GOP once from its keyframe (``capture.clips``'
    ``group``; the same batches either way). The last short batch is dropped
    unless ``drop_last`` is false. Iterate it to completion, or ``close()`` the iterator
    (a ``for`` loop left with ``break`` does it), before starting another.

    ``overlap_epochs`` (default on): each epoch also starts the next one's graph (module
    docstring), for a sampler that says its next order (``upcoming()``); the next ``iter``
    takes it over when the sampler does give that order (after a ``set_epoch`` to another
    epoch it is stopped and a new one started). ``close()`` the loader (or drop it) to stop
    a graph started ahead; the batches are the same either way."""

    def __init__(self, dataset: VideoDataset, batch_size: int = 1, *, shuffle: bool = False, seed: int = 0,
                 sampler: Any = None, drop_last: bool = True, prefetch: int = 2, device: str | None = None,
                 decode: str = "auto", decoders: int | None = None, group: bool = True,
                 ahead: int | None = None, overlap_epochs: bool = True):
        if batch_size < 1 or prefetch < 1:
            raise ValueError(f"batch_size ({batch_size}) and prefetch ({prefetch}) must be at least 1")
        self.dataset, self.batch_size, self.drop_last = dataset, batch_size, drop_last
        self.sampler = sampler if sampler is not None else ShuffleSampler(len(dataset), seed=seed, shuffle=shuffle)
        self.seed, self.prefetch, self.decode, self.decoders = seed, min(prefetch, 16), decode, decoders
        self.group, self.ahead, self.overlap_epochs = group, ahead, overlap_epochs
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.epoch = 0
        self._ahead: _Run | None = None
        self.last_decoder: str | None = None
        """Which decoder the current (or last) epoch's graph uses: ``nvdec`` or ``cpu``."""

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> "Epoch":
        order = [int(i) for i in self.sampler]
        epoch, self.epoch = self.epoch, self.epoch + 1
        run = self._take_ahead(order, self.seed + epoch) or _Run(self, order, self.seed + epoch)
        if self.overlap_epochs:
            upcoming = getattr(self.sampler, "upcoming", None)
            if callable(upcoming):
                self._ahead = _Run(self, [int(i) for i in upcoming()], self.seed + self.epoch)
        return Epoch(self, run)

    def _take_ahead(self, order: list[int], seed: int) -> "_Run | None":
        """The graph started ahead for this epoch, if it is the one wanted; else it is stopped."""
        run, self._ahead = self._ahead, None
        if run is None:
            return None
        if run.order == order and run.seed == seed:
            return run
        run.stop()
        return None

    def close(self) -> None:
        """Stop a graph started ahead for the next epoch (the current epoch's iterator stops
        its own: ``Epoch.close``)."""
        run, self._ahead = self._ahead, None
        if run is not None:
            run.stop()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def graph_text(self, order: list[int], seed: int, key: str) -> str:
        """The epoch's graph, as a graph file (JSON is YAML)."""
        d = self.dataset
        names = d.output_names
        params: dict[str, Any] = {"files": d.files, "length": d.sequence_length, "step": d.step,
                                  "samples": order, "batch": self.batch_size, "drop_last": self.drop_last,
                                  "seed": seed, "decode": self.decode}
        if self.decoders is not None:
            params["decoders"] = self.decoders
        if not self.group:
            params["group"] = False
        if self.ahead is not None:
            params["ahead"] = self.ahead
        if d.processing:
            params["outputs"] = d.processing
        inputs = {n: f"clips/{n}" for n in [*names, "index"]}
        doc = {"flowml": 1, "name": "flowml.data", "clock": "clips", "mode": "offline",
               "device": self.device, "max_in_flight": self.prefetch,
               "nodes": {"clips": {"type": CLIPS, "params": params},
                         "out": {"type": "data.queue", "inputs": inputs,
                                 "params": {"queue": key, "names": list(inputs)}}}}
        return json.dumps(doc)


class _Run:
    """An epoch's graph on its thread. Kept apart from ``Epoch`` and from the loader so that
    the thread holds no reference to either: a loop left with ``break`` drops the iterator,
    and that stops the graph; a dropped loader stops the graph it started ahead."""

    def __init__(self, loader: VideoLoader, order: list[int], seed: int):
        from ..graph import load_graph
        from ..runtime.scheduler import Scheduler

        self.order, self.seed = order, seed
        self.decoder: str | None = None
        """``nvdec`` or ``cpu``, once the graph is set up."""
        self.key = f"flowml.data-{uuid.uuid4().hex}"
        self.q = open_queue(self.key, loader.prefetch)
        graph = load_graph("<flowml.data>", loader.dataset.registry, text=loader.graph_text(order, seed, self.key))
        self.scheduler = Scheduler(graph, mode="offline", device=loader.device, max_in_flight=loader.prefetch)
        self.result: Any = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, name="flowml.data", daemon=True)
        self.thread.start()

    def run(self) -> None:
        try:
            with self.scheduler as sched:
                clips = sched.nodes["clips"].node
                self.decoder = getattr(clips, "decoder", None)
                self.result = sched.run()
                self.decoder = getattr(clips, "decoder", None)
        except BaseException as exc:  # noqa: BLE001 - handed to the loop's thread
            self.result = exc
        finally:
            self.done.set()

    def stop(self) -> None:
        """Stop the graph (if still running) and wait for its thread, bounded."""
        if not self.done.is_set():
            self.scheduler.stop()
            deadline = time.monotonic() + STOP_WAIT_S
            while not self.done.wait(0.05) and time.monotonic() < deadline:
                try:  # a sink waiting on a full queue moves on
                    self.q.get_nowait()
                except queue.Empty:
                    pass
        self.thread.join(STOP_WAIT_S)
        close_queue(self.key)


class Epoch(Iterator[dict[str, torch.Tensor]]):
    """One pass of a ``VideoLoader``: the graph runs on a thread until the batches are out."""

    def __init__(self, loader: VideoLoader, run: _Run):
        self._loader, self._run = loader, run

    @property
    def scheduler(self) -> Any:
        return self._run.scheduler

    @property
    def thread(self) -> threading.Thread:
        return self._run.thread

    def __next__(self) -> dict[str, torch.Tensor]:
        run = self._run
        while True:
            try:
                batch, event = run.q.get(timeout=0.05)
                break
            except queue.Empty:
                if run.done.is_set() and run.q.empty():
                    self._note_decoder()
                    self.close()
                    self._raise_failure()
                    raise StopIteration
        self._note_decoder()
        if event is not None:
            device = next(t.device for t in batch.values() if t.is_cuda)
            stream = torch.cuda.current_stream(device)
            stream.wait_event(event)
            for t in batch.values():
                if t.is_cuda:
                    t.record_stream(stream)
        return batch

    def _note_decoder(self) -> None:
        if self._run.decoder is not None:
            self._loader.last_decoder = self._run.decoder

    def _raise_failure(self) -> None:
        r = self._run.result
        if isinstance(r, BaseException):
            raise RuntimeError(f"the loader's graph failed: {r}") from r
        if r is not None and not r.ok:
            raise RuntimeError(f"the loader's graph failed: {r.error}")

    def close(self) -> None:
        """Stop the graph (if still running) and wait for its thread, bounded."""
        self._run.stop()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
