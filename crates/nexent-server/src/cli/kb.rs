//! `nexent kb list|create|delete`.

use std::io::{BufRead, IsTerminal, Write};

use serde_json::{Value, json};

use super::client::{Api, Target};
use super::{Outcome, path_segment, print_json};

#[derive(Debug, clap::Subcommand)]
pub enum KbCommand {
    /// The knowledge bases, with their documents and size.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Create a knowledge base.
    Create {
        name: String,
        /// The embedding model its documents are embedded with (default: the server's).
        #[arg(long)]
        embedding_model: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Delete a knowledge base and everything in it.
    Delete {
        name: String,
        /// Do not ask for confirmation (needed when not on a terminal).
        #[arg(long, short)]
        yes: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
}

pub async fn run(command: KbCommand) -> anyhow::Result<Outcome> {
    match command {
        KbCommand::List { json, target } => {
            let api = Api::connect(&target).await?;
            let listed = api.get("/api/indices?include_stats=true").await;
            api.close().await?;
            let listed = listed?;
            let infos = listed["indices_info"].as_array().cloned().unwrap_or_default();
            if json {
                let bases: Vec<Value> = infos
                    .iter()
                    .map(|info| {
                        let base = &info["stats"]["base_info"];
                        json!({
                            "name": info["name"],
                            "documents": base["doc_count"],
                            "chunks": base["chunk_count"],
                            "size": info["stats"]["size"],
                            "embedding_model": base["embedding_model"],
                        })
                    })
                    .collect();
                print_json(&Value::Array(bases));
            } else if infos.is_empty() {
                eprintln!(
                    "No knowledge bases. Create one with `nexent ingest PATH --kb NAME` or `nexent kb create NAME`."
                );
            } else {
                println!("{:<32} {:>9} {:>9} {:>10}  MODEL", "NAME", "DOCUMENTS", "CHUNKS", "SIZE");
                for info in &infos {
                    let base = &info["stats"]["base_info"];
                    println!(
                        "{:<32} {:>9} {:>9} {:>10}  {}",
                        info["name"].as_str().unwrap_or(""),
                        base["doc_count"].as_u64().unwrap_or(0),
                        base["chunk_count"].as_u64().unwrap_or(0),
                        info["stats"]["size"].as_str().unwrap_or(""),
                        base["embedding_model"].as_str().unwrap_or("")
                    );
                }
            }
            Ok(Outcome::Success)
        }
        KbCommand::Create { name, embedding_model, json, target } => {
            let api = Api::connect(&target).await?;
            let mut path = format!("/api/indices/{}", path_segment(&name));
            if let Some(model) = &embedding_model {
                path.push_str(&format!("?embedding_model={}", path_segment(model)));
            }
            let created = api.post(&path, &json!({})).await;
            api.close().await?;
            let created = created?;
            if json {
                print_json(&created);
            } else {
                eprintln!(
                    "Created knowledge base {name} ({})",
                    created["embedding_model"].as_str().unwrap_or("the server's embedding model")
                );
            }
            Ok(Outcome::Success)
        }
        KbCommand::Delete { name, yes, json, target } => {
            if !yes {
                if !std::io::stdin().is_terminal() {
                    anyhow::bail!("not deleting {name:?} without confirmation: pass --yes");
                }
                eprint!("Delete the knowledge base {name:?} and every document in it? [y/N] ");
                std::io::stderr().flush()?;
                let mut answer = String::new();
                std::io::stdin().lock().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    eprintln!("Nothing deleted.");
                    return Ok(Outcome::Failure);
                }
            }
            let api = Api::connect(&target).await?;
            let deleted = api.delete(&format!("/api/indices/{}", path_segment(&name))).await;
            api.close().await?;
            let deleted = deleted?;
            if json {
                print_json(&deleted);
            } else {
                eprintln!("Deleted knowledge base {name}");
            }
            Ok(Outcome::Success)
        }
    }
}
