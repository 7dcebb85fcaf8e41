//! `nexent ingest PATH... --kb NAME`: files and folders into a knowledge base through the upload route,
//! a few at a time, each followed to COMPLETED or FAILED, with a progress bar on a terminal and a summary
//! that lists every failure with its reason.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use super::client::{Api, Target};
use super::{Outcome, print_json};
use nexent_core::ingest::parse;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Chunking {
    Basic,
    ByTitle,
    None,
}

impl Chunking {
    fn wire(self) -> &'static str {
        match self {
            Chunking::Basic => "basic",
            Chunking::ByTitle => "by_title",
            Chunking::None => "none",
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Files and folders (folders recursively, by the rules of watched folders: hidden entries skipped,
    /// symbolic links not followed).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// The knowledge base (created if it does not exist).
    #[arg(long, value_name = "NAME")]
    pub kb: String,
    #[arg(long, value_enum, default_value = "basic")]
    pub chunking: Chunking,
    /// Files uploaded and processed at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: Target,
}

/// One file's end.
#[derive(Debug, Clone)]
struct FileResult {
    path: PathBuf,
    chunks: u64,
    error: Option<String>,
}

/// The files named on the command line: folders expanded, unsupported files in folders skipped (and
/// counted), paths that cannot be read reported.
#[derive(Debug, Default)]
struct Selection {
    files: Vec<PathBuf>,
    skipped: Vec<PathBuf>,
    unreadable: Vec<(PathBuf, String)>,
}

fn select(paths: &[PathBuf], data_dir: Option<&Path>) -> Selection {
    let mut selection = Selection::default();
    let data_dir = data_dir.map(Path::to_path_buf).unwrap_or_default();
    for path in paths {
        match std::fs::metadata(path) {
            Err(error) => selection.unreadable.push((path.clone(), error.to_string())),
            Ok(metadata) if metadata.is_dir() => {
                if let Err(error) = std::fs::read_dir(path) {
                    selection.unreadable.push((path.clone(), error.to_string()));
                    continue;
                }
                for file in nexent_core::watch::files_of_folder(path, &data_dir) {
                    if is_allowed(&file) {
                        selection.files.push(file);
                    } else {
                        selection.skipped.push(file);
                    }
                }
            }
            Ok(metadata) if metadata.is_file() => {
                if is_allowed(path) {
                    selection.files.push(path.clone());
                } else {
                    let name = path.file_name().unwrap_or_default().to_string_lossy();
                    selection.unreadable.push((path.clone(), format!("file type not supported: {name}")));
                }
            }
            Ok(_) => selection.unreadable.push((path.clone(), "not a file or a folder".into())),
        }
    }
    selection.files.dedup();
    selection
}

fn is_allowed(path: &Path) -> bool {
    path.file_name().is_some_and(|name| parse::is_allowed(&name.to_string_lossy()))
}

pub async fn run(args: IngestArgs) -> anyhow::Result<Outcome> {
    let api = Api::connect(&args.target).await?;
    let result = ingest(&api, &args).await;
    api.close().await?;
    result
}

async fn ingest(api: &Api, args: &IngestArgs) -> anyhow::Result<Outcome> {
    let data_dir = match &api.reach {
        super::client::Reach::Running { data_dir, .. } | super::client::Reach::Private { data_dir } => {
            Some(data_dir.clone())
        }
        super::client::Reach::Named(_) => None,
    };
    let selection = select(&args.paths, data_dir.as_deref());
    let created = ensure_knowledge_base(api, &args.kb).await?;
    if created && !args.json {
        eprintln!("Created knowledge base {}", args.kb);
    }

    let started = Instant::now();
    // Each file's size, read once: for the summary and for the throughput as files finish.
    let sized: Vec<(PathBuf, u64)> = selection
        .files
        .iter()
        .map(|file| (file.clone(), std::fs::metadata(file).map(|metadata| metadata.len()).unwrap_or(0)))
        .collect();
    let total_bytes: u64 = sized.iter().map(|(_, size)| size).sum();
    let progress = progress_bar(selection.files.len() as u64, args.json);
    let chunks = Arc::new(AtomicU64::new(0));
    let bytes_done = Arc::new(AtomicU64::new(0));
    let mut results: Vec<FileResult> = futures::stream::iter(sized)
        .map(|(path, size)| {
            let (progress, chunks, bytes_done) = (progress.clone(), chunks.clone(), bytes_done.clone());
            async move {
                let result = match ingest_file(api, &args.kb, args.chunking, &path).await {
                    Ok(count) => FileResult { path, chunks: count, error: None },
                    Err(error) => FileResult { path, chunks: 0, error: Some(format!("{error:#}")) },
                };
                let chunk_total = chunks.fetch_add(result.chunks, Ordering::Relaxed) + result.chunks;
                let bytes = bytes_done.fetch_add(size, Ordering::Relaxed) + size;
                let seconds = started.elapsed().as_secs_f64().max(0.001);
                progress.inc(1);
                progress.set_message(format!(
                    "{chunk_total} chunks · {:.1} files/s · {}/s",
                    progress.position() as f64 / seconds,
                    human_bytes((bytes as f64 / seconds) as u64)
                ));
                if let Some(error) = &result.error {
                    progress.println(format!("failed: {}: {error}", result.path.display()));
                }
                result
            }
        })
        .buffer_unordered(usize::from(args.jobs))
        .collect()
        .await;
    progress.finish_and_clear();
    results.extend(selection.unreadable.iter().map(|(path, reason)| FileResult {
        path: path.clone(),
        chunks: 0,
        error: Some(reason.clone()),
    }));
    results.sort_by(|left, right| left.path.cmp(&right.path));
    let failed: Vec<&FileResult> = results.iter().filter(|result| result.error.is_some()).collect();
    let ingested = results.len() - failed.len();
    let chunk_count: u64 = results.iter().map(|result| result.chunks).sum();
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        print_json(&json!({
            "knowledge_base": args.kb,
            "created": created,
            "ingested": ingested,
            "failed": failed.len(),
            "skipped": selection.skipped.len(),
            "chunks": chunk_count,
            "bytes": total_bytes,
            "seconds": seconds,
            "files": results.iter().map(|result| json!({
                "path": result.path.display().to_string(),
                "chunks": result.chunks,
                "status": if result.error.is_some() { "failed" } else { "completed" },
                "error": result.error,
            })).collect::<Vec<Value>>(),
        }));
    } else {
        eprintln!(
            "Ingested {ingested} file{} ({chunk_count} chunks, {}) into {} in {seconds:.1} s{}{}",
            if ingested == 1 { "" } else { "s" },
            human_bytes(total_bytes),
            args.kb,
            if selection.skipped.is_empty() {
                String::new()
            } else {
                format!("; skipped {} file(s) of types that cannot be ingested", selection.skipped.len())
            },
            if failed.is_empty() { String::new() } else { format!("; {} failed:", failed.len()) },
        );
        for result in &failed {
            eprintln!("  {}: {}", result.path.display(), result.error.as_deref().unwrap_or_default());
        }
    }
    Ok(if failed.is_empty() && !results.is_empty() { Outcome::Success } else { Outcome::Failure })
}

/// Whether the base had to be created.
async fn ensure_knowledge_base(api: &Api, name: &str) -> anyhow::Result<bool> {
    let listed = api.get("/api/indices").await?;
    let exists = listed["indices"].as_array().is_some_and(|names| names.iter().any(|known| known == name));
    if exists {
        return Ok(false);
    }
    api.post(&format!("/api/indices/{}", super::path_segment(name)), &json!({}))
        .await
        .with_context(|| format!("cannot create the knowledge base {name:?}"))?;
    Ok(true)
}

/// Uploads one file and follows its task; the chunks it made.
async fn ingest_file(api: &Api, kb: &str, chunking: Chunking, path: &Path) -> anyhow::Result<u64> {
    let bytes = tokio::fs::read(path).await.with_context(|| "cannot read the file".to_owned())?;
    let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(bytes).file_name(name))
        .text("index_name", kb.to_owned())
        .text("chunking_strategy", chunking.wire());
    let uploaded = api.post_form("/api/file/upload", form).await?;
    let task_id = uploaded["process_tasks"]["task_id"]
        .as_str()
        .or_else(|| uploaded["process_tasks"]["task_ids"][0].as_str())
        .context("the server started no task for the file")?
        .to_owned();
    let mut wait = Duration::from_millis(50);
    loop {
        let task = api.get(&format!("/api/tasks/{task_id}")).await?;
        match task["status"].as_str() {
            Some("completed") => return Ok(task["chunk_count"].as_u64().unwrap_or(0)),
            Some("failed") => anyhow::bail!("{}", task["error"].as_str().unwrap_or("processing failed")),
            _ => {}
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_millis(500));
    }
}

fn progress_bar(files: u64, quiet: bool) -> ProgressBar {
    let progress = ProgressBar::with_draw_target(
        Some(files),
        if quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() },
    );
    progress.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed}] {wide_bar} {pos}/{len} files · {msg} · ETA {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    progress.set_message("0 chunks");
    progress.enable_steady_tick(Duration::from_millis(200));
    progress
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selection_expands_folders_skips_what_cannot_be_ingested_and_reports_what_cannot_be_read() {
        let dir = tempfile::tempdir().expect("dir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("docs/sub")).expect("dirs");
        std::fs::create_dir_all(root.join("docs/.git")).expect("dirs");
        for (name, text) in [
            ("docs/a.txt", "a"),
            ("docs/sub/b.md", "b"),
            ("docs/.git/c.txt", "c"),
            ("docs/tool.exe", "x"),
            ("single.exe", "x"),
        ] {
            std::fs::write(root.join(name), text).expect("write");
        }
        let selection = select(&[root.join("docs"), root.join("missing.txt"), root.join("single.exe")], None);
        let names: Vec<String> =
            selection.files.iter().map(|file| file.strip_prefix(root).expect("below").display().to_string()).collect();
        assert_eq!(names, ["docs/a.txt", "docs/sub/b.md"]);
        assert_eq!(selection.skipped, [root.join("docs/tool.exe")]);
        assert_eq!(selection.unreadable.len(), 2);
        assert!(selection.unreadable[1].1.contains("not supported"), "{:?}", selection.unreadable);
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KB");
        assert_eq!(human_bytes(5 << 20), "5.0 MB");
    }
}
