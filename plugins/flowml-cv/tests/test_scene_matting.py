"""Why cv.homography exists: on a photograph seen by a shaking camera, a difference matte
against the aligned plate finds the walking subject (IoU >= 0.9 with its true mask); against
the plate as it is, it does not."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from flowml.testing import NodeHarness
from flowml_cv.homography import Homography
from flowml_cv.scene import SyntheticScene
from flowml_cv.warp import Warp
from flowml_torch.model import TorchModel

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
ROOT = Path(__file__).resolve().parents[3]
MATTE = {"path": "difference_matte.pt", "inputs": ["src", "bgr"],
         "outputs": ["pha", "fgr:image", "pha_sm", "fgr_sm", "err_sm", "ref_sm"]}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    spec = importlib.util.spec_from_file_location("build_bgmv2", ROOT / "models" / "build_bgmv2.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    folder = tmp_path_factory.mktemp("models")
    build.build(folder)
    return folder


def iou(alpha: torch.Tensor, mask: torch.Tensor) -> float:
    a, b = alpha > 0.5, mask > 0.5
    return float((a & b).sum() / (a | b).sum())


def test_matte_iou_with_and_without_alignment(models):
    aligned_iou, raw_iou = [], []
    scene_params = {"size": [1280, 720], "shake_px": 3.0, "seed": 1}
    with NodeHarness(SyntheticScene, scene_params) as scene, NodeHarness(Homography, {}) as align, \
            NodeHarness(Warp, {}) as warp, NodeHarness(TorchModel, MATTE, graph_dir=models) as matte:
        for _ in range(10):
            s = scene.process()
            a = align.process(plate=s["plate"], frame=s["image"])
            assert a["status"] == "ok", a["status"]
            bgr = warp.process(plate=s["plate"], frame=s["image"], matrix=a["matrix"])["image"]
            aligned_iou.append(iou(matte.process(src=s["image"], bgr=bgr)["pha"], s["mask"]))
            raw_iou.append(iou(matte.process(src=s["image"], bgr=s["plate"])["pha"], s["mask"]))
    print(f"IoU aligned {np.round(aligned_iou, 3)}\nIoU raw     {np.round(raw_iou, 3)}")
    assert min(aligned_iou) >= 0.9
    assert np.mean(raw_iou) < 0.75 and np.mean(aligned_iou) - np.mean(raw_iou) > 0.2
