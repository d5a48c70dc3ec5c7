"""One estimate as a self-contained job, run in this process or in a child process.

``cv.homography`` with ``isolate: true`` sends each job to a child process, so feature detection
and matching cannot hold the GIL of the thread that launches the graph's GPU work. Only the
small grey copies travel (0.5 MB at 1080p, scale 0.5); the plate's only when it changed.
With the model node optimized (``torch.model``'s ``optimize``), a 1080p matting graph on an
H100 (2026-11-22, ``flowml bench --only matting``) ran at 123 fps estimating back to back in
the child, 121 in-process and 130 with the matrix held (medians of three interleaved rounds).
"""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass

from flowml.lazy import lazy_import
np = lazy_import("numpy")

from .estimate import Estimate, fit
from .features import Detector, Features


@dataclass(frozen=True)
class Job:
    detector: tuple            # (kind, max_features, scale, threads)
    plate: np.ndarray | None   # the plate's grey copy when it changed, else None
    plate_size: tuple[int, int]
    frame: np.ndarray          # the frame's grey copy
    frame_size: tuple[int, int]
    fit: dict                  # keyword arguments of estimate.fit, and ratio


class Matcher:
    """Keeps the detector and the plate's features between jobs."""

    def __init__(self) -> None:
        self.config: tuple | None = None
        self.detector: Detector | None = None
        self.plate: Features | None = None

    def run(self, job: Job) -> Estimate:
        if job.detector != self.config:
            import cv2

            kind, max_features, scale, threads = job.detector
            cv2.setNumThreads(threads if threads > 0 else -1)
            self.detector, self.config, self.plate = Detector(kind, max_features, scale), job.detector, None
        assert self.detector is not None
        if job.plate is not None:
            self.plate = self.detector.detect(job.plate, job.plate_size)
        if self.plate is None:
            raise RuntimeError("no plate features: the first job must carry the plate")
        frame = self.detector.detect(job.frame, job.frame_size)
        opts = dict(job.fit)
        pa, pb = self.detector.match(self.plate, frame, opts.pop("ratio"))
        return fit(pa, pb, **opts)


def _serve(conn) -> None:
    import cv2  # noqa: F401  (imported before saying ready: the parent's setup pays for it)

    matcher = Matcher()
    conn.send("ready")
    while True:
        job = conn.recv()
        if job is None:
            return
        try:
            conn.send((True, matcher.run(job)))
        except Exception as exc:  # reported in the parent, which raises a NodeError
            conn.send((False, f"{type(exc).__name__}: {exc}"))


READY_TIMEOUT_S = 60.0


class ChildMatcher:
    """A ``Matcher`` in a child process (spawned: safe with CUDA in the parent)."""

    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child,), daemon=True, name="flowml-cv-matcher")
        self.proc.start()
        child.close()
        # wait here, in the node's setup, for the child to start and import OpenCV: otherwise
        # the first estimate (which a `hold` node waits for) pays seconds of start-up mid-run
        if not self.conn.poll(READY_TIMEOUT_S) or self.conn.recv() != "ready":
            self.close()
            raise RuntimeError(f"the matcher process did not start within {READY_TIMEOUT_S:.0f} s")

    def run(self, job: Job) -> Estimate:
        self.conn.send(job)
        ok, value = self.conn.recv()
        if not ok:
            raise RuntimeError(value)
        return value

    def close(self) -> None:
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.proc.terminate()
