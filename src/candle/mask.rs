//! [`SparseMask`]: the fixed structure of a sparse adapter, shared by every op that uses it.

use std::sync::Arc;

use candle_core::{DType, Device, Result, Tensor};

use crate::{CsrRef, CsrShape, Scalar, StructureId, TransposePlan};

/// A mask is a validated CSR structure, so it can be uploaded as one (the CUDA forwards'
/// [`crate::cuda::DeviceMask`]) and measured like one.
impl CsrShape for SparseMask {
    fn structure_id(&self) -> StructureId {
        self.0.id
    }
    fn row_ptr(&self) -> &[i32] {
        &self.0.row_ptr
    }
    fn col_idx(&self) -> &[i32] {
        &self.0.col_idx
    }
}

/// The fixed sparsity structure of a matrix `S` (rows x cols): `row_ptr`, `col_idx`, and
/// the transpose plan built once from them. The values live elsewhere, in a 1-D candle
/// tensor of `nnz` elements (in `row_ptr` / `col_idx` order), so that autograd can train
/// them; every op takes them as a tensor input.
///
/// Cloning is cheap (the structure is shared), so each op holds its own handle.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use rosa::candle::SparseMask;
/// use rosa::Csr;
/// // S = [[0, 2, 0],
/// //      [1, 0, 3]]
/// let s = Csr::from_triplets(2, 3, &[(0, 1, 2.0f32), (1, 0, 1.0), (1, 2, 3.0)]).unwrap();
/// let mask = SparseMask::from_csr(&s);
/// assert_eq!((mask.rows(), mask.cols(), mask.nnz()), (2, 3, 3));
/// let values = mask.values(&s, &Device::Cpu).unwrap();
/// let dense = mask.to_dense(&values).unwrap();
/// assert_eq!(dense.to_vec2::<f32>().unwrap(), [[0.0, 2.0, 0.0], [1.0, 0.0, 3.0]]);
/// ```
#[derive(Debug, Clone)]
pub struct SparseMask(Arc<Structure>);

#[derive(Debug)]
struct Structure {
    id: StructureId,
    row_ptr: Vec<i32>,
    col_idx: Vec<i32>,
    plan: TransposePlan,
    /// The structure uploaded to each candle CUDA device it was used on (few: one per
    /// device a model runs on), so that every later op there reuses it.
    #[cfg(feature = "candle-cuda")]
    on_device: std::sync::Mutex<Vec<Arc<super::cuda::OnDevice>>>,
}

impl SparseMask {
    /// The structure of a validated CSR matrix (its values are not kept); builds the
    /// transpose plan (O(nnz)).
    pub fn from_csr(m: &impl CsrShape) -> Self {
        SparseMask(Arc::new(Structure {
            id: m.structure_id(),
            row_ptr: m.row_ptr().to_vec(),
            col_idx: m.col_idx().to_vec(),
            plan: m.transpose_plan(),
            #[cfg(feature = "candle-cuda")]
            on_device: Default::default(),
        }))
    }

    /// Rows of `S`.
    pub fn rows(&self) -> usize {
        self.0.id.rows
    }

    /// Columns of `S`.
    pub fn cols(&self) -> usize {
        self.0.id.cols
    }

    /// Stored entries: the length of every values tensor used with this mask.
    pub fn nnz(&self) -> usize {
        self.0.id.nnz
    }

    /// The structure's fingerprint (the same as the CSR matrix it came from).
    pub fn structure_id(&self) -> StructureId {
        self.0.id
    }

    /// Row offsets, `rows + 1` of them.
    pub fn row_ptr(&self) -> &[i32] {
        &self.0.row_ptr
    }

    /// Column indices, `nnz` of them.
    pub fn col_idx(&self) -> &[i32] {
        &self.0.col_idx
    }

    /// The transpose plan, built once when the mask was made.
    pub fn plan(&self) -> &TransposePlan {
        &self.0.plan
    }

    /// The CSR view of this structure with `values` (checked again: O(nnz), against the
    /// O(nnz * N) product it feeds). Fails with [`crate::Error::ValuesLength`] unless
    /// `values.len() == nnz`.
    pub(crate) fn csr<'a, T: Scalar>(&'a self, values: &'a [T]) -> crate::Result<CsrRef<'a, T>> {
        CsrRef::new(
            self.rows(),
            self.cols(),
            &self.0.row_ptr,
            &self.0.col_idx,
            values,
        )
    }

    /// A CSR matrix's values as a 1-D tensor (f32, f16 or bf16, as stored) for this mask;
    /// errors unless `m` has this mask's structure.
    pub fn values<T: Scalar + candle_core::WithDType>(
        &self,
        m: &crate::Csr<T>,
        device: &Device,
    ) -> Result<Tensor> {
        self.check_structure(m.structure_id())?;
        Tensor::from_slice(m.values(), m.nnz(), device)
    }

    /// Errors unless `id` is this mask's structure.
    pub(crate) fn check_structure(&self, id: StructureId) -> crate::Result<()> {
        if id == self.0.id {
            Ok(())
        } else {
            Err(crate::Error::InvalidArgument(format!(
                "a matrix with structure ({id}) used with a mask of structure ({})",
                self.0.id
            )))
        }
    }

    /// `S` as a dense `rows x cols` tensor of `values`' dtype, built with candle's
    /// `index_add` so that gradients flow back to `values` (the dense reference the ops
    /// are tested against, and the sparse part of a merged weight).
    pub fn to_dense(&self, values: &Tensor) -> Result<Tensor> {
        if values.dims() != [self.nnz()] {
            return Err(crate::Error::ValuesLength {
                got: values.elem_count(),
                nnz: self.nnz(),
            }
            .into());
        }
        let (rows, cols) = (self.rows(), self.cols());
        let flat: Vec<i64> = (0..rows)
            .flat_map(|i| {
                let (s, e) = (self.0.row_ptr[i] as usize, self.0.row_ptr[i + 1] as usize);
                self.0.col_idx[s..e]
                    .iter()
                    .map(move |&j| (i * cols + j as usize) as i64)
            })
            .collect();
        let index = Tensor::from_vec(flat, self.nnz(), values.device())?;
        Tensor::zeros(rows * cols, values.dtype(), values.device())?
            .index_add(&index, values, 0)?
            .reshape((rows, cols))
    }

    /// The structure's uploads to candle CUDA devices (see `cuda.rs`).
    #[cfg(feature = "candle-cuda")]
    pub(super) fn device_cache(&self) -> &std::sync::Mutex<Vec<Arc<super::cuda::OnDevice>>> {
        &self.0.on_device
    }

    /// Zero values for this mask: the start of a sparse adapter.
    pub fn zeros(&self, dtype: DType, device: &Device) -> Result<Tensor> {
        Tensor::zeros(self.nnz(), dtype, device)
    }
}
