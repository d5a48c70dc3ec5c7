#!/usr/bin/env bash
# Make flowml-av's test videos (ffmpeg testsrc2: H.264 and HEVC, 8-bit 4:2:0, sizes not
# multiples of 16, a 1080p H.264 one for the benchmark) in DIR (default .videos), for a
# machine without ffmpeg: carry DIR there and set FLOWML_TEST_VIDEOS=DIR.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python3 "$here/plugins/flowml-av/tests/av_test_videos.py" "${1:-.videos}"
