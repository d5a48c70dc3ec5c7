"""Shared by the flowml-track tests: a small synthetic scene encoded to H.264 and decoded back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from flowml.testing import NodeHarness
from flowml_track.background import BackgroundDetector
from flowml_track.synth import Scene, write_video

SIZE, FRAMES, FPS = (160, 120), 75, 30


def small_scene(seed: int = 0, objects: int = 4) -> Scene:
    return Scene(SIZE, FRAMES, FPS, objects, seed=seed)


def decoded(path: Path) -> list[torch.Tensor]:
    """Every frame of the file as (1, H, W, 3) uint8, as the graph hands a uint8 input over."""
    import av

    with av.open(str(path)) as f:
        return [torch.from_numpy(fr.to_ndarray(format="rgb24"))[None] for fr in f.decode(video=0)]


def detect_all(frames: list[torch.Tensor], **params) -> list[dict]:
    with NodeHarness(BackgroundDetector, params) as h:
        return [h.process(image=f, t=i / FPS)["detections"] for i, f in enumerate(frames)]


def truth_boxes(scene: Scene, frame: int) -> torch.Tensor:
    return torch.tensor([o["box"] for o in scene.truth(frame)], dtype=torch.float32).reshape(-1, 4)


def encoded_scene(tmp: Path, seed: int = 0) -> tuple[Scene, Path]:
    scene = small_scene(seed)
    return scene, write_video(scene, tmp / "scene.mp4")


def ious(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    from torchvision.ops import box_iou

    if len(a) == 0 or len(b) == 0:
        return np.zeros(len(a))
    return box_iou(a, b).max(dim=1).values.numpy()
