#!/usr/bin/env bash
# Registers, spills, local memory and load batching of every csrc/ kernel instantiation in
# sm_90 machine code, without a GPU (issue 17, item 4):
#
#     scripts/sass-report.sh            # Markdown table on stdout
#
# Compiles each csrc/*.cu to a cubin with the pinned nvcc (scripts/setup-cuda.sh) and
# `-Xptxas -v`, disassembles it with cuobjdump, and hands both to scripts/sass_report.py,
# which prints the table and fails (exit 1) when a kernel spills or an SpMM fast-path
# kernel keeps fewer than 4 128-bit loads in flight. The nvcc flags are build.rs's (C++17,
# -lineinfo, relocatable device code as the cc crate compiles it), so the code measured is
# the code the `cuda` feature ships.
#
# The disassemblers come from PyPI (nvidia-cuda-cuobjdump and nvidia-cuda-nvdisasm, about
# 5 MB) into $ROSA_SASS_TOOLS (default ~/.cache/rosa/cuda-sass-tools). PyPI has no 13.0
# release of them; 13.2 reads sm_90 cubins built by 13.0 (a disassembler only reads the
# cubin, so a newer one is safe, unlike a newer ptxas, see setup-cuda.sh).
# ROSA_SASS_ARCH (default sm_90, the H200) picks the target.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/setup-cuda.sh)"
ARCH="${ROSA_SASS_ARCH:-sm_90}"
TOOLS="${ROSA_SASS_TOOLS:-$HOME/.cache/rosa/cuda-sass-tools}"
PINS=("nvidia-cuda-cuobjdump==13.2.51" "nvidia-cuda-nvdisasm==13.2.86")
STAMP="$TOOLS/.installed"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "${PINS[*]}" ]]; then
  echo "[sass-report] installing ${PINS[*]} into $TOOLS" >&2
  rm -rf "$TOOLS"
  mkdir -p "$TOOLS"
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --disable-pip-version-check --no-input \
    -q --no-deps --target "$TOOLS" "${PINS[@]}" >&2
  chmod +x "$TOOLS"/nvidia/cu13/bin/*
  echo "${PINS[*]}" >"$STAMP"
fi
export PATH="$TOOLS/nvidia/cu13/bin:$PATH"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for src in csrc/*.cu; do
  unit="$(basename "$src" .cu)"
  # Host-only units (the tile-table queries) hold no kernel.
  grep -q "__global__" "$src" || continue
  echo "[sass-report] $unit: nvcc -arch=$ARCH" >&2
  # -rdc=true: build.rs compiles through the cc crate, which passes --device-c, and ptxas
  # allocates registers differently for relocatable device code.
  "$NVCC" -cubin -rdc=true -arch="$ARCH" -std=c++17 -lineinfo -Xptxas -v -Icsrc \
    -o "$work/$unit.cubin" "$src" 2>"$work/$unit.ptxas.log" || {
    cat "$work/$unit.ptxas.log" >&2
    exit 1
  }
  cuobjdump -sass "$work/$unit.cubin" >"$work/$unit.sass"
done
python3 scripts/sass_report.py "$work"
