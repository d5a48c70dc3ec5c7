#!/usr/bin/env bash
# Make .venv and install flowml with its built-in plugins (and, with --dev, the test tools).
# One line per step; pip's full output goes to .venv/setup.log and is shown only when a step
# fails (FLOWML_SETUP_VERBOSE=1 shows it as it comes). pip's warnings stay visible, except two
# that are noise here: setuptools' BuildBackendWarning for each editable plugin ("Editable
# installation... folders with the same name as your package") and "Location ... is ignored"
# for package indexes that do not hold a given package.
set -euo pipefail
cd "$(dirname "$0")/.."
req=requirements.txt
[ "${1:-}" = "--dev" ] && req=requirements-dev.txt
if [ ! -x .venv/bin/python ] && ! python3 -m venv .venv; then
  rm -rf .venv
  echo "python3 cannot make a virtual environment: install it with 'sudo apt-get install python3-venv'" >&2
  exit 1
fi
log=.venv/setup.log
: > "$log"
step() {  # step WHAT COMMAND...: run it quietly, say how long it took
  local what=$1 t0=$SECONDS out
  shift
  printf 'setup: %s ... ' "$what"
  if [ -n "${FLOWML_SETUP_VERBOSE:-}" ]; then
    echo; "$@" 2>&1 | tee -a "$log"
  else
    out=$(mktemp)
    if ! "$@" >"$out" 2>&1; then
      echo "failed"; cat "$out" >&2; cat "$out" >> "$log"; rm -f "$out"
      echo "setup: failed: $* (the whole log: $log)" >&2
      exit 1
    fi
    cat "$out" >> "$log"
    grep -E '^(WARNING|ERROR):' "$out" | grep -v -E "Location '.*' is ignored|BuildBackendWarning" >&2 || true
    rm -f "$out"
  fi
  echo "done ($((SECONDS - t0)) s)"
}
pip=(.venv/bin/python -m pip install -q)
step "pip" "${pip[@]}" --upgrade pip
step "flowml, its $(grep -c '^-e plugins/' requirements.txt) plugins (editable), torch and their dependencies (first run: ~2 min)" \
  "${pip[@]}" -r "$req"
# Roboflow's `trackers` (flowml-track's track.objects) depends on opencv-python, which would put
# a second `cv2` over flowml-cv's opencv-contrib-python-headless (pip cannot tell they are one
# module; the last installed wins, and AKAZE/contrib would be gone). So install it without its
# dependencies; its other dependencies (supervision, scipy, rich, requests, pydeprecate) are
# installed explicitly here, and one OpenCV stays. `pip check` then names the missing
# opencv-python: that is this choice, not a broken install.
step "Roboflow trackers, without its opencv-python (one cv2 stays)" \
  "${pip[@]}" --no-deps "trackers>=2.6,<2.7"
step "trackers' other dependencies" \
  "${pip[@]}" "supervision>=0.30" "scipy>=1.13.1" "rich>=13" "requests>=2.28" "pydeprecate>=0.8"
echo "setup: .venv is ready (pip's output: $log)"
