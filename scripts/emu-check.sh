#!/usr/bin/env bash
# The emulated suites (tests/emu_kernels.rs, tests/emu_semantics.rs, tests/emu_raw.rs and
# tests/emu_quant.rs, feature cuda-emu) under AddressSanitizer + UndefinedBehaviorSanitizer,
# then under ThreadSanitizer; `scripts/emu-check.sh emu_quant` runs only the test targets
# named. Stable Rust only: the C++ side (the csrc/ kernels and the csrc/emu runtime) is built with -fsanitize when build.rs sees
# ROSA_EMU_SANITIZE, and the sanitizer runtime is preloaded into the Rust test binary. Any report makes the run fail (halt_on_error / exitcode), so the script exits
# non-zero. ROSA_EMU_SANITIZE is a rerun trigger of the build script, so only rosa is rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/setup-cuda-headers.sh)"
# The test targets: the arguments, or all four suites.
names=("$@")
((${#names[@]})) || names=(emu_kernels emu_semantics emu_raw emu_quant)
targets=()
for name in "${names[@]}"; do targets+=(--test "$name"); done

run() {
  local name="$1" flags="$2" lib="$3" opts_var="$4" opts="$5"
  echo "== emu-check: $name"
  local rt
  rt="$(g++ -print-file-name="$lib")"
  [[ -f "$rt" ]] || { echo "emu-check: $lib not found (install the gcc sanitizer runtimes)" >&2; exit 1; }
  ROSA_EMU_SANITIZE="$flags" \
    cargo test -q --features cuda-emu "${targets[@]}" --no-run
  ROSA_EMU_SANITIZE="$flags" LD_PRELOAD="$rt" env "$opts_var=$opts" \
    cargo test -q --features cuda-emu "${targets[@]}" -- --nocapture --test-threads=1
}

# detect_leaks=0: the Rust test harness and the emulator's detached pool are not leaks.
run asan "address,undefined" \
  libasan.so ASAN_OPTIONS "detect_leaks=0:abort_on_error=1"
run tsan "thread" libtsan.so TSAN_OPTIONS "halt_on_error=1:exitcode=66:suppressions=$PWD/scripts/tsan.supp"
echo "emu-check: clean"
