#!/usr/bin/env bash
# Builds everything the GPU machine runs (it has no Rust toolchain) into gpu-bundle/:
#   gpu-bundle/tests/<name>   the release test binaries that touch the GPU, built with
#                             `--features cuda` (the CPU-only suites run in CI; each
#                             binary carries the kernels and cudart, about 9 MiB)
#   gpu-bundle/rosa           the command-line program with `cuda`
#   gpu-bundle/gpu_step       benches/gpu_step.rs: RoSA vs LoRA-only training step
#   gpu-bundle/MANIFEST       commit, toolchain and sizes
# All stripped; cudart is linked statically and the driver is loaded at run time, so the
# bundle needs nothing on the GPU machine but its driver. Then, there, from the repo root:
#   scripts/gpu-run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/setup-cuda.sh)"
out=gpu-bundle
rm -rf "$out"
mkdir -p "$out/tests"

# Prints "<target name> <kind> <executable>" for each executable cargo reports.
executables() {
  python3 -c '
import json, sys
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    exe = msg.get("executable")
    if msg.get("reason") == "compiler-artifact" and exe:
        t = msg["target"]
        print(t["name"], t["kind"][0], exe)
'
}

collect() { # <dest dir> <cargo args...>
  local dest=$1
  shift
  mkdir -p "$dest"
  cargo "$@" --release --features cuda --no-run --message-format=json-render-diagnostics |
    executables | while read -r name kind exe; do
      # The library's unit tests share the crate's name with the CLI binary's tests.
      [[ $kind == lib ]] && name="lib-$name"
      # The `rosa` binary built for the CLI tests is bundled once, below.
      [[ $kind == bin ]] && continue
      cp "$exe" "$dest/$name"
      strip "$dest/$name"
      echo "  $dest/$name" >&2
    done
}

echo "[gpu-bundle] test binaries" >&2
collect "$out/tests" test --test gpu_kernels --test gpu_tune --test gpu_baselines --test gpu_train --test cli

# `cargo bench` has no --release (its profile inherits release), so not through collect.
echo "[gpu-bundle] gpu_step (the training-step benchmark)" >&2
cargo bench --features cuda --bench gpu_step --no-run --message-format=json-render-diagnostics |
  executables | while read -r name kind exe; do
    # The `rosa` binary is built alongside (benches may run it): keep only the bench.
    [[ $name == gpu_step && $kind == bench ]] || continue
    cp "$exe" "$out/gpu_step"
    strip "$out/gpu_step"
    echo "  $out/gpu_step" >&2
  done

echo "[gpu-bundle] rosa" >&2
cargo build --release --features cuda --bin rosa
cp target/release/rosa "$out/rosa"
strip "$out/rosa"

{
  echo "commit:    $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
  echo "built:     $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m), $(ldd --version 2>&1 | head -n1)"
  echo "toolchain: $(rustc --version); $("$NVCC" --version | tail -n1)"
  echo "targets:   sm_80, sm_90 SASS + compute_90 PTX; cudart static; libcuda loaded at run time"
  echo
  (cd "$out" && find . -type f ! -name MANIFEST -printf '%s\t%p\n' | sort -k2)
} >"$out/MANIFEST"

total=$(du -sb "$out" | cut -f1)
limit=$((64 * 1024 * 1024))
echo "[gpu-bundle] $out: $((total / 1024)) KiB" >&2
if ((total >= limit)); then
  echo "[gpu-bundle] bundle is over 64 MiB: the device runner will not carry it" >&2
  exit 1
fi
