"""cv.homography on real photographs (skimage.data) at 1080p, each feature type, 50 random
known homographies: the plate's corners land within 0.5 px (median) and 1.5 px (95th
percentile) of where they truly are."""

import sys
from pathlib import Path

import numpy as np
import pytest

from flowml.testing import NodeHarness
from flowml_cv.features import available_kinds
from flowml_cv.homography import Homography

sys.path.insert(0, str(Path(__file__).parent))
from helpers import PHOTOS, as_port, corner_errors, photo, random_homography, shaken  # noqa: E402

PER_PHOTO = 10  # 5 photographs x 10 homographies = 50 per feature type


@pytest.fixture(scope="module")
def plates() -> dict[str, np.ndarray]:
    return {name: photo(name) for name in PHOTOS}


def errors_for(kind: str, plates: dict[str, np.ndarray], method: str = "magsac") -> np.ndarray:
    rng = np.random.default_rng(6)
    noise = rng.normal(0, 2, (1080, 1920, 3)).round().astype(np.int16)  # sensor noise, ~2/255
    errs = []
    for name, plate in plates.items():
        with NodeHarness(Homography, {"features": kind, "method": method}) as h:
            for _ in range(PER_PHOTO):
                truth = random_homography(rng)
                out = h.process(plate=as_port(plate), frame=as_port(shaken(plate, truth, noise)))
                assert out["status"] == "ok", f"{kind} on {name}: {out['status']}"
                errs.append(corner_errors(truth, out["matrix"].double().numpy()))
    return np.concatenate(errs)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["orb", "sift", "akaze"])
def test_corner_error_on_photographs_at_1080p(kind, plates):
    if kind not in available_kinds():
        pytest.skip(f"{kind} is not in this OpenCV build (needs opencv-contrib-python-headless)")
    errs = errors_for(kind, plates)
    assert errs.size == 4 * len(PHOTOS) * PER_PHOTO
    median, p95 = np.median(errs), np.percentile(errs, 95)
    print(f"{kind}: median {median:.3f} px, p95 {p95:.3f} px, max {errs.max():.3f} px")
    assert median < 0.5 and p95 < 1.5, f"{kind}: median {median:.3f} px, p95 {p95:.3f} px"


@pytest.mark.slow
def test_ransac_is_as_accurate_once_polished(plates):
    errs = errors_for("orb", {k: plates[k] for k in PHOTOS[:2]}, method="ransac")
    assert np.median(errs) < 0.5 and np.percentile(errs, 95) < 1.5
