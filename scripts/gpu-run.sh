#!/usr/bin/env bash
# Runs the GPU bundle (scripts/gpu-bundle.sh) on the GPU machine, which has no Rust:
#
#   OUT=<dir> scripts/gpu-run.sh [--part 1|2] [--deadline SECONDS] [--bundle PATH]
#
# from the repository root, with the bundle carried beside it (default gpu-bundle.tar.xz,
# else a gpu-bundle/ folder). The machine gives about 15 minutes in all, at most 10 a
# command, and brings back at most 8 files from $OUT; so this script
#   - stops starting steps at a global deadline (--deadline, else $ROSA_GPU_DEADLINE, else
#     450 s for part 1 and 240 s for part 2, the unpacking included): each step runs under
#     `timeout` for the least of its own budget and the time left, and a step that would
#     start with less than $ROSA_GPU_MIN_STEP (10) seconds left is reported NOT RUN;
#   - writes every log straight into $OUT as it goes (so a command killed from outside
#     still brings back what finished) and appends each step's line to $OUT/summary.txt
#     when the step ends: at most 8 files in $OUT, named below;
#   - goes evidence first.
#
# Part 1 (the first command):
#   0. machine facts (nvidia-smi, driver, ldd, torch), a few-second compute-sanitizer
#      probe (it refuses the device under some runtimes: then every sanitizer step is
#      SKIPPED with that reason), and the measured ceilings (`rosa info --ceilings`);
#   1. the kernel tests with CUDA_LAUNCH_BLOCKING=1, SpMM, SpMM^T and SDDMM each in its
#      own process (a kernel fault leaves a sticky error that fails every later launch of
#      its process), then the rest of gpu_kernels and the raw C ABI tests;
#   2. the layer, elementwise and AdamW tests (gpu_train), then the embedding API
#      (gpu_embed: the caller's stream, borrowed views, the raw entry);
#   3. the headline bench, bf16 then f32, 4096x4096x2048 and 11008x4096x2048 at 0.1%,
#      0.6% and 5%, against cuSPARSE and cuBLAS, then PyTorch on the same matrices
#      (scripts/torch_baseline.py);
#   4. the training-step bench (gpu_step);
#   5. compute-sanitizer memcheck, racecheck and synccheck over the kernel tests, one
#      random case per configuration, our kernels only (--kernel-name kns=rosa);
#   6. if time is left: `rosa tune --quick` (its cache is $OUT/tune.json), the baselines
#      tests and the tuner tests, then `rosa tune --quick --mask` on the RoSA masks chosen
#      on MiniLM (data/minilm-rosa-masks/: each mask's own shape, density and row spread,
#      N 512, merged into the same $OUT/tune.json).
# Part 2 (a second command, for what did not fit): machine facts and probe again,
#   initcheck over the kernel tests, the layer tests under memcheck, racecheck and
#   synccheck, the CLI's GPU tests, the bench on the RoSA masks chosen on MiniLM
#   (data/minilm-rosa-masks/, each beside its uniform twin; bf16, then f32), the whole
#   bench grid (bf16, then f32) and the full tune.
#
# Files in $OUT (at most 8): summary.txt, machine.log, tests.log, sanitizer.log,
# bench.log, bench-<dtype>.json (part 1) or bench-grid-<dtype>.json (part 2), tune.json.
# Statuses: PASS, FAIL (with the failing tests and the first panic, or "no CUDA device"),
# TIMEOUT, SKIPPED (with why), NOT RUN (deadline). Exit status 0 only if nothing failed,
# timed out or was left unrun. Without $OUT it writes to a new temporary folder.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

part=1 deadline=${ROSA_GPU_DEADLINE:-} bundle=${ROSA_GPU_BUNDLE:-}
while (($#)); do
  case $1 in
    --part) part=${2:-} && shift 2 ;;
    --deadline) deadline=${2:-} && shift 2 ;;
    --bundle) bundle=${2:-} && shift 2 ;;
    -h | --help)
      sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "gpu-run: unknown argument '$1' (see --help)" >&2
      exit 2
      ;;
  esac
done
if [[ $part != 1 && $part != 2 ]]; then
  echo "gpu-run: --part is 1 or 2" >&2
  exit 2
fi
[[ -z $deadline ]] && deadline=$((part == 1 ? 450 : 240))
if ! [[ $deadline =~ ^[0-9]+$ ]]; then
  echo "gpu-run: the deadline is a whole number of seconds, not '$deadline'" >&2
  exit 2
fi
min_step=${ROSA_GPU_MIN_STEP:-10}
if [[ -z $bundle ]]; then
  bundle=gpu-bundle.tar.xz
  [[ ! -e $bundle && -d gpu-bundle ]] && bundle=gpu-bundle
fi
if [[ -z ${OUT:-} ]]; then
  OUT=$(mktemp -d "${TMPDIR:-/tmp}/rosa-gpu-out.XXXXXX")
  echo "gpu-run: no \$OUT set; writing to $OUT" >&2
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/rosa-gpu-run.XXXXXX")
summary=$OUT/summary.txt
start=$SECONDS
failed=0

# ---------------------------------------------------------------- reporting

# record <name> <status> <seconds> <note>: one line in summary.txt and on stdout.
record() {
  local line
  line=$(printf '%-40s %-8s %4ss  %s' "$1" "$2" "$3" "$4")
  echo "$line" >>"$summary"
  echo "$line"
  [[ $2 == PASS || $2 == SKIPPED ]] || failed=1
}

left() { echo $((deadline - (SECONDS - start))); }

# The note for a failed step: the tests that failed and the first panic, or an error line.
why_failed() {
  local out=$1 tests panic
  tests=$(grep -E '^test .* \.\.\. FAILED$' "$out" | sed -E 's/^test (.*) \.\.\. FAILED$/\1/' |
    head -n 5 | paste -sd, -)
  panic=$(grep -m1 -A1 'panicked at' "$out" | tail -n1 | cut -c1-160)
  if [[ -n $tests ]]; then
    echo "failed: $tests; first panic: $panic"
  elif [[ -n $panic ]]; then
    echo "panic: $panic"
  else
    { grep -m1 -iE 'error|fail' "$out" || grep -v '^\s*$' "$out" | tail -n1; } | cut -c1-200
  fi
}

# run_logged <name> <budget s> <log file in $OUT> <command...>: runs the command under
# timeout (the least of its budget and the time left), its output appended to $OUT/<log>
# as it comes and kept in $work/step.out; sets rc and took. Past the deadline it runs
# nothing, records NOT RUN and returns 1.
run_logged() {
  local name=$1 budget=$2 log=$3
  shift 3
  local remaining t t0
  remaining=$(left)
  if ((remaining < min_step)); then
    record "$name" "NOT RUN" 0 "deadline: ${remaining} s left of ${deadline} s"
    return 1
  fi
  t=$((budget < remaining ? budget : remaining))
  echo "===== $name (timeout ${t} s, $(date -u +%H:%M:%S)): $*" >>"$OUT/$log"
  t0=$SECONDS
  timeout -k 5 "$t" "$@" 2>&1 | tee "$work/step.out" >>"$OUT/$log"
  rc=${PIPESTATUS[0]}
  took=$((SECONDS - t0))
  echo "===== $name: exit $rc after $took s" >>"$OUT/$log"
  if ((rc == 124 || rc == 137)); then
    rc_note="killed after ${t} s"
  fi
}

# step <name> <budget s> <log> <command...>: run_logged, then records how it ended. A
# GPU test that skips for want of a device is a FAIL here. With $pass_note set, the first
# output line matching it is the note of a PASS.
step() {
  local name=$1 status note="" out=$work/step.out
  rc_note=""
  run_logged "$@" || return 1
  if ((rc == 124 || rc == 137)); then
    status=TIMEOUT note=$rc_note
  elif grep -qE 'skipped: no CUDA device|error: no CUDA device' "$out"; then
    status=FAIL note=$(grep -m1 -oE 'no CUDA device.*' "$out" | cut -c1-150)
  elif ((rc == 0)); then
    status=PASS
    [[ -n ${pass_note:-} ]] && note=$(grep -m1 -E "$pass_note" "$out" | cut -c1-220)
  else
    status=FAIL note="exit $rc; $(why_failed "$out")"
  fi
  record "$name" "$status" "$took" "$note"
  [[ $status == PASS ]]
}

skip() { record "$1" SKIPPED 0 "$2"; }

# ---------------------------------------------------------------- the bundle

{
  echo "# rosa GPU run, part $part: started $(date -u +%Y-%m-%dT%H:%M:%SZ), deadline $deadline s"
  echo "# bundle: $bundle; repository: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo 'no git')"
  printf '%-40s %-8s %5s  %s\n' step status time note
} >"$summary"
cat "$summary"

unpack() {
  if [[ -d $bundle ]]; then
    B=$(cd "$bundle" && pwd)
    return 0
  fi
  if [[ ! -f $bundle ]]; then
    echo "no bundle at '$bundle': build it with scripts/gpu-bundle.sh and carry it" >&2
    return 1
  fi
  B=$work/bundle
  mkdir -p "$B"
  if command -v xz >/dev/null; then
    tar -C "$B" -xJf "$bundle"
  else
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$bundle" "$B"
  fi
}
t0=$SECONDS
if unpack >"$work/unpack.out" 2>&1; then
  record "unpack bundle" PASS $((SECONDS - t0)) "$(head -n1 "$B/MANIFEST" 2>/dev/null)"
else
  record "unpack bundle" FAIL $((SECONDS - t0)) "$(head -n1 "$work/unpack.out")"
  exit 1
fi
bin() { # the bundle's executable <name>, or a stand-in that says it is missing
  if [[ -x $B/$1 ]]; then echo "$B/$1"; else echo "$work/missing-$(basename "$1")"; fi
}
for name in rosa gpu_step tests/lib tests/gpu_kernels tests/gpu_train tests/gpu_tune \
  tests/gpu_baselines tests/gpu_embed tests/cli; do
  [[ -x $B/$name ]] && continue
  printf '#!/bin/sh\necho "error: %s is not in the bundle"; exit 127\n' "$name" \
    >"$work/missing-$(basename "$name")"
  chmod +x "$work/missing-$(basename "$name")"
done
ROSA=$(bin rosa)
KERNELS=$(bin tests/gpu_kernels)
LAYER=$(bin tests/gpu_train)
# tests/cli.rs runs the rosa binary by the path it had where it was built, unless told.
export ROSA_BIN=$ROSA
# Tuned caches of this machine's home must not steer this run: only what it tunes.
export ROSA_TUNING_DIR=$work/tuning

# cuBLAS and cuSPARSE (baselines, GPU tests) are loaded at run time by name: put the
# toolkit's or the pip wheels' copies on the loader path when the system cache lacks them.
for lib in libcublas.so.13 libcusparse.so.12; do
  ldconfig -p 2>/dev/null | grep -q "${lib//./\\.}" && continue
  lib_dir=""
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    [[ -e $d/$lib ]] && lib_dir=$d && break
  done
  if [[ -z $lib_dir ]] && command -v python3 >/dev/null; then
    lib_dir=$(LIB=$lib timeout 20 python3 -c '
import glob, os, sys
for p in sys.path:
    for f in glob.glob(os.path.join(p, "nvidia", "*", "lib", os.environ["LIB"])):
        print(os.path.dirname(f)); sys.exit()
' 2>/dev/null)
  fi
  [[ -n $lib_dir ]] && export LD_LIBRARY_PATH=$lib_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
done

sanitizer=$(command -v compute-sanitizer || true)
[[ -z $sanitizer && -x /usr/local/cuda/bin/compute-sanitizer ]] &&
  sanitizer=/usr/local/cuda/bin/compute-sanitizer

# ---------------------------------------------------------------- shared steps

machine_facts() {
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ); host: $(uname -a)"
  echo "--- bundle MANIFEST"
  cat "$B/MANIFEST" 2>/dev/null || echo "(none)"
  echo "--- nvidia-smi"
  timeout 20 nvidia-smi 2>&1 || echo "nvidia-smi: not available"
  timeout 20 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem,memory.total,power.limit --format=csv 2>&1 || true
  echo "--- driver: $(cat /proc/driver/nvidia/version 2>/dev/null | head -n1)"
  echo "--- ldd rosa"
  ldd "$ROSA" 2>&1
  echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
  echo "--- compute-sanitizer: ${sanitizer:-not found}"
  [[ -n $sanitizer ]] && timeout 20 "$sanitizer" --version 2>&1 | tail -n 2
  echo "--- python3 / torch"
  timeout 60 python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2>&1 | tail -n 3
  echo "--- rosa info"
  "$ROSA" info 2>&1
}
export -f machine_facts
export B ROSA sanitizer

sanitizer_ok=""
sanitizer_why="compute-sanitizer not found"
probe_sanitizer() {
  local name="sanitizer probe (memcheck, one test)" out=$work/step.out
  if [[ -z $sanitizer ]]; then
    skip "$name" "$sanitizer_why"
    return
  fi
  sanitizer_why="the sanitizer probe did not run (deadline)"
  run_logged "$name" 60 sanitizer.log "$sanitizer" --tool memcheck --kernel-name kns=rosa \
    --error-exitcode 99 "$KERNELS" --exact event_timer_measures_a_launch || return
  # It works if it ran the test to its summary; "Device not supported" (gVisor) or a
  # failure to start means it does not, whatever the exit status. Not a failure of ours
  # either way: the sanitizer steps are then SKIPPED with this reason.
  if grep -q 'ERROR SUMMARY' "$out" && ! grep -qiE 'not supported|skipped: no CUDA device' "$out"; then
    sanitizer_ok=1
    record "$name" PASS "$took" "compute-sanitizer runs here (probe exit $rc: $(grep -m1 'ERROR SUMMARY' "$out" | cut -c1-80))"
  else
    sanitizer_why="compute-sanitizer unusable here (exit $rc): $(grep -m1 -iE 'error|not supported|skipped' "$out" | cut -c1-150)"
    skip "$name" "$sanitizer_why"
  fi
}

# sanitize <tool> <budget> <name> <test binary> [test args...]
sanitize() {
  local tool=$1 budget=$2 name=$3
  shift 3
  if [[ -z $sanitizer_ok ]]; then
    skip "$name" "$sanitizer_why"
    return
  fi
  step "$name" "$budget" sanitizer.log env ROSA_GPU_CASES=1 ROSA_GPU_BIG_CASES=1 \
    "$sanitizer" --tool "$tool" --kernel-name kns=rosa --error-exitcode 99 --print-limit 50 \
    "$@" --test-threads=1
}

pass_note='^gpu: ' step "machine facts" 90 machine.log bash -c machine_facts
probe_sanitizer
pass_note='^ceilings:' step "ceilings (rosa info --ceilings)" 60 machine.log "$ROSA" info --ceilings

# ---------------------------------------------------------------- part 1

bench_step() { # <what> <dtype> <budget> <json> <args...>
  local what=$1 dtype=$2 budget=$3 json=$4
  shift 4
  step "bench $dtype ($what)" "$budget" bench.log "$ROSA" bench --device cuda \
    --dtype "$dtype" "$@" --json-out "$OUT/$json"
}

# The RoSA masks chosen on MiniLM, comma-separated: tuned on in part 1, benched in part 2.
masks=$(printf '%s\n' "$repo"/data/minilm-rosa-masks/*.mtx | paste -sd, -)

if ((part == 1)); then
  per_op=matches_references_for_every_dtype_and_config
  for op in spmm spmm_t sddmm; do
    step "kernels: $op" 120 tests.log env CUDA_LAUNCH_BLOCKING=1 "$KERNELS" --exact \
      "${op}_$per_op"
  done
  step "kernels: launchers, cuBLAS, streams" 60 tests.log env CUDA_LAUNCH_BLOCKING=1 \
    "$KERNELS" --skip "$per_op"
  step "raw C ABI tests (rows at i32::MAX)" 30 tests.log env CUDA_LAUNCH_BLOCKING=1 \
    "$(bin tests/lib)" cuda::
  step "layer, elementwise, AdamW (gpu_train)" 120 tests.log env CUDA_LAUNCH_BLOCKING=1 "$LAYER"
  step "embedding: caller's stream, views, raw entry (gpu_embed)" 30 tests.log \
    env CUDA_LAUNCH_BLOCKING=1 "$(bin tests/gpu_embed)"

  headline=(--shapes 4096x4096x2048,11008x4096x2048 --density 0.001,0.006,0.05 --time-ms 20
    --export "$work/export")
  bench_step headline bf16 100 bench-bf16.json "${headline[@]}"
  bench_step headline f32 100 bench-f32.json "${headline[@]}"
  step "PyTorch on the same matrices" 90 bench.log python3 "$repo/scripts/torch_baseline.py" \
    "$work/export"
  step "training step (gpu_step)" 120 bench.log "$(bin gpu_step)"

  sanitize memcheck 90 "memcheck: kernel tests" "$KERNELS"
  sanitize racecheck 90 "racecheck: kernel tests" "$KERNELS"
  sanitize synccheck 60 "synccheck: kernel tests" "$KERNELS"

  step "rosa tune --quick" 90 bench.log "$ROSA" tune --quick --out "$OUT/tune.json"
  step "baselines tests (gpu_baselines)" 60 tests.log "$(bin tests/gpu_baselines)"
  step "tuner and cache lookup (gpu_tune)" 60 tests.log "$(bin tests/gpu_tune)"
  # 4 distinct keys x 3 ops x 2 dtypes at N 512, each a 384- or 1536-row mask: seconds.
  step "rosa tune --quick (MiniLM RoSA masks)" 45 bench.log "$ROSA" tune --quick \
    --mask "$masks" --out "$OUT/tune.json"
else
  sanitize initcheck 90 "initcheck: kernel tests" "$KERNELS"
  sanitize memcheck 90 "memcheck: layer tests" "$LAYER"
  sanitize racecheck 90 "racecheck: layer tests" "$LAYER"
  sanitize synccheck 60 "synccheck: layer tests" "$LAYER"
  step "CLI GPU tests (bench, train, tune)" 90 tests.log "$(bin tests/cli)" cuda tune_runs
  for dtype in bf16 f32; do
    step "bench $dtype (MiniLM RoSA masks)" 45 bench.log "$ROSA" bench --device cuda \
      --dtype "$dtype" --mask "$masks" --n 512,2048 --time-ms 10
  done
  bench_step grid bf16 240 bench-grid-bf16.json --grid --time-ms 10
  bench_step grid f32 240 bench-grid-f32.json --grid --time-ms 10
  step "rosa tune (full grid)" 300 bench.log "$ROSA" tune --out "$OUT/tune.json"
fi

# ---------------------------------------------------------------- the verdict

{
  echo
  grep -hE '^(summary|ceilings measured|torch summary)' "$OUT/bench.log" 2>/dev/null
  echo "# done in $((SECONDS - start)) s of $deadline; files in OUT: $(ls "$OUT" | wc -l)"
} >>"$summary"
echo
cat "$summary"
rm -rf "$work"
exit "$failed"
