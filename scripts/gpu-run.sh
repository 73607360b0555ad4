#!/usr/bin/env bash
# Runs the GPU bundle (built by scripts/gpu-bundle.sh) on the GPU machine, from the
# repository root, with no Rust toolchain there:
#   1. every test binary (the GPU tests must run, not skip: a skip here is a failure),
#   2. compute-sanitizer memcheck, racecheck, initcheck and synccheck over the GPU kernel
#      tests (fewer cases) and the layer tests (gpu_train), all into sanitizer.log,
#   3. `rosa info`, `rosa tune --quick` (its cache into tune.json, to be committed as
#      tuning/<file stem>.json, the name `rosa info` prints), and `rosa bench --device
#      cuda`: a few DESIGN.md grid shapes at the grid's densities, f32 then bf16, against
#      cuSPARSE and cuBLAS (about 2-5 min; ROSA_BENCH_ARGS replaces the shape arguments,
#      e.g. "--grid" for the whole grid), with a time-vs-density chart per dtype,
#   4. gpu_step: one RoSA training step vs the LoRA-only step at 11008 x 4096, bf16 W,
#      2048 tokens, r = 16, d = 0.6% (target <= 1.25x), with peak memory, into rosa.log.
# Logs go to a work directory (machine.log, tests.log, sanitizer.log, rosa.log,
# tune.json, bench-<dtype>.json and .svg, summary.txt). With $OUT set, which brings back
# at most 8 files, $OUT gets summary.txt, tune.json and all of it as gpu-run.tar.gz.
# A short table is printed last: each step's status, then the summary lines of the bench
# (median % of the roofline, median and geomean speedups over cuSPARSE and each cuBLAS
# GEMM, the spmm_t/spmm time ratio per dtype), the tuner (geomean over the heuristic)
# and the step benchmark.
#   usage: scripts/gpu-run.sh [bundle dir, default gpu-bundle]
set -uo pipefail
cd "$(dirname "$0")/.."

bundle=${1:-gpu-bundle}
logs=$(mktemp -d)
step_timeout=${ROSA_STEP_TIMEOUT:-900}
rows=()

if [[ ! -d $bundle/tests ]]; then
  echo "no $bundle/tests: build it with scripts/gpu-bundle.sh and carry it here" >&2
  exit 2
fi

# step <name> <log file> <command...>: runs it with a timeout, appends to the log,
# records PASS/FAIL/TIMEOUT and the seconds taken.
step() {
  local name=$1 log=$2
  shift 2
  local t0=$SECONDS rc status note="" tmp
  tmp=$(mktemp)
  timeout "$step_timeout" "$@" >"$tmp" 2>&1
  rc=$?
  case $rc in
    0) status=PASS ;;
    124) status=TIMEOUT ;;
    *) status="FAIL($rc)" ;;
  esac
  # On the GPU machine a skipped GPU test means the device was not found: a failure.
  if grep -q "skipped: no CUDA device" "$tmp"; then
    status=FAIL
    note="GPU tests skipped: $(grep -m1 -o 'skipped: no CUDA device.*' "$tmp")"
  fi
  {
    echo "===== $name: $*"
    cat "$tmp"
    echo "===== $name: exit $rc after $((SECONDS - t0)) s"
  } >>"$log"
  rm -f "$tmp"
  rows+=("$(printf '%-34s %-10s %6s s  %s' "$name" "$status" "$((SECONDS - t0))" "$note")")
}

# cuBLAS and cuSPARSE (the bench's baselines, GPU tests) are loaded at run time by name:
# put the toolkit's or the pip wheels' copies on the loader path when the system cache
# lacks them.
for lib in libcublas.so.13 libcusparse.so.12; do
  ldconfig -p 2>/dev/null | grep -q "${lib//./\\.}" && continue
  lib_dir=""
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    [[ -e $d/$lib ]] && lib_dir=$d && break
  done
  if [[ -z $lib_dir ]] && command -v python3 >/dev/null; then
    lib_dir=$(LIB=$lib python3 -c '
import glob, os, sys
for p in sys.path:
    for f in glob.glob(os.path.join(p, "nvidia", "*", "lib", os.environ["LIB"])):
        print(os.path.dirname(f)); sys.exit()
' 2>/dev/null)
  fi
  [[ -n $lib_dir ]] && export LD_LIBRARY_PATH=$lib_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
done

{
  echo "bundle: $bundle"
  cat "$bundle/MANIFEST" 2>/dev/null
  echo
  nvidia-smi 2>&1 || echo "nvidia-smi not available"
  echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
} >"$logs/machine.log"

# tests/cli.rs runs the rosa binary by the path it had where it was built, unless told.
[[ -x $bundle/rosa ]] && ROSA_BIN="$(cd "$bundle" && pwd)/rosa" && export ROSA_BIN
for t in "$bundle"/tests/*; do
  step "test:$(basename "$t")" "$logs/tests.log" "$t"
done

sanitizer=$(command -v compute-sanitizer || true)
[[ -z $sanitizer && -x /usr/local/cuda/bin/compute-sanitizer ]] && sanitizer=/usr/local/cuda/bin/compute-sanitizer
kernel_tests=$(ls "$bundle"/tests/gpu_kernels* 2>/dev/null | head -n1)
layer_tests=$(ls "$bundle"/tests/gpu_train* 2>/dev/null | head -n1)
if [[ -n $sanitizer && -n $kernel_tests ]]; then
  # A handful of random cases per config: the sanitizers slow each launch a lot, and the
  # fixed large cases still cover multi-block grids, long rows and odd widths. The layer
  # tests (elementwise kernels, AdamW, the device layer) use small shapes throughout.
  for tool in memcheck racecheck initcheck synccheck; do
    ROSA_GPU_CASES=${ROSA_SANITIZER_CASES:-4} step "sanitizer:$tool" "$logs/sanitizer.log" \
      "$sanitizer" --tool "$tool" --error-exitcode 99 --print-limit 50 "$kernel_tests" --test-threads=1
    if [[ -n $layer_tests ]]; then
      step "sanitizer:$tool layer" "$logs/sanitizer.log" \
        "$sanitizer" --tool "$tool" --error-exitcode 99 --print-limit 50 "$layer_tests" --test-threads=1
    fi
  done
else
  rows+=("$(printf '%-34s %-10s' sanitizer SKIPPED) compute-sanitizer or the kernel tests missing")
fi

if [[ -x $bundle/rosa ]]; then
  if "$bundle/rosa" --help 2>/dev/null | grep -qw info; then
    step "rosa info" "$logs/rosa.log" "$bundle/rosa" info
  else
    rows+=("$(printf '%-34s %-10s' 'rosa info' SKIPPED) not in this rosa binary yet")
  fi
  if "$bundle/rosa" --help 2>/dev/null | grep -qE '^ +tune '; then
    # Its "summary tune:" line (geomean over the heuristic) joins the table below.
    step "rosa tune --quick" "$logs/rosa.log" "$bundle/rosa" tune --quick --out "$logs/tune.json"
  else
    rows+=("$(printf '%-34s %-10s' 'rosa tune' SKIPPED) not in this rosa binary yet")
  fi
  if "$bundle/rosa" bench --help 2>/dev/null | grep -q -- --device; then
    # Square, tall, wide at N = 2048, plus both ends of N on the square shape.
    read -r -a shape_args <<<"${ROSA_BENCH_ARGS:---grid --shapes 4096x4096x512,4096x4096x2048,11008x4096x2048,4096x11008x2048,4096x4096x8192}"
    for dtype in f32 bf16; do
      step "rosa bench --device cuda $dtype" "$logs/rosa.log" "$bundle/rosa" bench \
        --device cuda --dtype "$dtype" "${shape_args[@]}" --time-ms 30 \
        --json-out "$logs/bench-$dtype.json" --plot "$logs/bench-$dtype.svg"
    done
    if grep -q '^bench: .*WARNING' "$logs/rosa.log"; then
      rows+=("$(printf '%-34s %-10s' 'bench correctness' FAIL) $(grep -c '^bench: .*WARNING' "$logs/rosa.log") ops wrote NaN/inf (see rosa.log)")
    fi
    while IFS= read -r line; do
      rows+=("  $line")
    done < <(grep '^summary ' "$logs/rosa.log")
  else
    rows+=("$(printf '%-34s %-10s' 'rosa bench' SKIPPED) no 'bench --device' in this rosa binary yet")
  fi
fi

# One RoSA training step against the LoRA-only step at the LLaMA-MLP shape (issue 5's
# target: at most 1.25x), with the peak memory of each.
if [[ -x $bundle/gpu_step ]]; then
  step "gpu_step (rosa vs lora step)" "$logs/rosa.log" "$bundle/gpu_step"
  while IFS= read -r line; do
    rows+=("  $line")
  done < <(grep '^summary step' "$logs/rosa.log")
else
  rows+=("$(printf '%-34s %-10s' gpu_step SKIPPED) not in this bundle")
fi

{
  echo
  echo "logs: $logs"
  printf '%-34s %-10s %8s  %s\n' step status time note
  printf '%s\n' "${rows[@]}"
} | tee "$logs/summary.txt"

if [[ -n ${OUT:-} ]]; then
  mkdir -p "$OUT"
  cp "$logs/summary.txt" "$OUT/"
  [[ -f $logs/tune.json ]] && cp "$logs/tune.json" "$OUT/"
  tar -czf "$OUT/gpu-run.tar.gz" -C "$logs" .
fi

! printf '%s\n' "${rows[@]}" | grep -qE ' (FAIL|TIMEOUT)'
