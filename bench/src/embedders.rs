//! Embedding engines compared on this machine: all-MiniLM-L6-v2 as int8 ONNX through ONNX Runtime (what the
//! server runs) and as the fp32 safetensors through candle (pure Rust), on the same SciFact abstracts, the
//! same tokenizer, batch size and thread count, one after the other. Quality: the cosine between the two
//! engines' vectors of each text, and the SciFact nDCG@10 of semantic search with each engine's vectors.
//!
//! Built only with `--features candle` (candle is a benchmark dependency, not the product's):
//! `cargo run --release -p nexent-bench --features candle --bin bench-embedders -- --data ../shared/data --models models/files --out FILE`

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use nexent_bench::{argument, ndcg_at, read_corpus, read_jsonl};
use nexent_core::knowledge::{Embedder, TextKind};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

const BATCH: usize = 32;

struct CandleMiniLm {
    model: BertModel,
    tokenizer: Tokenizer,
}

impl CandleMiniLm {
    fn load(dir: &Path) -> anyhow::Result<Self> {
        let config: Config = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
        // Read into memory (91 MB) rather than mapped: mapping is an unsafe call, and the workspace has none.
        let weights = std::fs::read(dir.join("model.safetensors"))?;
        let builder = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)?;
        let model = BertModel::load(builder, &config)?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(anyhow::Error::msg)?;
        tokenizer.with_padding(Some(PaddingParams { strategy: PaddingStrategy::BatchLongest, ..Default::default() }));
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: 256, ..Default::default() }))
            .map_err(anyhow::Error::msg)?;
        Ok(Self { model, tokenizer })
    }

    /// Mean-pooled over the attention mask and L2-normalised, as sentence-transformers does.
    fn embed(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        let encodings = self.tokenizer.encode_batch(texts.to_vec(), true).map_err(anyhow::Error::msg)?;
        let rows = encodings.len();
        let length = encodings[0].get_ids().len();
        let ids: Vec<u32> = encodings.iter().flat_map(|encoding| encoding.get_ids().to_vec()).collect();
        let mask: Vec<u32> = encodings.iter().flat_map(|encoding| encoding.get_attention_mask().to_vec()).collect();
        let ids = Tensor::from_vec(ids, (rows, length), &Device::Cpu)?;
        let mask = Tensor::from_vec(mask, (rows, length), &Device::Cpu)?;
        let types = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?;
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?;
        let pooled = summed.broadcast_div(&counts)?;
        let norms = pooled.sqr()?.sum_keepdim(1)?.sqrt()?;
        Ok(pooled.broadcast_div(&norms)?.to_vec2::<f32>()?)
    }
}

fn dot(left: &[f32], right: &[f32]) -> f32 {
    left.iter().zip(right).map(|(a, b)| a * b).sum()
}

/// nDCG@10 of ranking every document by cosine to each query.
fn semantic_ndcg(
    doc_ids: &[String],
    doc_vectors: &[Vec<f32>],
    queries: &[(String, Vec<f32>)],
    judgments: &HashMap<String, HashMap<String, f64>>,
) -> f64 {
    let mut total = 0.0;
    for (query_id, vector) in queries {
        let mut scored: Vec<(f32, &String)> =
            doc_vectors.iter().zip(doc_ids).map(|(doc, id)| (dot(vector, doc), id)).collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let ranked: Vec<String> = scored.iter().take(10).map(|(_, id)| (*id).clone()).collect();
        total += ndcg_at(&ranked, &judgments[query_id], 10);
    }
    total / queries.len() as f64
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arguments: Vec<String> = std::env::args().collect();
    let data = PathBuf::from(argument(&arguments, "--data").unwrap_or_else(|| "../shared/data".into()));
    let models = PathBuf::from(argument(&arguments, "--models").unwrap_or_else(|| "models/files".into()));
    let out = argument(&arguments, "--out");
    let collection = data.join("scifact");
    let documents = read_corpus(&collection)?;
    let mut judgments: HashMap<String, HashMap<String, f64>> = HashMap::new();
    for line in std::fs::read_to_string(collection.join("qrels.tsv"))?.lines().skip(1) {
        if let [query, doc, score] = line.split('\t').collect::<Vec<_>>().as_slice() {
            judgments
                .entry((*query).to_owned())
                .or_default()
                .insert((*doc).to_owned(), score.trim().parse().unwrap_or(0.0));
        }
    }
    let queries: Vec<(String, String)> = read_jsonl(&collection.join("queries.jsonl"))?
        .iter()
        .filter_map(|query| Some((query["_id"].as_str()?.to_owned(), query["text"].as_str()?.to_owned())))
        .filter(|(id, _)| judgments.contains_key(id))
        .collect();
    let doc_ids: Vec<String> = documents.iter().map(|(id, _, _)| id.clone()).collect();
    let texts: Vec<String> = documents.iter().map(|(_, title, text)| format!("{title}\n{text}")).collect();
    let query_texts: Vec<String> = queries.iter().map(|(_, text)| text.clone()).collect();
    let threads = nexent_bench::cores();

    // ONNX Runtime, as the server runs it.
    let onnx = nexent_bench::local_embedder(&models)?;
    let started = Instant::now();
    let onnx_docs = onnx.embed(texts.clone(), TextKind::Passage).await?;
    let onnx_rate = texts.len() as f64 / started.elapsed().as_secs_f64();
    let onnx_queries = onnx.embed(query_texts.clone(), TextKind::Query).await?;
    drop(onnx);

    // candle, same texts, batches of similar length like the ONNX engine's.
    let candle = CandleMiniLm::load(&models.join("all-MiniLM-L6-v2"))
        .context("the safetensors model (models/fetch.py embedding)")?;
    let embed_sorted = |texts: &[String]| -> anyhow::Result<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&index| texts[index].len());
        let mut vectors = vec![Vec::new(); texts.len()];
        for batch in order.chunks(BATCH) {
            let batch_texts: Vec<String> = batch.iter().map(|&index| texts[index].clone()).collect();
            for (&index, vector) in batch.iter().zip(candle.embed(&batch_texts)?) {
                vectors[index] = vector;
            }
        }
        Ok(vectors)
    };
    let started = Instant::now();
    let candle_docs = embed_sorted(&texts)?;
    let candle_rate = texts.len() as f64 / started.elapsed().as_secs_f64();
    let candle_queries = embed_sorted(&query_texts)?;

    let cosines: Vec<f32> = onnx_docs.iter().zip(&candle_docs).map(|(a, b)| dot(a, b)).collect();
    let mean_cosine = cosines.iter().sum::<f32>() / cosines.len() as f32;
    let min_cosine = cosines.iter().copied().fold(f32::INFINITY, f32::min);
    let with_ids = |vectors: Vec<Vec<f32>>| queries.iter().map(|(id, _)| id.clone()).zip(vectors).collect::<Vec<_>>();
    let onnx_ndcg = semantic_ndcg(&doc_ids, &onnx_docs, &with_ids(onnx_queries), &judgments);
    let candle_ndcg = semantic_ndcg(&doc_ids, &candle_docs, &with_ids(candle_queries), &judgments);

    let report = format!(
        "# Embedding engines\n\nMachine: {threads} cores, both engines with all of them. Produced by `make bench-embedders` \
         (bench/src/embedders.rs). all-MiniLM-L6-v2 over the {} SciFact abstracts (title + text, up to 256 tokens), \
         batches of {BATCH} texts of similar length, then the {} judged queries; nDCG@10 of exact cosine ranking.\n\n\
         | engine | model file | abstracts/s | SciFact nDCG@10 (semantic) |\n|---|---|---|---|\n\
         | ONNX Runtime 1.31 (`ort`, what the server runs) | int8 ONNX, 23 MB | {onnx_rate:.1} | {onnx_ndcg:.3} |\n\
         | candle 0.11 (pure Rust) | fp32 safetensors, 91 MB | {candle_rate:.1} | {candle_ndcg:.3} |\n\n\
         Cosine between the two engines' vectors of the same abstract: mean {mean_cosine:.4}, min {min_cosine:.4}. \
         ONNX is {:.1}× candle's speed here.\n",
        texts.len(),
        queries.len(),
        onnx_rate / candle_rate
    );
    print!("{report}");
    if let Some(out) = out {
        std::fs::write(&out, &report)?;
        eprintln!("wrote {out}");
    }
    Ok(())
}
