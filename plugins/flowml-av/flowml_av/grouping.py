"""Samples that share GOPs, decoded together: ``capture.clips``' look-ahead window as tasks.

``gop_tasks`` is what ``capture.clips`` runs: the frames a window of samples needs, one task a
(file, GOP), each asking for the frames from its keyframe to the last one needed as one
contiguous run (no gap for the decoder to seek over, no call starting mid-GOP), so the tasks
of a window spread over every decoder. ``group_samples`` (the rule below) joins samples whose
decode ranges touch; ``one_each_task`` is the path without grouping: a task a sample.

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


@dataclass(frozen=True)
class Task:
    """One decoder call: frames ``start`` .. ``frames[-1]`` of ``file``, asked for as one
    contiguous run from ``start`` (a keyframe, or a sample's first frame without grouping),
    of which ``frames`` (sorted) are kept; ``positions``: the read positions that take them."""

    file: int
    start: int
    frames: tuple[int, ...]
    positions: tuple[int, ...]

    @property
    def span(self) -> int:
        """Frames the decoder runs through (and returns): ``start`` .. the last kept."""
        return self.frames[-1] - self.start + 1

    @property
    def run(self) -> range:
        return range(self.start, self.frames[-1] + 1)


def gop_tasks(samples: Sequence[Sample], keys: Sequence[Sequence[int]]) -> list[Task]:
    """The frames ``samples`` need as one task a (file, GOP): each frame goes to the keyframe
    at or before it in presentation order (``key_at_or_before``; an open GOP's leading picture
    thus to the GOP before its CRA, the one it is decoded from), and a task runs from that
    keyframe to the last frame it keeps. Each GOP is decoded once for all the samples, forward
    from its keyframe, and a sample that crosses a keyframe takes frames of two tasks.

    Ordered longest first, then by the earliest position: K decoders finish a window soonest
    when the longest tasks start first."""
    buckets: dict[tuple[int, int], tuple[set[int], set[int]]] = {}
    for s in samples:
        if not s.frames:
            raise ValueError(f"sample at position {s.position} has no frames")
        for f in s.frames:
            frames, positions = buckets.setdefault((s.file, key_at_or_before(keys[s.file], f)), (set(), set()))
            frames.add(f)
            positions.add(s.position)
    tasks = [Task(file, key, tuple(sorted(frames)), tuple(sorted(positions)))
             for (file, key), (frames, positions) in buckets.items()]
    tasks.sort(key=lambda t: (-t.span, t.positions[0], t.file, t.start))
    return tasks


def one_each_task(samples: Sequence[Sample]) -> list[Task]:
    """Every sample its own task, its frames alone (the decoder seeks to them itself), in
    read order: the straightforward path that ``gop_tasks`` must equal."""
    for s in samples:
        if not s.frames:
            raise ValueError(f"sample at position {s.position} has no frames")
    return [Task(s.file, min(s.frames), tuple(sorted(set(s.frames))), (s.position,)) for s in samples]


def in_decode_order(tasks: Sequence[Task]) -> list[Task]:
    """``tasks`` for one decoder: by file and first frame, so it decodes forward (a task that
    starts where the last one ended needs no seek)."""
    return sorted(tasks, key=lambda t: (t.file, t.start, t.positions[0]))
