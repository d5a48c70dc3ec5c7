#!/usr/bin/env bash
# On the GPU machine: the steps of a steps file, one after another, under one time budget.
# A steps file has lines "NAME SECONDS COMMAND..." (# comments); each step is cut at its SECONDS
# or at what is left of BUDGET_S (default 570: one device call lasts at most 600 s), and one with
# under 20 s left is skipped. NAMEs pick steps, in the file's order (default: all). A step writes
# its own files under $STEP_OUT ($OUT/NAME); its output goes to $OUT/NAME.txt and a summary line
# (rc, seconds, its last line) to $OUT/steps.txt and stdout. The device tool brings back 8 files
# at most, 16 MiB each: past 8, all but steps.txt end in one $OUT/all.tar.gz (a warning in
# steps.txt where that is over 16 MiB).
#   source scripts/gpu-kit-env.sh && scripts/gpu-steps.sh benchmarks/gpu-next.steps av-cuda sg2-eager
set -uo pipefail
steps=${1:?usage: $0 STEPS_FILE [NAME...]}; shift
out=${OUT:?set OUT}; budget=${BUDGET_S:-570}; start=$SECONDS
want=" $* "
while read -r name secs cmd; do
  case "$name" in ''|\#*) continue ;; esac
  [ $# = 0 ] || [[ "$want" == *" $name "* ]] || continue
  left=$(( budget - (SECONDS - start) ))
  if [ "$left" -lt 20 ]; then echo "$name: skipped (${left} s left)" | tee -a "$out/steps.txt"; continue; fi
  [ "$secs" -le "$left" ] || secs=$left
  export STEP_OUT=$out/$name; mkdir -p "$STEP_OUT"
  t0=$SECONDS
  timeout -k 10 "$secs" bash -c "$cmd" > "$out/$name.txt" 2>&1 < /dev/null
  rc=$?
  last=$(grep -v '^\s*$' "$out/$name.txt" | tail -1 | cut -c1-160)
  echo "$name: rc $rc, $(( SECONDS - t0 )) s (limit $secs): $last" | tee -a "$out/steps.txt"
  [ -n "$(find "$STEP_OUT" -type f)" ] || rmdir "$STEP_OUT"
done < "$steps"
# the device tool brings back 8 files at most: past that, all but steps.txt in one tarball
if [ "$(find "$out" -type f | wc -l)" -gt 8 ]; then
  (cd "$out" && find . -type f ! -name steps.txt ! -name all.tar.gz -print0 | tar czf all.tar.gz --null -T - \
     && find . -type f ! -name steps.txt ! -name all.tar.gz -delete && find . -mindepth 1 -type d -empty -delete)
  [ "$(stat -c %s "$out/all.tar.gz")" -le $((16 << 20)) ] \
    || echo "all.tar.gz is over 16 MiB: the device tool will not bring it back; write less" | tee -a "$out/steps.txt"
fi
