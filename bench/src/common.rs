//! What the benchmark binaries share: flag parsing, percentiles, the local embedding model.

use std::path::Path;
use std::sync::Arc;

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

/// The cores of this machine, which the benchmarks give the embedder.
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|count| count.get()).unwrap_or(1)
}

/// The server's local MiniLM model, with every core.
pub fn local_embedder(models_dir: &Path) -> anyhow::Result<Arc<OnnxEmbedder>> {
    Ok(Arc::new(OnnxEmbedder::load(OnnxEmbedderConfig::minilm(models_dir, cores()))?))
}
