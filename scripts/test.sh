#!/usr/bin/env bash
# Install, build and run every test: a normal build, then the whole suite
# again under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)
# formatting is part of the build: .clang-format, clang-format 14 keys
clang-format --dry-run --Werror $(git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build*')
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure)
# Mutants of node/spool.c, each with one durability step taken away: the
# crash test under the power-cut harness must lose mail on every one (a
# test that passes without the step does not test it). One meshnode build
# each; the harness and meshctl come from the normal build.
for m in NO_SYNCER_FDATASYNC NO_SEGMENT_DIRSYNC NO_SPOOL_DIRSYNC; do
  cmake -S . -B "build-mutant-$m" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMM_MUTANT="$m" >/dev/null
  cmake --build "build-mutant-$m" -j"$jobs" --target meshnode >/dev/null
  if out=$(POWERCUT_LIB=build/tests/libpowercut.so python3 tests/integration/meshnode_crash.py \
      "build-mutant-$m/node/meshnode" build/cli/meshctl tests/support/mkorg.py \
      conf/mailmesh.schema --kills 4 2>&1) || ! grep -q 'lost [1-9]' <<<"$out"; then
    echo "$out"
    echo "mutant $m: the crash test did not lose mail; it must fail without this step" >&2
    exit 1
  fi
  echo "mutant $m: the crash test fails as it must ($(grep -o 'acknowledged [0-9]* .*lost [0-9]*' <<<"$out"))"
done
CC=clang cmake -S . -B build-san -DCMAKE_BUILD_TYPE=Debug -DMM_SANITIZE=ON >/dev/null
cmake --build build-san -j"$jobs"
(cd build-san && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure)
