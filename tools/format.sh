#!/usr/bin/env bash
# Formats qforge's own C/C++ sources with clang-format (.clang-format at the repo root).
#   tools/format.sh           rewrite files in place
#   tools/format.sh --check   report files that differ (exit 1 if any), change nothing
# Only our folders are touched: host/ plugins/ plugin-api/ tools/ tests/ (never third-party code
# or build trees).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=fix
if [ "${1:-}" = "--check" ]; then mode=check; fi

clang_format=${CLANG_FORMAT:-clang-format}
if ! command -v "$clang_format" >/dev/null 2>&1; then
  echo "format: $clang_format not found; run tools/bootstrap.sh" >&2
  exit 2
fi

mapfile -d '' files < <(find host plugins plugin-api tools tests \
  \( -name build -o -name 'build-*' -o -name third_party -o -name corpus \) -prune -o \
  -type f \( -name '*.c' -o -name '*.h' -o -name '*.cpp' -o -name '*.hpp' -o -name '*.cu' \
  -o -name '*.cuh' -o -name '*.hip' \) -print0 2>/dev/null | sort -z)

if [ ${#files[@]} -eq 0 ]; then
  exit 0
fi

if [ "$mode" = fix ]; then
  "$clang_format" -i --style=file "${files[@]}"
  exit 0
fi

bad=()
for f in "${files[@]}"; do
  if ! "$clang_format" --style=file --dry-run --Werror "$f" >/dev/null 2>&1; then
    bad+=("$f")
  fi
done
if [ ${#bad[@]} -gt 0 ]; then
  echo "format: ${#bad[@]} of ${#files[@]} files need clang-format (run tools/format.sh):" >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "format: ${#files[@]} files clean"
