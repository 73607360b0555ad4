//! Named f32 / i32 tensors in safetensors files: the one place that knows the format, so
//! masks and adapters only name their tensors.

use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::{Csr, CsrShape, Error, Result};

/// Tensors to write, in the order they were added (safetensors sorts them on disk).
#[derive(Debug, Default)]
pub(crate) struct TensorsOut {
    entries: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
}

impl TensorsOut {
    pub(crate) fn f32(&mut self, name: String, shape: Vec<usize>, data: &[f32]) {
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.entries.push((name, Dtype::F32, shape, bytes));
    }

    pub(crate) fn i32(&mut self, name: String, shape: Vec<usize>, data: &[i32]) {
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.entries.push((name, Dtype::I32, shape, bytes));
    }

    /// A CSR matrix as `{prefix}.shape`, `{prefix}.row_ptr`, `{prefix}.col_idx` and, with
    /// `values`, `{prefix}.values`.
    pub(crate) fn csr(&mut self, prefix: &str, m: &Csr<f32>, values: bool) {
        let shape = [m.rows() as i32, m.cols() as i32];
        self.i32(format!("{prefix}.shape"), vec![2], &shape);
        self.i32(format!("{prefix}.row_ptr"), vec![m.rows() + 1], m.row_ptr());
        self.i32(format!("{prefix}.col_idx"), vec![m.nnz()], m.col_idx());
        if values {
            self.f32(format!("{prefix}.values"), vec![m.nnz()], m.values());
        }
    }

    pub(crate) fn write(&self, path: &Path) -> Result<()> {
        let views = self
            .entries
            .iter()
            .map(|(n, d, s, b)| {
                Ok((
                    n.as_str(),
                    TensorView::new(*d, s.clone(), b).map_err(|e| fmt(path, e))?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let bytes = safetensors::serialize(views, None).map_err(|e| fmt(path, e))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.into(),
                source,
            })?;
        }
        // Through a temporary file and a rename: an interrupted save leaves the previous
        // mask or adapter intact instead of a truncated file a later run would load.
        crate::io::write_atomically(path, |out| std::io::Write::write_all(out, &bytes))
    }
}

fn fmt(path: &Path, e: impl std::fmt::Debug) -> Error {
    Error::Format {
        path: path.into(),
        reason: format!("safetensors: {e:?}"),
    }
}

/// A safetensors file read whole into memory.
pub(crate) struct TensorsIn {
    path: std::path::PathBuf,
    bytes: Vec<u8>,
}

impl TensorsIn {
    pub(crate) fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.into(),
            source,
        })?;
        SafeTensors::deserialize(&bytes).map_err(|e| fmt(path, e))?;
        Ok(TensorsIn {
            path: path.into(),
            bytes,
        })
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.view(name).is_ok()
    }

    fn view(&self, name: &str) -> Result<TensorView<'_>> {
        let st = SafeTensors::deserialize(&self.bytes).map_err(|e| fmt(&self.path, e))?;
        st.tensor(name).map_err(|e| fmt(&self.path, e))
    }

    fn raw(&self, name: &str, dtype: Dtype) -> Result<(Vec<usize>, Vec<[u8; 4]>)> {
        let v = self.view(name)?;
        if v.dtype() != dtype {
            return Err(fmt(
                &self.path,
                format!("{name} is {:?}, expected {dtype:?}", v.dtype()),
            ));
        }
        let words = v
            .data()
            .chunks_exact(4)
            .map(|c| [c[0], c[1], c[2], c[3]])
            .collect();
        Ok((v.shape().to_vec(), words))
    }

    pub(crate) fn f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let (s, w) = self.raw(name, Dtype::F32)?;
        Ok((s, w.into_iter().map(f32::from_le_bytes).collect()))
    }

    pub(crate) fn i32(&self, name: &str) -> Result<(Vec<usize>, Vec<i32>)> {
        let (s, w) = self.raw(name, Dtype::I32)?;
        Ok((s, w.into_iter().map(i32::from_le_bytes).collect()))
    }

    /// The CSR matrix [`TensorsOut::csr`] wrote; values default to 1 (a mask).
    pub(crate) fn csr(&self, prefix: &str) -> Result<Csr<f32>> {
        let (_, shape) = self.i32(&format!("{prefix}.shape"))?;
        let [rows, cols] = shape[..] else {
            return Err(fmt(
                &self.path,
                format!("{prefix}.shape must hold 2 entries"),
            ));
        };
        let (_, row_ptr) = self.i32(&format!("{prefix}.row_ptr"))?;
        let (_, col_idx) = self.i32(&format!("{prefix}.col_idx"))?;
        let values_name = format!("{prefix}.values");
        let values = if self.has(&values_name) {
            self.f32(&values_name)?.1
        } else {
            vec![1.0; col_idx.len()]
        };
        if rows < 0 || cols < 0 {
            return Err(fmt(&self.path, format!("{prefix}.shape is negative")));
        }
        Csr::from_parts(rows as usize, cols as usize, row_ptr, col_idx, values)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}
