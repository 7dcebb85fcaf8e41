//! Ingestion benchmark: parse throughput per format, and end-to-end ingestion through the real server
//! (`POST /api/file/upload` of one file per request, as Nexent's UI does, until every task is COMPLETED)
//! beside the raw embedder on the same chunk texts, measured in the same run just before.
//!
//! The text formats are built from the whole SciFact corpus; the binary formats are written from its first
//! 1000 abstracts by `bench/peers/make_documents.py` with the usual libraries (python-docx, python-pptx,
//! openpyxl, xlwt, odfpy, fpdf2, ebooklib, the e-mail package).
//!
//! `NEXENT_BIN=target/release/nexent cargo run --release -p nexent-bench --bin bench-ingest -- --data ../shared/data
//!  --models models/files --docs-python VENV/bin/python --out FILE`

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use nexent_core::ingest::chunking::{ChunkingStrategy, chunk_elements};
use nexent_core::ingest::parse::parse_document;
use nexent_core::knowledge::{Chunk, Embedder, TextKind, embedding_text};
use nexent_e2e::{NexentServer, upload_to_kb};
use serde_json::json;

use nexent_bench::{argument, read_corpus};

/// Documents ingested end to end (and embedded raw for the reference).
const END_TO_END_DOCUMENTS: usize = 1000;

struct ParseRow {
    format: String,
    file_mb: f64,
    text_mb: f64,
    elements: usize,
    file_mb_per_s: f64,
    text_mb_per_s: f64,
}

/// Parses `bytes` as `name` for at least a second; throughput of the file and of the text it yields.
fn measure_parse(name: &str, bytes: &[u8]) -> anyhow::Result<ParseRow> {
    let mut runs = 0usize;
    let started = Instant::now();
    let mut elements = Vec::new();
    while runs == 0 || started.elapsed() < Duration::from_secs(1) {
        elements = parse_document(name, bytes).with_context(|| format!("cannot parse {name}"))?;
        runs += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    let text_bytes: usize = elements.iter().map(|element| element.text.len()).sum();
    let megabytes = |bytes: usize| bytes as f64 / 1_000_000.0;
    Ok(ParseRow {
        format: name.rsplit('.').next().unwrap_or(name).to_owned(),
        file_mb: megabytes(bytes.len()),
        text_mb: megabytes(text_bytes),
        elements: elements.len(),
        file_mb_per_s: megabytes(bytes.len() * runs) / seconds,
        text_mb_per_s: megabytes(text_bytes * runs) / seconds,
    })
}

fn escape_xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The whole corpus in each text format.
fn text_documents(docs: &[(String, String, String)]) -> Vec<(String, Vec<u8>)> {
    let quoted = |text: &str| format!("\"{}\"", text.replace('"', "\"\""));
    let mut txt = String::new();
    let mut md = String::new();
    let mut html = String::from("<html><body>");
    let mut csv = String::from("id,title,text\n");
    let mut tsv = String::from("id\ttitle\ttext\n");
    let mut xml = String::from("<corpus>");
    for (id, title, text) in docs {
        txt.push_str(&format!("{title}\n\n{text}\n\n"));
        md.push_str(&format!("## {title}\n\n{text}\n\n"));
        html.push_str(&format!("<h2>{}</h2><p>{}</p>", escape_xml(title), escape_xml(text)));
        csv.push_str(&format!("{id},{},{}\n", quoted(title), quoted(text)));
        tsv.push_str(&format!("{id}\t{}\t{}\n", title.replace('\t', " "), text.replace('\t', " ")));
        xml.push_str(&format!(
            "<doc id=\"{id}\"><title>{}</title><text>{}</text></doc>",
            escape_xml(title),
            escape_xml(text)
        ));
    }
    html.push_str("</body></html>");
    xml.push_str("</corpus>");
    let json = serde_json::to_string(
        &docs.iter().map(|(id, title, text)| json!({"id": id, "title": title, "text": text})).collect::<Vec<_>>(),
    )
    .unwrap_or_default();
    [
        ("corpus.txt", txt),
        ("corpus.md", md),
        ("corpus.html", html),
        ("corpus.csv", csv),
        ("corpus.tsv", tsv),
        ("corpus.json", json),
        ("corpus.xml", xml),
    ]
    .into_iter()
    .map(|(name, text)| (name.to_owned(), text.into_bytes()))
    .collect()
}

/// The binary formats, written by the peer script into `dir`.
fn binary_documents(python: &Path, corpus: &Path, dir: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/make_documents.py");
    let status = std::process::Command::new(python)
        .arg(&script)
        .arg(corpus)
        .arg(dir)
        .arg(END_TO_END_DOCUMENTS.to_string())
        .status()
        .with_context(|| format!("cannot run {}", python.display()))?;
    anyhow::ensure!(status.success(), "make_documents.py failed: {status}");
    let mut files = Vec::new();
    for extension in ["pdf", "docx", "pptx", "xlsx", "xls", "ods", "odt", "eml", "epub", "rtf"] {
        let name = format!("corpus.{extension}");
        files.push((name.clone(), std::fs::read(dir.join(&name))?));
    }
    Ok(files)
}

/// The texts ingestion embeds for one uploaded file (the same parse, chunking and title rule).
fn chunk_texts(file_name: &str, bytes: &[u8]) -> anyhow::Result<Vec<String>> {
    let elements = parse_document(file_name, bytes)?;
    let strategy = ChunkingStrategy::parse(None).map_err(anyhow::Error::msg)?;
    Ok(chunk_elements(&elements, strategy)
        .into_iter()
        .map(|piece| {
            embedding_text(&Chunk {
                title: piece.heading_path.last().cloned().unwrap_or_else(|| file_name.to_owned()),
                filename: file_name.to_owned(),
                content: piece.text,
                ..Chunk::default()
            })
        })
        .collect())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arguments: Vec<String> = std::env::args().collect();
    let data = PathBuf::from(argument(&arguments, "--data").unwrap_or_else(|| "../shared/data".into()));
    let models = PathBuf::from(argument(&arguments, "--models").unwrap_or_else(|| "models/files".into()));
    let python = PathBuf::from(argument(&arguments, "--docs-python").context("--docs-python VENV/bin/python")?);
    let out = argument(&arguments, "--out");
    let corpus = read_corpus(&data.join("scifact"))?;
    let docs: Vec<_> = corpus.into_iter().filter(|(_, _, text)| !text.trim().is_empty()).collect();

    // 1. Parse throughput.
    let scratch = tempfile::tempdir()?;
    let mut documents = text_documents(&docs);
    documents.extend(binary_documents(&python, &data.join("scifact/corpus.jsonl"), scratch.path())?);
    let mut rows = Vec::new();
    for (name, bytes) in &documents {
        let row = measure_parse(name, bytes)?;
        eprintln!("parse {}: {:.1} MB/s", row.format, row.file_mb_per_s);
        rows.push(row);
    }

    // 2. The raw embedder over the chunk texts of the end-to-end documents (one call, its best case).
    let files: Vec<(String, Vec<u8>)> = docs
        .iter()
        .take(END_TO_END_DOCUMENTS)
        .map(|(id, title, text)| (format!("{id}.txt"), format!("{title}\n\n{text}\n").into_bytes()))
        .collect();
    let mut texts = Vec::new();
    for (name, bytes) in &files {
        texts.extend(chunk_texts(name, bytes)?);
    }
    let chunk_count = texts.len();
    let threads = nexent_bench::cores();
    let raw_rate = {
        let embedder = nexent_bench::local_embedder(&models)?;
        let started = Instant::now();
        embedder.embed(texts, TextKind::Passage).await?;
        chunk_count as f64 / started.elapsed().as_secs_f64()
    };
    eprintln!("raw embedder: {raw_rate:.1} chunks/s");

    // 3. End to end through the real server, after the in-process model is gone.
    let server = NexentServer::start()?;
    let started = Instant::now();
    let mut task_ids = Vec::new();
    for (name, bytes) in &files {
        let (status, answer) = upload_to_kb(&server, "bench", name, bytes).await?;
        anyhow::ensure!(status == 201, "{name}: {answer}");
        task_ids.push(answer["process_tasks"]["task_id"].as_str().unwrap_or_default().to_owned());
    }
    let upload_seconds = started.elapsed().as_secs_f64();
    let (indexed_chunks, failed) = loop {
        let (_, listed) = server.get_json("/api/tasks").await?;
        let tasks = listed["tasks"].as_array().cloned().unwrap_or_default();
        let finished: Vec<_> =
            tasks.iter().filter(|task| matches!(task["status"].as_str(), Some("completed" | "failed"))).collect();
        if finished.len() == task_ids.len() {
            let chunks: u64 = finished.iter().filter_map(|task| task["chunk_count"].as_u64()).sum();
            break (chunks, finished.iter().filter(|task| task["status"] == "failed").count());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(failed == 0, "{failed} tasks failed");
    anyhow::ensure!(indexed_chunks as usize == chunk_count, "indexed {indexed_chunks} chunks, expected {chunk_count}");
    let documents_rate = files.len() as f64 / seconds;
    let e2e_rate = indexed_chunks as f64 / seconds;

    let mut report = String::from("# Ingestion benchmark\n\n");
    report.push_str(&format!(
        "Machine: {threads} cores. Produced by `make bench-ingest` (bench/src/ingest.rs).\n\n\
         ## Parse throughput (in process, one thread)\n\n\
         Text formats hold the whole SciFact corpus ({} abstracts); binary formats its first {END_TO_END_DOCUMENTS}, \
         written by python-docx, python-pptx, openpyxl, xlwt, odfpy, fpdf2, ebooklib and Python's e-mail package \
         (bench/peers/make_documents.py). Goal: text formats ≥ 20 MB/s.\n\n\
         | format | file MB | text MB | elements | file MB/s | text MB/s |\n|---|---|---|---|---|---|\n",
        docs.len()
    ));
    for row in &rows {
        report.push_str(&format!(
            "| {} | {:.2} | {:.2} | {} | {:.1} | {:.1} |\n",
            row.format, row.file_mb, row.text_mb, row.elements, row.file_mb_per_s, row.text_mb_per_s
        ));
    }
    report.push_str(&format!(
        "\n## End to end\n\n\
         {} SciFact abstracts uploaded as .txt files, one `POST /api/file/upload` each (uploads took {upload_seconds:.1} s), \
         into one knowledge base of the real server (release build, local MiniLM, 2 ingestion workers), timed until every \
         task was COMPLETED. The reference is the raw embedder (MiniLM int8 ONNX, {threads} threads) over the same {chunk_count} \
         chunk texts in one call, in this process, just before. Goal: end to end ≥ 85% of raw.\n\n\
         | measure | documents/s | chunks/s | % of raw embedder |\n|---|---|---|---|\n\
         | raw embedder (reference) | | {raw_rate:.1} | 100% |\n\
         | end to end through the server | {documents_rate:.1} | {e2e_rate:.1} | {:.0}% |\n",
        files.len(),
        100.0 * e2e_rate / raw_rate
    ));
    print!("{report}");
    if let Some(out) = out {
        std::fs::write(&out, &report)?;
        eprintln!("wrote {out}");
    }
    Ok(())
}
