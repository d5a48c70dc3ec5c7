"""``cv.warp``: a perspective warp on the node's device (bilinear, full resolution).

Pixel convention (OpenCV's, and ``grid_sample``'s with ``align_corners=False``): pixel ``(x, y)``
is the centre of column ``x``, row ``y``; a homography ``H`` maps plate pixels to frame pixels,
so output pixel ``p`` samples the plate at ``H^-1 p``. Areas the plate does not cover are
filled from the live frame, as Background Matting V2's own alignment does.
"""

from __future__ import annotations

from typing import Literal

from flowml.lazy import lazy_import
np = lazy_import("numpy")
torch = lazy_import("torch")
F = lazy_import("torch.nn.functional")

import flowml
from flowml import IMAGE, MATRIX, TENSOR, Field, Input, Node, NodeError, Output

_EDGE = 1e-3
"""How far (in pixels) a sample may lie outside the plate's outermost pixel centres and still
count as covered: absorbs float rounding, so an identity warp covers every pixel."""


def sampling_matrix(matrix: torch.Tensor, plate_size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """``(B, 3, 3)`` float32 on ``device``: output pixel coordinates -> grid_sample's normalized
    plate coordinates (``align_corners=False``: ``u = (2 x + 1) / W - 1``).

    ``matrix``: ``(3, 3)`` or ``(B, 3, 3)`` plate-to-frame homography, on any device. Inverted in
    float64, on the host when it lives there (then uploaded from pinned memory, which does not
    wait for the GPU), else on its own device with ``inv_ex`` (no error check, so no host sync).
    """
    if matrix.shape[-2:] != (3, 3) or matrix.ndim not in (2, 3):
        raise NodeError(f"input 'matrix': expected a homography (3, 3) or (B, 3, 3); got shape "
                        f"{tuple(matrix.shape)}")
    h = matrix.reshape(-1, 3, 3)
    width, height = plate_size
    if h.device.type == "cpu":
        inv = torch.from_numpy(np.linalg.inv(h.double().numpy()))
    else:
        inv = torch.linalg.inv_ex(h.double())[0]
    # rows of N @ inv, N = [[2/W, 0, 1/W - 1], [0, 2/H, 1/H - 1], [0, 0, 1]]: no constant to upload
    m = torch.stack((inv[:, 0] * (2.0 / width) + inv[:, 2] * (1.0 / width - 1.0),
                     inv[:, 1] * (2.0 / height) + inv[:, 2] * (1.0 / height - 1.0),
                     inv[:, 2]), dim=1).float()
    from flowml.gpu.lanes import upload

    return upload(m, device)  # pinned: a pageable upload would wait for the stream to drain


_BASE: dict[tuple[int, int, torch.device], torch.Tensor] = {}


def _pixel_grid(width: int, height: int, device: torch.device) -> torch.Tensor:
    """``(1, H*W, 3)`` float32 homogeneous pixel coordinates ``(x, y, 1)``, kept per size and device."""
    key = (width, height, device)
    if key not in _BASE:
        ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float32),
                                torch.arange(width, device=device, dtype=torch.float32), indexing="ij")
        _BASE[key] = torch.stack((xs, ys, torch.ones_like(xs)), dim=-1).reshape(1, -1, 3)
    return _BASE[key]


def warp_perspective(plate: torch.Tensor, matrix: torch.Tensor, size: tuple[int, int]
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp ``plate`` by the plate-to-output homography ``matrix`` into an image of ``size``.

    ``plate``: ``(B, C, Hp, Wp)`` float; ``matrix``: ``(3, 3)`` or ``(B, 3, 3)``; ``size``:
    ``(width, height)`` of the output. Returns ``(warped (B, C, H, W), covered (B, 1, H, W) bool)``:
    bilinear samples of the plate, and where the whole 2x2 footprint of a sample lies inside it
    (outside, ``warped`` is zero). Sampling is done in float32 (a float16 grid would be off by
    about a pixel at 1080p); the result has ``plate``'s dtype.
    """
    width, height = size
    device = plate.device
    m = sampling_matrix(matrix, (plate.shape[-1], plate.shape[-2]), device)  # (B, 3, 3)
    if m.shape[0] not in (1, plate.shape[0]):
        raise NodeError(f"input 'matrix': batch of {m.shape[0]} homographies for a batch of "
                        f"{plate.shape[0]} images")
    base = _pixel_grid(width, height, device)  # (1, H*W, 3); elementwise, not matmul: TF32 would cost pixels
    homog = base[..., 0:1] * m[:, None, :, 0] + base[..., 1:2] * m[:, None, :, 1] + m[:, None, :, 2]
    den = homog[..., 2:]
    grid = (homog[..., :2] / den).view(-1, height, width, 2)
    src = plate.float()
    if grid.shape[0] != src.shape[0]:
        grid = grid.expand(src.shape[0], -1, -1, -1)
    warped = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    inside = grid.abs() <= _limit(plate.shape[-1], plate.shape[-2], device)
    covered = inside.all(dim=-1) & (den.view(-1, height, width) > 0)
    covered = covered.unsqueeze(1).expand(src.shape[0], 1, -1, -1)
    return warped.to(plate.dtype), covered


_LIMITS: dict[tuple[int, int, torch.device], torch.Tensor] = {}


def _limit(width: int, height: int, device: torch.device) -> torch.Tensor:
    """``(2,)`` the largest |normalized coordinate| still covered, kept per plate size and device."""
    key = (width, height, device)
    if key not in _LIMITS:
        _LIMITS[key] = torch.tensor([1.0 - (1.0 - 2 * _EDGE) / width,
                                     1.0 - (1.0 - 2 * _EDGE) / height]).to(device)
    return _LIMITS[key]


class Warp(Node):
    """Warp a plate onto the live frame by a homography, on the node's device.

    ``plate`` ``(B, C, Hp, Wp)`` and ``matrix`` (plate-to-frame, ``(3, 3)`` or ``(B, 3, 3)``, e.g.
    from ``cv.homography``) -> ``image`` ``(B, C, H, W)`` at the frame's size: the plate
    resampled bilinearly at full resolution, and where the plate does not reach, the frame's
    own pixels (``fill: frame``, what Background Matting V2's alignment does) or black;
    ``covered`` ``(B, 1, H, W)`` float is 1 where the plate reached.

    Cheap (a dozen elementwise kernels and one ``grid_sample``; ``flowml bench --only matting``
    times it) and free of host syncs: run it on every frame, behind a ``cv.homography`` with
    ``hold: true``.
    """

    type_name = "cv.warp"
    inputs = (
        Input("plate", IMAGE, "(B, C, Hp, Wp) the image to warp, e.g. the clean background plate"),
        Input("frame", IMAGE, "(B, C, H, W) the live frame: gives the output size and the fill"),
        Input("matrix", MATRIX, "(3, 3) or (B, 3, 3) plate pixels -> frame pixels"),
    )
    outputs = (
        Output("image", IMAGE, "(B, C, H, W) the plate as the camera sees it now"),
        Output("covered", TENSOR, "(B, 1, H, W) float: 1 where the plate reached, 0 where filled"),
    )

    class Params(flowml.Params):
        fill: Literal["frame", "black"] = Field(
            "frame", description="what fills where the warped plate does not reach")

    def process(self, plate: torch.Tensor, frame: torch.Tensor, matrix: torch.Tensor) -> dict:
        if plate.ndim != 4 or frame.ndim != 4:
            raise NodeError(f"inputs 'plate' and 'frame' must be images (B, C, H, W); got "
                            f"{tuple(plate.shape)} and {tuple(frame.shape)}")
        warped, covered = warp_perspective(plate, matrix, (frame.shape[-1], frame.shape[-2]))
        if self.params.fill == "frame":
            if frame.shape[1] != warped.shape[1]:
                raise NodeError(f"plate has {warped.shape[1]} channels, frame {frame.shape[1]}: "
                                "fill: frame needs both alike (or set fill: black)")
            warped = torch.where(covered, warped, frame.to(warped.dtype))
        return {"image": warped, "covered": covered.to(warped.dtype)}
