#!/usr/bin/env bash
# The main job, end to end: dependencies, build the qforge CLI and the in-tree plugins (nothing
# else), then `qforge doctor`. The next issue makes this quantize a model.
#   QFORGE_BUILD_DIR   build folder (default: build/ in the repo root, shared with tools/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${QFORGE_BUILD_DIR:-$root/build}

tools/bootstrap.sh

# The in-tree plugins' targets, as their CMakeLists.txt name them in qforge_add_plugin(...).
targets=(qforge_cli)
for cml in plugins/*/CMakeLists.txt; do
  [ -f "$cml" ] || continue
  while read -r name; do
    targets+=("$name")
  done < <(sed -n 's/^[[:space:]]*qforge_add_plugin([[:space:]]*\([A-Za-z0-9_.-]*\).*/\1/p' "$cml")
done

cmake -S "$root" -B "$build" >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"

echo
"$build/bin/qforge" doctor
