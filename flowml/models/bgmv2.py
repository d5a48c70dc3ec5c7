"""A network with Background Matting V2's interface and shape, written out by hand (no
torchvision): ResNet-50 encoder with a dilated last stage, DeepLabV3's ASPP, the BGMv2 decoder
and its patch refiner, wrapped the way BGMv2's ``export_torchscript.py`` wraps it, with the
settable attributes hoisted to the top level.

Lin et al., "Real-Time High-Resolution Background Matting", CVPR 2021; layer sizes follow the
authors' code (PeterL1n/BackgroundMattingV2, model/). With random weights its mattes mean
nothing; its cost is the real one, and a downloaded BGMv2 TorchScript file has the same
inputs, outputs and attributes, so it drops into the same graph::

    model = BGMv2(backbone_scale=0.25, refine_mode="sampling", refine_sample_pixels=80_000)
    pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm = model(src, bgr)   # src, bgr: (B, 3, H, W) in [0, 1]
"""

from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn


def _bn_relu(conv: nn.Conv2d) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(conv.out_channels), nn.ReLU(inplace=True))


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck: 1x1 reduce, 3x3 (stride, dilation), 1x1 expand x4, residual."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = nn.Identity()
        if stride != 1 or inplanes != planes * 4:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes * 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.downsample(x))


def _stage(inplanes: int, planes: int, blocks: int, stride: int, dilation: int, first_dilation: int) -> nn.Sequential:
    layers = [Bottleneck(inplanes, planes, stride, first_dilation)]
    layers += [Bottleneck(planes * 4, planes, 1, dilation) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNetEncoder(nn.Module):
    """ResNet-50, last stage dilated (output stride 16), 6 input channels (src and bgr).

    ``(B, 6, H, W)`` -> ``x4 (B, 2048, H/16, W/16), x3 (B, 512, H/8), x2 (B, 256, H/4),
    x1 (B, 64, H/2), x0`` (the input)."""

    def __init__(self, in_channels: int = 6, blocks: Tuple[int, int, int, int] = (3, 4, 6, 3)):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = _stage(64, 64, blocks[0], 1, 1, 1)
        self.layer2 = _stage(256, 128, blocks[1], 2, 1, 1)
        self.layer3 = _stage(512, 256, blocks[2], 2, 1, 1)
        self.layer4 = _stage(1024, 512, blocks[3], 1, 2, 1)  # stride replaced by dilation

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x0 = x
        x = self.relu(self.bn1(self.conv1(x)))
        x1 = x
        x = self.layer1(self.maxpool(x))
        x2 = x
        x = self.layer2(x)
        x3 = x
        x = self.layer4(self.layer3(x))
        return x, x3, x2, x1, x0


class ASPP(nn.Module):
    """DeepLabV3's atrous spatial pyramid pooling: 1x1, three dilated 3x3, image pooling -> 256."""

    def __init__(self, in_channels: int, rates: Tuple[int, int, int] = (3, 6, 9), out: int = 256):
        super().__init__()
        self.branches = nn.ModuleList(
            [_bn_relu(nn.Conv2d(in_channels, out, 1, bias=False))]
            + [_bn_relu(nn.Conv2d(in_channels, out, 3, padding=r, dilation=r, bias=False)) for r in rates])
        self.pool = _bn_relu(nn.Conv2d(in_channels, out, 1, bias=False))
        self.project = nn.Sequential(_bn_relu(nn.Conv2d(5 * out, out, 1, bias=False)), nn.Dropout(0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: List[torch.Tensor] = [branch(x) for branch in self.branches]
        pooled = self.pool(F.adaptive_avg_pool2d(x, 1))
        outs.append(F.interpolate(pooled, size=x.shape[-2:], mode="bilinear", align_corners=False))
        return self.project(torch.cat(outs, dim=1))


class Decoder(nn.Module):
    """Upsample through the encoder's shortcuts: 1/16 -> 1/8 -> 1/4 -> 1/2 -> 1/1."""

    def __init__(self, channels: Tuple[int, ...] = (256, 128, 64, 48, 37),
                 feature_channels: Tuple[int, ...] = (512, 256, 64, 6)):
        super().__init__()
        self.conv1 = nn.Conv2d(feature_channels[0] + channels[0], channels[1], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels[1])
        self.conv2 = nn.Conv2d(feature_channels[1] + channels[1], channels[2], 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels[2])
        self.conv3 = nn.Conv2d(feature_channels[2] + channels[2], channels[3], 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels[3])
        self.conv4 = nn.Conv2d(feature_channels[3] + channels[3], channels[4], 3, padding=1)
        self.relu = nn.ReLU(True)

    def forward(self, x4: torch.Tensor, x3: torch.Tensor, x2: torch.Tensor, x1: torch.Tensor,
                x0: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x4, size=x3.shape[2:], mode="bilinear", align_corners=False)
        x = self.relu(self.bn1(self.conv1(torch.cat([x, x3], dim=1))))
        x = F.interpolate(x, size=x2.shape[2:], mode="bilinear", align_corners=False)
        x = self.relu(self.bn2(self.conv2(torch.cat([x, x2], dim=1))))
        x = F.interpolate(x, size=x1.shape[2:], mode="bilinear", align_corners=False)
        x = self.relu(self.bn3(self.conv3(torch.cat([x, x1], dim=1))))
        x = F.interpolate(x, size=x0.shape[2:], mode="bilinear", align_corners=False)
        return self.conv4(torch.cat([x, x0], dim=1))


class Refiner(nn.Module):
    """Refines the coarse result at full resolution on the 4x4 patches where the base network
    is least sure (``mode``: ``sampling`` the ``sample_pixels`` worst pixels' patches,
    ``thresholding`` every patch with error above ``threshold``, ``full`` everywhere).

    Returns ``pha (B, 1, H, W)``, ``fgr`` residual ``(B, 3, H, W)`` and ``ref (B, 1, H/4, W/4)``,
    1 on the refined patches."""

    def __init__(self, mode: str = "sampling", sample_pixels: int = 80_000, threshold: float = 0.1,
                 prevent_oversampling: bool = True):
        super().__init__()
        self.mode = mode
        self.sample_pixels = sample_pixels
        self.threshold = threshold
        self.prevent_oversampling = prevent_oversampling
        self.conv1 = nn.Conv2d(32 + 6 + 4, 24, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        self.conv2 = nn.Conv2d(24, 16, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.conv3 = nn.Conv2d(16 + 6, 12, 3, bias=False)
        self.bn3 = nn.BatchNorm2d(12)
        self.conv4 = nn.Conv2d(12, 4, 3, bias=True)
        self.relu = nn.ReLU(True)

    def forward(self, src: torch.Tensor, bgr: torch.Tensor, pha: torch.Tensor, fgr: torch.Tensor,
                err: torch.Tensor, hid: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h_full, w_full = src.shape[2], src.shape[3]
        h_half, w_half = h_full // 2, w_full // 2
        h_quat, w_quat = h_full // 4, w_full // 4
        src_bgr = torch.cat([src, bgr], dim=1)
        if self.mode != "full":
            err = F.interpolate(err, (h_quat, w_quat), mode="bilinear", align_corners=False)
            ref = self.select_refinement_regions(err)
            nz = torch.nonzero(ref.squeeze(1))
            idx = (nz[:, 0], nz[:, 1], nz[:, 2])
            if idx[0].size(0) > 0:
                x = torch.cat([hid, pha, fgr], dim=1)
                x = F.interpolate(x, (h_half, w_half), mode="bilinear", align_corners=False)
                x = self.crop_patch(x, idx, 2, 3)
                y = F.interpolate(src_bgr, (h_half, w_half), mode="bilinear", align_corners=False)
                y = self.crop_patch(y, idx, 2, 3)
                x = self.relu(self.bn1(self.conv1(torch.cat([x, y], dim=1))))
                x = self.relu(self.bn2(self.conv2(x)))
                x = F.interpolate(x, 8, mode="nearest")
                y = self.crop_patch(src_bgr, idx, 4, 2)
                x = self.relu(self.bn3(self.conv3(torch.cat([x, y], dim=1))))
                x = self.conv4(x)
                out = torch.cat([pha, fgr], dim=1)
                out = F.interpolate(out, (h_full, w_full), mode="bilinear", align_corners=False)
                out = self.replace_patch(out, x, idx)
                pha = out[:, :1]
                fgr = out[:, 1:]
            else:
                pha = F.interpolate(pha, (h_full, w_full), mode="bilinear", align_corners=False)
                fgr = F.interpolate(fgr, (h_full, w_full), mode="bilinear", align_corners=False)
        else:
            x = torch.cat([hid, pha, fgr], dim=1)
            x = F.interpolate(x, (h_half, w_half), mode="bilinear", align_corners=False)
            y = F.interpolate(src_bgr, (h_half, w_half), mode="bilinear", align_corners=False)
            x = F.pad(x, (3, 3, 3, 3))
            y = F.pad(y, (3, 3, 3, 3))
            x = self.relu(self.bn1(self.conv1(torch.cat([x, y], dim=1))))
            x = self.relu(self.bn2(self.conv2(x)))
            x = F.interpolate(x, (h_full + 4, w_full + 4))
            y = F.pad(src_bgr, (2, 2, 2, 2))
            x = self.relu(self.bn3(self.conv3(torch.cat([x, y], dim=1))))
            x = self.conv4(x)
            pha = x[:, :1]
            fgr = x[:, 1:]
            ref = torch.ones((src.size(0), 1, h_quat, w_quat), device=src.device, dtype=src.dtype)
        return pha, fgr, ref

    def select_refinement_regions(self, err: torch.Tensor) -> torch.Tensor:
        """``err (B, 1, h, w)`` -> ``ref (B, 1, h, w)`` float, 1 where a patch is refined."""
        if self.mode == "sampling":
            b, _, h, w = err.shape
            flat = err.view(b, -1)
            k = min(self.sample_pixels // 16, flat.shape[1])
            idx = flat.topk(k, dim=1, sorted=False).indices
            ref = torch.zeros_like(flat)
            ref.scatter_(1, idx, 1.0)
            if self.prevent_oversampling:
                ref.mul_(flat.gt(0).to(ref.dtype))
            return ref.view(b, 1, h, w)
        return err.gt(self.threshold).to(err.dtype)

    def crop_patch(self, x: torch.Tensor, idx: Tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                   size: int, padding: int) -> torch.Tensor:
        """``x (B, C, H, W)`` -> ``(P, C, size + 2 padding, same)`` patches at ``idx`` (stride ``size``)."""
        if padding != 0:
            x = F.pad(x, (padding, padding, padding, padding))
        k = size + 2 * padding
        return x.permute(0, 2, 3, 1).unfold(1, k, size).unfold(2, k, size)[idx[0], idx[1], idx[2]]

    def replace_patch(self, x: torch.Tensor, y: torch.Tensor,
                      idx: Tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Write patches ``y (P, C, h, w)`` into ``x (B, C, H, W)`` at ``idx``."""
        xb, xc, xh, xw = x.shape
        yh, yw = y.shape[2], y.shape[3]
        x = x.view(xb, xc, xh // yh, yh, xw // yw, yw).permute(0, 2, 4, 1, 3, 5)
        x[idx[0], idx[1], idx[2]] = y
        return x.permute(0, 3, 1, 4, 2, 5).reshape(xb, xc, xh, xw)


class MattingRefine(nn.Module):
    """Base network at ``backbone_scale`` of the input, then the refiner at full resolution."""

    def __init__(self, backbone_scale: float = 0.25, refine_mode: str = "sampling",
                 refine_sample_pixels: int = 80_000, refine_threshold: float = 0.1):
        super().__init__()
        self.backbone = ResNetEncoder(6)
        self.aspp = ASPP(2048)
        self.decoder = Decoder()
        self.backbone_scale = backbone_scale
        self.refiner = Refiner(refine_mode, refine_sample_pixels, refine_threshold)

    def forward(self, src: torch.Tensor, bgr: torch.Tensor) -> Tuple[
            torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        assert src.size() == bgr.size(), "src and bgr must have the same shape"
        assert src.size(2) // 4 * 4 == src.size(2) and src.size(3) // 4 * 4 == src.size(3), \
            "src and bgr must have width and height that are divisible by 4"
        src_sm = F.interpolate(src, scale_factor=self.backbone_scale, mode="bilinear",
                               align_corners=False, recompute_scale_factor=True)
        bgr_sm = F.interpolate(bgr, scale_factor=self.backbone_scale, mode="bilinear",
                               align_corners=False, recompute_scale_factor=True)
        x4, x3, x2, x1, x0 = self.backbone(torch.cat([src_sm, bgr_sm], dim=1))
        x = self.decoder(self.aspp(x4), x3, x2, x1, x0)
        pha_sm = x[:, 0:1].clamp(0.0, 1.0)
        fgr_sm = x[:, 1:4]
        err_sm = x[:, 4:5].clamp(0.0, 1.0)
        hid_sm = x[:, 5:].relu()
        pha, fgr, ref_sm = self.refiner(src, bgr, pha_sm, fgr_sm, err_sm, hid_sm)
        pha = pha.clamp(0.0, 1.0)
        fgr = (fgr + src).clamp(0.0, 1.0)
        fgr_sm = (src_sm + fgr_sm).clamp(0.0, 1.0)
        return pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm


class BGMv2(nn.Module):
    """What BGMv2's TorchScript files hold: ``MattingRefine`` with its settable attributes
    hoisted to the top level (``backbone_scale``, ``refine_mode``, ``refine_sample_pixels``,
    ``refine_threshold``, ``refine_prevent_oversampling``), copied down on every call."""

    def __init__(self, backbone_scale: float = 0.25, refine_mode: str = "sampling",
                 refine_sample_pixels: int = 80_000, refine_threshold: float = 0.1):
        super().__init__()
        self.model = MattingRefine(backbone_scale, refine_mode, refine_sample_pixels, refine_threshold)
        self.backbone_scale = backbone_scale
        self.refine_mode = refine_mode
        self.refine_sample_pixels = refine_sample_pixels
        self.refine_threshold = refine_threshold
        self.refine_prevent_oversampling = True

    def forward(self, src: torch.Tensor, bgr: torch.Tensor) -> Tuple[
            torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        self.model.backbone_scale = self.backbone_scale
        self.model.refiner.mode = self.refine_mode
        self.model.refiner.sample_pixels = self.refine_sample_pixels
        self.model.refiner.threshold = self.refine_threshold
        self.model.refiner.prevent_oversampling = self.refine_prevent_oversampling
        return self.model(src, bgr)


def random_bgmv2(seed: int = 0, **attributes) -> BGMv2:
    """A ``BGMv2`` in eval mode with seeded random weights; BatchNorm statistics are set so
    activations stay in a sane range (random running stats would overflow fp16)."""
    torch.manual_seed(seed)
    model = BGMv2(**attributes)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for name, m in model.named_modules():  # last BN of each residual branch starts small (as in training recipes)
        if isinstance(m, Bottleneck):
            nn.init.constant_(m.bn3.weight, 0.1)
    return model.eval()
