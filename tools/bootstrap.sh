#!/usr/bin/env bash
# Installs every build and test dependency of qforge from Debian packages. Idempotent and quiet
# when everything is present: it asks dpkg first and touches apt only for what is missing.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libtorch-dev
  # LibTorch's CPU matmuls go through libblas.so.3; without this Debian's alternative is the
  # reference BLAS, ~20x slower (calibration, verify, the runtime). docs/runtime.md "BLAS".
  libopenblas0-pthread
  libboost-dev               # Boost.DLL is header-only and ships here
  libboost-filesystem-dev
  libyaml-cpp-dev nlohmann-json3-dev libspdlog-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libdlpack-dev libssl-dev
  clang libclang-rt-14-dev   # libFuzzer and sanitizer runtimes for tests/fuzz
  clang-format
)

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "bootstrap: all dependencies present"
  exit 0
fi

echo "bootstrap: installing ${missing[*]}"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "bootstrap: not root and sudo is not available; install as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
