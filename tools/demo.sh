#!/usr/bin/env bash
# The main job, end to end: dependencies, build the CLI, the model generator and the in-tree
# plugins (nothing else), then on a generated Llama-shaped model (bf16, ~26 M parameters, 96% of
# them in linear layers):  qforge plan -> qforge quantize --method nf4 -> qforge inspect,
# the footprint ratio, ending with the qforge verify summary.
#   QFORGE_BUILD_DIR   build folder (default: build/ in the repo root, shared with tools/test.sh)
#   QFORGE_DEMO_DIR    where the model and its quantized copy go (default: <build>/demo)
#   QFORGE_DEMO_METHOD method or preset to quantize with (default: nf4)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${QFORGE_BUILD_DIR:-$root/build}
demo=${QFORGE_DEMO_DIR:-$build/demo}
method=${QFORGE_DEMO_METHOD:-nf4}

tools/bootstrap.sh
. tools/blas-env.sh  # OpenBLAS kernels by the CPU's flags (docs/runtime.md "BLAS kernels")

# The in-tree plugins' targets, as their CMakeLists.txt name them in qforge_add_plugin(...).
targets=(qforge_cli qforge_make_model)
for cml in plugins/*/CMakeLists.txt; do
  [ -f "$cml" ] || continue
  while read -r name; do
    targets+=("$name")
  done < <(sed -n 's/^[[:space:]]*qforge_add_plugin([[:space:]]*\([A-Za-z0-9_.-]*\).*/\1/p' "$cml")
done

cmake -S "$root" -B "$build" >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"
qforge=$build/bin/qforge

mkdir -p "$demo"
echo
echo "== 1. generate a Llama-shaped checkpoint: $demo/model"
"$build/bin/qforge-make-model" --out "$demo/model" --force

echo
echo "== 2. qforge plan (dry run: nothing is read or written)"
"$qforge" plan "$demo/model" --method "$method"

echo
echo "== 3. qforge quantize --method $method"
"$qforge" quantize "$demo/model" -o "$demo/model-$method" --method "$method" --force

echo
echo "== 4. qforge inspect"
"$qforge" inspect "$demo/model-$method" | tail -n 3

before=$(du -b "$demo/model"/*.safetensors | awk '{s+=$1} END {print s}')
after=$(du -b "$demo/model-$method"/*.safetensors | awk '{s+=$1} END {print s}')
echo
awk -v b="$before" -v a="$after" 'BEGIN { printf "footprint ratio (safetensors bytes before / after): %.2f  (%d -> %d bytes)\n", b / a, b, a }'

# The demo model has random weights: its next-token distributions are nearly flat, so 4-bit
# noise flips many argmaxes while cosine, KL and perplexity stay close. The defaults
# (docs/verify.md) are for trained models; top-1 gets the random-weight figure.
echo
echo "== 5. qforge verify: the $method checkpoint against the original (report: $demo/verify/report.md)"
"$qforge" verify "$demo/model" "$demo/model-$method" --report "$demo/verify/report.md" \
  --threshold top1=0.25
