#!/usr/bin/env bash
# make mutate: applies each mutant of tests/mutate/mutants.txt, one at a time,
# to a scratch copy of the tree, builds the tests that must catch it, runs
# them, and reports killed or survived. Exits 1 when a mutant survived or did
# not apply (or build).
#
#   tests/mutate/run.sh [NAME...]     only the named mutants
#   MUTATE_DIR=DIR                    scratch directory (default build-mutate)
#
# A mutant is killed when one of its tests fails or times out (a mutant that
# hangs is caught too). The tests run with CS_TEST_SCALE=small and a fixed
# CS_SEED, so that a verdict is reproducible.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
list="$root/tests/mutate/mutants.txt"
scratch=${MUTATE_DIR:-$root/build-mutate}
src="$scratch/src"
build="$scratch/build"
only=("$@")

mkdir -p "$scratch"
cp "$list" "$scratch/mutants.txt" # the list as it is now, whatever happens to it meanwhile
echo "mutate: copying the tree to $src"
rm -rf "$src"
mkdir -p "$src"
(cd "$root" && git ls-files -z --cached --others --exclude-standard | \
  tar --null -T - -cf - ) | tar -xf - -C "$src"
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCS_BUILD_BENCH=OFF \
    >"$scratch/configure.log" 2>&1 || { cat "$scratch/configure.log"; exit 1; }
fi
echo "mutate: building the tests once"
cmake --build "$build" >"$scratch/build.log" 2>&1 || { tail -30 "$scratch/build.log"; exit 1; }

killed=0 survived=0 broken=0 total=0
report=()
start_all=$(date +%s)
# Records: "mutant NAME", then "file", "in", "find", "repl", "tests" lines.
run_one() {
  local name=$1 file=$2 func=$3 find=$4 repl=$5 tests=$6
  local t0 verdict="survived" by=""
  t0=$(date +%s)
  total=$((total + 1))
  cp "$src/$file" "$scratch/pristine"
  if ! perl "$root/tests/mutate/apply.pl" "$src/$file" "$func" "$find" "$repl" 2>"$scratch/apply.err"; then
    verdict="does-not-apply"; by=$(cat "$scratch/apply.err")
  else
    local targets=() t
    for t in $tests; do
      t=${t%%:*}
      if [ "${t%.sh}" != "$t" ]; then targets+=(cosmicsync); else targets+=("$t"); fi
    done
    if ! cmake --build "$build" --target "${targets[@]}" >"$scratch/build.log" 2>&1; then
      verdict="does-not-build"; by=$(grep -m1 -E "error" "$scratch/build.log")
    else
      for t in $tests; do
        local bin=${t%%:*} filter=""
        [ "$t" != "$bin" ] && filter=${t#*:}
        local args=(--jobs 2 --short-filename)
        [ -n "$filter" ] && args+=(--filter "$filter")
        if [ "${bin%.sh}" != "$bin" ]; then
          (cd "$build" && CS_TEST_SCALE=small timeout 300 bash "$src/tests/cli/$bin" "$build/cosmicsync") \
            >"$scratch/test.log" 2>&1
        else
          (cd "$build" && CS_TEST_SCALE=small CS_SEED=20261208 timeout 300 "./tests/$bin" "${args[@]}") \
            >"$scratch/test.log" 2>&1
        fi
        local rc=$?
        if [ $rc -ne 0 ] || ! grep -qE "Tested: [1-9]|^ok |checks, 0 failed|converged" "$scratch/test.log"; then
          if [ $rc -ne 0 ]; then verdict="killed"; by=$t; break; fi
          verdict="no-test-ran"; by=$t; break
        fi
      done
    fi
  fi
  cp "$scratch/pristine" "$src/$file"
  case $verdict in
    killed) killed=$((killed + 1)) ;;
    survived) survived=$((survived + 1)) ;;
    *) broken=$((broken + 1)) ;;
  esac
  local secs=$(( $(date +%s) - t0 ))
  printf 'mutate: %-40s %-15s %4ss  %s\n' "$name" "$verdict" "$secs" "$by"
  report+=("$verdict $name")
}

name="" file="" func="" find="" repl="" tests=""
flush() {
  if [ -n "$name" ]; then
    local want=1
    if [ ${#only[@]} -gt 0 ]; then
      want=0
      for o in "${only[@]}"; do [ "$o" = "$name" ] && want=1; done
    fi
    [ $want -eq 1 ] && run_one "$name" "$file" "$func" "$find" "$repl" "$tests"
  fi
  name="" file="" func="" find="" repl="" tests=""
}
while IFS= read -r line || [ -n "$line" ]; do
  case $line in
    "#"*|"") continue ;;
    "mutant "*) flush; name=${line#mutant } ;;
    "  file "*) file=${line#  file } ;;
    "  in "*) func=${line#  in } ;;
    "  find "*) find=${line#  find } ;;
    "  repl "*) repl=${line#  repl } ;;
    "  tests "*) tests=${line#  tests } ;;
    *) echo "mutate: bad line in tests/mutate/mutants.txt: $line"; exit 1 ;;
  esac
done <"$scratch/mutants.txt"
flush

echo "mutate: $total mutants, $killed killed, $survived survived, $broken did not apply, build or run a test ($(( $(date +%s) - start_all )) s)"
[ $survived -eq 0 ] && [ $broken -eq 0 ]
