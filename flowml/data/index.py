"""NVVL's sample index over a list of videos: sample k is a sequence of frames of one file.

A file of ``n`` frames gives ``n - span + 1`` samples (none if it is shorter than ``span``),
where ``span = (length - 1) * step + 1`` is the frames a sequence covers: sequences that
would run past a file's end are left out. Samples are numbered file after file, so two
files of 100 frames with ``length`` 5 give 192 samples, 0-95 from the first file and 96-191
from the second (NVVL's README, pytorch/README.md; its code subtracted ``length + 1``, two
fewer per file than the README says: this follows the README).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class SequenceIndex:
    """Sample numbers <-> (file, first frame) for files of ``frame_counts`` frames."""

    frame_counts: tuple[int, ...]
    length: int
    step: int = 1

    def __post_init__(self) -> None:
        if self.length < 1 or self.step < 1:
            raise ValueError(f"length ({self.length}) and step ({self.step}) must be at least 1")
        if any(n < 0 for n in self.frame_counts):
            raise ValueError(f"frame counts must be >= 0, got {list(self.frame_counts)}")
        ends, total = [], 0
        for n in self.frame_counts:
            total += max(0, n - self.span + 1)
            ends.append(total)
        object.__setattr__(self, "_ends", tuple(ends))

    @classmethod
    def of(cls, frame_counts: Sequence[int], length: int, step: int = 1) -> "SequenceIndex":
        return cls(tuple(int(n) for n in frame_counts), int(length), int(step))

    @property
    def span(self) -> int:
        """Frames from a sequence's first to its last, both included."""
        return (self.length - 1) * self.step + 1

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def samples_in(self, file: int) -> int:
        """How many samples file number ``file`` gives."""
        return self._ends[file] - (self._ends[file - 1] if file else 0)

    def locate(self, index: int) -> tuple[int, int]:
        """Sample ``index`` -> (file number, its first frame)."""
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} is outside 0..{len(self) - 1}")
        file = bisect.bisect_right(self._ends, index)
        return file, index - (self._ends[file - 1] if file else 0)

    def frames(self, index: int) -> tuple[int, list[int]]:
        """Sample ``index`` -> (file number, the frame numbers of its sequence)."""
        file, first = self.locate(index)
        return file, list(range(first, first + self.span, self.step))
