#!/usr/bin/env bash
# On an offline CUDA machine whose python3 already has torch (no package index): install the
# wheels in .whl (fetched elsewhere: ../shared/tools/device-wheels.sh pydantic ...), then flowml
# and its built-in plugins from their wheels (not editable) into /tmp/site.
#
#   scripts/gpu-host.sh                  # build the wheels here (into /tmp/flowml-wheels), install them
#   scripts/gpu-host.sh --wheels DIR     # install the flowml wheels in DIR (built elsewhere: they are
#                                        # pure Python; built into DIR first if it holds none)
#
# Then: export PYTHONPATH=/tmp/site, and run from any folder, e.g.
#   cd "$(mktemp -d)" && /tmp/site/bin/flowml bench
# (SITE=... installs elsewhere, PYTHON=... picks the interpreter.)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
site=${SITE:-/tmp/site}
wheels=/tmp/flowml-wheels
[ "${1:-}" = "--wheels" ] && wheels=${2:?--wheels DIR}
shopt -s nullglob
deps=("${WHL:-.whl}"/*.whl)
[ ${#deps[@]} = 0 ] || "$py" -m pip install -q --no-index --no-deps --no-compile --target "$site" "${deps[@]}"
built=("$wheels"/flowml-[0-9]*.whl)
if [ ${#built[@]} = 0 ]; then
  mkdir -p "$wheels"
  mapfile -t dists < <("$py" scripts/check_dists.py --list | grep -v '^examples/')
  echo "gpu-host: building ${#dists[@]} wheels into $wheels"
  PYTHONPATH=$site "$py" -m pip wheel -q --no-index --no-deps --no-build-isolation -w "$wheels" "${dists[@]}"
fi
install=()
for w in "$wheels"/flowml-[0-9]*.whl "$wheels"/flowml_*.whl; do
  case "$w" in *flowml_example_plugin-*) ;; *) install+=("$w") ;; esac
done
echo "gpu-host: installing ${#install[@]} flowml wheels into $site (not editable)"
"$py" -m pip install -q --no-index --no-deps --no-compile --target "$site" --upgrade "${install[@]}"
