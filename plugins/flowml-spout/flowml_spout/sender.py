"""``output.spout``: share frames with other Windows applications through Spout (SpoutGL)."""

from __future__ import annotations

import importlib.util
import sys
from concurrent.futures import ThreadPoolExecutor

from flowml.lazy import lazy_import
torch = lazy_import("torch")

import flowml
from flowml import IMAGE, Field, Input, Node, NodeError


class SpoutSender(Node):
    """Share frames with TouchDesigner, Resolume, OBS and other Spout receivers on this
    Windows machine, as the Spout sender ``name``.

    ``image`` ``(B, C, H, W)`` in [0, 1]: batch item 0 is sent as 8-bit RGB(A) (the graph
    hands it over as uint8 on the host; on a GPU graph converted and downloaded
    asynchronously), through Spout's ``SendImage``, which uploads it into the shared DirectX
    texture. All Spout and OpenGL calls run on one thread of the node's own, as OpenGL
    contexts belong to a thread. ``flip`` mirrors vertically for receivers that expect
    OpenGL's bottom-up rows.
    """

    type_name = "output.spout"
    inputs = (Input("image", IMAGE, "(B, C, H, W); item 0 is sent", uint8=True),)
    blocking = True

    class Params(flowml.Params):
        name: str = Field("flowml", min_length=1, description="Spout sender name receivers pick", rebuild=True)
        flip: bool = Field(False, description="send rows bottom-up (OpenGL order)")

    @classmethod
    def unavailable(cls) -> str | None:
        if sys.platform != "win32":
            return (f"Spout exists only on Windows (this is {sys.platform}); it needs Windows and "
                    "`pip install SpoutGL`. Elsewhere use output.ndi, or output.syphon on macOS")
        if importlib.util.find_spec("SpoutGL") is None:
            return "needs the Spout binding: `pip install SpoutGL` (Windows)"
        return None

    def setup(self, ctx: flowml.NodeContext) -> None:
        self.gl = ThreadPoolExecutor(1, thread_name_prefix=f"flowml-{ctx.node_id}-spout")
        self.sender = None
        self.gl.submit(self._open).result()

    def _open(self) -> None:
        import SpoutGL

        sender = SpoutGL.SpoutSender()
        if not sender.createOpenGL():  # a hidden window's context, current on this thread
            raise NodeError("Spout: could not create an OpenGL context (is a GPU driver installed?)")
        sender.setSenderName(self.params.name)
        self.sender = sender

    def process(self, image: torch.Tensor) -> None:
        pixels = _host_pixels(image)
        ok = self.gl.submit(self._send, pixels).result()
        if not ok:
            self.log.warning("Spout: SendImage failed for a %dx%d frame", pixels.shape[1], pixels.shape[0])

    def _send(self, pixels: torch.Tensor) -> bool:
        from SpoutGL.enums import GL_RGB, GL_RGBA

        height, width, channels = pixels.shape
        if channels == 1:
            pixels = pixels.expand(height, width, 3).contiguous()
        fmt = GL_RGBA if channels == 4 else GL_RGB
        ok = self.sender.sendImage(pixels.numpy(), width, height, fmt, self.params.flip, 0)
        self.sender.setFrameSync(self.params.name)  # tells receivers waiting on frames: a new one
        return bool(ok)

    def _close(self) -> None:
        if self.sender is not None:
            self.sender.releaseSender()
            self.sender.closeOpenGL()
            self.sender = None

    def teardown(self) -> None:
        gl = getattr(self, "gl", None)
        if gl is not None:
            gl.submit(self._close).result(timeout=10)
            gl.shutdown()


def _host_pixels(image: torch.Tensor) -> torch.Tensor:
    if not (isinstance(image, torch.Tensor) and image.dtype == torch.uint8 and image.ndim == 4):
        got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise NodeError(f"expected a (B, H, W, C) uint8 host image, got {got}")
    if image.shape[3] not in (1, 3, 4):
        raise NodeError(f"expected 1, 3 or 4 channels, got an image of shape {tuple(image.shape)}")
    return image[0].contiguous()
