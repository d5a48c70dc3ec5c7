"""Samples that share GOPs, decoded together: ``capture.clips``' look-ahead window in groups.

A sample of a training loader is a few frames at a random place; decoding it alone costs a
seek and every frame from the keyframe at or before its first frame (up to a GOP less one
wasted). Within the window of samples the loader already reads ahead, samples of one file
whose decode ranges (keyframe at or before the first frame .. the last frame) overlap or
touch are one group: one decoder call for the sorted union of their frames decodes each GOP
once for all of them, forward from the first keyframe. Frames are the same as one call a
sample gives (decoding from a keyframe is exact), so a group only changes how much is
decoded, not what comes out; the loader hands the samples out in the sampler's order.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Sequence

GROUP_FRAMES = 48
"""Most distinct frames one group decodes in one call (bounds a call's decoded surfaces and
output; samples past it start a new group)."""


@dataclass(frozen=True)
class Sample:
    """One sample to decode: its ``position`` in the read order, its file and frame numbers."""

    position: int
    file: int
    frames: tuple[int, ...]


@dataclass(frozen=True)
class Group:
    """Samples of one file decoded by one call: ``frames`` is the sorted union of theirs."""

    file: int
    samples: tuple[Sample, ...]
    frames: tuple[int, ...]

    @property
    def first(self) -> int:
        """The earliest read position among the samples (when the group is needed)."""
        return min(s.position for s in self.samples)


def key_at_or_before(keys: Sequence[int], frame: int) -> int:
    """The last of the sorted keyframe indices ``keys`` at or before ``frame`` (0 if none)."""
    k = bisect.bisect_right(keys, frame) - 1
    return keys[k] if k >= 0 else 0


def group_samples(samples: Sequence[Sample], keys: Sequence[Sequence[int]],
                  max_frames: int = GROUP_FRAMES) -> list[Group]:
    """``samples`` in groups, ordered by the earliest position of each: within a file, sorted
    by first frame, a sample joins the group before it when its decode range starts (its
    keyframe, ``keys[file]``: sorted presentation-order indices) at or before the frame after
    the group's last, and the union stays within ``max_frames``; else it starts a new group.

    Decoding a group forward from its first keyframe passes every member's keyframe without
    skipping frames, so no member needs a seek of its own."""
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    by_file: dict[int, list[Sample]] = {}
    for s in samples:
        if not s.frames:
            raise ValueError(f"sample at position {s.position} has no frames")
        by_file.setdefault(s.file, []).append(s)
    groups: list[Group] = []
    for file, members in by_file.items():
        members.sort(key=lambda s: (min(s.frames), s.position))
        current: list[Sample] = []
        union: set[int] = set()
        last = -1
        for s in members:
            start = key_at_or_before(keys[file], min(s.frames))
            grown = union | set(s.frames)
            if current and (start > last + 1 or len(grown) > max_frames):
                groups.append(Group(file, tuple(current), tuple(sorted(union))))
                current, union, last, grown = [], set(), -1, set(s.frames)
            current.append(s)
            union = grown
            last = max(last, max(s.frames))
        if current:
            groups.append(Group(file, tuple(current), tuple(sorted(union))))
    groups.sort(key=lambda g: g.first)
    return groups


def one_each(samples: Sequence[Sample]) -> list[Group]:
    """Every sample its own group (its own decoder call): the path without grouping."""
    return [Group(s.file, (s,), tuple(sorted(set(s.frames)))) for s in samples]
