#!/bin/sh
# bench_compare_smoke: the comparison harness end to end at tiny sizes.
# usage: test_bench_smoke.sh <source-dir> <build-dir>
# Exit 77 (skipped) when it cannot run here: no Node, or no Node engines and no
# way to install them.
src=$1
build=$2
peers="$src/bench/peers"

command -v node >/dev/null 2>&1 || { echo "SKIP: node not installed"; exit 77; }
if [ ! -d "$peers/node_modules" ]; then
  command -v npm >/dev/null 2>&1 || { echo "SKIP: node_modules missing and npm not installed"; exit 77; }
  # A short probe first, so that an offline machine skips quickly instead of
  # waiting for npm's own retries.
  if ! (cd "$peers" && timeout 30 npm ping --fetch-retries=0 >/dev/null 2>&1); then
    echo "SKIP: node_modules missing and the npm registry is unreachable"
    exit 77
  fi
  (cd "$peers" && npm ci --no-audit --no-fund --loglevel=error) || {
    echo "SKIP: npm ci failed (registry unreachable?)"
    exit 77
  }
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
node "$src/bench/compare/harness.mjs" --smoke --build "$build" --timeout 120 >"$out" 2>&1
rc=$?
cat "$out"
[ $rc -eq 0 ] || exit $rc
# The harness reports a contender that failed to build or run and goes on:
# the smoke run passes only when every workload has its cosmicsync rows.
for row in "W1 cosmicsync-store-sync" "W1 cosmicsync-mem" "W2 cosmicsync-mem" \
           "W3 cosmicsync-store-sync" "W3 cosmicsync-mem"; do
  w=${row%% *} c=${row#* }
  if ! grep -qE "^$w +$c " "$out"; then
    echo "FAIL: no $c row for $w (did its benchmark program build and run?)"
    exit 1
  fi
done
