"""``output.ndi``: send frames as an NDI source (cyndilib)."""

from __future__ import annotations

from typing import Literal

from flowml.lazy import lazy_import
torch = lazy_import("torch")

import flowml
from flowml import IMAGE, Field, Input, Node, NodeError

from .common import missing_cyndilib, ndi_rate


class NdiSender(Node):
    """Send frames as an NDI source that TouchDesigner, OBS, vMix or another graph can receive.

    ``image`` ``(B, C, H, W)`` in [0, 1]: batch item 0 is sent. The graph hands it over
    converted and packed as NDI takes it, 4 bytes a pixel on the host (``Input(uint8=True,
    channels=4)``): on a GPU graph converted and packed on the GPU and downloaded into pinned
    memory, on a CPU graph converted by OpenCV on a few threads with the fourth channel merged
    in the same pass (``to_uint8_bhwc``: ~5.5 ms of CPU at 1080p). The sink hands that buffer
    to cyndilib, which copies it into the frame NDI holds while it compresses (cyndilib's
    ``Sender`` alone pays that copy too). ``benchmarks/ndi_vs_sender.py`` measures this sink against the bare
    ``Sender``: 0.96x - 0.98x of its received frame rate at 720p and 1080p on a 2-core host.
    Frames go out as RGBX, or RGBA with ``alpha: true`` and a 4-channel image; grey is repeated.
    The source appears as ``HOST (name)`` in the ``groups`` given (comma-separated; empty:
    NDI's default group). A new frame size re-creates the source (receivers reconnect).

    ``clock`` paces sends to ``fps`` inside NDI: ``auto`` does so in offline mode (a file is
    played out at its rate) and not in live mode, where the graph's clock already paces and a
    sink that falls behind skips frames. Sends are asynchronous: NDI compresses the frame
    while the next one is prepared.
    """

    type_name = "output.ndi"
    inputs = (Input("image", IMAGE, "(B, C, H, W); item 0 is sent", uint8=True, channels=4),)
    blocking = True

    class Params(flowml.Params):
        name: str = Field("flowml", min_length=1, description="NDI source name (shown as HOST (name))",
                          rebuild=True)
        groups: str = Field("", description="comma-separated NDI groups; empty: the default group", rebuild=True)
        fps: float = Field(30.0, gt=0, le=240, description="frame rate announced to receivers", rebuild=True)
        alpha: bool = Field(False, description="send the alpha of 4-channel images (RGBA); else RGBX")
        clock: Literal["auto", "on", "off"] = Field(
            "auto", description="pace sends to fps inside NDI; auto: on in offline mode only", rebuild=True)

    @classmethod
    def unavailable(cls) -> str | None:
        return missing_cyndilib()

    def setup(self, ctx: flowml.NodeContext) -> None:
        import cyndilib  # noqa: F401  (fails here, not at the first frame, if the runtime is broken)

        self.sender = None
        self.size: tuple[int, int, str] | None = None
        self.sent = 0

    def process(self, image: torch.Tensor) -> None:
        pixels = _host_pixels(image)
        height, width, _ = pixels.shape
        fourcc = "RGBA" if self.params.alpha else "RGBX"  # a 3-channel image came with X = 255
        if self.size != (width, height, fourcc):
            self._open(width, height, fourcc)
        self.sender.write_video_async(pixels.numpy().reshape(-1))
        self.sent += 1

    def _open(self, width: int, height: int, fourcc: str) -> None:
        from cyndilib import FourCC, Sender, VideoSendFrame

        self._close()
        p = self.params
        clock = p.clock == "on" or (p.clock == "auto" and self.ctx.mode == "offline")
        frame = VideoSendFrame()
        frame.set_resolution(width, height)
        frame.set_frame_rate(ndi_rate(p.fps))
        frame.set_fourcc(FourCC.RGBA if fourcc == "RGBA" else FourCC.RGBX)
        sender = Sender(p.name, ndi_groups=p.groups, clock_video=clock)
        sender.set_video_frame(frame)
        try:
            sender.open()
        except Exception as exc:
            raise NodeError(f"cannot start NDI source {p.name!r}: {exc}") from exc
        self.sender, self.size = sender, (width, height, fourcc)
        self.log.info("NDI source %r is up: %dx%d %s at %s fps%s", sender.name, width, height,
                      fourcc, p.fps, " (clocked)" if clock else "")

    @property
    def connections(self) -> int:
        """How many receivers are connected now (0 before the first frame)."""
        return self.sender.get_num_connections(0) if self.sender is not None else 0

    def _close(self) -> None:
        sender, self.sender = getattr(self, "sender", None), None
        if sender is not None:
            sender.close()

    def teardown(self) -> None:
        self._close()


def _host_pixels(image: torch.Tensor) -> torch.Tensor:
    """Batch item 0 as ``(H, W, 4)`` uint8 on the host. In a graph the input arrives packed as
    a ``(B, H, W, 4)`` uint8 host tensor; ``flowml.testing`` gives the same."""
    if not (isinstance(image, torch.Tensor) and image.dtype == torch.uint8 and image.ndim == 4):
        got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise NodeError(f"expected a (B, H, W, 4) uint8 host image, got {got}")
    pixels = image[0].contiguous()
    if pixels.shape[2] != 4:
        raise NodeError(f"expected 4 channels (RGBX/RGBA), got an image of shape {tuple(image.shape)}")
    return pixels
