//! A sweep's sparse matrices on disk, beside the times we measured on them, for baselines
//! that run in another process: `scripts/torch_baseline.py` times PyTorch's
//! `torch.sparse.mm` and `torch.sparse.sampled_addmm` on exactly these matrices (what a
//! RoSA user on PyTorch would call) and prints our speedup over each.
//!
//! Layout of `dir`: one `index-<dtype>.json` per exported dtype, and per matrix three
//! 1-D NPY files, `<stem>.row_ptr.npy` and `<stem>.col_idx.npy` (int32) and
//! `<stem>.values.npy` (float32, the matrix's values widened exactly from its dtype). The
//! index lists, per (shape, N, density), the file stem, `m`, `k`, `n`, `density`, `nnz`
//! and `ours_us`: our time per op (`spmm`, `spmm_t`, `sddmm`) from the report, where it
//! has one. The dense operands are not written: their values do not change the times,
//! and the script makes its own and checks its results against a dense product.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Report, Sweep};
use crate::{with_dtype, CsrShape, Error, Result, Scalar};

#[derive(Serialize)]
struct Index {
    dtype: &'static str,
    device: Option<String>,
    entries: Vec<Entry>,
}

#[derive(Serialize)]
struct Entry {
    stem: String,
    m: usize,
    k: usize,
    n: usize,
    density: f64,
    nnz: usize,
    ours_us: BTreeMap<&'static str, f64>,
}

/// Writes every matrix of `sweeps` (the same ones [`super::run`] and the GPU sweep time,
/// regenerated from their seeds) into `dir`, created if missing, with an index holding
/// our times from `report`; returns the index's path. All sweeps must share one dtype.
/// A matrix shared by several sweeps (same shape and seed, another N) is written once.
///
/// Errors on sweeps of mixed dtypes and on any failed write.
///
/// ```
/// use rosa::bench::{export, run, Sweep};
/// let dir = std::env::temp_dir().join(format!("rosa-export-doc-{}", std::process::id()));
/// let sweep = Sweep { m: 16, k: 12, n: 4, densities: vec![0.25],
///     target: std::time::Duration::ZERO, dense_baseline: false, ..Sweep::default() };
/// let report = run(&sweep, |_| {})?;
/// let index = export::export(&[sweep], &report, &dir)?;
/// let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&index).unwrap()).unwrap();
/// assert_eq!(json["entries"][0]["nnz"], 48);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), rosa::Error>(())
/// ```
pub fn export(sweeps: &[Sweep], report: &Report, dir: &Path) -> Result<PathBuf> {
    let Some(dtype) = sweeps.first().map(|s| s.dtype) else {
        return Err(Error::InvalidArgument("nothing to export: no sweep".into()));
    };
    if sweeps.iter().any(|s| s.dtype != dtype) {
        return Err(Error::InvalidArgument(
            "export one dtype at a time: the sweeps mix dtypes".into(),
        ));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut entries = Vec::new();
    let mut written: Vec<String> = Vec::new();
    for sweep in sweeps {
        for (di, &density) in sweep.densities.iter().enumerate() {
            let stem = format!(
                "{}-{}x{}-seed{}-d{density}",
                dtype,
                sweep.m,
                sweep.k,
                sweep.seed.wrapping_add(di as u64)
            );
            let nnz = with_dtype!(dtype, T => {
                let a = sweep.matrix::<T>(di)?;
                if !written.contains(&stem) {
                    write_matrix(dir, &stem, &a)?;
                    written.push(stem.clone());
                }
                Ok::<usize, Error>(a.nnz())
            })?;
            // The first row of each op: rows of one point differ only in their baseline.
            let mut ours_us = BTreeMap::new();
            for r in report.rows.iter().filter(|r| {
                r.dtype == dtype.name()
                    && (r.m, r.k, r.n) == (sweep.m, sweep.k, sweep.n)
                    && r.density == density
            }) {
                ours_us.entry(r.op).or_insert(r.ours_us);
            }
            entries.push(Entry {
                stem,
                m: sweep.m,
                k: sweep.k,
                n: sweep.n,
                density,
                nnz,
                ours_us,
            });
        }
    }
    let index = Index {
        dtype: dtype.name(),
        device: report.device.clone(),
        entries,
    };
    let path = dir.join(format!("index-{dtype}.json"));
    let text = serde_json::to_string_pretty(&index)
        .map_err(|e| Error::InvalidArgument(format!("could not serialize the index: {e}")))?;
    std::fs::write(&path, text + "\n").map_err(io(&path))?;
    Ok(path)
}

fn write_matrix<T: Scalar>(dir: &Path, stem: &str, a: &crate::Csr<T>) -> Result<()> {
    let file = |part: &str| dir.join(format!("{stem}.{part}.npy"));
    let io = |path: PathBuf| move |source| Error::Io { path, source };
    let (row_ptr, col_idx, values) = (file("row_ptr"), file("col_idx"), file("values"));
    npyz::to_file_1d(&row_ptr, a.row_ptr().iter().copied()).map_err(io(row_ptr.clone()))?;
    npyz::to_file_1d(&col_idx, a.col_idx().iter().copied()).map_err(io(col_idx.clone()))?;
    npyz::to_file_1d(&values, a.values().iter().map(|v| v.to_f32())).map_err(io(values.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::run;
    use crate::DType;

    #[test]
    fn exported_matrices_read_back_as_the_swept_ones_with_our_times() {
        let dir = std::env::temp_dir().join(format!("rosa-export-test-{}", std::process::id()));
        let sweep = Sweep {
            m: 30,
            k: 20,
            n: 3,
            densities: vec![0.1, 0.3],
            dtype: DType::Bf16,
            target: std::time::Duration::ZERO,
            dense_baseline: false,
            seed: 5,
            ..Sweep::default()
        };
        // A second N of the same shape shares the matrices.
        let wide = Sweep {
            n: 6,
            ..sweep.clone()
        };
        let mut report = run(&sweep, |_| {}).unwrap();
        report.rows.extend(run(&wide, |_| {}).unwrap().rows);
        let index = export(&[sweep.clone(), wide], &report, &dir).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&index).unwrap()).unwrap();
        let entries = json["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0]["stem"], entries[2]["stem"]);
        for (di, e) in entries[..2].iter().enumerate() {
            let a = sweep.matrix::<crate::bf16>(di).unwrap();
            let stem = e["stem"].as_str().unwrap();
            let read_i32 = |part: &str| -> Vec<i32> {
                let bytes = std::fs::read(dir.join(format!("{stem}.{part}.npy"))).unwrap();
                npyz::NpyFile::new(&bytes[..]).unwrap().into_vec().unwrap()
            };
            assert_eq!(read_i32("row_ptr"), a.row_ptr());
            assert_eq!(read_i32("col_idx"), a.col_idx());
            let bytes = std::fs::read(dir.join(format!("{stem}.values.npy"))).unwrap();
            let values: Vec<f32> = npyz::NpyFile::new(&bytes[..]).unwrap().into_vec().unwrap();
            let want: Vec<f32> = a.values().iter().map(|v| v.to_f32()).collect();
            assert_eq!(values, want);
            assert_eq!(e["nnz"], a.nnz());
            for op in crate::Op::ALL {
                let ours = report
                    .rows
                    .iter()
                    .find(|r| r.op == op.name() && r.n == 3 && r.density == sweep.densities[di])
                    .unwrap()
                    .ours_us;
                assert_eq!(e["ours_us"][op.name()].as_f64().unwrap(), ours);
            }
        }
        let mixed = Sweep {
            dtype: DType::F32,
            ..sweep.clone()
        };
        assert!(export(&[sweep, mixed], &report, &dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
