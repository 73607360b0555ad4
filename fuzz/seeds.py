#!/usr/bin/env python3
"""Writes the hand-made seed corpora under fuzz/corpus/<target>/: valid files and hostile
ones (truncated, wrong banners, huge declared sizes, bad indices, NaN/Inf, non-UTF-8).
Deterministic; rerun after editing, then commit the files."""
import json, os, struct, shutil

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
I32 = 2**31 - 1


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    open(os.path.join(d, name), "wb").write(data)


def parts(rows, cols, rp, ci, vals, n=None):
    n_rp, n_ci, n_v = n or (len(rp), len(ci), len(vals))
    return (bytes([rows, cols, n_rp, n_ci, n_v]) + struct.pack(f"<{len(rp)}i", *rp)
            + struct.pack(f"<{len(ci)}i", *ci) + struct.pack(f"<{len(vals)}f", *vals))


def csr_parts():
    t = "csr_parts"
    put(t, "valid-3x3", parts(3, 3, [0, 2, 2, 3], [0, 2, 1], [1, 2, 3]))
    put(t, "valid-nan-inf", parts(2, 2, [0, 2, 3], [0, 1, 1], [float("nan"), float("inf"), -float("inf")]))
    put(t, "valid-empty-0x0", parts(0, 0, [0], [], []))
    put(t, "valid-zero-nnz", parts(5, 7, [0] * 6, [], []))
    put(t, "valid-one-heavy-row", parts(4, 40, [0, 40, 41, 42, 43], list(range(40)) + [0, 1, 2], [1.0] * 43))
    put(t, "valid-cols-at-i32-limit", parts(1, 251, [0, 1], [I32 - 1], [2.0]))
    put(t, "rows-i32-limit-short-row-ptr", parts(251, 1, [0, 0], [], []))
    put(t, "rows-over-i32", parts(252, 1, [0, 0], [], []))
    put(t, "rows-usize-max", parts(254, 254, [0], [], []))
    put(t, "col-negative", parts(1, 3, [0, 1], [-1], [1]))
    put(t, "col-i32-max", parts(1, 3, [0, 1], [I32], [1]))
    put(t, "row-ptr-negative", parts(2, 2, [0, -1, 1], [0], [1]))
    put(t, "row-ptr-start", parts(1, 2, [1, 1], [0], [1]))
    put(t, "row-ptr-decreasing", parts(2, 2, [0, 2, 1], [0, 1], [1, 1]))
    put(t, "row-ptr-past-nnz", parts(1, 2, [0, I32], [0], [1]))
    put(t, "row-ptr-wrong-length", parts(2, 2, [0, 1], [0], [1]))
    put(t, "cols-unsorted", parts(1, 3, [0, 2], [2, 0], [1, 1]))
    put(t, "cols-repeated", parts(1, 3, [0, 2], [1, 1], [1, 1]))
    put(t, "values-short", parts(1, 3, [0, 2], [0, 1], [1]))
    put(t, "truncated", parts(3, 3, [0, 2, 2, 3], [0, 2, 1], [1, 2, 3])[:9])
    put(t, "empty", b"")


BANNER = "%%MatrixMarket matrix coordinate real general\n"


def mtx_files():
    f = {
        "valid-real": BANNER + "% c\n3 3 3\n1 1 1.5\n1 3 -2\n3 2 1e-3\n",
        "valid-pattern": "%%MatrixMarket matrix coordinate pattern general\n2 3 2\n1 3\n2 1\n",
        "valid-integer": "%%MatrixMarket matrix coordinate integer general\n2 2 2\n1 1 -7\n2 2 16777216\n",
        "integer-inexact-in-f32": "%%MatrixMarket matrix coordinate integer general\n1 1 1\n1 1 16777217\n",
        "integer-past-f64": "%%MatrixMarket matrix coordinate integer general\n1 1 1\n1 1 9223372036854775807\n",
        "valid-nan-inf": BANNER + "2 2 4\n1 1 nan\n1 2 inf\n2 1 -inf\n2 2 3e38\n",
        "valid-overflows-f16": BANNER + "1 1 1\n1 1 70000\n",
        "overflows-f32": BANNER + "1 1 1\n1 1 1e39\n",
        "sum-overflows-f32": BANNER + "1 1 2\n1 1 3e38\n1 1 3e38\n",
        "valid-duplicates-summed": BANNER + "2 2 3\n1 1 1\n1 1 2\n2 2 0\n",
        "valid-duplicates-summed-in-f64": BANNER + "1 2 2\n1 1 1.001\n1 1 -1\n",
        "valid-duplicates-inf-minus-inf": BANNER + "1 2 2\n1 1 inf\n1 1 -inf\n",
        "valid-duplicates-past-shape": BANNER + "1 1 3\n1 1 1\n1 1 2\n1 1 0.5\n",
        "valid-zero-nnz": BANNER + "4 5 0\n",
        "valid-0x0": BANNER + "0 0 0\n",
        "valid-crlf": BANNER.replace("\n", "\r\n") + "1 1 1\r\n1 1 2\r\n",
        "valid-one-heavy-row": BANNER + "3 30 32\n" + "".join(f"1 {j} {j}\n" for j in range(1, 31)) + "2 1 1\n3 1 1\n",
        "valid-cols-at-i32-limit": BANNER + f"1 {I32} 1\n1 {I32} 4\n",
        "valid-upper-case-banner": "%%MATRIXMARKET MATRIX COORDINATE REAL GENERAL\n1 1 1\n1 1 1\n",
        "truncated": BANNER + "3 3 3\n1 1 1\n",
        "too-many-entries": BANNER + "1 1 1\n1 1 1\n1 1 2\n",
        "no-size-line": BANNER,
        "bad-banner": "%%MatrixMarkt matrix coordinate real general\n1 1 0\n",
        "no-banner": "1 1 1\n1 1 1\n",
        "valid-array": "%%MatrixMarket matrix array real general\n%\n3 2\n1\n3\n0\n2\n4.5\n6\n",
        "valid-array-symmetric": "%%MatrixMarket matrix array real symmetric\n3 3\n2\n1\n1\n2\n1\n2\n",
        "valid-array-skew-integer": "%%MatrixMarket matrix array integer skew-symmetric\n3 3\n1\n-2\n3\n",
        "valid-array-empty": "%%MatrixMarket matrix array real general\n0 5\n",
        "array-pattern": "%%MatrixMarket matrix array pattern general\n1 1\n1\n",
        "array-truncated": "%%MatrixMarket matrix array real general\n2 2\n1\n2\n3\n",
        "array-too-long": "%%MatrixMarket matrix array real general\n1 1\n1\n2\n",
        "array-two-per-line": "%%MatrixMarket matrix array real general\n2 1\n1 2\n",
        "array-symmetric-not-square": "%%MatrixMarket matrix array real symmetric\n2 3\n1\n2\n3\n",
        "complex": "%%MatrixMarket matrix coordinate complex general\n1 1 1\n1 1 1 0\n",
        "hermitian": "%%MatrixMarket matrix coordinate complex hermitian\n2 2 1\n2 1 1 0\n",
        "vector": "%%MatrixMarket vector coordinate real general\n2 1\n1 1\n",
        "valid-symmetric": "%%MatrixMarket matrix coordinate real symmetric\n%\n3 3 6\n1 1 2\n2 1 1\n2 2 2\n3 1 1\n3 2 1\n3 3 2\n",
        "valid-symmetric-upper-entry": "%%MatrixMarket matrix coordinate real symmetric\n2 2 1\n1 2 5\n",
        "valid-skew-symmetric": "%%MatrixMarket matrix coordinate real skew-symmetric\n3 3 2\n2 1 -2\n3 2 4.5\n",
        "valid-pattern-symmetric": "%%MatrixMarket matrix coordinate pattern symmetric\n3 3 3\n1 1\n3 1\n3 2\n",
        "skew-diagonal": "%%MatrixMarket matrix coordinate real skew-symmetric\n2 2 1\n1 1 1\n",
        "symmetric-not-square": "%%MatrixMarket matrix coordinate real symmetric\n2 3 1\n2 1 1\n",
        "pattern-skew": "%%MatrixMarket matrix coordinate pattern skew-symmetric\n2 2 1\n2 1\n",
        "entries-huge": BANNER + f"{I32} {I32} {I32}\n1 1 1\n",
        "entries-past-shape": BANNER + "2 2 5\n",
        "rows-over-i32": BANNER + f"{I32 + 1} 1 0\n",
        "cols-over-i32": BANNER + f"1 {I32 + 1} 0\n",
        "rows-u64-overflow": BANNER + "99999999999999999999999 1 0\n",
        "negative-size": BANNER + "-1 2 0\n",
        "index-zero": BANNER + "2 2 1\n0 1 1\n",
        "index-negative": BANNER + "2 2 1\n-1 1 1\n",
        "index-past-rows": BANNER + "2 2 1\n3 1 1\n",
        "index-overflow": BANNER + "2 2 1\n18446744073709551617 1 1\n",
        "value-garbage": BANNER + "1 1 1\n1 1 one\n",
        "value-missing": BANNER + "1 1 1\n1 1\n",
        "fields-extra": BANNER + "1 1 1\n1 1 1 1\n",
        "empty": "",
    }
    f["non-utf8"] = BANNER.encode() + b"1 1 1\n1 1 \xff\xfe\n"
    f["valid-latin1-comment"] = BANNER.encode() + b"% M\xfcller \xa9 1998\n1 1 1\n1 1 2.5\n"
    f["valid-utf8-bom"] = b"\xef\xbb\xbf" + BANNER.encode() + b"1 1 1\n1 1 2.5\n"
    f["utf16-bom"] = b"\xff\xfe" + BANNER.encode("utf-16-le")
    f["non-ascii-size-line"] = BANNER.encode() + b"1 1 \xb91\n1 1 1\n"
    f["nul-bytes"] = BANNER.encode() + b"1 1 1\n1\x001 1\n"
    return f


def mtx():
    for name, data in mtx_files().items():
        put("mtx", name, data)


def npy_bytes(descr, shape, data, fortran=False, version=1, header=None):
    h = header or "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (
        descr, "True" if fortran else "False", shape)
    h = h.encode()
    pre = 10 if version == 1 else 12
    h += b" " * ((64 - (pre + len(h) + 1) % 64) % 64) + b"\n"
    ln = struct.pack("<H", len(h)) if version == 1 else struct.pack("<I", len(h))
    return b"\x93NUMPY" + bytes([version, 0]) + ln + h + data


def npy_files():
    f4 = lambda *v: struct.pack(f"<{len(v)}f", *v)
    nan, inf = float("nan"), float("inf")
    return {
        "valid-f4": npy_bytes("<f4", "(2, 3)", f4(1, 2, 3, 4, 5, 6)),
        "valid-f2": npy_bytes("<f2", "(1, 2)", struct.pack("<2e", 1.5, -65504)),
        "f8-overflows-f32": npy_bytes("<f8", "(1, 3)", struct.pack("<3d", 1e300, -1e40, 70000.0)),
        "valid-f4-overflows-f16": npy_bytes("<f4", "(1, 2)", f4(70000.0, 1)),
        "valid-fortran": npy_bytes("<f4", "(3, 2)", f4(0, 1, 2, 3, 4, 5), fortran=True),
        "valid-fortran-f8": npy_bytes("<f8", "(2, 2)", struct.pack("<4d", 1, 2, 3, 4), fortran=True),
        "valid-int": npy_bytes("<i4", "(1, 1)", struct.pack("<i", 1)),
        "valid-i8-big-endian": npy_bytes(">i8", "(2, 1)", struct.pack(">2q", -7, 2**40)),
        "valid-u1": npy_bytes("|u1", "(1, 3)", bytes([0, 128, 255])),
        "valid-bool": npy_bytes("|b1", "(2, 2)", bytes([1, 0, 0, 1])),
        "valid-u2-fits-f16": npy_bytes("<u2", "(1, 1)", struct.pack("<H", 65504)),
        "int-inexact": npy_bytes("<i8", "(1, 1)", struct.pack("<q", 2**53 + 1)),
        "u8-max": npy_bytes("<u8", "(1, 1)", struct.pack("<Q", 2**64 - 1)),
        "bool-not-0-or-1": npy_bytes("|b1", "(1, 1)", bytes([2])),
        "long-double": npy_bytes("<f16", "(1, 1)", b"\0" * 16),
        "datetime": npy_bytes("<M8[ns]", "(1, 1)", b"\0" * 8),
        "valid-py2-long-shape": npy_bytes("<f4", "(2L, 1L)", f4(1, 2)),
        "header-over-numpy-limit": npy_bytes("<f4", "", f4(1), header="{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), 'x': '%s'}" % ("y" * 10001), version=2),
        "valid-nan-inf": npy_bytes("<f4", "(2, 2)", f4(nan, inf, -inf, -0.0)),
        "valid-nan-payload": npy_bytes("<f4", "(1, 1)", struct.pack("<I", 0x7FC0BEEF)),
        "valid-0x0": npy_bytes("<f4", "(0, 0)", b""),
        "valid-0-by-huge": npy_bytes("<f4", f"(0, {2**62})", b""),
        "valid-v2": npy_bytes("<f4", "(1, 1)", f4(7), version=2),
        "valid-big-endian": npy_bytes(">f4", "(1, 1)", struct.pack(">f", 1)),
        "complex": npy_bytes("<c8", "(1, 1)", b"\0" * 8),
        "object": npy_bytes("|O", "(1, 1)", b"\0" * 8),
        "rank-1": npy_bytes("<f4", "(2,)", f4(1, 2)),
        "rank-3": npy_bytes("<f4", "(1, 1, 1)", f4(1)),
        "data-short": npy_bytes("<f4", "(2, 2)", f4(1, 2, 3)),
        "data-long": npy_bytes("<f4", "(1, 1)", f4(1, 2)),
        "shape-huge": npy_bytes("<f4", f"({I32}, {I32})", f4(1)),
        "shape-overflow": npy_bytes("<f4", f"({2**40}, {2**40})", f4(1)),
        "shape-u64-overflow": npy_bytes("<f4", f"({2**64}, 1)", f4(1)),
        "shape-expression": npy_bytes("<f4", "(709551615-000, 1099511627776)", f4(1)),
        "shape-overflow-before-zero": npy_bytes("<f4", f"({2**40}, {2**40}, 0)", b""),
        "shape-repeated-key": npy_bytes("<f4", "", b"", header="{'descr': '<f4', 'fortran_order': False, 'shape': (0, 1), 'shape': (%d, %d)}" % (2**40, 2**40)),
        "shape-list": npy_bytes("<f4", f"[{2**40}, {2**40}]", f4(1)),
        "shape-negative": npy_bytes("<f4", "(-1, 1)", f4(1)),
        "header-garbage": npy_bytes("<f4", "", b"", header="{'descr': '<f4', 'shape': ("),
        "header-not-dict": npy_bytes("<f4", "", f4(1), header="[1, 2, 3]"),
        "header-len-past-end": b"\x93NUMPY\x01\x00\xff\xff{'descr'",
        "header-len-v2-huge": b"\x93NUMPY\x02\x00\xff\xff\xff\xff{",
        "version-9": b"\x93NUMPY\x09\x00\x10\x00" + b" " * 16,
        "magic-only": b"\x93NUMPY",
        "bad-magic": b"\x93NUMPX\x01\x00\x00\x00",
        "non-utf8-header": npy_bytes("<f4", "", f4(1), header="{'descr': '\xff<f4'}").replace(b"\xc3\xbf", b"\xff"),
        "empty": b"",
    }


def npy():
    for name, data in npy_files().items():
        put("npy", name, data)


def tune_cache():
    device = {"name": "fuzz", "compute_capability": [9, 0], "sm_count": 132,
              "memory_bytes": 2**36, "driver_version": 13000}
    header = {"schema": 1, "build_id": "fuzz", "device": device}
    key = {"op": "spmm", "dtype": "f32", "m": 12, "k": 12, "n": 9, "density": 13, "spread": 0}
    entry = {"key": key, "config": 3, "config_name": "sw8", "tuned_us": 40.0, "heuristic_us": 55.5}
    ok = {"header": header, "entries": [entry]}
    t = "tune_cache"
    put(t, "valid-one", json.dumps(ok))
    put(t, "valid-empty", json.dumps({"header": header, "entries": []}))
    k2 = dict(key, op="sddmm", dtype="bf16")
    put(t, "valid-two", json.dumps({"header": header, "entries": [dict(entry, key=k2), entry]}))
    put(t, "valid-tiny-times", json.dumps({"header": header, "entries": [dict(entry, tuned_us=5e-324, heuristic_us=1.7976931348623157e308)]}))
    put(t, "config-unknown", json.dumps({"header": header, "entries": [dict(entry, config=8)]}))
    put(t, "config-negative", json.dumps({"header": header, "entries": [dict(entry, config=-1)]}))
    put(t, "time-zero", json.dumps({"header": header, "entries": [dict(entry, tuned_us=0.0)]}))
    put(t, "time-negative", json.dumps({"header": header, "entries": [dict(entry, heuristic_us=-1.0)]}))
    put(t, "time-nan-string", json.dumps({"header": header, "entries": [dict(entry, tuned_us="NaN")]}))
    put(t, "time-overflow", json.dumps(ok).replace("40.0", "1e400"))
    put(t, "key-repeated", json.dumps({"header": header, "entries": [entry, dict(entry, config=1)]}))
    put(t, "bucket-overflow", json.dumps({"header": header, "entries": [dict(entry, key=dict(key, m=256))]}))
    put(t, "op-unknown", json.dumps({"header": header, "entries": [dict(entry, key=dict(key, op="gemm"))]}))
    put(t, "missing-header", json.dumps({"entries": []}))
    put(t, "truncated", json.dumps(ok)[:60])
    put(t, "deep-nesting", "[" * 10000)
    put(t, "not-json", "tuned: yes\n")
    put(t, "non-utf8", b'{"header": "\xff\xfe"}')
    put(t, "empty", "")


def st(tensors):
    """A safetensors file from {name: (dtype, shape, bytes)}."""
    header, data, off = {}, b"", 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        data += raw
        off += len(raw)
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


def i32s(*v):
    return struct.pack(f"<{len(v)}i", *v)


def mask(prefix, rows, cols, rp, ci, values=None):
    t = {f"{prefix}.shape": ("I32", [2], i32s(rows, cols)),
         f"{prefix}.row_ptr": ("I32", [len(rp)], i32s(*rp)),
         f"{prefix}.col_idx": ("I32", [len(ci)], i32s(*ci))}
    if values is not None:
        t[f"{prefix}.values"] = ("F32", [len(values)], struct.pack(f"<{len(values)}f", *values))
    return t


def safetensors_masks():
    t = "safetensors_masks"
    m0 = mask("layers.0.mask", 2, 3, [0, 1, 2], [2, 0])
    put(t, "valid-one-mask", st(m0))
    put(t, "valid-two-masks", st({**m0, **mask("layers.1.mask", 1, 1, [0, 0], [])}))
    put(t, "valid-mask-with-nan-values", st(mask("layers.0.mask", 1, 2, [0, 2], [0, 1], [float("nan"), float("inf")])))
    put(t, "mask-gap-in-layers", st(mask("layers.1.mask", 1, 1, [0, 0], [])))
    put(t, "mask-shape-negative", st(mask("layers.0.mask", -1, 3, [0], [])))
    put(t, "mask-shape-i32-max", st(mask("layers.0.mask", I32, I32, [0, 0], [])))
    put(t, "mask-col-out-of-range", st(mask("layers.0.mask", 1, 2, [0, 1], [2])))
    put(t, "mask-row-ptr-short", st(mask("layers.0.mask", 3, 2, [0, 1], [0])))
    put(t, "mask-shape-three", st({**m0, "layers.0.mask.shape": ("I32", [3], i32s(2, 3, 1))}))
    put(t, "mask-wrong-dtype", st({**m0, "layers.0.mask.row_ptr": ("F32", [3], i32s(0, 1, 2))}))
    put(t, "mask-i64", st({**m0, "layers.0.mask.col_idx": ("I64", [2], struct.pack("<2q", 2, 0))}))
    put(t, "shape-claims-more-than-data", st({**m0, "layers.0.mask.col_idx": ("I32", [1000], i32s(2, 0))}))
    put(t, "shape-overflow", st({**m0, "layers.0.mask.col_idx": ("I32", [2**62, 2**62], i32s(2, 0))}))
    put(t, "offsets-past-end", st(m0)[:-4])
    put(t, "header-len-huge", struct.pack("<Q", 2**63) + b"{}")
    put(t, "header-not-json", struct.pack("<Q", 4) + b"{{{{")
    put(t, "header-non-utf8", struct.pack("<Q", 4) + b"\xff\xfe\xfd\xfc")
    f32s = lambda *v: struct.pack(f"<{len(v)}f", *v)
    lora = {"layers.0.lora_a": ("F32", [2, 3], f32s(*[0.5] * 6)),
            "layers.0.lora_b": ("F32", [4, 2], f32s(*[0.25] * 8)),
            "layers.0.lora_scale": ("F32", [1], f32s(2.0))}
    put(t, "valid-adapters-lora", st(lora))
    put(t, "valid-adapters-sparse", st(mask("layers.1.sparse", 4, 4, [0, 1, 1, 1, 2], [3, 0], [1.5, -2.0])))
    put(t, "valid-adapters-weight-bias", st({"layers.3.weight": ("F32", [2, 4], f32s(*[1.0] * 8)),
                                             "layers.3.bias": ("F32", [2], f32s(0.1, 0.2))}))
    put(t, "adapters-lora-wrong-shape", st({**lora, "layers.0.lora_a": ("F32", [3, 2], f32s(*[0.5] * 6))}))
    put(t, "adapters-lora-b-missing", st({k: v for k, v in lora.items() if "lora_b" not in k}))
    put(t, "adapters-sparse-wrong-shape", st(mask("layers.0.sparse", 9, 9, [0] * 10, [], [])))
    put(t, "adapters-weight-1d", st({"layers.0.weight": ("F32", [12], f32s(*[1.0] * 12))}))
    put(t, "adapters-bias-long", st({"layers.0.bias": ("F32", [5], f32s(*[1.0] * 5))}))
    put(t, "empty", b"")


def cli_files():
    t = "cli_files"
    m, n = mtx_files(), npy_files()
    pair = lambda a, b: struct.pack("<H", len(a)) + a + b
    enc = lambda s: s if isinstance(s, bytes) else s.encode()
    f4 = lambda *v: struct.pack(f"<{len(v)}f", *v)
    a = enc(m["valid-real"])
    put(t, "valid-spmm-3x3-by-3x2", pair(a, npy_bytes("<f4", "(3, 2)", f4(1, 2, 3, 4, 5, 6))))
    put(t, "valid-nan-inf", pair(enc(m["valid-nan-inf"]), npy_bytes("<f4", "(2, 2)", f4(1, 0, float("inf"), float("nan")))))
    put(t, "valid-zero-nnz", pair(enc(m["valid-zero-nnz"]), npy_bytes("<f4", "(5, 2)", f4(*[float("nan")] * 10))))
    put(t, "valid-heavy-row", pair(enc(m["valid-one-heavy-row"]), npy_bytes("<f4", "(30, 1)", f4(*[1e38] * 30))))
    put(t, "valid-explicit-zero-times-inf", pair(BANNER.encode() + b"1 1 1\n1 1 0\n", npy_bytes("<f4", "(1, 1)", f4(float("inf")))))
    put(t, "valid-shape-mismatch", pair(a, npy_bytes("<f4", "(4, 4)", f4(*[1] * 16))))
    put(t, "valid-huge-output", pair(enc(m["valid-cols-at-i32-limit"]), npy_bytes("<f4", "(1, 1)", f4(1))))
    put(t, "hostile-mtx", pair(enc(m["entries-huge"]), n["valid-f4"]))
    put(t, "hostile-npy", pair(a, n["shape-overflow"]))
    b_array = b"%%MatrixMarket matrix array real general\n3 1\n1\n-2\n0.5\n"
    put(t, "valid-symmetric-by-array", pair(enc(m["valid-symmetric"]), b_array))
    put(t, "valid-skew-by-fortran", pair(enc(m["valid-skew-symmetric"]), n["valid-fortran"]))
    put(t, "valid-array-by-int", pair(enc(m["valid-array-symmetric"]), npy_bytes("<i4", "(3, 1)", struct.pack("<3i", 1, 10, 100))))
    put(t, "both-empty", b"\0\0")
    put(t, "empty", b"")


if __name__ == "__main__":
    shutil.rmtree(ROOT, ignore_errors=True)
    for f in (csr_parts, mtx, npy, tune_cache, safetensors_masks, cli_files):
        f()
