//! Does the text encoder know a vocabulary? (world v2's base criterion B4.)
//!
//! Two readings of one checkpoint's text encoder for two vocabularies (the narrow task's part names
//! and the broad phrases):
//! - **token rows**: the norm of the `token_embedding` row of every BPE token of every word, SOT/EOT
//!   excluded. A word the encoder never trained on keeps its decayed initialisation, a much smaller
//!   row than the trained ones (the v1 world measured 0.05 against 0.42);
//! - **features**: each phrase's text feature (`text.out`, the resizer output the fusion encoder
//!   reads), mean-pooled over its non-padding tokens, and the largest pairwise cosine within each
//!   vocabulary. Phrases the encoder cannot tell apart map to nearly one feature (v1: 0.93–0.99).

use std::collections::BTreeMap;


use sam3lab_hooks::Hooks;
use serde::Serialize;

use crate::Result;
use crate::model::{Loaded, host};

/// One vocabulary's readings.
#[derive(Clone, Debug, Serialize)]
pub struct VocabReading {
    /// BPE token → its row norm (each token once, in first-seen order of the phrases' words).
    pub token_rows: Vec<(String, f64)>,
    /// The largest cosine between two different phrases' pooled features, and the pair.
    pub max_pair_cos: Option<(f64, String, String)>,
    /// Every phrase's pooled feature norm (a sanity reading: a dead feature has norm ~0).
    pub feature_norms: Vec<(String, f64)>,
}

/// [`VocabReading`] for `phrases` on `model`'s text encoder.
pub fn read_vocab(model: &Loaded, phrases: &[String]) -> Result<VocabReading> {
    let tok = model.predictor.tokenizer;
    let table = model.predictor.model.backbone.language_backbone.encoder.token_embedding.weight.val();
    let [vocab, width] = table.dims();
    let rows = host(table);
    let mut seen = BTreeMap::new();
    let mut token_rows = vec![];
    for p in phrases {
        for word in p.split_whitespace() {
            for id in tok.encode_raw(word) {
                let id = id as usize;
                if id >= vocab || seen.insert(id, ()).is_some() {
                    continue;
                }
                let r = &rows[id * width..(id + 1) * width];
                let norm = r.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
                token_rows.push((format!("{word}#{id}"), norm));
            }
        }
    }
    let mut feats: Vec<Vec<f64>> = vec![];
    let mut feature_norms = vec![];
    for p in phrases {
        let t = model.predictor.encode_prompt(p, &mut Hooks::none())?;
        let [_, l, d] = t.features.feats.dims();
        let f = host(t.features.feats.clone());
        let pad: Vec<bool> = t.features.padding_mask.clone().into_data().convert::<bool>().try_to_vec::<bool>().unwrap_or_default();
        let mut mean = vec![0f64; d];
        let mut n = 0usize;
        for k in 0..l {
            if pad.get(k).copied().unwrap_or(false) {
                continue;
            }
            n += 1;
            for (c, m) in mean.iter_mut().enumerate() {
                *m += f[k * d + c] as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n.max(1) as f64);
        feature_norms.push((p.clone(), mean.iter().map(|v| v * v).sum::<f64>().sqrt()));
        feats.push(mean);
    }
    let mut max_pair_cos: Option<(f64, String, String)> = None;
    for i in 0..phrases.len() {
        for j in i + 1..phrases.len() {
            let c = crate::heads::cosine(&feats[i], &feats[j]).unwrap_or(0.0);
            if max_pair_cos.as_ref().is_none_or(|m| c > m.0) {
                max_pair_cos = Some((c, phrases[i].clone(), phrases[j].clone()));
            }
        }
    }
    Ok(VocabReading { token_rows, max_pair_cos, feature_norms })
}

/// `vocab.json`: both vocabularies' readings, the summary B4 judges, and the checkpoint's identity.
#[derive(Clone, Debug, Serialize)]
pub struct VocabReport {
    pub checkpoint: crate::manifest::CheckpointRecord,
    pub narrow_phrases: Vec<String>,
    pub broad_phrases: Vec<String>,
    pub narrow: VocabReading,
    pub broad: VocabReading,
    /// What B4 reads (the study crate's `TextEncoderCheck`): every token row norm of each vocabulary
    /// and each vocabulary's largest pairwise feature cosine.
    pub narrow_row_norms: Vec<f64>,
    pub broad_row_norms: Vec<f64>,
    pub max_cos_narrow: Option<f64>,
    pub max_cos_broad: Option<f64>,
}

/// Read both vocabularies on one checkpoint.
pub fn report(model: &Loaded, narrow: &[String], broad: &[String]) -> Result<VocabReport> {
    let (n, b) = (read_vocab(model, narrow)?, read_vocab(model, broad)?);
    Ok(VocabReport {
        checkpoint: model.record.clone(),
        narrow_phrases: narrow.to_vec(),
        broad_phrases: broad.to_vec(),
        narrow_row_norms: n.token_rows.iter().map(|r| r.1).collect(),
        broad_row_norms: b.token_rows.iter().map(|r| r.1).collect(),
        max_cos_narrow: n.max_pair_cos.as_ref().map(|m| m.0),
        max_cos_broad: b.max_pair_cos.as_ref().map(|m| m.0),
        narrow: n,
        broad: b,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CkptSpec, load};
    use burn::prelude::Device;

    /// Row norms equal the weights file's own rows (read with safetensors, a second path), each
    /// token once; the largest pair cosine is a cosine of two different phrases and repeats exactly.
    #[test]
    fn rows_and_features_on_the_fixture() {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/fixtures/sam3-tiny");
        let m = load(&CkptSpec::new("fx", &dir), None, &Device::flex()).unwrap();
        let phrases = vec!["a red cat".to_string(), "red striped umbrella".to_string()];
        let r = read_vocab(&m, &phrases).unwrap();
        let bytes = std::fs::read(dir.join("weights.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let t = st.tensor("backbone.language_backbone.encoder.token_embedding.weight").unwrap();
        let w = t.shape()[1];
        let vals: Vec<f32> = t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let ids: Vec<usize> = r.token_rows.iter().map(|(k, _)| k.rsplit('#').next().unwrap().parse().unwrap()).collect();
        let mut uniq = ids.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), ids.len(), "each token once: {:?}", r.token_rows);
        assert!(ids.len() >= 4, "{:?}", r.token_rows);
        for ((_, norm), id) in r.token_rows.iter().zip(&ids) {
            let want = vals[id * w..(id + 1) * w].iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
            assert!((norm - want).abs() < 1e-9, "{norm} vs {want}");
        }
        let (c, a, b) = r.max_pair_cos.clone().unwrap();
        assert!((-1.0..=1.0).contains(&c) && a != b);
        let again = read_vocab(&m, &phrases).unwrap();
        assert_eq!(again.max_pair_cos.unwrap().0, c);
    }

}
