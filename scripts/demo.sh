#!/usr/bin/env bash
# Set up, build the demo's model (no download), run graphs/demo.yaml: writes out/demo.mp4 and out/demo.png.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/python models/build_demo_models.py
.venv/bin/flowml run graphs/demo.yaml "$@"
echo "wrote out/demo.mp4 and out/demo.png"
