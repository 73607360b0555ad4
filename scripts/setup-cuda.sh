#!/usr/bin/env bash
# Installs the pinned CUDA 13.0 toolchain (nvcc, nvvm, cudart, crt, cccl) and libclang
# from PyPI wheels into a private venv (or, where python3-venv is missing, a private
# `pip --target` directory), then prints the environment to use:
#
#     eval "$(scripts/setup-cuda.sh)"
#
# Idempotent: a finished install is recognised by a stamp file holding the pin list, so a
# second run costs a few milliseconds. Progress goes to stderr; stdout carries only the
# `export` lines. Cache dir: $ROSA_CUDA_CACHE, default ~/.cache/rosa/cuda-13.0.
#
# Why these exact pins: the GPU machines run a 13.0 driver, which refuses cubins and PTX
# from a newer toolkit; and nvidia-nvvm left free resolves to a newer cicc whose output
# ptxas 13.0 rejects.
set -euo pipefail

PINS=(
  "nvidia-cuda-nvcc==13.0.88"
  "nvidia-nvvm==13.0.88"
  "nvidia-cuda-runtime==13.0.96"
  "nvidia-cuda-crt==13.0.88"
  "nvidia-cuda-cccl==13.0.85"
  "libclang==18.1.1"
)

CACHE="${ROSA_CUDA_CACHE:-$HOME/.cache/rosa/cuda-13.0}"
VENV="$CACHE/venv"
STAMP="$CACHE/.installed"
PYTHON="${PYTHON:-python3}"

log() { printf '[setup-cuda] %s\n' "$*" >&2; }

want_stamp="$(printf '%s\n' "${PINS[@]}")"
installed() { [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want_stamp" ]]; }

if ! installed; then
  log "installing CUDA 13.0 wheels into $CACHE (about 400 MB, once)"
  rm -rf "$VENV" "$CACHE/site"
  mkdir -p "$CACHE"
  if "$PYTHON" -m venv "$VENV" >&2 2>/dev/null && [[ -x "$VENV/bin/pip" ]]; then
    "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q \
      "${PINS[@]}" >&2
  else
    # Debian without python3-venv: no ensurepip, so no venv. A --target install into a
    # private directory needs only pip, and touches nothing of the system's Python.
    log "python3 -m venv is unavailable; installing with pip --target instead"
    rm -rf "$VENV"
    PIP_BREAK_SYSTEM_PACKAGES=1 "$PYTHON" -m pip install --disable-pip-version-check \
      --no-input -q --target "$CACHE/site" "${PINS[@]}" >&2
  fi
fi

if [[ -x "$VENV/bin/python" ]]; then
  SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
else
  SITE="$CACHE/site"
fi
CUDA_HOME="$SITE/nvidia/cu13"
LIBCLANG_DIR="$SITE/clang/native"

[[ -x "$CUDA_HOME/bin/nvcc" ]] || { log "nvcc missing under $CUDA_HOME/bin"; exit 1; }
[[ -d "$CUDA_HOME/nvvm" ]] || { log "nvvm missing under $CUDA_HOME"; exit 1; }
ls "$LIBCLANG_DIR"/libclang*.so* >/dev/null 2>&1 || { log "libclang missing under $LIBCLANG_DIR"; exit 1; }

# bindgen and the cc crate look for an unversioned libclang.so / libcudart_static.a; the
# wheels ship versioned names only on some releases, so link the plain name when absent.
if [[ ! -e "$LIBCLANG_DIR/libclang.so" ]]; then
  so="$(ls "$LIBCLANG_DIR"/libclang*.so* | head -n1)"
  ln -sf "$(basename "$so")" "$LIBCLANG_DIR/libclang.so"
fi
# nvcc looks for the toolkit's lib64/ next to lib/ when linking; the wheel only has lib/.
[[ -e "$CUDA_HOME/lib64" ]] || ln -s lib "$CUDA_HOME/lib64"
if [[ ! -e "$CUDA_HOME/lib/libcudart.so" ]]; then
  so="$(ls "$CUDA_HOME"/lib/libcudart.so.* 2>/dev/null | head -n1 || true)"
  [[ -n "$so" ]] && ln -sf "$(basename "$so")" "$CUDA_HOME/lib/libcudart.so"
fi

# A smoke compile proves nvcc finds cicc (nvvm), the crt headers and cudart together.
if ! installed; then
  log "checking nvcc"
  PATH="$CUDA_HOME/bin:$PATH" "$CUDA_HOME/bin/nvcc" --version >&2
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  cat >"$tmp/smoke.cu" <<'CU'
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <cub/warp/warp_reduce.cuh>
__global__ void k(float *x) { x[threadIdx.x] = __half2float(__float2half(1.0f)); }
int main() { return cudaGetLastError() == cudaSuccess ? 0 : 0; }
CU
  PATH="$CUDA_HOME/bin:$PATH" "$CUDA_HOME/bin/nvcc" -std=c++17 \
    -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=compute_90 \
    -cudart static -o "$tmp/smoke" "$tmp/smoke.cu" >&2
  printf '%s' "$want_stamp" >"$STAMP"
  log "toolchain ready"
fi

printf 'export CUDA_HOME=%q\n' "$CUDA_HOME"
printf 'export CUDA_PATH=%q\n' "$CUDA_HOME"
printf 'export NVCC=%q\n' "$CUDA_HOME/bin/nvcc"
printf 'export LIBCLANG_PATH=%q\n' "$LIBCLANG_DIR"
printf 'export PATH=%q:"$PATH"\n' "$CUDA_HOME/bin"
