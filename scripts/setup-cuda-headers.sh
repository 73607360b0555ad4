#!/usr/bin/env bash
# The light half of scripts/setup-cuda.sh, for the `cuda-emu` feature: only the CUDA 13.0
# header wheels (cuda_runtime.h, cuda_fp16.h, cuda_bf16.h from nvidia-cuda-runtime, their
# crt/ headers, and <nv/target> from nvidia-cuda-cccl) plus libclang for bindgen, unpacked
# with `pip install --no-deps --target` (no venv, no nvcc). Then:
#
#     eval "$(scripts/setup-cuda-headers.sh)"
#
# Idempotent (a stamp file holds the pin list). Stdout carries only the export lines.
# Cache dir: $ROSA_CUDA_HEADERS_CACHE, default ~/.cache/rosa/cuda-13.0-headers.
set -euo pipefail

PINS=(
  "nvidia-cuda-runtime==13.0.96"
  "nvidia-cuda-crt==13.0.88"
  "nvidia-cuda-cccl==13.0.85"
  "libclang==18.1.1"
)

CACHE="${ROSA_CUDA_HEADERS_CACHE:-$HOME/.cache/rosa/cuda-13.0-headers}"
SITE="$CACHE/site"
STAMP="$CACHE/.installed"
PYTHON="${PYTHON:-python3}"
want_stamp="$(printf '%s\n' "${PINS[@]}")"

if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$want_stamp" ]]; then
  printf '[setup-cuda-headers] installing %s into %s\n' "${PINS[*]}" "$SITE" >&2
  rm -rf "$SITE"
  mkdir -p "$CACHE"
  PIP_BREAK_SYSTEM_PACKAGES=1 "$PYTHON" -m pip install --disable-pip-version-check --no-input \
    -q --no-deps --target "$SITE" "${PINS[@]}" >&2
  printf '%s' "$want_stamp" >"$STAMP"
fi

CUDA_HOME="$SITE/nvidia/cu13"
LIBCLANG_DIR="$SITE/clang/native"
for f in include/cuda_fp16.h include/cuda_runtime.h include/cccl/nv/target; do
  [[ -e "$CUDA_HOME/$f" ]] || { echo "[setup-cuda-headers] missing $CUDA_HOME/$f" >&2; exit 1; }
done
if [[ ! -e "$LIBCLANG_DIR/libclang.so" ]]; then
  so="$(ls "$LIBCLANG_DIR"/libclang*.so* | head -n1)"
  ln -sf "$(basename "$so")" "$LIBCLANG_DIR/libclang.so"
fi

printf 'export CUDA_HOME=%q\n' "$CUDA_HOME"
printf 'export LIBCLANG_PATH=%q\n' "$LIBCLANG_DIR"
