"""``capture.synthetic_scene``: a real photograph seen by a shaking camera, a subject walking by.

Everything needed to check background matting and alignment is known exactly: the clean
plate, the homography that shook it, and the subject's mask.
"""

from __future__ import annotations

import math
from typing import Literal

from flowml.lazy import lazy_import
np = lazy_import("numpy")
torch = lazy_import("torch")

import flowml
from flowml import IMAGE, MATRIX, TENSOR, EndOfStream, Field, Node, Output, Stamped
transfer = lazy_import("flowml.gpu.transfer")

Photo = Literal["coffee", "astronaut", "rocket", "chelsea", "hubble_deep_field",
                "stereo_motorcycle", "immunohistochemistry", "retina"]
"""Colour photographs that scikit-image ships in its wheel (``skimage.data``), no download."""


def load_photo(name: str, size: tuple[int, int]) -> np.ndarray:
    """``skimage.data.<name>`` centre-cropped to the aspect of ``size`` (width, height) and
    resized to it: ``(H, W, 3)`` uint8 RGB."""
    import cv2
    import skimage.data

    img = getattr(skimage.data, name)()
    if isinstance(img, tuple):  # stereo_motorcycle: (left, right, disparity)
        img = img[0]
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = img[..., :3]
    h, w = img.shape[:2]
    width, height = size
    if w * height > h * width:
        crop = round(h * width / height)
        img = img[:, (w - crop) // 2:(w - crop) // 2 + crop]
    else:
        crop = round(w * height / width)
        img = img[(h - crop) // 2:(h - crop) // 2 + crop]
    shrink = img.shape[1] > width
    return cv2.resize(np.ascontiguousarray(img), size,
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


class ShakyCamera:
    """A camera on a wobbly tripod: the plate's four corners each follow a mean-reverting
    random walk (AR(1): ``c <- 0.9 c + N(0, shake_px)``, about ``2.3 * shake_px`` from rest)."""

    def __init__(self, size: tuple[int, int], shake_px: float, rng: np.random.Generator):
        w, h = size
        self.rest = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64)
        self.offset = np.zeros((4, 2))
        self.shake_px, self.rng = shake_px, rng

    def step(self) -> np.ndarray:
        """The next frame's homography, plate pixels -> frame pixels (3x3 float64)."""
        import cv2

        common = self.rng.normal(0, self.shake_px, 2)  # the whole view moves together, mostly
        self.offset = 0.9 * self.offset + common + self.rng.normal(0, 0.35 * self.shake_px, (4, 2))
        h = cv2.getPerspectiveTransform(self.rest.astype(np.float32),
                                        (self.rest + self.offset).astype(np.float32))
        return h / h[2, 2]


def silhouette(size: tuple[int, int], centre: tuple[float, float], height: float,
               supersample: int = 4) -> np.ndarray:
    """A standing figure (head, neck, shoulders, body), anti-aliased: ``(H, W)`` float32 in [0, 1]."""
    import cv2

    w, h = size
    s = supersample
    canvas = np.zeros((h * s, w * s), np.uint8)
    cx, cy, u = centre[0] * s, centre[1] * s, height * s / 10.0  # u: a tenth of the figure
    head_y = cy - 3.6 * u
    cv2.circle(canvas, (round(cx), round(head_y)), round(1.1 * u), 255, -1, cv2.LINE_AA)
    cv2.rectangle(canvas, (round(cx - 0.45 * u), round(head_y)), (round(cx + 0.45 * u), round(cy - 2.0 * u)), 255, -1)
    cv2.ellipse(canvas, (round(cx), round(cy + 1.0 * u)), (round(2.0 * u), round(3.6 * u)), 0, 0, 360, 255, -1, cv2.LINE_AA)
    cv2.ellipse(canvas, (round(cx), round(cy - 1.8 * u)), (round(2.4 * u), round(0.9 * u)), 0, 0, 360, 255, -1, cv2.LINE_AA)
    small = cv2.resize(canvas, size, interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0


class SceneGenerator:
    """Frames of the scene as host arrays; ``next()`` gives one frame's truth."""

    def __init__(self, photo: str, subject_photo: str, size: tuple[int, int], shake_px: float,
                 noise: float, fps: float, seed: int):
        self.size, self.noise, self.fps = size, noise, fps
        self.rng = np.random.default_rng(seed)
        self.plate = load_photo(photo, size)
        self.texture = load_photo(subject_photo, size).astype(np.float32)
        self.camera = ShakyCamera(size, shake_px, self.rng)
        self.index = 0

    def subject_mask(self, t: float) -> np.ndarray:
        """Where the subject is at time ``t``: walking left and right, bobbing a little."""
        w, h = self.size
        x = w * (0.5 + 0.28 * math.sin(2 * math.pi * t / 6.0))
        y = h * (0.58 + 0.02 * math.sin(2 * math.pi * t / 0.8))
        return silhouette(self.size, (x, y), 0.62 * h)

    def next(self) -> dict[str, np.ndarray]:
        """``{frame (H, W, 3) uint8, plate, mask (H, W) float32, matrix (3, 3)}`` of the next frame."""
        import cv2

        t = self.index / self.fps
        self.index += 1
        matrix = self.camera.step()
        view = cv2.warpPerspective(self.plate, matrix, self.size, flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REFLECT)  # a real camera sees past the plate
        mask = self.subject_mask(t)
        m = mask[..., None]
        frame = view.astype(np.float32) * (1 - m) + self.texture * m
        if self.noise:
            frame += self.rng.normal(0, 255 * self.noise, frame.shape).astype(np.float32)
        frame = np.clip(frame + 0.5, 0, 255).astype(np.uint8)
        return {"frame": frame, "plate": self.plate, "mask": mask, "matrix": matrix}


class SyntheticScene(Node):
    """A real photograph seen by a shaking camera, with a subject walking in front of it.

    The plate is a photograph from scikit-image (``photo``); each frame is that plate warped by
    a random-walk homography (``shake_px``), with a figure filled with another photograph
    (``subject``) composited in, plus sensor noise. Outputs, on the node's device: ``image``
    ``(1, 3, H, W)`` the frame, ``plate`` ``(1, 3, H, W)`` the clean plate (the same tensor every
    frame), ``mask`` ``(1, 1, H, W)`` the subject's true coverage and ``matrix`` ``(3, 3)`` the
    true plate-to-frame homography, float32 on the host. Deterministic for a seed.
    """

    type_name = "capture.synthetic_scene"
    outputs = (
        Output("image", IMAGE, "(1, 3, H, W) the camera frame"),
        Output("plate", IMAGE, "(1, 3, H, W) the clean background plate"),
        Output("mask", TENSOR, "(1, 1, H, W) float: the subject's true coverage"),
        Output("matrix", MATRIX, "(3, 3) float32 host tensor: the true plate-to-frame homography"),
    )
    live = False

    class Params(flowml.Params):
        photo: Photo = Field("coffee", description="the background photograph (skimage.data)", rebuild=True)
        subject: Photo = Field("chelsea", description="the photograph the walking figure is cut from",
                              rebuild=True)
        size: tuple[int, int] = Field((1280, 720), description="[width, height] in pixels", rebuild=True)
        fps: float = Field(30.0, gt=0, le=1000, description="frame k is stamped t = k / fps")
        frames: int = Field(0, ge=0, description="frames before the end of the stream; 0: endless")
        shake_px: float = Field(3.0, ge=0.0, le=100.0, description="camera shake per frame, pixels", rebuild=True)
        noise: float = Field(0.008, ge=0.0, le=0.2, description="sensor noise, std in [0, 1] units", rebuild=True)
        seed: int = Field(0, ge=0, le=2**31 - 1, rebuild=True)

    def setup(self, ctx: flowml.NodeContext) -> None:
        p = self.params
        self.scene = SceneGenerator(p.photo, p.subject, p.size, p.shake_px, p.noise, p.fps, p.seed)
        self.plate = transfer.image_from_host(self.scene.plate, ctx.device)

    def process(self) -> Stamped:
        p = self.params
        if p.frames and self.scene.index >= p.frames:
            raise EndOfStream
        t = self.scene.index / p.fps
        truth = self.scene.next()
        device = self.ctx.device
        mask = torch.from_numpy(truth["mask"])[None, None].to(device)
        return Stamped({"image": transfer.image_from_host(truth["frame"], device), "plate": self.plate,
                        "mask": mask, "matrix": torch.from_numpy(truth["matrix"].astype(np.float32))}, t=t)
