"""Shared by the flowml-cv tests: real photographs at 1080p, random camera-shake homographies."""

from __future__ import annotations

import numpy as np
import torch

from flowml_cv.estimate import corners, project
from flowml_cv.scene import load_photo

HD = (1920, 1080)
PHOTOS = ("coffee", "astronaut", "rocket", "stereo_motorcycle", "hubble_deep_field")


def random_homography(rng: np.random.Generator, size: tuple[int, int] = HD) -> np.ndarray:
    """A camera shake or small move: rotation up to 3 degrees, scale 0.95-1.05, translation up
    to 40 px, each corner then moved up to 15 px more (perspective). Plate -> frame, 3x3."""
    import cv2

    w, h = size
    angle, scale = np.deg2rad(rng.uniform(-3, 3)), rng.uniform(0.95, 1.05)
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    rest = corners(w, h)
    centre = rest.mean(axis=0)
    moved = (rest - centre) @ rot.T + centre + rng.uniform(-40, 40, 2) + rng.uniform(-15, 15, (4, 2))
    m = cv2.getPerspectiveTransform(rest.astype(np.float32), moved.astype(np.float32))
    return m / m[2, 2]


def shaken(plate: np.ndarray, matrix: np.ndarray, noise: np.ndarray | None = None) -> np.ndarray:
    """The plate as a camera moved by ``matrix`` sees it (bilinear), plus sensor noise."""
    import cv2

    frame = cv2.warpPerspective(plate, matrix, (plate.shape[1], plate.shape[0]), flags=cv2.INTER_LINEAR)
    if noise is not None:
        frame = cv2.add(frame, noise, dtype=cv2.CV_8U) if noise.dtype == np.uint8 else np.clip(
            frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return frame


def corner_errors(truth: np.ndarray, estimate: np.ndarray, size: tuple[int, int] = HD) -> np.ndarray:
    """Distances (px) between the image corners as mapped by the two homographies, ``(4,)``."""
    c = corners(*size)
    return np.linalg.norm(project(truth, c) - project(estimate, c), axis=1)


def as_port(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(1, H, W, 3)`` uint8, as the scheduler delivers a uint8 port."""
    return torch.from_numpy(np.ascontiguousarray(image))[None]


def photo(name: str, size: tuple[int, int] = HD) -> np.ndarray:
    return load_photo(name, size)
