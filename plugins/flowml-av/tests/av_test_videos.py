"""Test videos made by the ffmpeg CLI from its testsrc2 source: the files the frame-exact and
GPU tests read. ``scripts/make-test-videos.sh DIR`` makes them (for a machine without ffmpeg:
carry DIR there and set ``FLOWML_TEST_VIDEOS=DIR``); a test calls ``video(name, tmp)``, which
takes the file from ``FLOWML_TEST_VIDEOS`` where that is set, else makes it with ffmpeg.

Sizes are not multiples of 8 or 16 (4:2:0 needs even ones: libx264 refuses odd widths),
GOPs are short and B-frames on, so windows cross keyframes and reordered frames; x265's
GOPs are open (frames before a CRA in display order come after it in the file).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

X264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast", "-bf", "2"]
X265 = ["-c:v", "libx265", "-pix_fmt", "yuv420p", "-preset", "veryfast", "-tag:v", "hvc1"]
VIDEOS: dict[str, list[str]] = {
    # name: ffmpeg arguments after the input
    "h264_178x98.mp4": ["-s", "178x98", "-frames:v", "48", *X264, "-g", "12", "-crf", "20"],
    "hevc_178x98.mp4": ["-s", "178x98", "-frames:v", "40", *X265, "-x265-params",
                        "log-level=error:keyint=10:min-keyint=10:bframes=3:open-gop=1", "-crf", "22"],
    "h264_322x182.mp4": ["-s", "322x182", "-frames:v", "30", *X264, "-g", "9", "-crf", "20"],
    "hevc_322x182.mp4": ["-s", "322x182", "-frames:v", "30", *X265, "-x265-params",
                         "log-level=error:keyint=8:min-keyint=8:bframes=2", "-crf", "22"],
    "h264_100f.mp4": ["-s", "64x48", "-frames:v", "100", *X264, "-g", "25", "-crf", "30"],
    "h264_1080p.mp4": ["-s", "1920x1080", "-frames:v", "240", *X264, "-g", "12", "-crf", "28"],
}
RATE = 25


def make(name: str, folder: Path) -> Path:
    """Make ``name`` in ``folder`` with the ffmpeg CLI (kept if it is already there)."""
    path = folder / name
    if path.is_file():
        return path
    if shutil.which("ffmpeg") is None:
        raise RuntimeError(f"{name}: no ffmpeg here; make the files elsewhere with scripts/make-test-videos.sh "
                           "DIR and set FLOWML_TEST_VIDEOS=DIR")
    folder.mkdir(parents=True, exist_ok=True)
    size = VIDEOS[name][1]
    cmd = ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={RATE}",
           *[a for a in VIDEOS[name] if a not in ("-s", size)], str(path)]
    subprocess.run(cmd, check=True)
    return path


def video(name: str, tmp: Path) -> Path:
    """The test file ``name``: from ``FLOWML_TEST_VIDEOS`` where set, else made under ``tmp``."""
    folder = os.environ.get("FLOWML_TEST_VIDEOS")
    if folder:
        path = Path(folder) / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: FLOWML_TEST_VIDEOS has no {name}; make it with "
                                    "scripts/make-test-videos.sh")
        return path
    return make(name, tmp)


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".videos")
    for n in VIDEOS:
        print(make(n, out), f"{(out / n).stat().st_size / 1e6:.2f} MB")
