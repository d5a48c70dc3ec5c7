"""Images leaving a graph: what a sink's ``uint8=True`` input receives, as a numpy array.

Sources upload with ``flowml.gpu.transfer.image_from_host`` (uint8 in, float on the device out).
"""

from __future__ import annotations

from flowml.lazy import lazy_import
np = lazy_import("numpy")
torch = lazy_import("torch")

from flowml import NodeError
transfer = lazy_import("flowml.gpu.transfer")


def check_image(image: object, what: str = "image") -> torch.Tensor:
    """Raise ``NodeError`` unless ``image`` is a ``(B, C, H, W)`` tensor with 1, 3 or 4 channels."""
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[1] not in (1, 3, 4):
        got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise NodeError(f"{what}: expected an image tensor (B, C, H, W) with C in 1, 3, 4; got {got}")
    return image


def host_pixels(image: torch.Tensor) -> np.ndarray:
    """Batch item 0 as an ``(H, W, C)`` uint8 array.

    In a graph, an input declared ``uint8=True`` arrives as a ``(B, H, W, C)`` uint8 host
    tensor (converted on the device, downloaded asynchronously); ``flowml.testing`` passes
    the ``(B, C, H, W)`` float image as it is, which is converted here.
    """
    if isinstance(image, torch.Tensor) and image.dtype == torch.uint8 and image.ndim == 4:
        return image[0].cpu().numpy()
    return transfer.to_uint8_bhwc(check_image(image)[:1])[0].cpu().numpy()
