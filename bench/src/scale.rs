//! Scale benchmark: indexing throughput and search latency per mode at 10k and 100k chunks, beside a
//! peer embedded engine (LanceDB, from PyPI) run on the same texts, vectors and queries in the same run.
//!
//! Corpus: sentences of the three collections in `../shared/data`, two consecutive sentences per chunk;
//! 10k real chunks are embedded with the local MiniLM model. The 100k corpus is synthesised from them:
//! chunk `i` joins two real chunks' texts, and its vector is the normalised sum of their vectors (the
//! embedding of a concatenation is close to that). Queries are SciFact's 300 claims, embedded for real.
//! Latency excludes embedding the query, which is reported on its own.
//!
//! `cargo run --release -p nexent-bench --bin bench-scale -- --data ../shared/data --models models/files --out FILE`

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use nexent_core::knowledge::{
    Chunk, Embedder, Embedders, Fusion, KnowledgeBase, KnowledgeIndex, SearchMode, SearchRequest, TextKind,
};
use serde_json::{Value, json};

use nexent_bench::{
    LARGE_CHUNKS, REAL_CHUNKS, argument, percentile, scale_chunk as chunk, scale_sentences as sentences,
    synthesise_corpus,
};

/// The benchmark's knowledge base (also the folder `--reuse` keeps).
const INDEX_NAME: &str = "scale";

struct Latency {
    mode: &'static str,
    p50: f64,
    p99: f64,
}

/// Latencies per mode, query-embedding times, and the ids the semantic mode returned per query.
async fn measure_searches(
    knowledge: &KnowledgeBase,
    name: &str,
    queries: &[String],
) -> anyhow::Result<(Vec<Latency>, Vec<f64>, Vec<Vec<String>>)> {
    let modes: [(&'static str, SearchMode); 3] = [
        ("accurate", SearchMode::Accurate),
        ("semantic", SearchMode::Semantic),
        ("hybrid", SearchMode::Hybrid { weight_accurate: 0.3, fusion: Fusion::WeightedMax }),
    ];
    let mut results = Vec::new();
    let mut embedding = Vec::new();
    let mut semantic_ids = Vec::new();
    for (mode_name, mode) in modes {
        let mut latencies = Vec::new();
        for (round, query) in queries.iter().enumerate() {
            let outcome = knowledge
                .search(SearchRequest { index_names: vec![name.to_owned()], query: query.clone(), top_k: 10, mode })
                .await?;
            // The first few queries warm caches; they are not counted.
            if round >= 10 {
                latencies.push(outcome.query_time_ms - outcome.embedding_time_ms);
            }
            if outcome.embedding_time_ms > 0.0 {
                embedding.push(outcome.embedding_time_ms);
            }
            if mode_name == "semantic" {
                semantic_ids.push(outcome.hits.iter().map(|hit| hit.chunk.id.clone()).collect());
            }
        }
        latencies.sort_by(f64::total_cmp);
        results.push(Latency { mode: mode_name, p50: percentile(&latencies, 0.5), p99: percentile(&latencies, 0.99) });
    }
    embedding.sort_by(f64::total_cmp);
    Ok((results, embedding, semantic_ids))
}

/// Profiling aid (`--reuse`): the parts of a hybrid search timed alone, p50 in ms.
fn probe_parts(dir: &Path, queries: &[String], query_vectors: &[Vec<f32>]) -> anyhow::Result<()> {
    let index = KnowledgeIndex::open(dir)?;
    index.wait_for_graph();
    let snapshot = index.snapshot();
    let exact_index = KnowledgeIndex::open(dir)?;
    exact_index.wait_for_graph();
    exact_index.set_ann_min_vectors(usize::MAX);
    let exact_snapshot = exact_index.snapshot();
    let (mut found, mut total) = (0, 0);
    for query_vector in query_vectors {
        let truth: Vec<String> = exact_index
            .vector_hits(&exact_snapshot, query_vector, 10)
            .iter()
            .map(|(_, address)| exact_index.chunk(&exact_snapshot, *address).map(|chunk| chunk.id))
            .collect::<Result<_, _>>()?;
        for (_, address) in index.vector_hits(&snapshot, query_vector, 10) {
            found += usize::from(truth.contains(&index.chunk(&snapshot, address)?.id));
        }
        total += truth.len();
    }
    eprintln!("probe recall@10 against the exact scan: {:.3}", found as f64 / total.max(1) as f64);
    let (mut vector, mut vector10, mut keyword, mut reads) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (query, query_vector) in queries.iter().zip(query_vectors) {
        let started = Instant::now();
        let hits = index.vector_hits(&snapshot, query_vector, 50);
        vector.push(started.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        let _ = index.vector_hits(&snapshot, query_vector, 10);
        vector10.push(started.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        let _ = index.keyword_hits(&snapshot, query, 50)?;
        keyword.push(started.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        for (_, address) in hits.iter().take(10) {
            index.chunk(&snapshot, *address)?;
        }
        reads.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    for (label, mut times) in
        [("vector 50", vector), ("vector 10", vector10), ("keyword 50", keyword), ("read 10 chunks", reads)]
    {
        times.sort_by(f64::total_cmp);
        eprintln!("probe {label}: p50 {:.2} ms, p99 {:.2} ms", percentile(&times, 0.5), percentile(&times, 0.99));
    }
    Ok(())
}

/// Runs the LanceDB peer on the exported corpus; its JSON answer, or why it could not run.
fn run_peer(python: &Path, script: &Path, export: &Path) -> Result<Value, String> {
    let output = std::process::Command::new(python)
        .arg(script)
        .arg(export)
        .output()
        .map_err(|error| format!("cannot start {}: {error}", python.display()))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or("failed").to_owned());
    }
    serde_json::from_slice(&output.stdout).map_err(|error| format!("peer output is not JSON: {error}"))
}

fn write_export(
    dir: &Path,
    chunks: &[Chunk],
    vectors: &[Vec<f32>],
    queries: &[String],
    query_vectors: &[Vec<f32>],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let texts: String =
        chunks.iter().map(|chunk| json!({"id": chunk.id, "text": chunk.content}).to_string() + "\n").collect();
    std::fs::write(dir.join("chunks.jsonl"), texts)?;
    let raw: Vec<u8> = vectors.iter().flatten().flat_map(|value| value.to_le_bytes()).collect();
    std::fs::write(dir.join("vectors.f32"), raw)?;
    std::fs::write(dir.join("queries.json"), serde_json::to_string(queries)?)?;
    let raw: Vec<u8> = query_vectors.iter().flatten().flat_map(|value| value.to_le_bytes()).collect();
    std::fs::write(dir.join("query_vectors.f32"), raw)?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arguments: Vec<String> = std::env::args().collect();
    let data = PathBuf::from(argument(&arguments, "--data").unwrap_or_else(|| "../shared/data".into()));
    let models = PathBuf::from(argument(&arguments, "--models").unwrap_or_else(|| "models/files".into()));
    let python = argument(&arguments, "--peer-python").map(PathBuf::from);
    let out = argument(&arguments, "--out");
    // `--reuse DIR` keeps the 100k HNSW index in DIR across runs and measures only it (a profiling loop:
    // building its graph takes minutes); the report is printed, never written.
    let reuse = argument(&arguments, "--reuse").map(PathBuf::from);
    let out = if reuse.is_some() { None } else { out };
    let threads = nexent_bench::cores();
    let embedder = nexent_bench::local_embedder(&models)?;

    let pool = sentences(&data)?;
    anyhow::ensure!(pool.len() >= REAL_CHUNKS * 2, "only {} sentences", pool.len());
    let real: Vec<Chunk> =
        (0..REAL_CHUNKS).map(|i| chunk(i, format!("{}. {}.", pool[2 * i], pool[2 * i + 1]))).collect();
    let started = Instant::now();
    let reused_index_exists = reuse.as_ref().is_some_and(|dir| KnowledgeIndex::exists(&dir.join(INDEX_NAME)));
    let real_vectors = if reused_index_exists {
        vec![vec![0.0; 384]; REAL_CHUNKS] // the kept index has its vectors: skip embedding the corpus
    } else {
        embedder.embed(real.iter().map(|chunk| chunk.content.clone()).collect(), TextKind::Passage).await?
    };
    let embed_rate = REAL_CHUNKS as f64 / started.elapsed().as_secs_f64();

    let (large, large_vectors) = synthesise_corpus(&real, &real_vectors, LARGE_CHUNKS);

    let queries: Vec<String> = std::fs::read_to_string(data.join("scifact/queries.jsonl"))?
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|query| query.get("text").and_then(Value::as_str).map(str::to_owned))
        .collect();
    let query_vectors = embedder.embed(queries.clone(), TextKind::Query).await?;

    let mut report = String::from("# Scale benchmark\n\n");
    report.push_str(&format!(
        "{} cores. Chunks of two sentences from SciFact, Cranfield and CISI; 10k embedded for real with MiniLM \
         ({embed_rate:.0} chunks/s, {threads} threads); the 100k corpus adds 90k chunks that join two real chunks (text \
         concatenated, vector = normalised sum). 300 SciFact claims as queries, top_k 10, first 10 per mode not \
         counted. Latency excludes embedding the query.\n\n",
        threads
    ));
    report.push_str("| corpus | engine | index build (chunks/s, vectors given) | accurate p50 / p99 ms | semantic p50 / p99 ms | hybrid p50 / p99 ms |\n|---|---|---|---|---|---|\n");
    let mut notes = Vec::new();
    let mut exact_answers: Vec<Vec<String>> = Vec::new();
    for (label, corpus, vectors) in [("10k", &real, &real_vectors), ("100k", &large, &large_vectors)] {
        for exact in [true, false] {
            if exact && label == "10k" {
                continue; // 10k is below the graph threshold: it is always exact.
            }
            if reuse.is_some() && (exact || label == "10k") {
                continue;
            }
            let temporary = tempfile::tempdir()?;
            let dir_path = reuse.clone().unwrap_or_else(|| temporary.path().to_owned());
            let name = INDEX_NAME;
            let started = Instant::now();
            let mut graph_seconds = 0.0;
            if !KnowledgeIndex::exists(&dir_path.join(name)) {
                let index = KnowledgeIndex::create(&dir_path.join(name), name, "all-MiniLM-L6-v2", 384)?;
                index.set_ann_min_vectors(if exact {
                    usize::MAX
                } else {
                    nexent_core::knowledge::ann::ANN_MIN_VECTORS
                });
                let pairs: Vec<(Chunk, Vec<f32>)> = corpus.iter().cloned().zip(vectors.iter().cloned()).collect();
                for batch in pairs.chunks(5000) {
                    index.add_chunks(batch)?;
                }
                let graph_started = Instant::now();
                index.wait_for_graph();
                graph_seconds = graph_started.elapsed().as_secs_f64();
            }
            let build_rate = corpus.len() as f64 / started.elapsed().as_secs_f64();
            let open_started = Instant::now();
            let knowledge = KnowledgeBase::open(&dir_path, Embedders::only(embedder.clone()))?;
            let open_seconds = open_started.elapsed().as_secs_f64();
            if !exact {
                // Opening loads the saved graph (or builds it) in the background: wait before measuring.
                knowledge.wait_for_graphs();
            }
            let (latencies, embedding, semantic_ids) = measure_searches(&knowledge, name, &queries).await?;
            if reuse.is_some() {
                probe_parts(&dir_path.join(name), &queries, &query_vectors)?;
            }
            if label == "100k" && exact {
                exact_answers = semantic_ids.clone();
            }
            if label == "100k" && !exact && !exact_answers.is_empty() {
                let found: usize = semantic_ids
                    .iter()
                    .zip(&exact_answers)
                    .map(|(approximate, truth)| approximate.iter().filter(|id| truth.contains(id)).count())
                    .sum();
                let total: usize = exact_answers.iter().map(Vec::len).sum();
                notes.push(format!(
                    "100k HNSW recall@10 against the exact scan on the same queries: {:.3}",
                    found as f64 / total.max(1) as f64
                ));
            }
            let engine = if label == "10k" {
                "nexent (exact)"
            } else if exact {
                "nexent, exact scan"
            } else {
                "nexent, HNSW"
            };
            let cell = |mode: &str| {
                latencies
                    .iter()
                    .find(|latency| latency.mode == mode)
                    .map(|latency| format!("{:.2} / {:.2}", latency.p50, latency.p99))
                    .unwrap_or_default()
            };
            report.push_str(&format!(
                "| {label} | {engine} | {build_rate:.0} | {} | {} | {} |\n",
                cell("accurate"),
                cell("semantic"),
                cell("hybrid")
            ));
            notes.push(format!(
                "{label} {engine}: open (vectors rebuilt from the index) {open_seconds:.1} s; after indexing, the graph \
                 finished {graph_seconds:.1} s later; query embedding p50 {:.1} ms, p99 {:.1} ms.",
                percentile(&embedding, 0.5),
                percentile(&embedding, 0.99)
            ));
        }
        if let Some(python) = python.as_ref().filter(|_| reuse.is_none()) {
            let export = tempfile::tempdir()?;
            write_export(export.path(), corpus, vectors, &queries, &query_vectors)?;
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/lancedb_peer.py");
            match run_peer(python, &script, export.path()) {
                Ok(peer) => {
                    let pair = |key: &str| {
                        format!(
                            "{:.2} / {:.2}",
                            peer[key]["p50"].as_f64().unwrap_or(f64::NAN),
                            peer[key]["p99"].as_f64().unwrap_or(f64::NAN)
                        )
                    };
                    report.push_str(&format!(
                        "| {label} | LanceDB {} ({}) | {:.0} | {} | {} | {} |\n",
                        peer["version"].as_str().unwrap_or("?"),
                        peer["vector_index"].as_str().unwrap_or("?"),
                        peer["build_rate"].as_f64().unwrap_or(f64::NAN),
                        pair("fts"),
                        pair("vector"),
                        pair("hybrid")
                    ));
                }
                Err(reason) => notes.push(format!("{label} LanceDB peer did not run: {reason}")),
            }
        }
    }
    report.push('\n');
    for note in notes {
        report.push_str(&format!("- {note}\n"));
    }
    report.push_str(
        "\nGoal: hybrid p50 ≤ 5 ms and p99 ≤ 20 ms at 100k chunks on 2 cores, excluding the query embedding.\n",
    );
    print!("{report}");
    if let Some(path) = out {
        std::fs::write(&path, &report).with_context(|| format!("cannot write {path}"))?;
        eprintln!("wrote {path}");
    }
    Ok(())
}
