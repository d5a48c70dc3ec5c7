# On the offline GPU machine, sourced from the repository root: install .gpu-kit (made here by
# scripts/gpu-kit.sh) into /tmp/site once per machine, then put it on PYTHONPATH and PATH.
#   source scripts/gpu-kit-env.sh
kit=${GPU_KIT:-.gpu-kit}
site=/tmp/site
if [ ! -e "$site/.flowml-kit-ok" ]; then
  mkdir -p "$site"
  tar xJf "$kit/site.tar.xz" -C "$site"
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" "$kit"/whl/*.whl
  SITE=$site WHL=/nonexistent bash scripts/gpu-host.sh --wheels "$kit/dist"
  cp "$kit/commit" "$site/.flowml-kit-ok"
fi
if [ ! -x "$site/bin/py-spy" ] && ls "$kit"/whl/py_spy-*.whl >/dev/null 2>&1; then  # pip --target drops it
  mkdir -p "$site/bin"
  python3 -c "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); n = next(n for n in z.namelist() if n.endswith('/scripts/py-spy')); open(sys.argv[2], 'wb').write(z.read(n))" "$(ls "$kit"/whl/py_spy-*.whl | head -1)" "$site/bin/py-spy"
  chmod +x "$site/bin/py-spy"
fi
export PYTHONPATH=$site PATH=$site/bin:$PATH PIP_ROOT_USER_ACTION=ignore
unset FLOWML_TEST_VIDEOS   # the tests make their videos with PyAV's FFmpeg (no ffmpeg CLI there)
echo "gpu-kit: flowml $(cat "$site/.flowml-kit-ok" | cut -c1-9) from $site"
