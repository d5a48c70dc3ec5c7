"""``output.syphon``: share frames with other macOS applications through Syphon (Metal)."""

from __future__ import annotations

import importlib.metadata
import sys

from flowml.lazy import lazy_import
torch = lazy_import("torch")

import flowml
from flowml import IMAGE, Field, Input, Node, NodeError


class SyphonServer(Node):
    """Publish frames as the Syphon server ``name`` (Metal), for Resolume, MadMapper, VDMX,
    OBS and other Syphon clients on this Mac.

    ``image`` ``(B, C, H, W)`` in [0, 1]: batch item 0 is copied as 8-bit RGBA into a Metal
    texture (made at the first frame's size, remade when it changes) and published. The
    graph hands the frame over as uint8 on the host (converted and downloaded asynchronously
    on a GPU graph). ``flip`` marks the texture as bottom-up for clients that show it upside
    down.
    """

    type_name = "output.syphon"
    inputs = (Input("image", IMAGE, "(B, C, H, W); item 0 is published", uint8=True),)
    blocking = True

    class Params(flowml.Params):
        name: str = Field("flowml", min_length=1, description="Syphon server name clients pick", rebuild=True)
        flip: bool = Field(False, description="publish the texture as flipped (bottom-up)")

    @classmethod
    def unavailable(cls) -> str | None:
        if sys.platform != "darwin":
            return (f"Syphon exists only on macOS (this is {sys.platform}); it needs macOS 11+ and "
                    "`pip install syphon-python`. Elsewhere use output.ndi, or output.spout on Windows")
        try:  # not find_spec("syphon"): an unrelated PyPI package is also imported as `syphon`
            importlib.metadata.distribution("syphon-python")
        except importlib.metadata.PackageNotFoundError:
            return "needs the Syphon binding: `pip install syphon-python` (macOS 11+)"
        return None

    def setup(self, ctx: flowml.NodeContext) -> None:
        import syphon

        self.server = syphon.SyphonMetalServer(self.params.name)
        self.texture = None
        self.rgba: torch.Tensor | None = None

    def process(self, image: torch.Tensor) -> None:
        from syphon.utils.raw import copy_bytes_to_mtl_texture, create_mtl_texture

        pixels = _host_rgba(image, self)
        height, width = pixels.shape[:2]
        if self.texture is None or (self.texture.width(), self.texture.height()) != (width, height):
            self.texture = create_mtl_texture(self.server.device, width, height)  # RGBA8Unorm
        copy_bytes_to_mtl_texture(memoryview(pixels.numpy()), self.texture)
        self.server.publish_frame_texture(self.texture, is_flipped=self.params.flip)

    def teardown(self) -> None:
        server = getattr(self, "server", None)
        if server is not None:
            server.stop()
            self.server = None


def _host_rgba(image: torch.Tensor, node: SyphonServer) -> torch.Tensor:
    """Batch item 0 as contiguous ``(H, W, 4)`` uint8 (RGB padded with opaque alpha)."""
    if not (isinstance(image, torch.Tensor) and image.dtype == torch.uint8 and image.ndim == 4):
        got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise NodeError(f"expected a (B, H, W, C) uint8 host image, got {got}")
    pixels = image[0]
    height, width, channels = pixels.shape
    if channels == 4:
        return pixels.contiguous()
    if channels not in (1, 3):
        raise NodeError(f"expected 1, 3 or 4 channels, got an image of shape {tuple(image.shape)}")
    if node.rgba is None or node.rgba.shape[:2] != (height, width):
        node.rgba = torch.full((height, width, 4), 255, dtype=torch.uint8)
    node.rgba[..., :3].copy_(pixels)
    return node.rgba
