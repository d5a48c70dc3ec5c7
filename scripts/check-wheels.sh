#!/usr/bin/env bash
# flowml as users install it: build every distribution (an sdist, then a wheel from that sdist),
# install the wheels (not editable) into a fresh venv outside the checkout, and run flowml from
# an empty directory: `flowml nodes`, `flowml demo`, `flowml validate` on every packaged example
# graph, and the example third-party plugin installed from its own wheel. CI runs it after the
# tests (.ci/run). About 1.5 - 3 min on 2 cores once torch is cached (+75 s the first time).
#
#   scripts/check-wheels.sh                 # torch from a torch-only layer cached outside the checkout
#   scripts/check-wheels.sh --fresh-torch   # torch installed into the fresh venv too (+75 s, 5.5 GB)
#   KEEP=1 scripts/check-wheels.sh          # keep the venv and the work folder, say where
#
# torch: the fresh venv gets torch and torchvision (the versions pinned in requirements.txt)
# from a folder holding nothing but them and their own dependencies, installed there by pip
# from the package index, once, under $FLOWML_CHECK_CACHE (~/.cache/flowml-check), and named
# in the venv by a .pth file. Nothing of flowml is in it and nothing comes from the checkout's
# .venv (whose site-packages holds flowml itself, editable), so every flowml file the checks
# import comes from the wheels built here; the script checks that too.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
py=${PYTHON:-$repo/.venv/bin/python}   # builds the distributions: needs `build` (requirements-dev.txt)
base_python=${BASE_PYTHON:-$("$py" -c 'import sys; print(sys._base_executable)')}
fresh_torch=""; [ "${1:-}" = "--fresh-torch" ] && fresh_torch=1
started=$SECONDS
say() { printf '[check-wheels %3ss] %s\n' "$((SECONDS - started))" "$*"; }
work=$(mktemp -d "${TMPDIR:-/tmp}/flowml-wheels.XXXXXX")
case "$work" in "$repo"/*) echo "the work folder must be outside the checkout" >&2; exit 1 ;; esac
cleanup() { if [ -n "${KEEP:-}" ]; then say "kept $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT
log=$work/log
quiet() {  # run a command with its output in $log; show the log only when it fails
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    echo "check-wheels: failed: $*" >&2
    exit 1
  fi
}

say "distributions in step"
"$py" scripts/check_dists.py
mapfile -t dists < <("$py" scripts/check_dists.py --list)

say "building ${#dists[@]} sdists and wheels (each wheel built from its sdist), ${JOBS:-2} at a time"
pids=()
for d in "${dists[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "${JOBS:-2}" ]; do sleep 0.2; done
  # --no-isolation: the build requirements ([build-system] requires) are checked, not downloaded
  "$py" -m build --no-isolation --outdir "$work/dist" "$d" >"$work/build-${d//\//_}.log" 2>&1 &
  pids+=("$!:$d")
done
for job in "${pids[@]}"; do
  d=${job#*:}
  wait "${job%%:*}" || { cat "$work/build-${d//\//_}.log" >&2; echo "check-wheels: building $d failed" >&2; exit 1; }
done
n_whl=$(ls "$work"/dist/*.whl | wc -l); n_sdist=$(ls "$work"/dist/*.tar.gz | wc -l)
[ "$n_whl" = "${#dists[@]}" ] && [ "$n_sdist" = "${#dists[@]}" ] || {
  echo "check-wheels: ${#dists[@]} distributions gave $n_whl wheels and $n_sdist sdists" >&2; exit 1; }

say "fresh venv in $work/venv ($("$base_python" --version))"
quiet "$base_python" -m venv "$work/venv"
venv_py=$work/venv/bin/python; [ -x "$venv_py" ] || venv_py=$work/venv/Scripts/python.exe
site=$("$venv_py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
torch_pins=$(grep -E '^(torch|torchvision)==' requirements.txt | tr '\n' ' ')
if [ -n "$fresh_torch" ]; then
  say "installing $torch_pins into the venv"
  quiet "$venv_py" -m pip install -q --no-compile $torch_pins
else
  tag=$("$venv_py" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
  layer=${FLOWML_CHECK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flowml-check}/torch-layer-$(echo "$torch_pins" | tr ' =' '_-')$tag
  if [ ! -f "$layer/.complete" ]; then
    say "caching $torch_pins in $layer (once: ~75 s)"
    rm -rf "$layer.tmp"
    quiet "$venv_py" -m pip install -q --no-compile --target "$layer.tmp" $torch_pins
    touch "$layer.tmp/.complete"; rm -rf "$layer"; mv "$layer.tmp" "$layer"
  fi
  if ls "$layer" | grep -qi '^flowml'; then echo "check-wheels: $layer holds flowml files" >&2; exit 1; fi
  echo "$layer" > "$site/flowml-check-torch-layer.pth"
  say "torch from $layer"
fi

say "installing flowml[all] and the example plugin from the wheels (not editable)"
core=$(ls "$work"/dist/flowml-[0-9]*.whl)
example=$(ls "$work"/dist/flowml_example_plugin-*.whl)
# the core wheel by path (a different project named flowml is on PyPI), its plugins from the
# folder of wheels (they are on no index); their dependencies from the index
quiet "$venv_py" -m pip install -q --no-compile --find-links "$work/dist" "flowml[all] @ file://$core"
quiet "$venv_py" -m pip install -q --no-compile --find-links "$work/dist" "$example"
if [ -f plugins/flowml-track/pyproject.toml ]; then
  # Roboflow's trackers (track.objects) depends on opencv-python, a second cv2 over flowml's
  # contrib build: installed as scripts/setup.sh does, without its dependencies; the others
  # from flowml-track's [trackers] extra
  mapfile -t trk < <("$py" -c 'import tomllib; x = tomllib.load(open("plugins/flowml-track/pyproject.toml", "rb"))
for r in x["project"]["optional-dependencies"]["trackers"]: print(r)')
  say "trackers (--no-deps) and the rest of flowml-track[trackers]"
  deps=(); for r in "${trk[@]}"; do case "$r" in trackers*) trackers=$r ;; *) deps+=("$r") ;; esac; done
  quiet "$venv_py" -m pip install -q --no-compile --no-deps "$trackers"
  quiet "$venv_py" -m pip install -q --no-compile "${deps[@]}"
fi
empty=$work/empty; mkdir "$empty"; cd "$empty"   # from here on nothing of the checkout is near
unset PYTHONPATH
"$venv_py" -I - "$work/dist" "$repo" <<'EOF'
# every flowml distribution is the one built here, not editable, and imports from the venv
import hashlib, importlib.metadata as md, json, sys, zipfile
from pathlib import Path
dist, repo = Path(sys.argv[1]), Path(sys.argv[2]).resolve()
platform_only = {"flowml-spout": "win32", "flowml-syphon": "darwin"}
for wheel in sorted(dist.glob("*.whl")):
    name = wheel.name.split("-")[0].replace("_", "-")
    try:
        d = md.distribution(name)
    except md.PackageNotFoundError:
        if platform_only.get(name, sys.platform) != sys.platform:
            print(f"  {name}: not installed on {sys.platform} (environment marker), as meant")
            continue
        sys.exit(f"check-wheels: {name} was built but flowml[all] did not install it")
    if name in platform_only and platform_only[name] != sys.platform:
        sys.exit(f"check-wheels: {name} installed on {sys.platform}: its marker in flowml[all] is wrong")
    with zipfile.ZipFile(wheel) as z:
        built = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        if hashlib.sha256(z.read(built)).digest() != hashlib.sha256(d.read_text("METADATA").encode()).digest():
            sys.exit(f"check-wheels: the installed {name} is not the wheel built here")
    direct = d.read_text("direct_url.json")
    if direct and json.loads(direct).get("dir_info", {}).get("editable"):
        sys.exit(f"check-wheels: {name} is installed editable")
    where = Path(str(d.locate_file(""))).resolve()
    if where == repo or repo in where.parents:
        sys.exit(f"check-wheels: {name} is installed from the checkout ({where})")
print("  every flowml distribution installed from its wheel, none editable, none from the checkout")
EOF

export PATH="$(dirname "$venv_py"):$PATH"
say "flowml nodes (in an empty directory, $empty)"
"$venv_py" -I -c 'import flowml, sys; f = flowml.__file__; print("  flowml from", f); sys.exit(0 if f.startswith(sys.prefix) else "not from the venv")'
flowml nodes --json > nodes.json
"$venv_py" -I - <<'EOF'
import json
info = json.load(open("nodes.json"))
types = {t["type"] for t in info["node_types"]}
failed = [f"{f['plugin']}: {f['error']}" for f in info["failed_plugins"]]
need = {"capture.pattern", "torch.model", "output.video", "cv.homography", "example.vignette", "example.invert"}
assert not failed, f"plugins failed to load: {failed}"
assert need <= types, f"missing node types: {sorted(need - types)}"
print(f"  {len(types)} node types, no plugin failed")
EOF
flowml nodes > /dev/null

say "flowml demo (10 frames) into ./demo"
quiet flowml demo demo --frames 10
test -s demo/out/demo.mp4 && test -s demo/out/demo.png && test -f demo/models/toon.pt

say "flowml examples; copy every one; flowml validate"
flowml examples | sed 's/^/  /' | cut -c1-100
quiet flowml examples copy all graphs --no-models
n_graphs=$(flowml examples | wc -l)
[ "$(ls graphs/*.yaml | wc -l)" = "$n_graphs" ] || { echo "check-wheels: copied graphs != listed" >&2; exit 1; }
flowml validate graphs/*.yaml | sed 's/^/  /'

say "the example plugin's nodes in a graph"
cat > plugin.yaml <<'EOF'
flowml: 1
clock: scene
mode: offline
nodes:
  scene:    {type: capture.pattern, params: {pattern: bars, size: [64, 48], frames: 3}}
  vignette: {type: example.vignette, inputs: {image: scene/image}, params: {strength: 1.0}}
  invert:   {type: example.invert, inputs: {image: vignette/image}}
  still:    {type: output.image, inputs: {image: invert/image}, params: {path: plugin.png}}
EOF
quiet flowml run plugin.yaml
test -s plugin.png
say "all checks passed (${#dists[@]} distributions, $n_graphs example graphs)"
