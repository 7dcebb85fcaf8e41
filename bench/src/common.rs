//! What the benchmark binaries share: flag parsing, percentiles, the local embedding model.

pub mod soak;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use serde_json::Value;

use nexent_core::knowledge::Chunk;
use nexent_core::knowledge::embedder::normalise;
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

/// Recall@k: the share of the relevant documents found in the first `k`.
pub fn recall_at(ranked: &[String], relevant: &HashMap<String, f64>, k: usize) -> f64 {
    let top: HashSet<&String> = ranked.iter().take(k).collect();
    relevant.keys().filter(|doc| top.contains(doc)).count() as f64 / relevant.len().max(1) as f64
}

/// A judged BEIR collection: documents `(id, title, text)`, the queries that have judgments, and the
/// graded judgments per query.
pub struct Collection {
    pub name: String,
    pub documents: Vec<(String, String, String)>,
    pub queries: Vec<(String, String)>,
    pub judgments: HashMap<String, HashMap<String, f64>>,
}

impl Collection {
    /// One chunk per document, its id the document's. A document with neither title nor text (Cranfield
    /// has one) cannot be indexed or found, so it is left out.
    pub fn chunks(&self) -> Vec<Chunk> {
        self.documents
            .iter()
            .filter(|(_, title, text)| !(title.trim().is_empty() && text.trim().is_empty()))
            .map(|(id, title, text)| Chunk {
                id: id.clone(),
                title: title.clone(),
                filename: format!("{id}.txt"),
                path_or_url: id.clone(),
                source_type: "file".into(),
                content: text.clone(),
                ..Chunk::default()
            })
            .collect()
    }
}

pub fn load_collection(root: &Path, name: &str) -> anyhow::Result<Collection> {
    let dir = root.join(name);
    let text = |value: &Value, key: &str| value.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
    let documents = read_corpus(&dir)?;
    let mut judgments: HashMap<String, HashMap<String, f64>> = HashMap::new();
    for line in std::fs::read_to_string(dir.join("qrels.tsv"))?.lines().skip(1) {
        let columns: Vec<&str> = line.split('\t').collect();
        if let [query, doc, score] = columns.as_slice() {
            let score: f64 = score.trim().parse().unwrap_or(0.0);
            if score > 0.0 {
                judgments.entry((*query).to_owned()).or_default().insert((*doc).to_owned(), score);
            }
        }
    }
    let queries = read_jsonl(&dir.join("queries.jsonl"))?
        .iter()
        .map(|query| (text(query, "_id"), text(query, "text")))
        .filter(|(id, _)| judgments.contains_key(id))
        .collect();
    Ok(Collection { name: name.to_owned(), documents, queries, judgments })
}

/// The scale benchmarks' real chunks (embedded for real) and their synthesised total.
pub const REAL_CHUNKS: usize = 10_000;
pub const LARGE_CHUNKS: usize = 100_000;

/// Sentences of the three collections in `data`, the scale corpus's raw material.
pub fn scale_sentences(data: &Path) -> anyhow::Result<Vec<String>> {
    let mut sentences = Vec::new();
    for collection in ["scifact", "cranfield", "cisi"] {
        for (_, _, body) in read_corpus(&data.join(collection))? {
            sentences.extend(body.split(". ").map(str::trim).filter(|sentence| sentence.len() > 20).map(str::to_owned));
        }
    }
    Ok(sentences)
}

/// Chunk `id` of the scale corpus (twenty chunks per file).
pub fn scale_chunk(id: usize, text: String) -> Chunk {
    Chunk {
        id: format!("c{id}"),
        title: String::new(),
        filename: format!("doc{}.txt", id / 20),
        path_or_url: format!("/corpus/doc{}.txt", id / 20),
        source_type: "file".into(),
        content: text,
        ..Chunk::default()
    }
}

/// Grows `real` chunks to `total`: chunk `i` joins two real chunks' texts (chosen by a fixed xorshift,
/// so every run builds the same corpus), and its vector is the normalised sum of theirs (the embedding
/// of a concatenation is close to that).
pub fn synthesise_corpus(real: &[Chunk], real_vectors: &[Vec<f32>], total: usize) -> (Vec<Chunk>, Vec<Vec<f32>>) {
    let mut chunks = real.to_vec();
    let mut vectors = real_vectors.to_vec();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    while chunks.len() < total {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let (first, second) = ((state % real.len() as u64) as usize, ((state >> 20) % real.len() as u64) as usize);
        let id = chunks.len();
        chunks.push(scale_chunk(id, format!("{} {}", real[first].content, real[second].content)));
        let mut vector: Vec<f32> = real_vectors[first].iter().zip(&real_vectors[second]).map(|(a, b)| a + b).collect();
        normalise(&mut vector);
        vectors.push(vector);
    }
    (chunks, vectors)
}
