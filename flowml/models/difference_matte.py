"""A background-difference matte with Background Matting V2's interface, and no weights.

Where the frame differs from the clean plate, there is a subject. The colour difference is
taken at ``backbone_scale`` of the input turned into a soft alpha between ``matte_low`` and
``matte_high`` and denoised by a 3x3 mean; like BGMv2's refiner, the 4x4 patches where that coarse
alpha is least sure (``err_sm``: 1 halfway between the two thresholds) are redone at full
resolution (and so are those next to an edge of the coarse alpha): the
``refine_sample_pixels`` worst ones (``sampling``), those above
``refine_threshold`` (``thresholding``), or all (``full``).

It needs an aligned plate (``cv.warp`` after ``cv.homography``) and a subject whose colours
differ from what is behind it; it gives a meaningful matte with no download, in the same graph
a real BGMv2 TorchScript file drops into.
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn


class DifferenceMatte(nn.Module):
    """``src, bgr (B, 3, H, W)`` in [0, 1], H and W divisible by 4 -> ``pha, fgr, pha_sm,
    fgr_sm, err_sm, ref_sm`` shaped as BGMv2's (``fgr`` is the frame itself)."""

    def __init__(self, backbone_scale: float = 0.25, refine_mode: str = "sampling",
                 refine_sample_pixels: int = 80_000, refine_threshold: float = 0.1,
                 matte_low: float = 0.06, matte_high: float = 0.16):
        super().__init__()
        self.backbone_scale = backbone_scale
        self.refine_mode = refine_mode
        self.refine_sample_pixels = refine_sample_pixels
        self.refine_threshold = refine_threshold
        self.refine_prevent_oversampling = True
        self.matte_low = matte_low
        self.matte_high = matte_high

    def alpha(self, src: torch.Tensor, bgr: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)``: soft threshold of the largest per-channel difference, then a 3x3 mean
        (thresholding first keeps edges where they are; the mean removes lone noisy pixels)."""
        diff = (src - bgr).abs().amax(dim=1, keepdim=True)
        alpha = ((diff - self.matte_low) / max(self.matte_high - self.matte_low, 1e-6)).clamp(0.0, 1.0)
        return F.avg_pool2d(alpha, 3, stride=1, padding=1, count_include_pad=False)

    def forward(self, src: torch.Tensor, bgr: torch.Tensor) -> Tuple[
            torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        assert src.size() == bgr.size(), "src and bgr must have the same shape"
        assert src.size(2) // 4 * 4 == src.size(2) and src.size(3) // 4 * 4 == src.size(3), \
            "src and bgr must have width and height that are divisible by 4"
        b, h, w = src.shape[0], src.shape[2], src.shape[3]
        hs, ws = max(1, int(h * self.backbone_scale)), max(1, int(w * self.backbone_scale))
        src_sm = F.interpolate(src, (hs, ws), mode="area")
        bgr_sm = F.interpolate(bgr, (hs, ws), mode="area")
        pha_sm = self.alpha(src_sm, bgr_sm)
        # unsure: halfway between the thresholds, or next to an edge (the 3x3 range of alpha)
        edge = F.max_pool2d(pha_sm, 3, 1, 1) + F.max_pool2d(-pha_sm, 3, 1, 1)
        err_sm = torch.maximum(1.0 - (2.0 * pha_sm - 1.0).abs(), edge)
        pha = F.interpolate(pha_sm, (h, w), mode="bilinear", align_corners=False)
        if self.refine_mode == "full":
            ref = torch.ones((b, 1, h // 4, w // 4), device=src.device, dtype=src.dtype)
        else:
            err = F.interpolate(err_sm, (h // 4, w // 4), mode="bilinear", align_corners=False)
            ref = self.select(err)
        ref_full = F.interpolate(ref, (h, w), mode="nearest")
        pha = pha + ref_full * (self.alpha(src, bgr) - pha)
        return pha, src, pha_sm, src_sm, err_sm, ref

    def select(self, err: torch.Tensor) -> torch.Tensor:
        """``err (B, 1, h, w)`` -> ``(B, 1, h, w)`` float, 1 where a 4x4 patch is refined."""
        if self.refine_mode == "sampling":
            b = err.shape[0]
            flat = err.reshape(b, -1)
            k = min(self.refine_sample_pixels // 16, flat.shape[1])
            idx = flat.topk(k, dim=1, sorted=False).indices
            ref = torch.zeros_like(flat).scatter_(1, idx, 1.0)
            if self.refine_prevent_oversampling:
                ref = ref * flat.gt(0).to(ref.dtype)
            return ref.view(err.shape)
        return err.gt(self.refine_threshold).to(err.dtype)
