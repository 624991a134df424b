#!/usr/bin/env bash
# The one command CI runs (.ci/run): dependencies, a short fixed-seed fuzz run, configure, build,
# a format report, then every test. ctest runs last, so the output ends with its summary.
#   QFORGE_BUILD_DIR   build folder (default: build/ in the repo root)
#   QFORGE_WERROR      ON (default) or OFF: warnings as errors
#   QFORGE_FUZZ_BUILD_DIR  the fuzzer's clang build (default: <build>-fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${QFORGE_BUILD_DIR:-$root/build}
jobs=$(nproc)

tools/bootstrap.sh

# A separate clang build beside the main one (build-fuzz/ by default).
if [ -f tests/fuzz/run_short.sh ]; then
  bash tests/fuzz/run_short.sh "${QFORGE_FUZZ_BUILD_DIR:-$build-fuzz}"
fi

cmake -S "$root" -B "$build" -DQFORGE_WERROR="${QFORGE_WERROR:-ON}" -DQFORGE_BUILD_TESTS=ON
cmake --build "$build" -j"$jobs"

# Report-only until the whole tree has been formatted once; then this becomes a failure.
if ! tools/format.sh --check; then
  echo "test.sh: warning: clang-format differences above (not failing yet)" >&2
fi

cd "$build"
ctest --output-on-failure -j"$jobs"
