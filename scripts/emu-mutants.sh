#!/usr/bin/env bash
# Proof that a clean emulated run means something (issue 13, item 4): plants each known bug
# in a copy of csrc/, builds the emulated suite against that copy (build.rs reads
# ROSA_CSRC_DIR), runs only the test that exercises the mutated code under the detector that
# should catch it, and fails unless every mutant is caught, by that detector. Each mutation
# is an exact text replacement that must match csrc/ exactly once, so a change to csrc/ that
# moves the code fails this script loudly instead of testing an unmutated copy.
# Only rosa is rebuilt per mutant (the C++ and the crate, ~1 min on 2 cores).
# `scripts/emu-mutants.sh NAME...` plants and checks only the mutants named.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/setup-cuda-headers.sh)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
table="$work/table"
failed=0
only=("$@")

# plant DIR FILE OLD NEW: replaces the one occurrence of OLD in DIR/FILE by NEW.
plant() {
  python3 - "$1/$2" "$3" "$4" <<'EOF'
import sys
path, old, new = sys.argv[1:]
text = open(path).read()
n = text.count(old)
if n != 1:
    sys.exit(f"emu-mutants: pattern found {n} times (want 1) in {path}:\n{old}")
open(path, "w").write(text.replace(old, new))
EOF
}

sanitizer_env() {
  case "$1" in
  plain) ;;
  asan)
    echo "ROSA_EMU_SANITIZE=address,undefined"
    echo "LD_PRELOAD=$(g++ -print-file-name=libasan.so)"
    echo "ASAN_OPTIONS=detect_leaks=0:abort_on_error=1"
    ;;
  tsan)
    echo "ROSA_EMU_SANITIZE=thread"
    echo "LD_PRELOAD=$(g++ -print-file-name=libtsan.so)"
    echo "TSAN_OPTIONS=halt_on_error=1:exitcode=66:suppressions=$PWD/scripts/tsan.supp"
    ;;
  esac
}

# mutant NAME DETECTOR TEST PATTERN FILE OLD NEW
#   DETECTOR: plain | asan | tsan (how the suite is built and run);
#   TEST: a test of tests/emu_kernels.rs, or TARGET/TEST for one of another test target;
#   PATTERN: an extended regex the failing run's output must contain.
mutant() {
  local name="$1" detector="$2" test="$3" pattern="$4" file="$5" old="$6" new="$7"
  local dir="$work/$name/csrc" log="$work/$name.log" start caught target=emu_kernels
  if ((${#only[@]})) && [[ " ${only[*]} " != *" $name "* ]]; then return; fi
  if [[ "$test" == */* ]]; then target="${test%%/*}" test="${test#*/}"; fi
  echo "== emu-mutants: $name ($detector, $target $test)"
  mkdir -p "$work/$name"
  cp -r csrc "$dir"
  plant "$dir" "$file" "$old" "$new"
  start=$SECONDS
  local -a build_env run_env
  mapfile -t run_env < <(sanitizer_env "$detector")
  build_env=()
  for e in "${run_env[@]}"; do [[ "$e" == LD_PRELOAD=* ]] || build_env+=("$e"); done
  # The build must succeed: a mutant that does not compile proves nothing.
  env ROSA_CSRC_DIR="$dir" "${build_env[@]}" \
    cargo test -q --features cuda-emu --test "$target" --no-run
  if env ROSA_CSRC_DIR="$dir" "${run_env[@]}" \
    cargo test -q --features cuda-emu --test "$target" -- --exact "$test" --test-threads=1 \
    >"$log" 2>&1; then
    caught="no (passed)"
  elif grep -Eq -- "$pattern" "$log"; then
    caught="yes"
    grep -Em1 -- "$pattern" "$log" | cut -c1-160
  else
    caught="no (failed otherwise)"
    tail -n 20 "$log"
  fi
  [[ "$caught" == yes ]] || failed=1
  printf '| %-15s | %-6s | %-36s | %-22s | %3d |\n' "$name" "$detector" "$test" "$caught" \
    $((SECONDS - start)) >>"$table"
}

mutant syncwarp-2 tsan spmm_and_spmm_t_every_dtype_and_tile 'ThreadSanitizer: data race' \
  spmm.cu $'      // The next batch overwrites the staged pairs: every lane must be done reading them.\n      __syncwarp(mask);\n' ''

mutant full-mask plain spmm_and_spmm_t_every_dtype_and_tile '^cuda-emu: .*(exited|absent) lane' \
  spmm.cu 'const unsigned mask = subwarp_mask<SW>();' 'const unsigned mask = 0xffffffffu;'

mutant split-sync tsan split_long_rows_every_dtype_and_split_tile 'ThreadSanitizer: data race' \
  spmm.cu $'    for (int i = 0; i < VEC; ++i) s_part[sub][v][i][lane] = acc[v][i];\n  __syncthreads();\n' \
  $'    for (int i = 0; i < VEC; ++i) s_part[sub][v][i][lane] = acc[v][i];\n'

mutant split-stride plain split_long_rows_every_dtype_and_split_tile 'got .*, want ' \
  spmm.cu 'const int32_t step = long_row ? SW * BR : SW;' 'const int32_t step = SW;'

mutant sddmm-split plain split_long_rows_every_dtype_and_split_tile 'got .*, want ' \
  sddmm.cu 'const int64_t own = start + static_cast<int64_t>(long_row ? sub : 0) * G;' \
  'const int64_t own = start;'

mutant lower-bound asan sddmm_every_dtype_and_tile 'ERROR: AddressSanitizer' \
  common.cuh ' && p - shift >= lo) {' ') {'

mutant tail-store plain spmm_and_spmm_t_every_dtype_and_tile 'padding byte [0-9]+ overwritten' \
  common.cuh 'if (avail >= V && aligned16(p)) {' 'if (aligned16(p)) {'

mutant f32-out-half plain spmm_f32_out_every_tile 'C F32 .*: got NaN, want ' \
  spmm.cu 'for (int h = 0; h < kVec<T>; h += CV)' 'for (int h = 0; h < CV; h += CV)'

mutant shfl-width-32 plain sddmm_every_dtype_and_tile '^cuda-emu: .*shuffle reads a lane outside its mask' \
  sddmm.cu 'for (; off > 0; off /= 2) sum += __shfl_xor_sync(mask, sum, off, SW);' \
  'for (off = 16; off > 0; off /= 2) sum += __shfl_xor_sync(mask, sum, off, 32);'

mutant csr-add-stride asan csr_add_keeps_padding 'ERROR: AddressSanitizer' \
  elementwise.cu 'T *dense_row = dense + row * p.ld;' 'T *dense_row = dense + row * (p.ld + 1);'

mutant syncthreads-if plain axpby_bias_add_row_sum_sum_squares '^cuda-emu: .*__syncthreads' \
  elementwise.cu $'  if (warp == 0) {\n    v = ' $'  if (warp == 0) {\n    __syncthreads();\n    v = '

mutant nf4-nibbles plain emu_quant/nf4_dequant_bit_for_bit_every_dtype 'differs from the CPU' \
  nf4.cu 'return (bits >> ((4 * i) ^ 4)) & 15u;' 'return (bits >> (4 * i)) & 15u;'

mutant nf4-scale-block plain emu_quant/nf4_dequant_bit_for_bit_every_dtype 'differs from the CPU' \
  nf4.cu 'const float scale = block_scale(p, e0 >> block_shift, dq_shift);' \
  'const float scale = block_scale(p, (e0 >> block_shift) + 1, dq_shift);'

echo "== emu-mutants: summary"
echo "| mutant          | detect | test                                 | caught                 |   s |"
echo "|-----------------|--------|--------------------------------------|------------------------|-----|"
cat "$table"
if ((failed)); then
  echo "emu-mutants: a planted bug was not caught" >&2
  exit 1
fi
echo "emu-mutants: every planted bug caught"
