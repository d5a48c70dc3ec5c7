"""One OpenCV: Roboflow's trackers depends on opencv-python, whose cv2 would replace flowml's
contrib build; installed as scripts/setup.sh does, the environment keeps exactly one wheel
providing cv2, and trackers imports on it."""

from importlib import metadata
from pathlib import Path


def test_one_opencv_wheel_provides_cv2_and_trackers_imports_on_it():
    wheels = {d.metadata["Name"].lower() for d in metadata.distributions()
              if (d.metadata["Name"] or "").lower().startswith("opencv")}
    assert len(wheels) == 1, f"more than one OpenCV wheel: {sorted(wheels)}; keep one (README: one OpenCV)"
    (wheel,) = wheels
    import cv2
    import trackers

    files = {Path(f).parts[0] for f in metadata.files(wheel) or ()}
    assert "cv2" in files and Path(cv2.__file__).parent.name == "cv2"
    assert Path(cv2.__file__).resolve() == Path(metadata.distribution(wheel).locate_file("cv2/__init__.py")).resolve()
    if wheel.startswith("opencv-contrib"):
        assert hasattr(cv2, "ximgproc")  # the contrib modules are there
    assert hasattr(trackers, "ByteTrackTracker")
