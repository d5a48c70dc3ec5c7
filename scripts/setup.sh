#!/usr/bin/env bash
# Make .venv and install flowml with its built-in plugins (and, with --dev, the test tools).
set -euo pipefail
cd "$(dirname "$0")/.."
req=requirements.txt
[ "${1:-}" = "--dev" ] && req=requirements-dev.txt
if [ ! -x .venv/bin/python ] && ! python3 -m venv .venv; then
  rm -rf .venv
  echo "python3 cannot make a virtual environment: install it with 'sudo apt-get install python3-venv'" >&2
  exit 1
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r "$req"
# Roboflow's `trackers` (flowml-track's track.objects) depends on opencv-python, which would put
# a second `cv2` over flowml-cv's opencv-contrib-python-headless (pip cannot tell they are one
# module; the last installed wins, and AKAZE/contrib would be gone). So install it without its
# dependencies; its other dependencies (supervision, scipy, rich, requests, pydeprecate) are
# installed explicitly here, and one OpenCV stays. `pip check` then names the missing
# opencv-python: that is this choice, not a broken install.
.venv/bin/python -m pip install -q --no-deps "trackers>=2.6,<2.7"
.venv/bin/python -m pip install -q "supervision>=0.30" "scipy>=1.13.1" "rich>=13" "requests>=2.28" "pydeprecate>=0.8"
