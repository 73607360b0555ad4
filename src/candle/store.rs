//! Adapters on disk: safetensors files with the tensor names rosa's trainer writes.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Result, Tensor};

use super::{RosaLinear, SparseMask};
use crate::{Csr, Error};

impl RosaLinear {
    /// The layer's adapters as named tensors under `prefix`, the names rosa's trainer
    /// uses (`rosa train --save`), so files go both ways:
    ///
    /// | name | dtype, shape | when |
    /// |---|---|---|
    /// | `{prefix}.lora_a` | adapter dtype, (r, in) | LoRA |
    /// | `{prefix}.lora_b` | adapter dtype, (out, r) | LoRA |
    /// | `{prefix}.lora_scale` | f32, (1) | LoRA |
    /// | `{prefix}.sparse.shape` | i32, (2): out, in | sparse adapter |
    /// | `{prefix}.sparse.row_ptr` | i32, (out + 1) | sparse adapter |
    /// | `{prefix}.sparse.col_idx` | i32, (nnz) | sparse adapter |
    /// | `{prefix}.sparse.values` | adapter dtype, (nnz) | sparse adapter |
    /// | `{prefix}.weight`, `{prefix}.bias` | their dtype | the weight was trained, re-split or merged |
    ///
    /// Tensors keep their dtype and bits, so a save and load round trip is exact.
    pub fn adapter_tensors(&self, prefix: &str) -> Result<Vec<(String, Tensor)>> {
        let cpu = Device::Cpu;
        let mut out = Vec::new();
        if let Some(l) = self.lora() {
            out.push((format!("{prefix}.lora_a"), l.a().as_detached_tensor()));
            out.push((format!("{prefix}.lora_b"), l.b().as_detached_tensor()));
            out.push((
                format!("{prefix}.lora_scale"),
                Tensor::from_slice(&[l.scale()], 1, &cpu)?,
            ));
        }
        if let Some(s) = self.sparse() {
            let m = s.mask();
            let shape = [m.rows() as i32, m.cols() as i32];
            out.push((
                format!("{prefix}.sparse.shape"),
                Tensor::from_slice(&shape, 2, &cpu)?,
            ));
            out.push((
                format!("{prefix}.sparse.row_ptr"),
                Tensor::from_slice(m.row_ptr(), m.rows() + 1, &cpu)?,
            ));
            out.push((
                format!("{prefix}.sparse.col_idx"),
                Tensor::from_slice(m.col_idx(), m.nnz(), &cpu)?,
            ));
            out.push((
                format!("{prefix}.sparse.values"),
                s.values().as_detached_tensor(),
            ));
        }
        if self.weight_changed() {
            out.push((format!("{prefix}.weight"), self.weight()?.detach()));
            if let Some(b) = self.bias() {
                out.push((format!("{prefix}.bias"), b.detach()));
            }
        }
        Ok(out)
    }

    /// Sets the adapters (and the weight and bias, where present) from tensors named as
    /// [`RosaLinear::adapter_tensors`] names them; adapters absent from `tensors` are
    /// left as they are. Values are converted to the layer's adapter dtype (no change,
    /// and so bit-exact, when they were saved from it). LoRA's dropout is kept.
    ///
    /// Errors on a tensor of the wrong shape or dtype, or a stored mask that is not a
    /// valid CSR structure of the layer's shape.
    pub fn load_adapter_tensors(
        &mut self,
        prefix: &str,
        tensors: &HashMap<String, Tensor>,
    ) -> Result<()> {
        let get = |name: &str| tensors.get(&format!("{prefix}.{name}"));
        let need = |name: &str| {
            get(name).ok_or_else(|| candle_core::Error::CannotFindTensor {
                path: format!("{prefix}.{name}"),
            })
        };
        if let Some(a) = get("lora_a") {
            let b = need("lora_b")?;
            let scale = need("lora_scale")?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
            let &[scale] = &scale[..] else {
                return Err(format_error(prefix, "lora_scale must hold one value"));
            };
            let dropout = self.lora().map_or(0.0, |l| l.dropout());
            self.set_lora(a, b, scale, dropout)?;
        }
        if let Some(shape) = get("sparse.shape") {
            let shape = int_vec(shape, prefix, "sparse.shape")?;
            let &[rows, cols] = &shape[..] else {
                return Err(format_error(prefix, "sparse.shape must hold 2 values"));
            };
            let (Ok(rows), Ok(cols)) = (usize::try_from(rows), usize::try_from(cols)) else {
                return Err(format_error(prefix, "sparse.shape is negative"));
            };
            let row_ptr = int_vec(need("sparse.row_ptr")?, prefix, "sparse.row_ptr")?;
            let col_idx = int_vec(need("sparse.col_idx")?, prefix, "sparse.col_idx")?;
            let values = need("sparse.values")?;
            // Validated with a placeholder of the right length; the values themselves
            // are kept as stored, in their own dtype.
            let nnz = col_idx.len();
            let csr = Csr::from_parts(rows, cols, row_ptr, col_idx, vec![0.0f32; nnz])?;
            self.set_sparse(SparseMask::from_csr(&csr), values)?;
        }
        if let Some(w) = get("weight") {
            self.replace_weight(w.clone(), get("bias").cloned())?;
        }
        Ok(())
    }
}

/// A 1-D i32 tensor's values; any other dtype is a format error.
fn int_vec(t: &Tensor, prefix: &str, name: &str) -> Result<Vec<i32>> {
    if t.dtype() != DType::I32 || t.rank() != 1 {
        return Err(format_error(
            prefix,
            &format!(
                "{name} must be a 1-D i32 tensor, got {:?} {:?}",
                t.dtype(),
                t.dims()
            ),
        ));
    }
    t.to_vec1::<i32>()
}

fn format_error(prefix: &str, reason: &str) -> candle_core::Error {
    Error::InvalidArgument(format!("adapter tensors under '{prefix}': {reason}")).into()
}

/// Writes the adapters of `layers` (each under its own name prefix, e.g. the module path
/// `model.layers.3.mlp.up_proj`) to one safetensors file; see
/// [`RosaLinear::adapter_tensors`] for the tensor names.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use rosa::candle::{load_adapters, save_adapters, RosaLinear};
/// use rosa::train::{LoraConfig, Scaling};
/// use rosa::{random::Rng, Csr};
/// let w = Tensor::zeros((3, 4), DType::F32, &Device::Cpu).unwrap();
/// let mut layer = RosaLinear::new(w.clone(), None).unwrap();
/// let cfg = LoraConfig { rank: 2, alpha: 2.0, scaling: Scaling::Standard, dropout: 0.0 };
/// layer.add_lora(cfg, &mut Rng::new(1)).unwrap();
/// layer.set_mask(&Csr::from_triplets(3, 4, &[(1, 2, 1.0f32)]).unwrap()).unwrap();
/// let path = std::env::temp_dir().join(format!("rosa-doc-candle-{}.safetensors", std::process::id()));
/// save_adapters(&path, &[("layer0", &layer)]).unwrap();
/// let mut fresh = RosaLinear::new(w, None).unwrap();
/// load_adapters(&path, &mut [("layer0", &mut fresh)]).unwrap();
/// let (a, b) = (layer.lora().unwrap().a(), fresh.lora().unwrap().a());
/// assert_eq!(a.to_vec2::<f32>().unwrap(), b.to_vec2::<f32>().unwrap());
/// assert_eq!(fresh.sparse().unwrap().mask().nnz(), 1);
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub fn save_adapters(path: impl AsRef<Path>, layers: &[(&str, &RosaLinear)]) -> Result<()> {
    let mut all = HashMap::new();
    for (prefix, layer) in layers {
        for (name, t) in layer.adapter_tensors(prefix)? {
            if all.insert(name.clone(), t).is_some() {
                return Err(Error::InvalidArgument(format!(
                    "two layers save the tensor '{name}': give each its own prefix"
                ))
                .into());
            }
        }
    }
    candle_core::safetensors::save(&all, path)
}

/// Reads a file [`save_adapters`] (or `rosa train --save`, whose layers are named
/// `layers.{i}`) wrote onto `layers`, each from its prefix, on each layer's device.
pub fn load_adapters(path: impl AsRef<Path>, layers: &mut [(&str, &mut RosaLinear)]) -> Result<()> {
    let path = path.as_ref();
    let tensors =
        candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| e.with_path(path))?;
    for (prefix, layer) in layers.iter_mut() {
        let dot = format!("{prefix}.");
        if !tensors.keys().any(|k| k.starts_with(&dot)) {
            return Err(Error::InvalidArgument(format!(
                "{} holds no tensors under '{prefix}'",
                path.display()
            ))
            .into());
        }
        layer.load_adapter_tensors(prefix, &tensors)?;
    }
    Ok(())
}
