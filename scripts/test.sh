#!/usr/bin/env bash
# test.sh — install, build and run the full test suite, the way CI does:
#   1. house rules (scripts/check.sh)
#   2. gcc build with -Werror: unit, integration tests, examples
#   3. clang build with ASan+UBSan and libFuzzer: the same tests again under the
#      sanitizers, plus every fuzz target for SL_FUZZ_SECONDS on its seed corpus
# Ends with ctest's summary line. Exit status: 0 only if everything passed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/check.sh

jobs=$(nproc)
export CTEST_OUTPUT_ON_FAILURE=1
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

echo "== build: gcc, -Werror"
scripts/build.sh build/test-gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=gcc -DSL_WERROR=ON
echo "== tests: gcc build"
(cd build/test-gcc && ctest -j"$jobs" --timeout 300)

echo "== build: clang, ASan+UBSan, libFuzzer"
scripts/build.sh build/test-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang-14 \
    -DSL_WERROR=ON -DSL_SANITIZE=ON -DSL_FUZZ=ON -DSL_FUZZ_SECONDS="${SL_FUZZ_SECONDS:-20}"
echo "== tests: ASan+UBSan build, fuzz targets"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build/test-asan && ctest -j"$jobs" --timeout 600)
