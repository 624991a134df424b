#!/usr/bin/env bash
# A short, fixed-seed libFuzzer run of each fuzz target (tools/test.sh runs it; CI-sized):
# manifest_fuzz (plugin manifests), safetensors_fuzz (safetensors headers) and gguf_fuzz
# (GGUF headers + dequantization).
#   tests/fuzz/run_short.sh [BUILD_DIR]
# BUILD_DIR defaults to $QFORGE_FUZZ_BUILD_DIR, else build-fuzz/ in the repository root. It is a
# separate clang build (-DQFORGE_FUZZ=ON); only the fuzz targets are built. The committed
# corpus is copied first, so the run never writes into the repository.
# Prints one summary line per target; exits non-zero if a fuzzer finds a crash or cannot run.
#   QFORGE_FUZZ_RUNS   executions per target (default 20000)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-${QFORGE_FUZZ_BUILD_DIR:-$root/build-fuzz}}
runs=${QFORGE_FUZZ_RUNS:-20000}
# target:max_len; each has corpus/<name>/ and <name>.dict
targets="manifest:4096 safetensors:8192 gguf:8192"

for tool in clang clang++; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "run_short.sh: $tool not found; install clang (tools/bootstrap.sh does) to fuzz" >&2
    exit 1
  fi
done

mkdir -p "$build"
if ! CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DQFORGE_FUZZ=ON \
    -DQFORGE_BUILD_PLUGINS=OFF -DQFORGE_BUILD_TESTS=ON >"$build/fuzz-configure.log" 2>&1; then
  cat "$build/fuzz-configure.log" >&2
  echo "run_short.sh: configuring $build failed (log above)" >&2
  exit 1
fi
if ! cmake --build "$build" -j2 --target manifest_fuzz safetensors_fuzz gguf_fuzz >"$build/fuzz-build.log" 2>&1; then
  tail -n 60 "$build/fuzz-build.log" >&2
  echo "run_short.sh: building the fuzz targets failed (log above)" >&2
  exit 1
fi

work_root=$(mktemp -d "${TMPDIR:-/tmp}/qforge-fuzz.XXXXXX")
trap 'rm -rf "$work_root"' EXIT
failed=0
for spec in $targets; do
  name=${spec%%:*}
  max_len=${spec##*:}
  corpus_src=$root/tests/fuzz/corpus/$name
  work=$work_root/$name
  mkdir -p "$work/corpus" "$work/artifacts"
  cp "$corpus_src"/* "$work/corpus/"
  seeds=$(find "$work/corpus" -type f | wc -l)

  start=$(date +%s)
  status=0
  "$build/tests/fuzz/${name}_fuzz" -seed=1 -runs="$runs" -max_len="$max_len" \
    -dict="$root/tests/fuzz/$name.dict" -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log" 2>&1 || status=$?
  elapsed=$(( $(date +%s) - start ))

  crashes=$(find "$work/artifacts" -type f | wc -l)
  # libFuzzer's last status line: "#20000 DONE cov: 1234 ft: 2345 corp: 120/9Kb ..."
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$work/log" | tail -n 1 || true)
  execs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$done_line")
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$done_line")
  corp=$(sed -nE 's/.* corp: ([0-9]+)\/.*/\1/p' <<<"$done_line")

  if [ "$status" -ne 0 ] || [ "$crashes" -ne 0 ] || [ -z "$done_line" ]; then
    tail -n 40 "$work/log" >&2
    mkdir -p "$build/fuzz-artifacts/$name"
    cp -r "$work/artifacts/." "$build/fuzz-artifacts/$name/" 2>/dev/null || true
    echo "${name}_fuzz: FAILED (exit $status, crashes $crashes); inputs kept in" \
         "$build/fuzz-artifacts/$name/ - minimise one, add it to tests/fuzz/crashes/$name/ and fix" >&2
    failed=1
    continue
  fi
  echo "${name}_fuzz: ${execs} executions in ${elapsed} s (seed 1), corpus ${seeds} -> ${corp}" \
       "inputs, edge coverage ${cov}, crashes 0"
done
exit "$failed"
