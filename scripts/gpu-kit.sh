#!/usr/bin/env bash
# Here (with internet): one git-ignored folder holding all that the offline GPU machine lacks for
# flowml's GPU tests and benchmarks, to carry there with the device tool (carry: [".gpu-kit"],
# ~35 MB):
#   whl/          dependency wheels its image lacks (scripts/gpu-wheels-deps.txt's flowml set,
#                 python-osc, Roboflow trackers and supervision, py-spy for profiles), CPython
#                 3.12 manylinux x86-64
#   site.tar.xz   PyAV and PyNvVideoCodec unpacked, pruned (samples, CUDA 12.1 builds), their
#                 bundled FFmpeg libraries linked by soname (a wheel's zip keeps no symlinks)
#   dist/         flowml's wheels, built from a clean clone of HEAD: what is committed, not the
#                 working tree (uncommitted changes do not travel in the wheels)
# There, `source scripts/gpu-kit-env.sh` installs it once per machine into /tmp/site, and
# `scripts/gpu-steps.sh STEPS [NAME...]` runs the named steps under one time budget.
#
#   scripts/gpu-kit.sh [DIR]        # default .gpu-kit
set -euo pipefail
cd "$(dirname "$0")/.."
kit=${1:-.gpu-kit}
py=${PYTHON:-$PWD/.venv/bin/python}
say() { echo "gpu-kit: $*"; }
rm -rf "$kit"; mkdir -p "$kit/whl"
kit=$(cd "$kit" && pwd)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

plat=(--only-binary=:all: --python-version 3.12 --implementation cp)
for n in 28 27 17 5 34 35 31 24 39; do plat+=(--platform "manylinux_2_${n}_x86_64"); done
plat+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
fetch() { python3 -m pip download -q --no-deps "${plat[@]}" -d "$@" 2>&1 \
            | grep -v "is ignored: it is neither a file nor a directory" || true; }

# the flowml set of gpu-wheels-deps.txt (its scikit-image set: the image has skimage)
mapfile -t reqs < <(sed -n '/^# flowml itself/,/^# the matting/p' scripts/gpu-wheels-deps.txt | grep -v -E '^\s*(#|$)')
reqs+=(python-osc==1.10.2 trackers==2.6.1 supervision==0.31.2 pydeprecate==0.13.0 defusedxml tqdm py-spy==0.4.3)
say "downloading ${#reqs[@]} dependency wheels"
fetch "$kit/whl" "${reqs[@]}"
n=$(ls "$kit"/whl/*.whl | wc -l)
[ "$n" -ge "${#reqs[@]}" ] || { echo "gpu-kit: $n wheels in whl/, ${#reqs[@]} asked for" >&2; exit 1; }

say "PyAV and PyNvVideoCodec, unpacked"
fetch "$work/dl" av==18.1.0 PyNvVideoCodec==2.2.4
mkdir -p "$work/site"
for w in "$work"/dl/*.whl; do python3 -m zipfile -e "$w" "$work/site"; done
rm -rf "$work"/site/pynvvideocodec-*.data "$work"/site/PyNvVideoCodec/{samples,benchmarks} \
       "$work"/site/PyNvVideoCodec/PyNvVideoCodec_121*
for lib in "$work"/site/PyNvVideoCodec/lib*.so.*.*; do   # libavutil.so.61.x.y -> .so.61 and .so
  base=$(basename "$lib"); stem=${base%%.so.*}; major=${base#"$stem".so.}; major=${major%%.*}
  ln -sf "$base" "$(dirname "$lib")/$stem.so.$major"; ln -sf "$base" "$(dirname "$lib")/$stem.so"
done
(cd "$work/site" && tar cf - . | xz -T0 -6 > "$kit/site.tar.xz")

say "flowml wheels from a clean clone of $(git rev-parse --short HEAD)"
git clone -q . "$work/clean"
cp .git/info/exclude "$work/clean/.git/info/exclude" 2>/dev/null || true
(cd "$work/clean" && PYTHON=$py bash scripts/gpu-wheels-prepare.sh "$kit/dist" "$work/unused" >/dev/null)
git rev-parse HEAD > "$kit/commit"
du -sh "$kit"/*
