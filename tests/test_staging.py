"""Pinned staging copies a frame exactly, whatever its strides and however it is banded."""

import numpy as np
import pytest

from flowml.gpu.staging import MIN_BAND_BYTES, Stager


@pytest.mark.parametrize("threads", [1, 3, 4])
@pytest.mark.parametrize("rows", [1080, 7, 1])
def test_stage_copies_every_row(threads, rows):
    frame = np.random.default_rng(rows).integers(0, 256, (rows, 1920, 3), dtype=np.uint8)
    staged = Stager(threads, pin=False).stage(frame)
    assert staged.shape == frame.shape and staged.dtype.itemsize == 1
    np.testing.assert_array_equal(staged.numpy(), frame)


def test_stage_reads_a_strided_view():
    big = np.random.default_rng(0).integers(0, 256, (1080, 1920, 4), dtype=np.uint8)
    view = big[::-1, :, :3]  # flipped, alpha dropped: not contiguous
    np.testing.assert_array_equal(Stager(4, pin=False).stage(view).numpy(), view)


def test_small_frames_stay_on_the_calling_thread():
    stager = Stager(4, pin=False)
    assert len(stager._bands(np.zeros((64, 64, 3), np.uint8))) == 1
    frame = np.zeros((1080, 1920, 3), np.uint8)
    assert len(stager._bands(frame)) == min(4, frame.nbytes // MIN_BAND_BYTES)
    assert stager._pool is None  # no thread was started for a small frame


def test_an_unknown_staging_mode_is_refused():
    from flowml.gpu.transfer import image_from_host

    with pytest.raises(ValueError, match="staging must be 'auto', 'direct' or 'pinned'"):
        image_from_host(np.zeros((4, 4, 3), np.uint8), "cpu", staging="pinnned")
