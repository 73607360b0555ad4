#!/usr/bin/env python3
"""PyTorch's sparse products on the matrices `rosa bench --export DIR` timed ours on: the
baseline a RoSA user on PyTorch compares with. Called by scripts/gpu-run.sh (part 1).

    python3 scripts/torch_baseline.py DIR [--device cuda|cpu] [--time-ms 20] [--json-out F]

For each entry of DIR/index-<dtype>.json (a CSR matrix A, M x K, dense width N), in A's
dtype:
  spmm    torch.sparse.mm(A, B): A a CSR tensor, B dense K x N
  spmm_t  torch.sparse.mm(At, B): At = A^T converted to CSR once (like our transpose
          plan, made once because the mask is fixed), B dense M x N
  sddmm   torch.sparse.sampled_addmm(A, L, R^T, beta=0): (L R^T) at A's pattern, L dense
          M x N, R dense K x N (A's values are ignored with beta = 0)

Timing as the rosa bench does: CUDA events around batches of back-to-back calls (at least
0.5 ms each) after a warm-up, rotating over copies of the operands that together exceed
twice the L2 (so the cache is not what is timed), median batch per call; on the CPU, the
wall clock. Each result is checked against a dense float64 product on sampled rows (a
point whose relative error exceeds the dtype's tolerance says MISMATCH). An op PyTorch
refuses for a dtype is listed with its error, not timed.

Output: one `torch point` line per (entry, op) with PyTorch's time, ours (from the index)
and our speedup (PyTorch's time / ours), then `torch summary` lines: per op and dtype, the
median and geometric-mean speedup. --json-out writes every point as JSON too.
"""

import argparse
import ast
import glob
import json
import math
import os
import statistics
import struct
import sys
import time

# Imported in main(), once there is something to time: a run with nothing exported should
# say so, not that torch is missing.
torch = None
# Relative error (max |diff| over max |reference|) beyond which a result is a mismatch:
# the output's rounding, with room for a different summation order.
TOLERANCE = {"f32": 1e-4, "f16": 1e-2, "bf16": 3e-2}
MIN_BATCH_S = 0.5e-3
MIN_BATCHES = 5
MAX_SETS = 16
CHECK_ROWS = 32


def read_npy_1d(path):
    """A 1-D little-endian int32 or float32 NPY file as a CPU tensor. Read by hand (the
    format is a short header and the raw data) because numpy need not be installed beside
    torch on the GPU machine."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY":
        raise ValueError(f"{path}: not an NPY file")
    major = data[6]
    if major == 1:
        (hlen,), start = struct.unpack("<H", data[8:10]), 10
    else:
        (hlen,), start = struct.unpack("<I", data[8:12]), 12
    header = ast.literal_eval(data[start : start + hlen].decode("latin1"))
    dtype = {"<i4": torch.int32, "<f4": torch.float32}.get(header["descr"])
    if dtype is None or header["fortran_order"] or len(header["shape"]) != 1:
        raise ValueError(f"{path}: expected a 1-D <i4 or <f4 array, got {header}")
    body = bytearray(data[start + hlen :])
    if not body:
        return torch.zeros(0, dtype=dtype)
    return torch.frombuffer(body, dtype=dtype)[: header["shape"][0]].clone()


def load_csr(directory, entry, dtype, device):
    stem = os.path.join(directory, entry["stem"])
    row_ptr = read_npy_1d(stem + ".row_ptr.npy")
    col_idx = read_npy_1d(stem + ".col_idx.npy")
    values = read_npy_1d(stem + ".values.npy")
    if len(col_idx) != entry["nnz"] or len(row_ptr) != entry["m"] + 1:
        raise ValueError(f"{stem}: arrays do not match the index entry {entry}")
    # check_invariants: a file that is not a valid CSR is an error here, not a fault later.
    return torch.sparse_csr_tensor(
        row_ptr, col_idx, values.to(dtype), size=(entry["m"], entry["k"]), device=device,
        check_invariants=True,
    )


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def time_call(call, sets, device, target_s):
    """Median seconds per call of call(i % sets), batched and repeated as described above."""
    for i in range(sets):
        call(i)
    sync(device)

    def batch_seconds(count):
        if device == "cuda":
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for i in range(count):
                call(i % sets)
            stop.record()
            stop.synchronize()
            return start.elapsed_time(stop) * 1e-3
        t0 = time.perf_counter()
        for i in range(count):
            call(i % sets)
        return time.perf_counter() - t0

    estimate = max(batch_seconds(sets) / sets, 1e-7)
    batch = max(1, math.ceil(MIN_BATCH_S / estimate))
    batch = math.ceil(batch / sets) * sets
    times, t0 = [], time.perf_counter()
    while len(times) < MIN_BATCHES or (time.perf_counter() - t0 < target_s and len(times) < 100):
        times.append(batch_seconds(batch) / batch)
    return statistics.median(times)


def rel_error(got, want):
    scale = want.abs().max().item() or 1.0
    return (got.double() - want).abs().max().item() / scale


def points(directory, index, device, target_s, l2_bytes):
    name = index["dtype"]
    dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[name]
    gen = torch.Generator(device="cpu").manual_seed(0)

    def dense(rows, cols):
        return (torch.rand(rows, cols, generator=gen) * 2 - 1).to(dtype).to(device)

    for entry in index["entries"]:
        m, k, n = entry["m"], entry["k"], entry["n"]
        a = load_csr(directory, entry, dtype, device)
        size = dtype.itemsize
        rows = torch.linspace(0, m - 1, min(m, CHECK_ROWS)).long().unique()
        a64 = a.to(torch.float64).to_dense()
        for op in ("spmm", "spmm_t", "sddmm"):
            point = {
                "op": op, "dtype": name, "m": m, "k": k, "n": n,
                "density": entry["density"], "nnz": entry["nnz"],
                "ours_us": entry["ours_us"].get(op),
            }
            try:
                if op == "spmm":
                    call_bytes = entry["nnz"] * (size + 4) + size * (k + m) * n
                    sets = min(MAX_SETS, 1 + math.ceil(2 * l2_bytes / call_bytes))
                    mats = [a] + [a.clone() for _ in range(sets - 1)]
                    bs = [dense(k, n) for _ in range(sets)]
                    run = lambda i: torch.sparse.mm(mats[i], bs[i])  # noqa: E731
                    got = run(0)[rows]
                    want = a64[rows] @ bs[0].double()
                elif op == "spmm_t":
                    at = a.t().to_sparse_csr()
                    call_bytes = entry["nnz"] * (size + 4) + size * (k + m) * n
                    sets = min(MAX_SETS, 1 + math.ceil(2 * l2_bytes / call_bytes))
                    mats = [at] + [at.clone() for _ in range(sets - 1)]
                    bs = [dense(m, n) for _ in range(sets)]
                    run = lambda i: torch.sparse.mm(mats[i], bs[i])  # noqa: E731
                    cols = torch.linspace(0, k - 1, min(k, CHECK_ROWS)).long().unique()
                    got = run(0)[cols]
                    want = a64.t()[cols] @ bs[0].double()
                else:
                    call_bytes = entry["nnz"] * (size + 4) + size * (m + k) * n
                    sets = min(MAX_SETS, 1 + math.ceil(2 * l2_bytes / call_bytes))
                    masks = [a] + [a.clone() for _ in range(sets - 1)]
                    ls = [dense(m, n) for _ in range(sets)]
                    rs = [dense(k, n) for _ in range(sets)]
                    run = lambda i: torch.sparse.sampled_addmm(  # noqa: E731
                        masks[i], ls[i], rs[i].t(), beta=0.0, alpha=1.0
                    )
                    out = run(0).to(torch.float64).to_dense()
                    full = ls[0].double()[rows] @ rs[0].double().t()
                    pattern = a64[rows] != 0
                    got, want = out[rows][pattern], full[pattern]
                    # Explicit zeros in A's values would hide entries from `pattern`;
                    # the generator's values are never exactly zero.
                err = rel_error(got, want)
                seconds = time_call(run, sets, device, target_s)
                point.update(torch_us=seconds * 1e6, rel_error=err,
                             ok=err <= TOLERANCE[name], sets=sets)
            except (RuntimeError, NotImplementedError, TypeError) as e:
                point.update(torch_us=None, error=str(e).splitlines()[0][:200])
            yield point
            if device == "cuda":
                torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", help="the folder `rosa bench --export` wrote")
    ap.add_argument("--device", choices=["cuda", "cpu"],
                    help="default: cuda where torch sees a GPU, else cpu")
    ap.add_argument("--time-ms", type=float, default=20.0)
    ap.add_argument("--json-out")
    args = ap.parse_args()
    indexes = sorted(glob.glob(os.path.join(args.dir, "index-*.json")))
    if not indexes:
        sys.exit(f"torch: nothing to time: no index-*.json in {args.dir} "
                 f"(run `rosa bench --export {args.dir}` first)")
    global torch
    import torch
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        l2 = getattr(props, "L2_cache_size", 50 << 20) or (50 << 20)
        print(f"torch: {torch.__version__} (CUDA {torch.version.cuda}) on {props.name}, "
              f"L2 {l2 >> 20} MiB, cuSPARSE through torch")
    else:
        l2 = 32 << 20
        print(f"torch: {torch.__version__} on the CPU ({torch.get_num_threads()} threads)")
    results = []
    for path in indexes:
        with open(path) as f:
            index = json.load(f)
        for p in points(args.dir, index, args.device, args.time_ms * 1e-3, l2):
            results.append(p)
            shape = f"{p['m']}x{p['k']}x{p['n']} d={p['density']}"
            if p["torch_us"] is None:
                print(f"torch point {p['op']:<6} {p['dtype']:<4} {shape}: n/a ({p['error']})")
                continue
            ours = p["ours_us"]
            versus = (f"ours {ours:.1f} us, speedup {p['torch_us'] / ours:.2f}x"
                      if ours else "ours not measured")
            print(f"torch point {p['op']:<6} {p['dtype']:<4} {shape}: torch {p['torch_us']:.1f} us, "
                  f"{versus}, rel err {p['rel_error']:.1e}{'' if p['ok'] else ' MISMATCH'}")
    keys = []
    for p in results:
        if (p["op"], p["dtype"]) not in keys:
            keys.append((p["op"], p["dtype"]))
    for op, dtype in keys:
        x = [p["torch_us"] / p["ours_us"] for p in results
             if (p["op"], p["dtype"]) == (op, dtype) and p["torch_us"] and p["ours_us"]]
        refused = sum(1 for p in results if (p["op"], p["dtype"]) == (op, dtype) and p["torch_us"] is None)
        if x:
            geo = math.exp(sum(map(math.log, x)) / len(x))
            print(f"torch summary {op:<6} {dtype:<4}: ours over PyTorch median {statistics.median(x):.2f}x, "
                  f"geomean {geo:.2f}x over {len(x)} points" + (f", {refused} refused" if refused else ""))
        else:
            print(f"torch summary {op:<6} {dtype:<4}: no timed point ({refused} refused by PyTorch)")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"torch": torch.__version__, "device": args.device, "points": results}, f, indent=1)
    bad = [p for p in results if p.get("ok") is False]
    if bad:
        sys.exit(f"torch: {len(bad)} results disagree with the float64 reference (MISMATCH above)")


if __name__ == "__main__":
    main()
