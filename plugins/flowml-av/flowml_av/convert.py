"""Images leaving a graph as RGB24 arrays for the encoder."""

from __future__ import annotations

from flowml.lazy import lazy_import
np = lazy_import("numpy")
torch = lazy_import("torch")

from flowml import NodeError
transfer = lazy_import("flowml.gpu.transfer")


def host_rgb24(image: torch.Tensor) -> np.ndarray:
    """Batch item 0 as an ``(H, W, 3)`` uint8 array (grey repeated, alpha dropped).

    In a graph, an input declared ``uint8=True`` arrives as a ``(B, H, W, C)`` uint8 host
    tensor; ``flowml.testing`` passes the ``(B, C, H, W)`` float image, converted here.
    """
    if not (isinstance(image, torch.Tensor) and image.dtype == torch.uint8 and image.ndim == 4):
        if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[1] not in (1, 3, 4):
            got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise NodeError(f"expected an image tensor (B, C, H, W) with C in 1, 3, 4; got {got}")
        image = transfer.to_uint8_bhwc(image[:1])
    pixels = image[0].cpu().numpy()
    if pixels.shape[2] not in (1, 3, 4):
        raise NodeError(f"expected 1, 3 or 4 channels, got an image of shape {tuple(image.shape)}")
    return np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels[:, :, :3]
