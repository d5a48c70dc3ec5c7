"""``output.virtualcam``: frames as a webcam other programs (Zoom, Meet, OBS) can open."""

from __future__ import annotations

import glob
import importlib.util
import sys
from pathlib import Path
from typing import Literal

from flowml.lazy import lazy_import
torch = lazy_import("torch")

import flowml
from flowml import IMAGE, Field, Input, Node, NodeError

NEEDS = ("needs pyvirtualcam (`pip install pyvirtualcam`) and a virtual camera driver: the "
         "v4l2loopback kernel module on Linux (`sudo modprobe v4l2loopback exclusive_caps=1`), "
         "OBS Studio's virtual camera on Windows and macOS")


def loopback_devices() -> list[str]:
    """``/dev/videoN`` nodes that belong to v4l2loopback (Linux), found through sysfs."""
    found = []
    for dev in sorted(glob.glob("/sys/devices/virtual/video4linux/video*")):
        found.append(f"/dev/{Path(dev).name}")
    return found


class VirtualCamera(Node):
    """Show frames as a virtual webcam: video-call apps, browsers and OBS can pick it.

    ``image`` ``(B, C, H, W)`` in [0, 1]: batch item 0 is sent as 8-bit RGB (the graph hands it
    over as uint8 on the host). The camera is opened at the first frame's size at ``fps``
    (re-opened if the size changes). ``device``: on Linux a v4l2loopback node such as
    ``/dev/video10`` (default: the first one); ``backend`` picks pyvirtualcam's backend
    (``auto``: v4l2loopback on Linux, OBS on Windows and macOS, where OBS Studio's virtual
    camera must have been started once). The graph's clock paces the frames.
    """

    type_name = "output.virtualcam"
    inputs = (Input("image", IMAGE, "(B, C, H, W); item 0 is shown", uint8=True),)
    blocking = True

    class Params(flowml.Params):
        device: str | None = Field(None, description="Linux: /dev/videoN of a v4l2loopback device; none: the first",
                                    rebuild=True)
        fps: float = Field(30.0, gt=0, le=240, description="frame rate announced to programs that open the camera",
                           rebuild=True)
        backend: Literal["auto", "v4l2loopback", "obs", "unitycapture"] = Field(
            "auto", description="pyvirtualcam backend", rebuild=True)

    @classmethod
    def unavailable(cls) -> str | None:
        if importlib.util.find_spec("pyvirtualcam") is None:
            return NEEDS
        if sys.platform.startswith("linux") and not loopback_devices():
            return (f"no v4l2loopback device on this Linux machine (no /sys/devices/virtual/video4linux/"
                    f"video*): {NEEDS}")
        return None

    def setup(self, ctx: flowml.NodeContext) -> None:
        import pyvirtualcam  # noqa: F401

        self.cam = None

    def process(self, image: torch.Tensor) -> None:
        if not (isinstance(image, torch.Tensor) and image.dtype == torch.uint8 and image.ndim == 4):
            got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise NodeError(f"expected a (B, H, W, C) uint8 host image, got {got}")
        pixels = image[0]
        height, width, channels = pixels.shape
        if channels == 1:
            pixels = pixels.expand(height, width, 3)
        elif channels == 4:
            pixels = pixels[..., :3]
        elif channels != 3:
            raise NodeError(f"expected 1, 3 or 4 channels, got an image of shape {tuple(image.shape)}")
        if self.cam is None or (self.cam.width, self.cam.height) != (width, height):
            self._open(width, height)
        self.cam.send(pixels.contiguous().numpy())

    def _open(self, width: int, height: int) -> None:
        import pyvirtualcam

        self._close()
        p = self.params
        try:
            self.cam = pyvirtualcam.Camera(width, height, p.fps, fmt=pyvirtualcam.PixelFormat.RGB,
                                           device=p.device, backend=None if p.backend == "auto" else p.backend)
        except Exception as exc:  # no driver, device busy, OBS camera never started
            raise NodeError(f"cannot open the virtual camera: {exc}") from exc
        self.log.info("virtual camera %s (%s): %dx%d at %g fps", self.cam.device, self.cam.backend,
                      width, height, p.fps)

    def _close(self) -> None:
        cam, self.cam = getattr(self, "cam", None), None
        if cam is not None:
            cam.close()

    def teardown(self) -> None:
        self._close()
