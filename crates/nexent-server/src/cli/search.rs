//! `nexent search QUERY --kb NAME`: one search of one or more knowledge bases, best hit first.

use serde_json::json;

use super::client::{Api, Target};
use super::{Outcome, print_json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Keywords (BM25).
    Accurate,
    /// Meaning (the base's embedding model).
    Semantic,
    /// Both, fused (the server's default).
    Hybrid,
}

#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    pub query: String,
    /// A knowledge base to search (repeat for several).
    #[arg(long, value_name = "NAME", required = true)]
    pub kb: Vec<String>,
    #[arg(long, value_enum, default_value = "hybrid")]
    pub mode: Mode,
    /// Hits to show.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub top_k: u16,
    /// Print the server's results as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: Target,
}

pub async fn run(args: SearchArgs) -> anyhow::Result<Outcome> {
    let api = Api::connect(&args.target).await?;
    let mode = match args.mode {
        Mode::Accurate => "accurate",
        Mode::Semantic => "semantic",
        Mode::Hybrid => "hybrid",
    };
    let found = api
        .post(
            &format!("/api/indices/search/{mode}"),
            &json!({"index_names": args.kb, "query": args.query, "top_k": args.top_k}),
        )
        .await;
    api.close().await?;
    let found = found?;
    if args.json {
        print_json(&found);
        return Ok(Outcome::Success);
    }
    let results = found["results"].as_array().cloned().unwrap_or_default();
    if results.is_empty() {
        eprintln!("No results.");
    }
    for (rank, hit) in results.iter().enumerate() {
        let name =
            hit["filename"].as_str().filter(|name| !name.is_empty()).or_else(|| hit["title"].as_str()).unwrap_or("?");
        println!(
            "{}. {name}  (score {:.3}, {})",
            rank + 1,
            hit["score"].as_f64().unwrap_or(0.0),
            hit["index"].as_str().unwrap_or("")
        );
        println!("   {}", super::snippet(hit["content"].as_str().unwrap_or(""), 240));
    }
    Ok(Outcome::Success)
}
