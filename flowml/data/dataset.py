"""``VideoDataset``: video files, a sequence length and the outputs to make of each sequence."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from .index import SequenceIndex

CLIPS = "capture.clips"
"""The node type that decodes the samples (flowml-av); found through the plugin registry."""


def _registry() -> Any:
    from ..plugins import load_registry
    from . import queue_node

    return load_registry([("flowml.data", queue_node)])


class VideoDataset:
    """Samples of ``sequence_length`` frames (``step`` apart) from ``files``, numbered as
    NVVL numbers them (``index.SequenceIndex``: sequences running past a file's end are
    left out), each made into the outputs ``processing`` names: ``{name: ProcessDesc or
    dict}`` (flowml-av's ``processing.ProcessDesc``: dtype, scale, crop, random crop and
    flip, normalisation, colour space, layout, index_map); none gives ``frames``, the full
    frames as float RGB in [0, 1], ``(B, T, 3, H, W)``.

    Frame counts are read from the files (demuxed, not decoded) by the decoding node type,
    or given as ``frame_counts``."""

    def __init__(self, files: Sequence[str | Path], sequence_length: int, *, step: int = 1,
                 processing: Mapping[str, Any] | None = None, frame_counts: Sequence[int] | None = None):
        if not files:
            raise ValueError("VideoDataset: give at least one file")
        self.files = [str(Path(f).expanduser().resolve()) for f in files]
        missing = [f for f in self.files if not Path(f).is_file()]
        if missing:
            raise FileNotFoundError(f"VideoDataset: no such file(s): {', '.join(missing)}")
        self.sequence_length, self.step = int(sequence_length), int(step)
        self.processing = {name: _as_dict(desc) for name, desc in (processing or {}).items()} or None
        self.registry = _registry()
        node_type = self.registry.get(CLIPS)
        if node_type is None:
            raise RuntimeError(f"VideoDataset needs the node type {CLIPS} (pip install flowml-av)")
        if frame_counts is None:
            frame_counts = [node_type.cls.count_frames(f) for f in self.files]
        if len(frame_counts) != len(self.files):
            raise ValueError(f"{len(frame_counts)} frame counts for {len(self.files)} files")
        self.index = SequenceIndex.of(frame_counts, self.sequence_length, self.step)
        if len(self.index) == 0:
            raise ValueError(f"VideoDataset: no file has {self.index.span} frames for a sequence of "
                             f"{self.sequence_length} (step {self.step}); frames: {list(frame_counts)}")

    def __len__(self) -> int:
        return len(self.index)

    def locate(self, index: int) -> tuple[str, list[int]]:
        """Sample ``index`` -> (its file, the frame numbers of its sequence)."""
        file, frames = self.index.frames(index)
        return self.files[file], frames

    @property
    def output_names(self) -> list[str]:
        return list(self.processing) if self.processing else ["frames"]


def _as_dict(desc: Any) -> dict[str, Any]:
    if isinstance(desc, Mapping):
        return dict(desc)
    dump = getattr(desc, "model_dump", None)
    if dump is None:
        raise TypeError(f"processing: expected a ProcessDesc or a dict, got {type(desc).__name__}")
    return dump(exclude_defaults=True)
