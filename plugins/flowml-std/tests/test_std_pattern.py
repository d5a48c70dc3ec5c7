import pytest
import torch

from flowml import EndOfStream, Stamped
from flowml.testing import NodeHarness, run_node
from flowml_std.pattern import PatternSource


@pytest.mark.parametrize("pattern", ["bars", "scene", "noise"])
def test_shape_range_and_dtype(pattern):
    image = run_node(PatternSource, params={"pattern": pattern, "size": [64, 48]})["image"]
    assert image.shape == (1, 3, 48, 64) and image.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert image.std() > 0.05  # a picture, not a flat colour


def test_stamps_are_index_over_fps_and_stream_ends():
    with NodeHarness(PatternSource, {"size": [32, 18], "fps": 25, "frames": 3}) as h:
        stamped = [h.node.process() for _ in range(3)]
        with pytest.raises(EndOfStream):
            h.node.process()
    assert all(isinstance(s, Stamped) for s in stamped)
    assert [s.t for s in stamped] == [0.0, 1 / 25, 2 / 25]


@pytest.mark.parametrize("pattern", ["scene", "noise"])
def test_frames_are_repeatable_and_move(pattern):
    def frames(seed):
        with NodeHarness(PatternSource, {"pattern": pattern, "size": [96, 54], "seed": seed}) as h:
            return [h.process()["image"] for _ in range(6)]

    first, again, other = frames(1), frames(1), frames(2)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert (first[5] - first[0]).abs().mean() > 1e-3  # it moves
    assert not torch.equal(first[0], other[0])  # the seed matters


def test_bars_are_smpte_colours_with_a_moving_block():
    params = {"pattern": "bars", "size": [140, 90]}
    with NodeHarness(PatternSource, params) as h:
        a, b = h.process()["image"], h.process()["image"]
    top = a[0, :, 10]  # one row in the bars: 7 bars of 20 px
    assert torch.allclose(top[:, 10], torch.tensor([0.75, 0.75, 0.75]))  # white 75%
    assert torch.allclose(top[:, 130], torch.tensor([0.0, 0.0, 0.75]))  # blue
    assert torch.allclose(a[0, :, 80, 0:3], torch.tensor([1.0, 0.0, 0.0]).view(3, 1))  # block at x=0
    assert torch.allclose(b[0, :, 80, 4:7], torch.tensor([1.0, 0.0, 0.0]).view(3, 1))  # 4 px on


def test_size_is_validated():
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        NodeHarness(PatternSource, {"size": [0, 10]})
