"""``capture.camera``: a camera through OpenCV's VideoCapture that survives unplug and replug."""

from __future__ import annotations

import glob
import importlib.util
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any, Literal

from flowml.lazy import lazy_import
np = lazy_import("numpy")
from pydantic import field_validator

import flowml
from flowml import IMAGE, JSON, EndOfStream, Field, Node, NodeError, Output

Pixels = Annotated[int, Field(ge=1, le=16384)]

BACKENDS = {  # OpenCV's names: cv2.CAP_<NAME>
    "auto": "ANY", "v4l2": "V4L2", "dshow": "DSHOW", "msmf": "MSMF",
    "avfoundation": "AVFOUNDATION", "ffmpeg": "FFMPEG", "gstreamer": "GSTREAMER",
}
POLL_S = 0.1  # process() and the reader look at the stop flag at least this often


class CameraSource(Node):
    """Frames from a camera (a device index, ``/dev/videoN``), or from anything else OpenCV's
    VideoCapture opens (a video file, an RTSP URL) as if it were a camera.

    Live: a reader thread takes frames from the device as they come; the graph gets the
    newest one. ``size``, ``fps`` and ``fourcc`` (e.g. ``MJPG`` for 1080p30 over USB 2) are
    asked of the driver; what it gives instead is logged, and a different size is scaled to
    ``size`` on the node's device.

    Unplug and replug: when a read fails the node logs it once, ``status.state`` becomes
    ``lost``, and the reader reopens the device with a growing delay (``retry`` doubling up to
    ``retry_max`` seconds). Meanwhile the graph keeps running: with ``on_lost: hold`` the last
    frame is handed out again every ``timeout`` seconds; with ``wait`` the node waits (the
    graph pauses, its stop and live controls still work). Frames resume as soon as the device
    is back. A video file stands in for a camera: it plays at its own rate and starts again at
    its end (``loop``); a file that vanishes is a camera unplugged.

    As the graph's clock the node waits for each new frame (``wait_for_new``); a camera that
    is not the clock (a second camera, a rate clock) should set ``wait_for_new: false`` so it
    hands out its newest frame at once and never holds a tick up.

    Outputs: ``image`` ``(1, 3, H, W)`` RGB in [0, 1] on the node's device, stamped with the
    time it was read; ``status`` ``{"state": "ok"|"lost", "frames", "skipped", "held", "lost",
    "reconnects", "device"}``: ``skipped`` counts the frames read but replaced by a newer one
    before the graph took them (live: the newest frame wins).
    """

    type_name = "capture.camera"
    outputs = (Output("image", IMAGE, "(1, 3, H, W) RGB in [0, 1]"),
               Output("status", JSON, '{"state": "ok"|"lost", "frames", "skipped", "held", "lost", "reconnects"}'))
    live = True
    captures_in_background = True  # the reader thread below; process() waits for its newest frame

    class Params(flowml.Params):
        device: int | str = Field(0, description="camera index, /dev/videoN, or a file/URL OpenCV opens",
                                  rebuild=True)
        size: tuple[Pixels, Pixels] | None = Field(None, description="[width, height] to ask for (and scale to)")
        fps: float | None = Field(None, gt=0, le=1000, description="frame rate to ask for; files: play rate")
        fourcc: str | None = Field(None, description="pixel format to ask for, e.g. MJPG, YUYV, H264",
                                   rebuild=True)
        backend: Literal[tuple(BACKENDS)] = Field("auto", description="OpenCV capture backend", rebuild=True)  # type: ignore[valid-type]
        timeout: float = Field(1.0, gt=0, le=60, description="seconds without a frame before it counts as lost")
        on_lost: Literal["hold", "wait"] = Field(
            "hold", description="while lost: hand out the last frame every `timeout` s, or wait")
        retry: float = Field(0.25, gt=0, le=60, description="first delay before reopening a lost device (s)")
        retry_max: float = Field(5.0, gt=0, le=600, description="longest delay between reopen attempts (s)")
        loop: bool = Field(True, description="files: start again at the end")
        wait_for_new: bool = Field(
            True, description="wait for a frame not handed out yet (the graph's clock); false: the newest at once")

        @field_validator("fourcc")
        @classmethod
        def _fourcc(cls, value: str | None) -> str | None:
            if value is not None and (len(value) != 4 or not value.isascii()):
                raise ValueError(f"{value!r}: a FOURCC is 4 ASCII characters, e.g. 'MJPG' or 'YUYV'")
            return value

    @classmethod
    def unavailable(cls) -> str | None:
        if importlib.util.find_spec("cv2") is None:
            return ("needs OpenCV: `pip install opencv-contrib-python-headless` (the build flowml-cv uses; "
                    "any one OpenCV distribution works, never two at once)")
        return None

    # -- lifecycle -----------------------------------------------------------------------------
    def setup(self, ctx: flowml.NodeContext) -> None:
        import cv2

        self.cv2 = cv2
        device = self.params.device
        self.source: int | str = device
        self.is_file = False
        if isinstance(device, str) and not device.isdigit() and "://" not in device \
                and not device.startswith("/dev/"):
            path = ctx.resolve(device)
            self.source, self.is_file = str(path), True
            if not path.is_file():
                raise NodeError(f"camera stand-in file not found: {path}")
        elif isinstance(device, str) and device.isdigit():
            self.source = int(device)
        self.name = f"camera {self.source}"
        self.lock = threading.Lock()        # held around every use of self.cap
        self.cond = threading.Condition()   # guards the newest frame and the counters
        self.stopped = threading.Event()
        self.frame: np.ndarray | None = None
        self.pinned = ctx.device.startswith("cuda")       # read frames into pinned memory
        self.frame_t = 0.0
        self.seq = 0          # frames read so far
        self.taken = 0        # the seq handed out last
        self.last = None      # the last image handed out (on the device)
        self.state = "ok"
        self.lost_at = 0.0
        self.counts = {"frames": 0, "skipped": 0, "held": 0, "lost": 0, "reconnects": 0}
        self.t0 = time.monotonic()
        self.cap = self._open()
        if self.cap is None:
            raise NodeError(f"cannot open {self.name}{_devices_hint(self.source)}")
        self.reader = threading.Thread(target=self._read_loop, name=f"flowml-{ctx.node_id}-camera",
                                       daemon=True)
        self.reader.start()

    def teardown(self) -> None:
        if not hasattr(self, "stopped"):
            return
        self.stopped.set()
        with self.cond:
            self.cond.notify_all()
        reader = getattr(self, "reader", None)
        if reader is not None:
            reader.join(timeout=5)
        with self.lock:
            if self.cap is not None:
                self.cap.release()
                self.cap = None

    # -- the graph side ------------------------------------------------------------------------
    def process(self) -> flowml.Stamped:
        if not self.params.wait_for_new and self.last is not None:
            return self._newest()
        deadline = time.monotonic() + self.params.timeout
        with self.cond:
            while self.seq == self.taken:
                if self.stopped.is_set() or self.ctx.stopping.is_set():
                    raise EndOfStream
                now = time.monotonic()
                if now >= deadline:
                    if self.state == "ok" and self.last is not None:
                        self._lost("no frame for %g s" % self.params.timeout)
                    if self.last is not None and self.params.on_lost == "hold":
                        self.counts["held"] += 1
                        return self._emit(self.last, now - self.t0)
                    deadline = now + self.params.timeout
                self.cond.wait(min(POLL_S, max(deadline - now, 0.001)))
            frame, t = self._take()
        image = self._to_image(frame)
        self.last = image
        return self._emit(image, t)

    def _newest(self) -> flowml.Stamped:
        """Not the graph's clock: never hold the tick up; a new frame if there is one, else the
        last again (sample-and-hold), with the device counted lost after `timeout` without one."""
        with self.cond:
            now = time.monotonic() - self.t0
            if self.seq == self.taken:
                if self.state == "ok" and now - self.frame_t >= self.params.timeout:
                    self._lost("no frame for %g s" % self.params.timeout)
                return self._emit(self.last, now)
            frame, t = self._take()
        self.last = self._to_image(frame)
        return self._emit(self.last, t)

    def _take(self) -> tuple[np.ndarray, float]:
        """The newest frame and its time (``self.cond`` held); counts the ones it replaced."""
        self.counts["skipped"] += self.seq - self.taken - 1
        self.taken = self.seq
        return self.frame, self.frame_t

    def _emit(self, image: Any, t: float) -> flowml.Stamped:
        status = {"state": self.state, **self.counts, "device": str(self.params.device)}
        return flowml.Stamped({"image": image, "status": status}, t=t)

    def _to_image(self, bgr: np.ndarray):
        """OpenCV's BGR(A)/grey uint8 -> (1, 3, H, W) RGB float on the device (swap and scale
        done there, after the uint8 upload)."""
        import torch

        if bgr.ndim == 2:
            bgr = bgr[:, :, None]
        image = flowml.image_from_host(bgr, self.ctx.device)
        channels = image.shape[1]
        if channels == 1:
            image = image.expand(1, 3, *image.shape[2:])
        elif channels >= 3:
            image = image[:, :3].flip(1)  # BGR -> RGB in one kernel (an index list would be uploaded)
        size = self.params.size
        if size is not None and (image.shape[3], image.shape[2]) != tuple(size):
            image = torch.nn.functional.interpolate(image, size=(size[1], size[0]), mode="bilinear",
                                                    align_corners=False, antialias=True)
        return image.contiguous()

    # -- the device side (reader thread) -------------------------------------------------------
    def _open(self):
        """Open and configure the device; None if it cannot be opened now."""
        cv2, p = self.cv2, self.params
        api = getattr(cv2, f"CAP_{BACKENDS[p.backend]}", cv2.CAP_ANY)
        props = []
        for name, value in (("CAP_PROP_OPEN_TIMEOUT_MSEC", 5000), ("CAP_PROP_READ_TIMEOUT_MSEC", 5000)):
            if hasattr(cv2, name):
                props += [getattr(cv2, name), value]
        try:
            cap = cv2.VideoCapture(self.source, api, props) if props else cv2.VideoCapture(self.source, api)
        except cv2.error:
            return None
        if not cap.isOpened():
            cap.release()
            return None
        if not self.is_file:
            self._configure(cap)
        return cap

    def _configure(self, cap) -> None:
        cv2, p = self.cv2, self.params
        if p.fourcc:  # before the size: V4L2 drivers pick sizes per pixel format
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*p.fourcc))
        if p.size:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, p.size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, p.size[1])
        if p.fps:
            cap.set(cv2.CAP_PROP_FPS, p.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not one queued by the driver
        got_fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("ascii", "replace")
        got = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self.log.info("%s: %dx%d %s at %g fps (%s)", self.name, *got, got_fourcc,
                      cap.get(cv2.CAP_PROP_FPS), cap.getBackendName())
        if p.size and got != tuple(p.size):
            self.log.warning("%s gives %dx%d, not the %dx%d asked for: frames are scaled",
                             self.name, *got, *p.size)
        if p.fourcc and got_fourcc != p.fourcc:
            self.log.warning("%s gives %s, not the %s asked for", self.name, got_fourcc, p.fourcc)

    def _read_loop(self) -> None:
        delay, attempts = self.params.retry, 0
        period = self._file_period()
        due = time.monotonic()
        while not self.stopped.is_set():
            with self.lock:
                cap = self.cap
                ok, frame = self._read(cap) if cap is not None else (False, None)
                if not ok and cap is not None and self.is_file and self.params.loop and _at_end(cap, self.cv2):
                    cap.set(self.cv2.CAP_PROP_POS_FRAMES, 0)  # a file's end: start again
                    ok, frame = self._read(cap)
            if ok:
                if period:  # a file plays at its own rate
                    due = max(due + period, time.monotonic() - period)
                    if self.stopped.wait(max(0.0, due - time.monotonic())):
                        return
                self._publish(frame)
                delay = self.params.retry
                continue
            if cap is not None:  # the device went away under us: report once, close, retry
                self._lost("read failed")
                with self.lock:
                    if self.cap is not None:
                        self.cap.release()
                        self.cap = None
            if self.stopped.wait(delay):
                return
            delay = min(delay * 2, self.params.retry_max)
            attempts += 1
            cap = self._open()
            if cap is not None:
                with self.lock:
                    self.cap = cap
                with self.cond:
                    self.counts["reconnects"] += 1
                self.log.warning("%s is back (reopened after %d attempt(s), %.1f s after it was lost)",
                                 self.name, attempts, time.monotonic() - self.lost_at)
                delay, attempts = self.params.retry, 0
                due = time.monotonic()

    def _read(self, cap) -> tuple[bool, np.ndarray | None]:
        """One frame. On a GPU it is read straight into pinned memory, a fresh buffer each time
        from PyTorch's host cache (which reuses one only after its upload has finished), so
        the upload is an asynchronous copy: no staging copy, and no wait for it."""
        last = self.frame  # written by this thread alone: its shape is the next frame's
        if last is None or last.ndim != 3 or not self.pinned:
            return cap.read()
        from flowml.gpu.transfer import pinned_frame

        try:
            buf = pinned_frame(*last.shape)
        except RuntimeError as exc:  # pinned memory ran out, say: pageable frames still work
            self.pinned = False
            self.log.warning("%s: reading into pageable memory from now on (%s)", self.name, exc)
            return cap.read()
        return cap.read(buf)  # OpenCV writes into it when the size matches

    def _file_period(self) -> float:
        if not self.is_file:
            return 0.0
        fps = self.params.fps or self.cap.get(self.cv2.CAP_PROP_FPS) or 30.0
        return 1.0 / fps

    def _publish(self, frame: np.ndarray) -> None:
        with self.cond:
            self.frame, self.frame_t = frame, time.monotonic() - self.t0
            self.seq += 1
            self.counts["frames"] += 1
            self.state = "ok"
            self.cond.notify_all()

    def _lost(self, why: str) -> None:
        with self.cond:  # (a re-entrant lock: process() calls this holding it)
            if self.state == "lost":
                return
            self.state = "lost"
            self.counts["lost"] += 1
            self.lost_at = time.monotonic()
        what = "handing out the last frame" if self.params.on_lost == "hold" else "waiting"
        self.log.warning("%s lost (%s); reopening every %g-%g s, %s until it is back",
                         self.name, why, self.params.retry, self.params.retry_max, what)


def _at_end(cap, cv2) -> bool:
    count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    return count > 0 and cap.get(cv2.CAP_PROP_POS_FRAMES) >= count - 1


def _devices_hint(source: int | str) -> str:
    if not sys.platform.startswith("linux"):
        return "; check the index, or that no other program holds the camera"
    devices = sorted(glob.glob("/dev/video*"))
    if not devices:
        return "; this machine has no /dev/video* device (no camera, or no driver loaded)"
    names = []
    for dev in devices:
        name = Path(f"/sys/class/video4linux/{Path(dev).name}/name")
        names.append(f"{dev} ({name.read_text().strip()})" if name.is_file() else dev)
    return "; devices here: " + ", ".join(names)
