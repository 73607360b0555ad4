//! The pretrained MiniLM / BERT encoder (all-MiniLM-L6-v2: 6 blocks, hidden 384, 12 heads,
//! intermediate 1536, vocabulary 30522) in candle, with every linear layer (Q, K, V,
//! attention output, both feed-forward matrices) a [`RosaLinear`], so each can be fine-tuned
//! by any of rosa's methods; tokenized with the `tokenizers` crate from `tokenizer.json`.
//! Feature `real-model`. `scripts/fetch-real-data.sh` downloads the model; nothing here
//! touches a network.
//!
//! The forward pass is Hugging Face's `BertModel` (post-layer-norm blocks, exact erf GELU,
//! absolute positions, token type 0), then mean pooling over the attention mask, as
//! sentence-transformers pools this model (before its final normalization, which does not
//! change cosines). `tests/minilm.rs` checks it against an independent float64 numpy
//! re-implementation (`scripts/minilm_reference.py`): cosine > 0.999.
//!
//! Shapes: token ids `(batch, seq)` u32, attention mask `(batch, seq)` f32 (1 for a token,
//! 0 for padding), hidden states `(batch, seq, 384)` f32, pooled embeddings `(batch, 384)`.
//! Everything runs on the CPU device the weights are loaded on.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use candle_core::{DType, Device, Result, Tensor, D};
use serde::Deserialize;

use super::RosaLinear;
use crate::Error;

/// The fields of the model's `config.json` the encoder needs.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct MiniLmConfig {
    /// Width of the hidden states (384).
    pub hidden_size: usize,
    /// Attention heads (12); `hidden_size` must be a multiple.
    pub num_attention_heads: usize,
    /// Encoder blocks (6).
    pub num_hidden_layers: usize,
    /// Feed-forward width (1536).
    pub intermediate_size: usize,
    /// Longest sequence the position table covers (512).
    pub max_position_embeddings: usize,
    /// Layer norm epsilon (1e-12).
    pub layer_norm_eps: f64,
}

/// A layer norm's scale and shift, `(hidden)` each, applied over the last dimension.
#[derive(Debug, Clone)]
struct LayerNorm {
    gamma: Tensor,
    beta: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// Written with candle's primitive ops (not candle-nn's fused kernel) so that autograd
    /// goes through it.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let centered = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
        let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centered.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        normed.broadcast_mul(&self.gamma)?.broadcast_add(&self.beta)
    }
}

/// One encoder block: self-attention, then the feed-forward layer, each followed by a
/// residual connection and a layer norm.
#[derive(Debug, Clone)]
pub struct Block {
    /// The six linear layers, in the order of [`Block::LINEARS`].
    pub linears: [RosaLinear; 6],
    attn_norm: LayerNorm,
    ffn_norm: LayerNorm,
    heads: usize,
}

impl Block {
    /// The linear layers' names in the checkpoint, relative to `encoder.layer.{i}.`:
    /// query, key, value, attention output (all 384 x 384), feed-forward in (1536 x 384)
    /// and out (384 x 1536).
    pub const LINEARS: [&'static str; 6] = [
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
        "intermediate.dense",
        "output.dense",
    ];

    /// `x` `(batch, seq, hidden)` through the block; `bias` is
    /// [`attention_bias`]'s `(batch, 1, 1, seq)`; `train` turns LoRA dropout on.
    pub fn forward(&self, x: &Tensor, bias: &Tensor, train: bool) -> Result<Tensor> {
        let (b, n, h) = x.dims3()?;
        let dh = h / self.heads;
        let [q, k, v, o, ffn_in, ffn_out] = &self.linears;
        let split = |t: Tensor| -> Result<Tensor> {
            t.reshape((b, n, self.heads, dh))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(q.forward_t(x, train)?)?;
        let k = split(k.forward_t(x, train)?)?;
        let v = split(v.forward_t(x, train)?)?;
        let scores = (q.matmul(&k.t()?.contiguous()?)? / (dh as f64).sqrt())?;
        let probs = candle_nn::ops::softmax(&scores.broadcast_add(bias)?, D::Minus1)?;
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, n, h))?;
        let x = self.attn_norm.forward(&(o.forward_t(&ctx, train)? + x)?)?;
        let inner = ffn_in.forward_t(&x, train)?.gelu_erf()?;
        self.ffn_norm
            .forward(&(ffn_out.forward_t(&inner, train)? + x)?)
    }
}

/// The encoder: embeddings (word, position, token type 0, layer norm) and the blocks.
#[derive(Debug, Clone)]
pub struct MiniLm {
    config: MiniLmConfig,
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    embed_norm: LayerNorm,
    /// The encoder blocks, bottom first; their linear layers are the ones to fine-tune.
    pub blocks: Vec<Block>,
}

fn format_error(path: &Path, reason: impl Into<String>) -> candle_core::Error {
    Error::Format {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
    .into()
}

impl MiniLm {
    /// Loads `config.json` and `model.safetensors` from `dir` (the model folder that
    /// `scripts/fetch-real-data.sh` prints) onto `device`, every weight as f32; the
    /// linear layers start frozen.
    ///
    /// Errors if a file cannot be read or parsed, a tensor is missing (names as in
    /// Hugging Face's BertModel, with or without a `bert.` prefix), or a shape disagrees
    /// with the config.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|source| Error::Io {
            path: cfg_path.clone(),
            source,
        })?;
        let config: MiniLmConfig =
            serde_json::from_str(&text).map_err(|e| format_error(&cfg_path, e.to_string()))?;
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return Err(format_error(
                &cfg_path,
                "hidden_size is not a multiple of num_attention_heads",
            ));
        }
        let weights_path = dir.join("model.safetensors");
        let raw = candle_core::safetensors::load(&weights_path, device)?;
        let weights: HashMap<String, Tensor> = raw
            .into_iter()
            .map(|(k, v)| (k.strip_prefix("bert.").map_or(k.clone(), str::to_owned), v))
            .collect();
        let (h, ff) = (config.hidden_size, config.intermediate_size);
        let get = |name: &str, shape: &[usize]| -> Result<Tensor> {
            let t = weights
                .get(name)
                .ok_or_else(|| format_error(&weights_path, format!("no tensor {name}")))?;
            if t.dims() != shape {
                return Err(format_error(
                    &weights_path,
                    format!("{name} is {:?}, expected {shape:?}", t.dims()),
                ));
            }
            t.to_dtype(DType::F32)
        };
        let norm = |prefix: &str| -> Result<LayerNorm> {
            Ok(LayerNorm {
                gamma: get(&format!("{prefix}.weight"), &[h])?,
                beta: get(&format!("{prefix}.bias"), &[h])?,
                eps: config.layer_norm_eps,
            })
        };
        let vocab = weights
            .get("embeddings.word_embeddings.weight")
            .map_or(0, |t| t.dims()[0]);
        let mut blocks = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}.");
            let shapes = [(h, h), (h, h), (h, h), (h, h), (ff, h), (h, ff)];
            let mut linears = Vec::with_capacity(6);
            for (name, (out, inp)) in Block::LINEARS.iter().zip(shapes) {
                linears.push(RosaLinear::new(
                    get(&format!("{p}{name}.weight"), &[out, inp])?,
                    Some(get(&format!("{p}{name}.bias"), &[out])?),
                )?);
            }
            let linears: [RosaLinear; 6] = linears
                .try_into()
                .map_err(|_| format_error(&weights_path, "six linear layers per block"))?;
            blocks.push(Block {
                linears,
                attn_norm: norm(&format!("{p}attention.output.LayerNorm"))?,
                ffn_norm: norm(&format!("{p}output.LayerNorm"))?,
                heads: config.num_attention_heads,
            });
        }
        Ok(MiniLm {
            word: get("embeddings.word_embeddings.weight", &[vocab.max(1), h])?,
            position: get(
                "embeddings.position_embeddings.weight",
                &[config.max_position_embeddings, h],
            )?,
            token_type: get("embeddings.token_type_embeddings.weight", &[2, h])?.narrow(0, 0, 1)?,
            embed_norm: norm("embeddings.LayerNorm")?,
            blocks,
            config,
        })
    }

    /// The model's configuration.
    pub fn config(&self) -> &MiniLmConfig {
        &self.config
    }

    /// The embedding layer: token ids `(batch, seq)` u32 to `(batch, seq, hidden)`.
    ///
    /// Errors if `seq` exceeds the position table or an id the vocabulary.
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, n) = ids.dims2()?;
        if n > self.config.max_position_embeddings {
            return Err(Error::InvalidArgument(format!(
                "MiniLm::embed: {n} tokens, the model has {} positions",
                self.config.max_position_embeddings
            ))
            .into());
        }
        let h = self.config.hidden_size;
        let words = self
            .word
            .embedding(&ids.flatten_all()?)?
            .reshape((b, n, h))?;
        let pos = self.position.narrow(0, 0, n)?.unsqueeze(0)?;
        let x = words.broadcast_add(&pos)?.broadcast_add(&self.token_type)?;
        self.embed_norm.forward(&x)
    }

    /// Hidden states `x` `(batch, seq, hidden)` through the blocks `range` (bottom is 0);
    /// `mask` is the `(batch, seq)` attention mask.
    ///
    /// Errors if `range` goes past the last block or the shapes disagree.
    pub fn forward_blocks(
        &self,
        x: &Tensor,
        mask: &Tensor,
        range: Range<usize>,
        train: bool,
    ) -> Result<Tensor> {
        let blocks = self.blocks.get(range.clone()).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "MiniLm::forward_blocks: blocks {range:?} of {}",
                self.blocks.len()
            ))
        })?;
        let bias = attention_bias(mask)?;
        let mut x = x.clone();
        for block in blocks {
            x = block.forward(&x, &bias, train)?;
        }
        Ok(x)
    }

    /// Token ids and mask `(batch, seq)` to mean-pooled sentence embeddings
    /// `(batch, hidden)`, in evaluation mode.
    pub fn embed_sentences(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let x = self.embed(ids)?;
        let x = self.forward_blocks(&x, mask, 0..self.blocks.len(), false)?;
        mean_pool(&x, mask)
    }
}

/// The additive attention bias `(batch, 1, 1, seq)` of a `(batch, seq)` mask: 0 where a
/// token may be attended to, -1e4 at padding (BERT's large negative, finite so that
/// softmax's backward stays finite).
pub fn attention_bias(mask: &Tensor) -> Result<Tensor> {
    let (b, n) = mask.dims2()?;
    ((mask.to_dtype(DType::F32)? - 1.0)? * 1e4)?.reshape((b, 1, 1, n))
}

/// The mean of the hidden states `(batch, seq, hidden)` over the tokens the mask
/// `(batch, seq)` keeps: `(batch, hidden)`.
pub fn mean_pool(x: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let sum = x.broadcast_mul(&m)?.sum(1)?;
    sum.broadcast_div(&m.sum(1)?.clamp(1e-9, f64::MAX)?)
}

/// Token ids and the attention mask of a batch of texts, padded to the longest.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// `(batch, seq)` u32 token ids, 0 (`[PAD]`) at padding.
    pub ids: Tensor,
    /// `(batch, seq)` f32: 1 at a token, 0 at padding.
    pub mask: Tensor,
    /// Each text's token count (at most the tokenizer's `max_len`).
    pub lengths: Vec<usize>,
}

/// The model's WordPiece tokenizer (`tokenizer.json`), adding `[CLS]` and `[SEP]` and
/// truncating to `max_len` tokens.
pub struct MiniLmTokenizer {
    inner: tokenizers::Tokenizer,
    max_len: usize,
}

impl MiniLmTokenizer {
    /// Loads `dir/tokenizer.json`; texts get at most `max_len` tokens (specials included).
    ///
    /// Errors if the file cannot be read or parsed, or `max_len < 2`.
    pub fn load(dir: &Path, max_len: usize) -> Result<Self> {
        if max_len < 2 {
            return Err(Error::InvalidArgument(format!(
                "MiniLmTokenizer: max_len {max_len} leaves no room for [CLS] and [SEP]"
            ))
            .into());
        }
        let path = dir.join("tokenizer.json");
        let mut inner = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| format_error(&path, e.to_string()))?;
        inner.with_padding(None);
        inner
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| format_error(&path, e.to_string()))?;
        Ok(MiniLmTokenizer { inner, max_len })
    }

    /// The most tokens a text gets.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Token ids of one text, `[CLS]` and `[SEP]` included.
    pub fn ids(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| Error::InvalidArgument(format!("tokenizing {text:?}: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// A batch of texts, padded to its longest, on `device`.
    pub fn encode(&self, texts: &[&str], device: &Device) -> Result<Encoded> {
        let all = texts
            .iter()
            .map(|t| self.ids(t))
            .collect::<Result<Vec<_>>>()?;
        pad(&all, device)
    }
}

/// Token id lists padded with 0 to the longest, as [`Encoded`] on `device`.
pub fn pad(all: &[Vec<u32>], device: &Device) -> Result<Encoded> {
    let n = all.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let mut ids = vec![0u32; all.len() * n];
    let mut mask = vec![0f32; all.len() * n];
    for (row, t) in all.iter().enumerate() {
        ids[row * n..row * n + t.len()].copy_from_slice(t);
        mask[row * n..row * n + t.len()].fill(1.0);
    }
    Ok(Encoded {
        ids: Tensor::from_vec(ids, (all.len(), n), device)?,
        mask: Tensor::from_vec(mask, (all.len(), n), device)?,
        lengths: all.iter().map(Vec::len).collect(),
    })
}
