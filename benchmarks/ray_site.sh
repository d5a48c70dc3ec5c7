#!/usr/bin/env bash
# Build a pruned, stripped Ray site dir for `flowml batch` on a machine with no pip index.
# Usage: benchmarks/ray_site.sh WHEEL_DIR OUT.tar.xz
#   WHEEL_DIR: ray + msgpack protobuf jsonschema attrs referencing rpds-py
#   jsonschema-specifications packaging requests certifi charset_normalizer idna urllib3 wheels
#   (pip download --no-deps --only-binary=:all: --python-version 3.12 --abi cp312 ...).
# Not shipped (the GPU image has them): click (typer), filelock (torch), pyyaml.
# Kept: ray core, _raylet.so, raylet, gcs_server, the dashboard agent's Python (raylet starts it
# even with include_dashboard=False) and the runtime-env agent's thirdparty aiohttp.
set -euo pipefail
wheels=$1; out=$2
site=$(mktemp -d); trap 'rm -rf "$site"' EXIT
for w in "$wheels"/*.whl; do python3 -m zipfile -e "$w" "$site"; done
r=$site/ray
rm -rf "$r"/{rllib,tune,train,air,serve,llm,data,jars,workflow} \
       "$r"/dashboard/client "$r"/util/{dask,spark,collective,joblib,multiprocessing,xgboost,lightgbm} \
       "$r"/autoscaler/_private/{aws,gcp,azure,kuberay,vsphere,aliyun,local/coordinator_server.py} \
       "$site"/bin
find "$site" \( -name tests -o -name __pycache__ \) -type d -prune -exec rm -rf {} +
find "$site" \( -name '*.pyi' -o -name '*.map' \) -type f -delete
find "$site" -type f \( -name '*.so' -o -name '*.so.*' -o -path '*/core/src/ray/*' \) -print0 |
  while IFS= read -r -d '' f; do
    if file -b "$f" | grep -q ELF; then strip --strip-unneeded "$f" 2>/dev/null || true; chmod +x "$f"; fi
  done
mkdir -p "$(dirname "$out")"
tar -C "$site" -cf - . | xz --x86 --lzma2=preset=9e,dict=192MiB -T1 > "$out"
ls -la "$out"
