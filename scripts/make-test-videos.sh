#!/usr/bin/env bash
# Make flowml-av's test videos (FFmpeg's testsrc2: H.264 and HEVC, 8-bit 4:2:0, sizes not
# multiples of 16, a 1080p H.264 one for the benchmark) in DIR (default .videos): with the
# ffmpeg CLI where there is one, else with PyAV's own FFmpeg (lavfi, libx264, libx265), so the
# GPU machine can make them itself. Tests read them from FLOWML_TEST_VIDEOS=DIR where set.
# Usage: make-test-videos.sh [DIR [NAME ...]]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python3 "$here/plugins/flowml-av/tests/av_test_videos.py" "${1:-.videos}" "${@:2}"
