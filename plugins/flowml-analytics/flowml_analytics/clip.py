"""``video.clip``: a sliding window of T preprocessed frames, kept in a ring on the frames' device.

The rings (``ring.py``) preprocess each frame once, on arrival, as torchvision's
video-classification preset does, and gather a due clip with one ``index_select``. With
``input: streams`` (the default) each tick brings one frame whose batch axis is independent
streams; with ``input: frames`` it brings K consecutive frames of one stream (a source's
``batch: K``, offline), preprocessed in one pass, and every clip that became due in the tick
comes out batched, so the model runs on n clips at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Mapping

from flowml.lazy import lazy_import
torch = lazy_import("torch")
from pydantic import field_validator

import flowml
from flowml import IMAGE, JSON, NO_VALUE, TENSOR, Field, Input, Node, NodeError, Output

from .ring import KINETICS_MEAN, KINETICS_STD, ClipRing, FramesRing, centre_box

__all__ = ["VideoClip", "ClipRing", "FramesRing", "KINETICS_MEAN", "KINETICS_STD", "centre_box"]
SOURCE_KEYS = frozenset({"index", "count", "t"})  # a batching source's `frames` output
CLIP_KEYS = frozenset({"frame", "t"})             # this node's `frames` output, one record a clip


class VideoClip(Node):
    """A sliding window of the last ``frames`` frames, every ``stride`` frames, as a 3D-CNN clip.

    ``image`` ``(B, C, H, W)`` float in [0, 1]. Each frame is resized to ``resize`` [width,
    height] (bilinear, no antialiasing), centre-cropped to ``crop`` [width, height] and
    normalised with ``mean`` / ``std`` (Kinetics-400's by default) once, on arrival, into a
    ring on the frames' device: torchvision's ``VideoClassification(crop_size=(112, 112),
    resize_size=(128, 171))`` preset, which r3d_18, mc3_18 and r2plus1d_18 were trained with,
    is ``resize: [171, 128], crop: [112, 112]`` (the defaults; torchvision writes (h, w)).

    ``input: streams`` (default): a tick is one frame, its batch axis B independent streams.
    Output ``clip``: ``(B, C, T, h, w)`` (``layout: BCTHW``, what torchvision's video models
    take) or ``(B, T, C, h, w)``, on the ticks a clip is due: once ``frames`` frames have come
    and then every ``stride`` frames (stride 1: every frame). On the other ticks it has no
    value (``flowml.NO_VALUE``), so the model and everything after it skip them.

    ``input: frames``: a tick is K consecutive frames of one stream ``(K, C, H, W)`` (a
    source's ``batch: K``; connect its ``frames`` output to ``frames`` here), all preprocessed
    in one pass. Output ``clip``: every clip that became due in the tick, oldest first, as
    ``(n, C, T, h, w)`` (or ``(n, T, C, h, w)``), the same values as ``input: streams`` gives
    one frame a tick; no value when n = 0. With stride S and K = S, one clip a tick; stride 1
    and K = 8, eight, so the model runs at batch 8.

    Output ``frames``: one record per clip (per row of ``clip``), ``{frame, t}``: the index and
    time of the clip's last frame (from the source's ``frames`` when connected, else the
    tick's); ``classify.topk`` puts them into its records, so rules and recording know which
    frame each result belongs to. A change of frame size, or of any param but ``stride``,
    starts the window again.
    """

    type_name = "video.clip"
    inputs = (Input("image", IMAGE, "(B, C, H, W) float RGB in [0, 1]; input: frames: (K, C, H, W), K frames in order"),
              Input("frames", JSON, "the source's {index, count, t} (needed with input: frames)", optional=True))
    outputs = (Output("clip", TENSOR, "(B or n, C, T, h, w) or (B or n, T, C, h, w); no value until due"),
               Output("frames", JSON, "[{frame, t}], one per row of clip: its last frame's index and time"))

    class Params(flowml.Params):
        frames: int = Field(16, ge=1, le=512, description="T: frames in a clip")
        stride: int = Field(1, ge=1, le=10_000, description="frames between clips (1: a clip every frame)")
        resize: tuple[int, int] | None = Field(
            (171, 128), description="[width, height] each frame is resized to first; none: keep its size")
        crop: tuple[int, int] | None = Field(
            (112, 112), description="[width, height] of the centre crop; none: no crop")
        mean: tuple[float, ...] = Field(KINETICS_MEAN, description="per-channel mean (Kinetics-400's)")
        std: tuple[float, ...] = Field(KINETICS_STD, description="per-channel std (Kinetics-400's)")
        layout: Literal["BCTHW", "BTCHW"] = Field("BCTHW", description="axis order of the clip")
        input: Literal["streams", "frames"] = Field("streams", description=(
            "streams: one frame a tick, batch axis = independent streams; frames: K consecutive "
            "frames of one stream a tick (a source's batch: K), clips batched as (n, ...)"))

        @field_validator("resize", "crop")
        @classmethod
        def _size(cls, size: tuple[int, int] | None) -> tuple[int, int] | None:
            if size is not None and min(size) < 1:
                raise ValueError("a size is [width, height] in pixels, both at least 1")
            return size

        @field_validator("std")
        @classmethod
        def _std(cls, std: tuple[float, ...]) -> tuple[float, ...]:
            if any(s <= 0 for s in std):
                raise ValueError("std values must be more than 0")
            return std

    @classmethod
    def metadata_keys(cls, params: flowml.Params) -> frozenset[str]:
        return CLIP_KEYS

    @classmethod
    def check_upstream(cls, params: flowml.Params, upstream: Mapping[str, frozenset[str] | None],
                       graph_dir: Path) -> list[str]:
        if params.input != "frames":  # type: ignore[attr-defined]
            return []
        if "frames" not in upstream:
            return ["input: frames takes K consecutive frames a tick and needs to know which they "
                    "are: connect the source's frame info, e.g. `frames: src/frames` (capture.video "
                    "or capture.pattern with batch: K)"]
        keys = upstream["frames"]
        if keys is not None and not SOURCE_KEYS <= keys:
            return [f"input `frames` must come from a source's `frames` output ({', '.join(sorted(SOURCE_KEYS))}); "
                    f"the node feeding it emits {', '.join(sorted(keys)) or 'nothing'}"]
        return []

    def setup(self, ctx: flowml.NodeContext) -> None:
        p = self.params
        if len(p.mean) != len(p.std):
            raise NodeError(f"mean has {len(p.mean)} values and std {len(p.std)}; give one of each per channel")
        flip = lambda s: None if s is None else (s[1], s[0])  # noqa: E731  [w, h] -> (h, w)
        ring = FramesRing if p.input == "frames" else ClipRing
        self.ring = ring(p.frames, flip(p.resize), flip(p.crop), p.mean, p.std, p.layout)

    def on_params(self, old: flowml.Params, new: flowml.Params) -> None:
        if old.model_copy(update={"stride": new.stride}) != new:  # type: ignore[attr-defined]
            self.setup(self.ctx)

    def process(self, image: torch.Tensor, frames: Any = None) -> Any:
        if frames is not None:
            _check_frames(frames, image)
        with torch.inference_mode():
            if self.params.input == "frames":
                return self._batched(image, frames)
            if frames is not None and frames["count"] != 1:
                raise NodeError(f"the source sends {frames['count']} frames a tick (batch: {frames['count']}), "
                                "which input: streams would take as that many streams; set input: frames")
            self.ring.push(image)
            if not self.ring.due(self.params.stride):
                return NO_VALUE
            stamp = ({"frame": frames["index"], "t": frames["t"][0]} if frames is not None
                     else {"frame": self.ctx.tick.index, "t": self.ctx.tick.t})
            return {"clip": self.ring.clip(), "frames": [stamp]}

    def _batched(self, image: torch.Tensor, frames: Any) -> Any:
        if frames is None:
            raise NodeError("input: frames needs the source's frame info: connect its `frames` output "
                            "to this node's `frames` input (capture.video or capture.pattern with batch: K)")
        clips, ends = self.ring.push(image, self.params.stride)
        if clips is None:
            return NO_VALUE
        first, times = frames["index"], frames["t"]
        return {"clip": clips, "frames": [{"frame": first + j, "t": times[j]} for j in ends]}


def _check_frames(frames: Any, image: Any) -> None:
    """The source's ``{index, count, t}`` fits the frames it came with."""
    ok = (isinstance(frames, Mapping) and isinstance(frames.get("index"), int) and isinstance(frames.get("count"), int)
          and isinstance(frames.get("t"), (list, tuple)) and len(frames["t"]) == frames["count"])
    if not ok:
        raise NodeError(f"input `frames` must be a source's {{index, count, t: [one per frame]}}, got {frames!r:.200}")
    if isinstance(image, torch.Tensor) and image.ndim == 4 and image.shape[0] != frames["count"]:
        raise NodeError(f"input `frames` says {frames['count']} frames, but image has {image.shape[0]}; "
                        "connect `frames` to the same source as `image`")
