import numpy as np
import pytest
import torch
from PIL import Image

from flowml.testing import NodeHarness
from flowml_std.sequence import ImageSequence
from flowml_std.snapshot import ImageSnapshot


def frame(k, h=6, w=8):
    return torch.full((1, 3, h, w), k / 10)


def read(path):
    return np.asarray(Image.open(path))


def test_sequence_writes_every_nth_frame_exactly(tmp_path):
    with NodeHarness(ImageSequence, {"dir": "seq", "every": 2}, graph_dir=tmp_path) as h:
        for k in range(5):
            h.process(image=frame(k))
    names = sorted(p.name for p in (tmp_path / "seq").iterdir())
    assert names == ["frame_00000.png", "frame_00002.png", "frame_00004.png"]
    assert read(tmp_path / "seq" / "frame_00004.png").shape == (6, 8, 3)
    assert np.all(read(tmp_path / "seq" / "frame_00004.png") == round(0.4 * 255))


@pytest.mark.parametrize("pattern, message", [
    ("frame.png", "same name"), ("f_{i}.png", "not a valid pattern"), ("f_{index}.gif2", "must end in"),
])
def test_sequence_pattern_is_checked(pattern, message):
    with pytest.raises(ValueError, match=message):
        ImageSequence.Params(dir="x", pattern=pattern)


def test_snapshot_at_frame_and_last_frame(tmp_path):
    with NodeHarness(ImageSnapshot, {"path": "out/at.png", "at_frame": 2}, graph_dir=tmp_path) as h:
        for k in range(5):
            h.process(image=frame(k))
        assert (tmp_path / "out" / "at.png").exists()  # written on the frame, not at the end
    assert np.all(read(tmp_path / "out" / "at.png") == round(0.2 * 255))

    with NodeHarness(ImageSnapshot, {"path": "last.jpg"}, graph_dir=tmp_path) as h:
        for k in range(4):
            h.process(image=frame(k, 16, 16))
        assert not (tmp_path / "last.jpg").exists()
    assert abs(int(read(tmp_path / "last.jpg").mean()) - round(0.3 * 255)) <= 2  # JPEG


def test_snapshot_past_the_end_writes_the_last_frame(tmp_path):
    with NodeHarness(ImageSnapshot, {"path": "s.png", "at_frame": 100}, graph_dir=tmp_path) as h:
        h.process(image=frame(7))
    assert np.all(read(tmp_path / "s.png") == round(0.7 * 255))
    assert not list(tmp_path.glob(".*partial"))
