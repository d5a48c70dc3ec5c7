#!/usr/bin/env bash
# On an offline CUDA machine whose python3 already has torch (no package index): install the
# wheels in .whl (fetched elsewhere: ../shared/tools/device-wheels.sh pydantic ...), then flowml
# and its built-in plugins, into /tmp/site. Then: export PYTHONPATH=/tmp/site
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
PYTHONPATH=/tmp/site python3 -m pip install -q --no-index --no-deps --no-build-isolation \
  --target /tmp/site --upgrade . plugins/flowml-*
