#!/usr/bin/env bash
# GPU check: build the bnb, fp8, hqq and gptq plugins (CUDA kernels) and their harness into one
# self-contained folder here, run it on a GPU machine that has only the NVIDIA driver (and cmake +
# nvcc, which the run does not need). docs/gpu.md, docs/fp8.md, docs/hqq.md and docs/gptq.md
# explain the steps.
#
#   tools/gpu-check.sh bundle [DIR]   dev machine (full qforge build deps, nvcc): builds bnb.so,
#                                     fp8.so, hqq.so, gptq.so and bnb_gpu_harness into DIR (default
#                                     build-gpu-bundle), checks that they need nothing beyond
#                                     libc / libstdc++ (ldd)
#   tools/gpu-check.sh run [DIR]      GPU machine: harness checks + R7 bench, log in
#                                     DIR/gpu-check.log (and $OUT/gpu-check.log when $OUT is set)
#   tools/gpu-check.sh harness [DIR]  GPU machine without a bundled harness: builds only the
#                                     harness with cmake + nvcc (needs dlpack.h) against
#                                     DIR/bnb.so, DIR/fp8.so, DIR/hqq.so and DIR/gptq.so
#
# Environment: QFORGE_GPU_ARCHS (bundle; default "90", e.g. "80;89;90"), QFORGE_GPU_BUILD
# (bundle's build tree; default build-gpu-tree), QFORGE_GPU_ITERATIONS (run; default 20),
# QFORGE_GPU_TIMEOUT (run; seconds, default 170), QFORGE_GPU_ONLY (run; "bnb", "fp8", "hqq" or
# "gptq" checks only one plugin).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mode=${1:-run}
dir=${2:-$repo/build-gpu-bundle}
case "$dir" in /*) ;; *) dir=$repo/$dir ;; esac

die() { echo "gpu-check: $*" >&2; exit 2; }

bundle() {
  local build=${QFORGE_GPU_BUILD:-$repo/build-gpu-tree}
  local archs=${QFORGE_GPU_ARCHS:-90}
  command -v cmake >/dev/null || die "cmake not found"
  [ -x /usr/local/cuda/bin/nvcc ] || command -v nvcc >/dev/null ||
    die "nvcc not found: install the CUDA toolkit (/usr/local/cuda)"
  cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DQFORGE_CUDA=ON \
    "-DCMAKE_CUDA_ARCHITECTURES=$archs" -DQFORGE_WERROR=ON >"$build.configure.log" 2>&1 ||
    { tail -30 "$build.configure.log"; die "configure failed (log: $build.configure.log)"; }
  cmake --build "$build" -j"${QFORGE_GPU_JOBS:-2}" --target bnb fp8 hqq gptq bnb_gpu_harness
  mkdir -p "$dir"
  cp "$build/lib/qforge/plugins/bnb.so" "$build/lib/qforge/plugins/bnb.yaml" \
    "$build/lib/qforge/plugins/fp8.so" "$build/lib/qforge/plugins/fp8.yaml" \
    "$build/lib/qforge/plugins/hqq.so" "$build/lib/qforge/plugins/hqq.yaml" \
    "$build/lib/qforge/plugins/gptq.so" "$build/lib/qforge/plugins/gptq.yaml" \
    "$build/tests/gpu/bnb_gpu_harness" "$dir/"
  cp "$repo/tools/gpu-check.sh" "$dir/"
  # Allowed runtime dependencies: the C library family, libstdc++ and libgcc (plugin only).
  local bad
  bad=$(ldd "$dir/bnb.so" "$dir/fp8.so" "$dir/hqq.so" "$dir/gptq.so" "$dir/bnb_gpu_harness" |
    awk '/=>/ {print $1}' |
    grep -vE '^(libc|libm|libstdc\+\+|libgcc_s|libdl|libpthread|librt|ld-linux-x86-64)\.so' || true)
  [ -z "$bad" ] || die "unexpected runtime dependencies: $bad"
  # The bundle must report "no CUDA device" (exit 77) here, or pass where a GPU exists.
  local rc=0
  "$dir/bnb_gpu_harness" --plugin "$dir/bnb.so" --fp8-plugin "$dir/fp8.so" \
    --hqq-plugin "$dir/hqq.so" --gptq-plugin "$dir/gptq.so" --no-checks >/dev/null || rc=$?
  [ "$rc" = 77 ] || [ "$rc" = 0 ] || die "bundle self-check failed (exit $rc)"
  du -sh "$dir"
  echo "gpu-check: bundle ready in $dir (self-check exit $rc); on the GPU machine run:"
  echo "  tools/gpu-check.sh run ${dir#"$repo"/}"
}

harness() {
  [ -f "$dir/bnb.so" ] || die "$dir/bnb.so missing: build it with 'tools/gpu-check.sh bundle' first"
  local build=$dir/harness-build
  cmake -S "$repo/tests/gpu" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    "-DQFORGE_BNB_PLUGIN=$dir/bnb.so" "-DQFORGE_FP8_PLUGIN=$dir/fp8.so" \
    "-DQFORGE_HQQ_PLUGIN=$dir/hqq.so" "-DQFORGE_GPTQ_PLUGIN=$dir/gptq.so" \
    "-DCMAKE_CUDA_ARCHITECTURES=${QFORGE_GPU_ARCHS:-90}"
  cmake --build "$build" -j"${QFORGE_GPU_JOBS:-4}"
  cp "$build/bnb_gpu_harness" "$dir/"
}

run() {
  [ -f "$dir/bnb.so" ] || die "$dir/bnb.so missing: run 'tools/gpu-check.sh bundle $dir' on the build machine"
  [ -f "$dir/fp8.so" ] || die "$dir/fp8.so missing: re-run 'tools/gpu-check.sh bundle $dir' (bundles from before the fp8 plugin lack it)"
  [ -f "$dir/hqq.so" ] || die "$dir/hqq.so missing: re-run 'tools/gpu-check.sh bundle $dir' (bundles from before the hqq plugin lack it)"
  [ -f "$dir/gptq.so" ] || die "$dir/gptq.so missing: re-run 'tools/gpu-check.sh bundle $dir' (bundles from before the gptq kernels lack it)"
  [ -x "$dir/bnb_gpu_harness" ] || harness
  local only=()
  [ -z "${QFORGE_GPU_ONLY:-}" ] || only=(--only "$QFORGE_GPU_ONLY")
  local log=$dir/gpu-check.log
  [ -w "$dir" ] || log=${OUT:-/tmp}/gpu-check.log
  {
    echo "== gpu-check $(date -u +%FT%TZ) on $(hostname)"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || true
  } | tee "$log"
  local rc=0
  timeout "${QFORGE_GPU_TIMEOUT:-170}" "$dir/bnb_gpu_harness" --plugin "$dir/bnb.so" \
    --fp8-plugin "$dir/fp8.so" --hqq-plugin "$dir/hqq.so" --gptq-plugin "$dir/gptq.so" \
    "${only[@]}" --bench --iterations "${QFORGE_GPU_ITERATIONS:-20}" \
    2>&1 | tee -a "$log" || rc=${PIPESTATUS[0]}
  echo "== harness exit code $rc (0 all PASS, 1 a FAIL, 77 no GPU, 124 timeout)" | tee -a "$log"
  if [ -n "${OUT:-}" ] && [ "$log" != "$OUT/gpu-check.log" ]; then cp "$log" "$OUT/gpu-check.log"; fi
  return "$rc"
}

case "$mode" in
  bundle) bundle ;;
  run) run ;;
  harness) harness ;;
  *) die "unknown mode '$mode' (bundle | run | harness)" ;;
esac
