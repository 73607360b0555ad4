#!/usr/bin/env bash
# Builds everything the GPU machine runs (it has no Rust toolchain) and packs it into ONE
# file that the device tool carries: gpu-bundle.tar.xz in the repository root (gitignored;
# ROSA_BUNDLE_OUT names another path). Inside:
#   tests/<name>   release test binaries that touch the GPU, with `--features cuda`:
#                  gpu_kernels, gpu_train, gpu_tune, gpu_baselines, cli (its GPU tests,
#                  part 2) and lib (the library's unit tests: the raw C ABI tests)
#   rosa           the command-line program with `cuda`
#   gpu_step       benches/gpu_step.rs: RoSA vs LoRA-only training step
#   MANIFEST       commit, toolchain and sizes
# All stripped; cudart is linked statically and the driver is loaded at run time, so the
# bundle needs nothing on the GPU machine but its driver (and, for the baselines, the
# cuBLAS / cuSPARSE / PyTorch that are there).
#
# Why a tarball: each binary carries the same ~7 MB of kernel code (sm_80 + sm_90 SASS and
# compute_90 PTX), so the loose binaries are about 70 MiB, over what the device tool
# carries (64 MiB). xz with a dictionary larger than the whole tar stores each repeat of
# the kernels as a back-reference, so the bundle costs about one binary plus the Rust
# code of each. The script prints both sizes and fails above LIMIT_MIB (48 MiB by
# default, which leaves room for the working tree beside it).
#
# Then, there: scripts/gpu-run.sh (see docs/CUDA.md, "Running on the GPU machine").
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/setup-cuda.sh)"
out=${ROSA_BUNDLE_OUT:-gpu-bundle.tar.xz}
limit_mib=${LIMIT_MIB:-48}
stage=target/gpu-bundle
rm -rf "$stage"
mkdir -p "$stage/tests"

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

# collect <dest dir> <cargo args...>: copies and strips the test executables built.
collect() {
  local dest=$1
  shift
  cargo "$@" --release --features cuda --no-run --message-format=json-render-diagnostics |
    executables | while read -r name kind exe; do
      # The library's unit tests share the crate's name with the CLI binary's tests.
      [[ $kind == lib ]] && name=lib
      # The `rosa` binary built for the CLI tests is bundled once, below.
      [[ $kind == bin ]] && continue
      cp "$exe" "$dest/$name"
      strip "$dest/$name"
      echo "  $dest/$name" >&2
    done
}

echo "[gpu-bundle] test binaries" >&2
collect "$stage/tests" test --lib --test gpu_kernels --test gpu_tune --test gpu_baselines \
  --test gpu_train --test gpu_embed --test cli

# `cargo bench` has no --release (its profile inherits release), so not through collect.
echo "[gpu-bundle] gpu_step (the training-step benchmark)" >&2
cargo bench --features cuda --bench gpu_step --no-run --message-format=json-render-diagnostics |
  executables | while read -r name kind exe; do
    # The `rosa` binary is built alongside (benches may run it): keep only the bench.
    [[ $name == gpu_step && $kind == bench ]] || continue
    cp "$exe" "$stage/gpu_step"
    strip "$stage/gpu_step"
    echo "  $stage/gpu_step" >&2
  done

echo "[gpu-bundle] rosa" >&2
cargo build --release --features cuda --bin rosa
cp target/release/rosa "$stage/rosa"
strip "$stage/rosa"

members=(rosa gpu_step tests/lib tests/gpu_kernels tests/gpu_train tests/gpu_tune
  tests/gpu_baselines tests/gpu_embed tests/cli)
for m in "${members[@]}"; do
  [[ -x $stage/$m ]] || {
    echo "[gpu-bundle] $stage/$m was not built" >&2
    exit 1
  }
done

{
  echo "commit:    $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (dirty)')"
  echo "built:     $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m), $(ldd --version 2>&1 | head -n1)"
  echo "toolchain: $(rustc --version); $("$NVCC" --version | tail -n1)"
  echo "targets:   sm_80, sm_90 SASS + compute_90 PTX; cudart static; libcuda loaded at run time"
  echo
  (cd "$stage" && find . -type f ! -name MANIFEST -printf '%s\t%p\n' | sort -k2)
} >"$stage/MANIFEST"

echo "[gpu-bundle] packing $out (xz, one 128 MiB dictionary: repeats across binaries are free)" >&2
t0=$SECONDS
tar -C "$stage" -cf - . | xz -9 --lzma2=preset=9,dict=128MiB -T1 -c >"$out.part"
mv "$out.part" "$out"

# Self-check: what the runner needs is inside, and the file fits the device tool.
listing=$(tar -tJf "$out")
for m in "${members[@]}" MANIFEST; do
  grep -qx "./$m" <<<"$listing" || {
    echo "[gpu-bundle] $out lacks $m" >&2
    exit 1
  }
done
unpacked=$(du -sb "$stage" | cut -f1)
carried=$(stat -c %s "$out")
echo "[gpu-bundle] $out: $((carried / 1024)) KiB carried ($((unpacked / 1024)) KiB unpacked, packed in $((SECONDS - t0)) s); limit ${limit_mib} MiB" >&2
if ((carried > limit_mib * 1024 * 1024)); then
  echo "[gpu-bundle] $out is over ${limit_mib} MiB: the device tool will not carry it with the tree" >&2
  exit 1
fi
