#!/usr/bin/env python3
"""Per-kernel register, spill and load-batching report of csrc/'s compiled machine code.

Reads, for each compiled translation unit, the `ptxas -v` log and the `cuobjdump -sass`
listing that scripts/sass-report.sh produced, and prints one Markdown table row per kernel
instantiation. Exits 1 when any kernel spills, or when a kernel named as an SpMM fast path
keeps fewer than MIN_FAST_LOADS 128-bit loads in flight (issue 17, item 4).

Why a hand-written parser: nothing on PyPI reads ptxas logs or SASS listings, and the two
text formats needed here are a few regular expressions each.

The load metrics are static and linear: they walk a function's SASS in address order,
ignoring branches, so they measure what the compiler scheduled on a straight-line path,
which is where loads are batched (or not) for the memory system:

- `ldg128_in_flight`: the most 128-bit global loads (LDG.E.128*) issued and not yet read
  by any instruction at one point of the listing. One load consumed right after it is
  issued gives 1; B loads of several nonzeros hoisted ahead of their FMAs give more.
- `loads_per_shfl_chain`: global loads (any width) divided by shuffle chains (maximal runs
  of SHFL instructions with no global load between them): for SDDMM, how many operand
  loads one warp reduction is amortized over.

Usage: sass_report.py DIR...   (each DIR holds <unit>.ptxas.log and <unit>.sass)
"""

import os
import re
import subprocess
import sys

MIN_FAST_LOADS = 4

FUNC_RE = re.compile(r"Function properties for (\S+)")
FRAME_RE = re.compile(
    r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads"
)
REGS_RE = re.compile(r"Used (\d+) registers")
SASS_FUNC_RE = re.compile(r"^\s*Function : (\S+)")
INSN_RE = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)\s*([^;]*);")
REG_RE = re.compile(r"\bR(\d+)\b")


# Relocatable device code (-rdc, as build.rs compiles) prefixes the symbols of functions in
# an anonymous namespace with `__nv_static_<n>__<unit id>_`, which c++filt does not read.
NV_STATIC_RE = re.compile(r"^__nv_static_\w*?_(?=_Z)")


def demangle(names):
    """Demangled names, in order (binutils' c++filt reads the Itanium ABI nvcc uses)."""
    try:
        out = subprocess.run(
            ["c++filt"],
            input="\n".join(NV_STATIC_RE.sub("", n) for n in names),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        return out if len(out) == len(names) else names
    except (OSError, subprocess.CalledProcessError):
        return names


def short(name):
    """`rosa::(anonymous namespace)::spmm_kernel<float, 4, 32, 1, ...>(params)` -> `spmm_kernel<float,4,32,1,...>`."""
    name = re.sub(r"^void ", "", name)
    name = name.replace("rosa::(anonymous namespace)::", "").replace("rosa::", "")
    name = re.sub(r"\(.*\)$", "", name)
    name = name.replace("__nv_bfloat16", "bf16").replace("__half", "f16").replace("float", "f32")
    return name.replace(" ", "")


def parse_ptxas(path):
    """{mangled: (registers, stack frame bytes, spill store bytes, spill load bytes)}."""
    stats, current, frame = {}, None, None
    with open(path) as f:
        for line in f:
            m = FUNC_RE.search(line)
            if m:
                current, frame = m.group(1), None
                continue
            m = FRAME_RE.search(line)
            if m and current:
                frame = tuple(int(g) for g in m.groups())
                continue
            m = REGS_RE.search(line)
            if m and current and frame is not None:
                stats[current] = (int(m.group(1)),) + frame
                current = None
    return stats


def parse_sass(path):
    """{mangled: [(opcode, operand text)]} in address order."""
    funcs, current = {}, None
    with open(path) as f:
        for line in f:
            m = SASS_FUNC_RE.match(line)
            if m:
                current = m.group(1)
                funcs[current] = []
                continue
            if current is None:
                continue
            m = INSN_RE.search(line)
            if m:
                funcs[current].append((m.group(1), m.group(2)))
    return funcs


def regs(text):
    return [int(r) for r in REG_RE.findall(text)]


def load_metrics(insns):
    pending = {}  # destination register -> load serial number
    in_flight, best = set(), 0
    loads, chains, in_chain = 0, 0, False
    for serial, (op, operands) in enumerate(insns):
        parts = operands.split(",", 1)
        dest, sources = (parts[0], parts[1]) if len(parts) == 2 else ("", parts[0])
        is_store = op.startswith(("ST", "RED", "ATOM"))
        # A store reads its "destination" address operand too.
        read = regs(operands if is_store else sources)
        for r in read:
            if r in pending:
                in_flight.discard(pending.pop(r))
        if op.startswith("LDG"):
            loads += 1
            in_chain = False
            if ".128" in op:
                first = regs(dest)
                if first:
                    for r in range(first[0], first[0] + 4):
                        pending[r] = serial
                    in_flight.add(serial)
                    best = max(best, len(in_flight))
        elif op.startswith("SHFL"):
            if not in_chain:
                chains += 1
                in_chain = True
        # Any other write to a pending register retires that load's claim on it.
        elif not is_store:
            for r in regs(dest):
                if r in pending:
                    in_flight.discard(pending.pop(r))
    return best, loads, chains


def main(dirs):
    rows, failures = [], []
    for d in dirs:
        units = sorted(f[: -len(".sass")] for f in os.listdir(d) if f.endswith(".sass"))
        for unit in units:
            stats = parse_ptxas(os.path.join(d, unit + ".ptxas.log"))
            sass = parse_sass(os.path.join(d, unit + ".sass"))
            names = sorted(stats)
            for mangled, pretty in zip(names, demangle(names)):
                nregs, frame, spill_st, spill_ld = stats[mangled]
                best, loads, chains = load_metrics(sass.get(mangled, []))
                name = short(pretty)
                per_chain = f"{loads / chains:.1f}" if chains else "-"
                rows.append((unit, name, nregs, spill_st + spill_ld, frame, best, per_chain))
                if spill_st or spill_ld:
                    failures.append(f"{name}: {spill_st + spill_ld} spill bytes")
                if "fast" in name.lower() and best < MIN_FAST_LOADS:
                    failures.append(
                        f"{name}: {best} 128-bit loads in flight, the fast path needs >= {MIN_FAST_LOADS}"
                    )
    print("| unit | kernel | registers | spill bytes | stack frame bytes | ldg128_in_flight | loads_per_shfl_chain |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
    fast = [r for r in rows if "fast" in r[1].lower()]
    if not fast:
        print("\nSpMM fast path: none compiled (issue 17 item 1), so the loads-in-flight gate has nothing to check.")
    if failures:
        print("\nsass-report: FAILED", file=sys.stderr)
        for f in failures:
            print("  " + f, file=sys.stderr)
        return 1
    print(f"\nsass-report: {len(rows)} kernels, 0 spill bytes")
    return 0


def self_test():
    """The metrics on hand-made listings, so a parser broken by a new SASS format fails
    here instead of reporting zeros."""
    listing = [
        ("LDG.E.128.CONSTANT", "R8, desc[UR4][R2.64]"),
        ("LDG.E.128.CONSTANT", "R12, desc[UR4][R2.64+0x10]"),
        ("LDG.E.128.CONSTANT", "R16, desc[UR4][R2.64+0x20]"),
        ("FFMA", "R20, R9, R4, R20"),  # consumes the first load: 3 were in flight
        ("LDG.E.128", "R24, desc[UR4][R6.64]"),
        ("FFMA", "R21, R13, R4, R21"),
        ("SHFL.BFLY", "PT, R0, R20, 0x10, 0x1f"),
        ("SHFL.BFLY", "PT, R1, R0, 0x8, 0x1f"),
        ("LDG.E", "R2, desc[UR4][R6.64]"),
        ("SHFL.BFLY", "PT, R0, R2, 0x10, 0x1f"),
    ]
    assert load_metrics(listing) == (3, 5, 2), load_metrics(listing)
    line = "        /*0180*/                   LDG.E.128.CONSTANT R32, desc[UR8][R32.64] ;"
    assert INSN_RE.search(line).groups() == ("LDG.E.128.CONSTANT", "R32, desc[UR8][R32.64] ")
    line = "        /*0270*/               @!P0 BRA 0x27a0 ;"
    assert INSN_RE.search(line).group(1) == "BRA"
    assert short("void rosa::(anonymous namespace)::spmm_kernel<float, 4, 32, 1>(p)") == "spmm_kernel<f32,4,32,1>"
    rdc = "__nv_static_28__74968019_7_spmm_cu_5bd76c94__ZN4rosa3fooEv"
    assert NV_STATIC_RE.sub("", rdc) == "_ZN4rosa3fooEv", NV_STATIC_RE.sub("", rdc)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    self_test()
    sys.exit(main(sys.argv[1:]))
