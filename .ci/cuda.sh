#!/usr/bin/env bash
# CI for the `cuda` feature (called by .ci/run). Needs only stable Rust, gcc, Python 3 with
# pip and network to PyPI and crates.io: the toolchain comes from scripts/setup-cuda.sh,
# cached in $ROSA_CUDA_CACHE (default ~/.cache/rosa/cuda-13.0). CI has no GPU: the GPU
# tests report themselves skipped and pass; everything else (the kernels compiling for
# sm_80/sm_90, the bindings, clippy, the tile table, the no-GPU error path) is checked.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$SECONDS
echo "== cuda: toolchain"
eval "$(scripts/setup-cuda.sh)"
"$NVCC" --version | tail -n 2
echo "== cuda: toolchain ready in $((SECONDS - start)) s ($(du -sh "${ROSA_CUDA_CACHE:-$HOME/.cache/rosa/cuda-13.0}" | cut -f1) cached)"

echo "== cuda: clippy"
cargo clippy --features cuda --all-targets -- -D warnings

echo "== cuda: test"
cargo test --features cuda

echo "== cuda: machine-code report (registers, spills, loads in flight; fails on a spill)"
scripts/sass-report.sh

echo "== cuda: ok in $((SECONDS - start)) s"
