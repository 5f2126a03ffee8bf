#!/usr/bin/env bash
# Compiles every kernel source on its own (nvcc -c -arch=sm_90a FILE.cu), so that no file depends
# on what tinyllama.cu included before it: each .cu here, and those of kernels/src/test/cuda that
# are kernels rather than harnesses. Exits non-zero naming the first file that does not compile.
# Usage: kernels/src/main/cuda/check-standalone.sh      (NVCC overrides the compiler)
set -euo pipefail
dir=$(cd "$(dirname "$0")" && pwd)
nvcc_bin=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in "$dir"/*.cu "$dir"/../../test/cuda/flash_attention.cu "$dir"/../../test/cuda/attention_fused_sm90.cu; do
  [ "$(basename "$f")" = tinyllama.cu ] && continue
  if ! "$nvcc_bin" -c -std=c++17 -arch=sm_90a -o "$tmp/$(basename "$f").o" "$f"; then
    echo "check-standalone: $(basename "$f") does not compile on its own" >&2
    exit 1
  fi
  echo "check-standalone: $(basename "$f") ok"
done
