#!/usr/bin/env bash
# Set up and run the test suite on the CPU. Installs the system tools the tests start as real
# peers (liblo's oscsend/oscdump) when they are missing. GPU tests skip without a CUDA GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v oscsend >/dev/null || ! command -v oscdump >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && $sudo apt-get install -y -qq liblo-tools >/dev/null
fi
# FFmpeg's own CLI (ffmpeg, ffprobe): flowml-av's tests make files with it and compare with its decode
if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && $sudo apt-get install -y -qq ffmpeg >/dev/null
fi
# ip (iproute2) and unshare (util-linux): the mDNS test makes its own network namespace
if ! command -v ip >/dev/null || ! command -v unshare >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && $sudo apt-get install -y -qq iproute2 util-linux >/dev/null
fi
scripts/setup.sh --dev
.venv/bin/python models/build_demo_models.py
exec .venv/bin/python -m pytest "$@"
