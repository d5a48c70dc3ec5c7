#!/usr/bin/env bash
# On the offline GPU machine: flowml installed from its built wheels runs the whole `flowml bench`
# (every default scenario, matting included) from an empty directory, as a user's install would.
#
#   scripts/gpu-wheels-bench.sh DIST_DIR DEPS_DIR [BENCH OPTIONS]   # e.g. .dist-gpu .whl-min
#
# (scripts/gpu-wheels-prepare.sh makes both folders.) Options after the folders go to `flowml bench`
# (`--only matting`); without any it runs every default scenario.
#
# Installs the flowml wheels in DIST_DIR (all but the example plugin) and the dependency wheels
# in DEPS_DIR with `pip install --no-index --no-deps --target` into a temporary site folder (a
# dependency the image already imports is skipped, except pydantic's set, which flowml is tested
# with), makes PYTHONPATH that folder alone (nothing of the checkout), cds into an empty
# temporary directory and runs `flowml bench` there under a time limit (LIMIT_S, default 300).
# Writes under $OUT: bench/bench.json + bench.md (the bench's own), bench.log (its progress: one
# JSON line per scenario, kept if the limit cuts it short), wheels-bench.json (the install, where
# flowml was imported from, rc, seconds, each scenario ok/error/skipped), summary.txt.
set -euo pipefail
dist=$(cd "${1:?usage: $0 DIST_DIR DEPS_DIR}" && pwd); deps=$(cd "${2:?usage: $0 DIST_DIR DEPS_DIR}" && pwd)
out=${OUT:?set OUT to the folder for the results}; mkdir -p "$out"; out=$(cd "$out" && pwd)
shift 2; bench_args=("$@")
py=${PYTHON:-python3}; limit=${LIMIT_S:-300}
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
work=$(mktemp -d "${TMPDIR:-/tmp}/flowml-wheels-bench.XXXXXX"); site=$work/site; empty=$work/empty
mkdir -p "$site" "$empty"
trap 'rm -rf "$work"' EXIT
say() { echo "[gpu-wheels-bench] $*"; }

shopt -s nullglob
flowml_whl=()
for w in "$dist"/flowml-[0-9]*.whl "$dist"/flowml_*.whl; do
  case "$w" in *flowml_example_plugin-*) ;; *) flowml_whl+=("$w") ;; esac
done
[ ${#flowml_whl[@]} -gt 0 ] || { echo "no flowml wheels in $dist (scripts/gpu-wheels-prepare.sh builds them)" >&2; exit 2; }
always=" pydantic pydantic_core annotated_types typing_inspection typing_extensions google_re2 "
dep_whl=(); skipped=()
for w in "$deps"/*.whl; do
  name=$(basename "$w"); name=${name%%-*}; mod=$name
  case "$name" in scikit_image) mod=skimage ;; esac
  if [[ "$always" != *" $name "* ]] && env -u PYTHONPATH "$py" -c "import $mod" 2>/dev/null; then
    skipped+=("$name")
  else
    dep_whl+=("$w")
  fi
done
say "$("$py" --version): installing ${#flowml_whl[@]} flowml wheels and ${#dep_whl[@]} dependency wheels into $site" \
    "(the image has: ${skipped[*]:-none of the others})"
"$py" -m pip install -q --no-index --no-deps --no-compile --target "$site" "${flowml_whl[@]}" "${dep_whl[@]}"

cd "$empty"
export PYTHONPATH=$site   # the site folder alone: nothing of the checkout is importable
flowml() { "$py" -m flowml.cli "$@"; }   # the console script's entry (flowml.cli:entry), on this interpreter
where=$("$py" -c 'import flowml; print(flowml.__file__)')
case "$where" in "$site"/*) ;; *) echo "flowml imported from $where, not from $site" >&2; exit 1 ;; esac
have=$("$py" - <<'PY'
import importlib.util as u
print(" ".join(f"{m}:{'yes' if u.find_spec(m) else 'NO'}" for m in ("torch", "torchvision", "cv2", "scipy", "skimage", "pydantic", "PIL", "matplotlib")))
PY
)
say "flowml from $where; modules: $have"
flowml nodes --json > "$out/nodes.json" 2> "$out/nodes.err" || true
say "flowml bench ${bench_args[*]:-(all scenarios)} in $empty, limit ${limit} s"
t0=$SECONDS; rc=0
timeout -k 15 "$limit" "$py" -m flowml.cli bench --out "$empty/bench-out" "${bench_args[@]}" > "$out/bench.stdout" 2> >(tee "$out/bench.log" >&2) || rc=$?
secs=$((SECONDS - t0)); sleep 0.5
[ -d "$empty/bench-out" ] && cp -r "$empty/bench-out" "$out/bench"
"$py" - "$out" "$rc" "$secs" "$limit" "$where" "$have" "${skipped[*]:-}" "${#flowml_whl[@]}" "${dep_whl[@]##*/}" <<'PY'
import json, re, sys
from pathlib import Path
out, rc, secs, limit, where, have, skipped, n_flowml, *deps = sys.argv[1:]
out = Path(out)
try:
    nodes = json.loads((out / "nodes.json").read_text())
    n_types, failed = len(nodes["node_types"]), [f["plugin"] for f in nodes["failed_plugins"]]
except Exception as exc:
    n_types, failed = 0, [f"flowml nodes failed: {exc}"]
scen, source = {}, "bench.json"
bj = out / "bench" / "bench.json"
if bj.exists():
    scen = json.loads(bj.read_text())["scenarios"]
else:  # cut short: the per-scenario lines of the log
    source = "bench.log (the bench did not finish)"
    for line in (out / "bench.log").read_text(errors="replace").splitlines():
        m = re.match(r"\[bench\] (\w+): (\{.*\})$", line)
        if m:
            scen[m[1]] = json.loads(m[2])
    started = re.findall(r"\[bench\] (\w+) \.\.\.$", (out / "bench.log").read_text(errors="replace"), re.M)
    for s in started:
        scen.setdefault(s, {"error": f"still running when the {limit} s limit ended the bench"})
def status(r):
    if "error" in r: return "error: " + str(r["error"])[:300]
    if "skipped" in r: return "skipped: " + str(r["skipped"])[:200]
    return "ok" + ("" if r.get("met", True) else " (target not met)")
res = {"rc": int(rc), "seconds": int(secs), "limit_s": int(limit), "timed_out": int(rc) in (124, 137),
       "flowml_from": where, "modules": have, "flowml_wheels": int(n_flowml), "dependency_wheels": deps,
       "dependencies_already_in_image": skipped.split(), "node_types": n_types, "failed_plugins": failed,
       "results_from": source, "scenarios": {k: status(v) for k, v in scen.items()}}
(out / "wheels-bench.json").write_text(json.dumps(res, indent=2))
lines = [f"flowml from built wheels ({n_flowml} flowml + {len(deps)} dependency wheels), run from an empty dir",
         f"flowml imported from {where}", f"modules: {have}",
         f"flowml nodes: {n_types} node types, failed plugins: {failed or 'none'}",
         f"flowml bench: rc {rc}, {secs} s (limit {limit} s){' TIMED OUT' if res['timed_out'] else ''}; results from {source}"]
lines += [f"  {k}: {v}" for k, v in res["scenarios"].items()]
if not scen:
    lines += ["  bench.log ends:"] + ["    " + l for l in (out / "bench.log").read_text(errors="replace").splitlines()[-8:]]
m = scen.get("matting", {})
if "error" not in m and m:
    lines.append("  matting figures: " + ", ".join(f"{k} {v:.4g}" for k, v in m.items() if isinstance(v, float))[:600])
(out / "summary.txt").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
exit "$rc"
