"""cv.homography's behaviour around the estimate: failures keep the last good matrix and say
so, smoothing, a changed plate, its outputs, and what a missing AKAZE says."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from flowml import NodeError
from flowml.testing import NodeHarness
from flowml_cv import features
from flowml_cv.estimate import CornerSmoother, implausible
from flowml_cv.homography import Homography

sys.path.insert(0, str(Path(__file__).parent))
from helpers import as_port, corner_errors, photo, random_homography, shaken  # noqa: E402

SIZE = (960, 540)


@pytest.fixture(scope="module")
def plate() -> np.ndarray:
    return photo("rocket", SIZE)


def test_failure_keeps_the_last_good_matrix_and_says_why(plate):
    rng = np.random.default_rng(3)
    flat = np.full_like(plate, 128)  # nothing to match
    with NodeHarness(Homography, {"scale": 1.0}) as h:
        first = h.process(plate=as_port(plate), frame=as_port(flat))
        assert np.allclose(first["matrix"].numpy(), np.eye(3))
        assert first["status"].startswith("kept the identity (no good estimate yet):")
        truth = random_homography(rng, SIZE)
        good = h.process(plate=as_port(plate), frame=as_port(shaken(plate, truth)))
        assert good["status"] == "ok" and good["inliers"] >= 30 and good["error_px"] < 1.5
        assert corner_errors(truth, good["matrix"].double().numpy(), SIZE).max() < 1.5
        bad = h.process(plate=as_port(plate), frame=as_port(flat))
        assert bad["status"].startswith("kept the last good matrix: ") and "need" in bad["status"]
        assert np.array_equal(bad["matrix"].numpy(), good["matrix"].numpy())
        q = bad["quality"]
        assert q["ok"] is False and q["frames_since_good"] == 1 and q["ms"] > 0
        json.dumps(q)  # goes out over OSC as it is


def test_smoothing_moves_part_way_and_snaps_on_a_real_move():
    s = CornerSmoother((100, 100))
    s.update(np.eye(3), 0.5, 8.0)
    shifted = np.array([[1.0, 0, 4], [0, 1, 0], [0, 0, 1]])
    half = s.update(shifted, 0.5, 8.0)
    assert np.allclose(half[0, 2], 2.0, atol=1e-6)  # half way to the 4 px move
    far = np.array([[1.0, 0, 40], [0, 1, 0], [0, 0, 1]])
    assert np.allclose(s.update(far, 0.5, 8.0), far)  # more than snap_px: taken at once


def test_implausible_warps_are_named():
    assert "mirrored" in implausible(np.diag([-1.0, 1, 1]), (100, 100), (100, 100))
    assert "area" in implausible(np.diag([5.0, 5, 1]), (100, 100), (100, 100))
    assert implausible(np.eye(3), (100, 100), (100, 100)) == ""


def test_a_new_plate_is_detected_again(plate):
    with NodeHarness(Homography, {}) as h:
        h.process(plate=as_port(plate), frame=as_port(plate))
        key = h.node.plate_key
        h.process(plate=as_port(plate.copy()), frame=as_port(plate))
        assert h.node.plate_key is key  # same pixels: features kept
        other = photo("coffee", SIZE)
        out = h.process(plate=as_port(other), frame=as_port(other))
        assert h.node.plate_key is not key and out["status"] == "ok"
        h.set_params(features="sift")  # live: a new detector, the plate found again
        assert h.node.plate_key is None
        assert h.process(plate=as_port(other), frame=as_port(other))["status"] == "ok"


def test_missing_akaze_says_which_wheel(monkeypatch):
    monkeypatch.setattr(features, "akaze_factory", lambda: None)
    with pytest.raises(NodeError, match="opencv-contrib-python-headless.*uninstall opencv-python-headless"):
        with NodeHarness(Homography, {"features": "akaze"}):
            pass


def test_isolated_in_a_child_process_gives_the_same_matrix(plate):
    truth = random_homography(np.random.default_rng(4), SIZE)
    frame = as_port(shaken(plate, truth))
    results = []
    for isolate in (False, True):
        with NodeHarness(Homography, {"isolate": isolate}) as h:
            h.process(plate=as_port(plate), frame=frame)
            results.append(h.process(plate=as_port(plate), frame=frame))
    assert results[1]["status"] == "ok"
    assert np.allclose(results[0]["matrix"].numpy(), results[1]["matrix"].numpy(), atol=1e-3)


def test_recheck_estimates_every_nth_call_and_at_once_when_the_camera_moves(plate):
    rng = np.random.default_rng(7)
    still, moved = random_homography(rng, SIZE), random_homography(rng, SIZE)
    noise = rng.normal(0, 2, (SIZE[1], SIZE[0], 3))
    frames = [as_port(shaken(plate, still, noise))] * 5 + [as_port(shaken(plate, moved, noise))] * 2
    with NodeHarness(Homography, {"recheck": 4}) as h:
        outs = [h.process(plate=as_port(plate), frame=f) for f in frames]
    estimated = [o["quality"]["estimated"] for o in outs]
    # call 1 estimates, 2-4 are checked only, 5 is the 4th: estimated; 6: the camera moved
    assert estimated == [True, False, False, False, True, True, False]
    assert all(o["status"] == "ok" for o in outs)
    assert np.array_equal(outs[1]["matrix"].numpy(), outs[0]["matrix"].numpy())  # held between
    assert corner_errors(moved, outs[5]["matrix"].double().numpy(), SIZE).max() < 1.5
    residuals = [o["quality"]["residual"] for o in outs]
    assert max(residuals[:5]) < 6 and residuals[6] < 6  # aligned: sensor noise only
    assert outs[1]["quality"]["ms"] < outs[0]["quality"]["ms"]  # a check costs less than an estimate


def test_the_quick_check_sees_a_misaligned_plate_through_a_subject(plate):
    from flowml_cv.check import AlignmentCheck

    rng = np.random.default_rng(8)
    truth = random_homography(rng, SIZE)
    frame = shaken(plate, truth)
    frame[100:400, 300:600] = 255  # a subject covering a sixth of the frame
    grey = lambda im: im.mean(axis=2).astype(np.uint8)  # noqa: E731
    check = AlignmentCheck()
    check.plate(grey(plate), SIZE)
    aligned = check.estimated(grey(frame), SIZE, truth)
    off = truth @ np.array([[1, 0, 12.0], [0, 1, -8.0], [0, 0, 1]])  # the camera moved 14 px
    assert aligned < 4 and check.holds(aligned, 1.5)
    assert not check.holds(check.residual(grey(frame), SIZE, off), 1.5)
