//! Tests that must call the C ABI with arguments no safe launcher would build: here,
//! row offsets next to `i32::MAX` without the 8 GiB of columns such a matrix would need.

use std::ffi::c_void;

use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut};

use super::sys;
use super::Device;

/// A pointer to `buf` moved back by `offset` elements, so that index `offset + i` of it
/// is element `i` of `buf`.
fn biased<T>(ptr: u64, offset: i64) -> u64 {
    ptr.wrapping_sub((offset as u64).wrapping_mul(std::mem::size_of::<T>() as u64))
}

/// One row holding entries `start..i32::MAX` (33 of them: one more than the widest
/// sub-warp, so every configuration takes a partial last batch right at the limit). Before
/// the loop index was 64-bit, `base += SW` wrapped past `i32::MAX` there and the kernel
/// read columns at negative offsets: a fault or a wrong sum.
#[test]
fn spmm_rows_ending_at_i32_max_sum_their_last_entries() {
    let dev = match Device::new(0) {
        Ok(dev) => dev,
        Err(e) => {
            // Straight to stderr, past the harness's capture (as the GPU tests' skips are):
            // the GPU runner counts a skip there as a failure.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "spmm at i32::MAX: skipped: no CUDA device ({e})"
            );
            return;
        }
    };
    let stream = dev.stream();
    let (len, b_rows, n) = (33usize, 64usize, 8usize);
    let end = i32::MAX;
    let start = end - len as i32;
    // Distinct (37 is prime to 64) and sorted, as a CSR row's columns must be.
    let mut sorted: Vec<i32> = (0..len as i32).map(|e| (e * 37) % b_rows as i32).collect();
    sorted.sort_unstable();
    let values: Vec<f32> = (0..len).map(|e| 0.25 + e as f32 / 64.0).collect();
    let b: Vec<f32> = (0..b_rows * n).map(|i| (i % 13) as f32 - 6.0).collect();
    // perm: entry e of the walked structure takes value e, as an index in the same biased
    // numbering.
    let perm: Vec<i32> = (0..len as i32).map(|e| start + e).collect();
    let want: Vec<f64> = (0..n)
        .map(|j| {
            (0..len)
                .map(|e| values[e] as f64 * b[sorted[e] as usize * n + j] as f64)
                .sum()
        })
        .collect();
    let up = |v: &[i32]| stream.clone_htod(v).unwrap();
    let (row_ptr, swizzle, col_idx, perm) = (up(&[start, end]), up(&[0]), up(&sorted), up(&perm));
    let values_d: CudaSlice<f32> = stream.clone_htod(&values).unwrap();
    let b_d: CudaSlice<f32> = stream.clone_htod(&b).unwrap();
    let configs = super::launch::config_count(sys::rosa_op::ROSA_OP_SPMM as i32);
    for transposed in [false, true] {
        for config in 0..configs {
            let mut c_d: CudaSlice<f32> = stream.clone_htod(&vec![f32::NAN; n]).unwrap();
            {
                let (rp, _g1) = row_ptr.device_ptr(stream);
                let (sw, _g2) = swizzle.device_ptr(stream);
                let (ci, _g3) = col_idx.device_ptr(stream);
                let (pe, _g4) = perm.device_ptr(stream);
                let (va, _g5) = values_d.device_ptr(stream);
                let (bp, _g6) = b_d.device_ptr(stream);
                let (cp, _g7) = c_d.device_ptr_mut(stream);
                let params = sys::rosa_spmm_params {
                    dtype: sys::rosa_dtype::ROSA_DTYPE_F32 as i32,
                    c_f32: 0,
                    rows: 1,
                    n: n as i32,
                    b_rows: b_rows as i32,
                    // A splitting configuration walks the row as a long one: its
                    // sub-warps' interleaved batches step SW * BR past the same limit.
                    long_rows: i32::from(
                        super::KernelConfig::get(crate::Op::Spmm, config)
                            .is_ok_and(|c| c.split > 0),
                    ),
                    row_ptr: rp as usize as *const i32,
                    col_idx: biased::<i32>(ci, start as i64) as usize as *const i32,
                    perm: if transposed {
                        biased::<i32>(pe, start as i64) as usize as *const i32
                    } else {
                        std::ptr::null()
                    },
                    row_swizzle: sw as usize as *const i32,
                    values: biased::<f32>(va, start as i64) as usize as *const c_void,
                    b: bp as usize as *const c_void,
                    c: cp as usize as *mut c_void,
                    ldb: n as i64,
                    ldc: n as i64,
                    alpha: 1.0,
                    beta: 0.0,
                };
                stream.context().bind_to_thread().unwrap();
                let s = stream.cu_stream() as *mut c_void;
                // SAFETY: the kernel indexes row_ptr[0..2], swizzle[0], and col_idx, perm
                // and values at start..end only, which the biased pointers map onto the
                // 33 uploaded entries; every column is below b_rows; B holds b_rows * n
                // and C n floats. All buffers are live on this stream's context.
                let code = unsafe {
                    if transposed {
                        sys::rosa_spmm_t(&params, config as i32, s)
                    } else {
                        sys::rosa_spmm(&params, config as i32, s)
                    }
                };
                assert_eq!(code, 0, "launch of config {config}");
            }
            let got = stream
                .clone_dtoh(&c_d)
                .expect("the kernel ran without a fault");
            for (j, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (*g as f64 - w).abs() <= 1e-4 * (1.0 + w.abs()),
                    "config {config}, transposed {transposed}: C[{j}] = {g}, want {w}"
                );
            }
        }
    }
}
