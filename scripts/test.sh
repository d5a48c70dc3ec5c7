#!/usr/bin/env bash
# Set up and run the test suite on the CPU. Installs the system tools the tests start as real
# peers when they are missing. GPU tests skip without a CUDA GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
updated=""
need() {  # need "COMMAND..." PACKAGE...: install the Debian packages unless every command is there
  local cmd
  for cmd in $1; do
    if ! command -v "$cmd" >/dev/null; then
      shift
      if ! command -v apt-get >/dev/null; then  # macOS, or not Debian: the tests needing it skip
        echo "test: $1 missing ($cmd not on PATH) and no apt-get: the tests that start it skip" >&2
        return
      fi
      [ -n "$updated" ] || { $sudo apt-get update -qq; updated=1; }
      $sudo apt-get install -y -qq "$@" >/dev/null
      return
    fi
  done
}
need "oscsend oscdump" liblo-tools   # liblo's OSC client and server: the real OSC peers
need "ffmpeg ffprobe" ffmpeg         # FFmpeg's CLI: flowml-av's tests make files with it, compare decodes
need "ip unshare" iproute2 util-linux  # the mDNS test makes its own network namespace
need "g++" g++                       # flowml-kernels runs its CUDA C as C++ on the CPU
scripts/setup.sh --dev
.venv/bin/python models/build_demo_models.py
exec .venv/bin/python -m pytest "$@"
