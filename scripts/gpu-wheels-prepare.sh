#!/usr/bin/env bash
# Here (with internet): build flowml's wheels into DIST_DIR and download the dependency wheels an
# offline GPU machine lacks (scripts/gpu-wheels-deps.txt, CPython 3.12 manylinux x86-64) into
# DEPS_DIR, for scripts/gpu-wheels-bench.sh there. Both folders are git-ignored (.git/info/exclude).
#
#   scripts/gpu-wheels-prepare.sh [DIST_DIR] [DEPS_DIR]     # default .dist-gpu .whl-min (~17 MB)
set -euo pipefail
cd "$(dirname "$0")/.."
dist=${1:-.dist-gpu}; deps=${2:-.whl-min}
py=${PYTHON:-.venv/bin/python}
[ -x "$py" ] || { echo "gpu-wheels-prepare: no $py: run scripts/setup.sh --dev first (or set PYTHON)" >&2; exit 1; }
mkdir -p .git/info
for d in "$dist" "$deps"; do
  grep -qxF "/${d#./}/" .git/info/exclude 2>/dev/null || echo "/${d#./}/" >> .git/info/exclude
done
rm -rf "$dist"; mkdir -p "$dist" "$deps"
mapfile -t dists < <("$py" scripts/check_dists.py --list | grep -v '^examples/')
echo "gpu-wheels-prepare: building ${#dists[@]} flowml wheels into $dist"
fresh=(); for d in "${dists[@]}"; do [ -e "$d/build" ] || fresh+=("$d/build"); done
trap 'rm -rf "${fresh[@]}"' EXIT   # setuptools' build/ folders this made (stale files there end up in later wheels)
"$py" -m pip wheel -q --no-index --no-deps --no-build-isolation -w "$dist" "${dists[@]}" 2>&1 \
  | grep -v -E "BuildBackendWarning|^ *(!!|\*{5,})" || true
built=$(ls "$dist"/*.whl 2>/dev/null | wc -l)
[ "${#dists[@]}" -gt 0 ] && [ "$built" -eq "${#dists[@]}" ] \
  || { echo "gpu-wheels-prepare: $built wheels built in $dist, ${#dists[@]} distributions listed" >&2; exit 1; }
mapfile -t reqs < <(grep -v -E '^\s*(#|$)' scripts/gpu-wheels-deps.txt)
echo "gpu-wheels-prepare: downloading ${#reqs[@]} dependency wheels into $deps"
plat=()
for n in 28 27 17 5 34 35 31 24 39; do plat+=(--platform "manylinux_2_${n}_x86_64"); done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${plat[@]}" --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any \
  -d "$deps" "${reqs[@]}" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
n=$(ls "$deps"/*.whl | wc -l)
[ "$n" -ge "${#reqs[@]}" ] || { echo "gpu-wheels-prepare: $deps has $n wheels, ${#reqs[@]} asked for" >&2; exit 1; }
du -sch "$dist" "$deps"
