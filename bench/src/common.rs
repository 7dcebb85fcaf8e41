//! What the benchmark binaries share: flag parsing, percentiles, the local embedding model.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use serde_json::Value;

use nexent_engines::onnx_embedder::{OnnxEmbedder, OnnxEmbedderConfig};

/// The value after `flag` on the command line.
pub fn argument(arguments: &[String], flag: &str) -> Option<String> {
    arguments.iter().position(|argument| argument == flag).and_then(|index| arguments.get(index + 1)).cloned()
}

/// The value at `fraction` of a sorted sample (NaN for an empty one).
pub fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * fraction) as usize).min(sorted.len() - 1)]
}

/// The middle value of a sample (NaN for an empty one).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    percentile(&values, 0.5)
}

/// The cores of this machine, which the benchmarks give the embedder.
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|count| count.get()).unwrap_or(1)
}

/// The server's local MiniLM model, with every core.
pub fn local_embedder(models_dir: &Path) -> anyhow::Result<Arc<OnnxEmbedder>> {
    Ok(Arc::new(OnnxEmbedder::load(OnnxEmbedderConfig::minilm(models_dir, cores()))?))
}

/// A BEIR file of JSON lines.
pub fn read_jsonl(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines().filter(|line| !line.trim().is_empty()).map(|line| Ok(serde_json::from_str(line)?)).collect()
}

/// A BEIR collection's documents as `(id, title, text)`.
pub fn read_corpus(collection: &Path) -> anyhow::Result<Vec<(String, String, String)>> {
    let text = |value: &Value, key: &str| value.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
    Ok(read_jsonl(&collection.join("corpus.jsonl"))?
        .iter()
        .map(|doc| (text(doc, "_id"), text(doc, "title"), text(doc, "text")))
        .collect())
}

/// nDCG@k with linear gains and log2 discounts, as trec_eval computes it.
pub fn ndcg_at(ranked: &[String], relevant: &HashMap<String, f64>, k: usize) -> f64 {
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .map(|(rank, doc)| relevant.get(doc).copied().unwrap_or(0.0) / ((rank + 2) as f64).log2())
        .sum();
    let mut ideal: Vec<f64> = relevant.values().copied().collect();
    ideal.sort_by(|a, b| b.total_cmp(a));
    let idcg: f64 = ideal.iter().take(k).enumerate().map(|(rank, gain)| gain / ((rank + 2) as f64).log2()).sum();
    if idcg > 0.0 { dcg / idcg } else { 0.0 }
}
