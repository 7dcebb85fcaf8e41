//! `nexent status`: whether a server runs on the data dir, where things are, and what it holds.

use serde_json::{Value, json};

use super::client::{Api, Target, command_settings};
use super::{Outcome, print_json};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: Target,
}

pub async fn run(args: StatusArgs) -> anyhow::Result<Outcome> {
    let settings = command_settings(&args.target)?;
    let mut status = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "data_dir": settings.data_dir.display().to_string(),
        "models_dir": settings.models_dir.display().to_string(),
        "model_files": model_files(&settings.models_dir),
        "server": Value::Null,
    });
    // Only a server that answers counts; no server is started just to report.
    if let Some(api) = Api::connect_existing(&args.target, &settings).await? {
        let health = api.get("/api/health").await?;
        let indices = api.get("/api/indices").await?;
        let tasks = api.get("/api/tasks").await?;
        let pending = tasks["tasks"].as_array().map_or(0, |tasks| {
            tasks.iter().filter(|task| !matches!(task["status"].as_str(), Some("completed" | "failed"))).count()
        });
        status["server"] = json!({
            "url": api.url(""),
            "status": health["status"],
            "version": health["version"],
            "knowledge_bases": indices["indices"],
            "tasks_in_progress": pending,
        });
        api.close().await?;
    }
    if args.json {
        print_json(&status);
        return Ok(Outcome::Success);
    }
    match status["server"].as_object() {
        Some(server) => {
            println!("Server:          running at {}", server["url"].as_str().unwrap_or(""));
            let bases: Vec<&str> = server["knowledge_bases"]
                .as_array()
                .map(|names| names.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            println!("Knowledge bases: {}", if bases.is_empty() { "none".to_owned() } else { bases.join(", ") });
            println!("Tasks running:   {}", server["tasks_in_progress"]);
        }
        None => println!("Server:          not running (commands open the data dir themselves)"),
    }
    println!("Version:         {}", env!("CARGO_PKG_VERSION"));
    println!("Data dir:        {}", settings.data_dir.display());
    println!("Models dir:      {}", settings.models_dir.display());
    let files: Vec<String> = status["model_files"]
        .as_array()
        .map(|files| files.iter().filter_map(|file| file["name"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    println!(
        "Model files:     {}",
        if files.is_empty() { "none (nexent models fetch default)".to_owned() } else { files.join(", ") }
    );
    Ok(Outcome::Success)
}

/// The model files in the models dir (`.gguf`, `.onnx`, whisper `.bin`, voices), with their sizes.
fn model_files(models_dir: &std::path::Path) -> Vec<Value> {
    let mut files: Vec<Value> = std::fs::read_dir(models_dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_file()))
                .filter_map(|entry| {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let model = [".gguf", ".onnx", ".bin"].iter().any(|suffix| name.ends_with(suffix));
                    model.then(
                        || json!({"name": name, "bytes": entry.metadata().map(|metadata| metadata.len()).unwrap_or(0)}),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort_by(|left, right| left["name"].as_str().cmp(&right["name"].as_str()));
    files
}
