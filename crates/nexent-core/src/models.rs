//! Model Management (nexent-api.md §1.6, §4): the records of the models a user added (OpenAI-compatible
//! servers, ModelEngine models) and of the local GGUF files in the models folder, and their health checks.
//!
//! - Names: `repo/name` is split at the last `/` (`Pro/Qwen/Qwen2-7B` → repo `Pro/Qwen`, name `Qwen2-7B`);
//!   lookups use both parts. Display names are unique among live records.
//! - Local models: every `.gguf` file in the models folder has a record with factory `local`, created when
//!   the list is read; a record whose file is gone is soft-deleted (in the embedded deployment only: nodes
//!   sharing a database each have their own models folder). The embedder and the speech models
//!   (each whisper model, the Piper voice) that run in process are listed the same way.
//! - Health checks really call the model through a [`ModelConnector`] (the binary wires the engines in): a
//!   chat model generates a short reply, an embedding model embeds a word. The stored status is
//!   `detecting` while the check runs, then `available` or `unavailable`.
//! - API keys are stored as given and leave only masked ([`mask_key`]); they are never logged.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;

use crate::db::Database;

use crate::chat::{ChatError, ChatMessage, ChatRequest, Role, SharedChatModel, collect};
use crate::clock::now_millis;
use crate::knowledge::embedder::SharedEmbedder;

pub const LOCAL_FACTORY: &str = "local";
pub const DEFAULT_FACTORY: &str = "OpenAI-API-Compatible";
/// How long a health check may take before the model counts as unavailable.
pub const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectStatus {
    NotDetected,
    Detecting,
    Available,
    Unavailable,
}

impl ConnectStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectStatus::NotDetected => "not_detected",
            ConnectStatus::Detecting => "detecting",
            ConnectStatus::Available => "available",
            ConnectStatus::Unavailable => "unavailable",
        }
    }

    /// Nexent's own constants, which its backend writes and its client colours (`未检测`, `检测中`, `可用`,
    /// `不可用`): what goes on the wire. Records keep the English names.
    pub fn nexent_label(self) -> &'static str {
        match self {
            ConnectStatus::NotDetected => "未检测",
            ConnectStatus::Detecting => "检测中",
            ConnectStatus::Available => "可用",
            ConnectStatus::Unavailable => "不可用",
        }
    }

    /// A stored status as Nexent's clients expect it (an unknown stored value is passed on as it is).
    pub fn wire(stored: &str) -> String {
        Self::parse(stored).map_or_else(|| stored.to_owned(), |status| status.nexent_label().to_owned())
    }

    /// Accepts today's names in any case (the seed document writes `AVAILABLE`) and Nexent v0.1's
    /// Chinese ones.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "not_detected" | "未检测" | "" => ConnectStatus::NotDetected,
            "detecting" | "检测中" => ConnectStatus::Detecting,
            "available" | "可用" => ConnectStatus::Available,
            "unavailable" | "不可用" => ConnectStatus::Unavailable,
            _ => return None,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("Name {0} is already in use, please choose another display name")]
    DisplayNameTaken(String),
    #[error("Model not found: {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelRecord {
    pub model_id: i64,
    pub model_repo: String,
    pub model_name: String,
    pub model_factory: String,
    pub model_type: String,
    pub api_key: String,
    pub base_url: String,
    pub max_tokens: i64,
    pub used_token: i64,
    pub display_name: String,
    pub connect_status: String,
    pub create_time_ms: i64,
    pub update_time_ms: i64,
}

impl ModelRecord {
    /// `repo/name`, or the bare name without a repo.
    pub fn full_name(&self) -> String {
        join_repo_name(&self.model_repo, &self.model_name)
    }

    pub fn is_local(&self) -> bool {
        self.model_factory == LOCAL_FACTORY
    }
}

/// What a client sends to create or update a record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelInput {
    pub model_factory: Option<String>,
    pub model_name: String,
    /// `llm` when a new record names none (the seed's create example has no type); an update without
    /// one keeps the stored type.
    pub model_type: Option<String>,
    pub api_key: Option<String>,
    pub base_url: Option<String>,
    pub max_tokens: Option<i64>,
    pub used_token: Option<i64>,
    pub display_name: Option<String>,
    pub connect_status: Option<String>,
}

/// Nexent's `split_repo_name`: repo is everything before the last `/`.
pub fn split_repo_name(full: &str) -> (String, String) {
    match full.rsplit_once('/') {
        Some((repo, name)) => (repo.to_owned(), name.to_owned()),
        None => (String::new(), full.to_owned()),
    }
}

pub fn join_repo_name(repo: &str, name: &str) -> String {
    if repo.is_empty() || name.contains('/') { name.to_owned() } else { format!("{repo}/{name}") }
}

/// A key shown as its first and last characters: enough to tell keys apart, useless to anyone else.
pub fn mask_key(key: &str) -> String {
    let characters: Vec<char> = key.chars().collect();
    match characters.len() {
        0 => String::new(),
        1..=8 => "*".repeat(characters.len()),
        length => {
            let head: String = characters[..3].iter().collect();
            let tail: String = characters[length - 4..].iter().collect();
            format!("{head}…{tail}")
        }
    }
}

pub const MODEL_TYPES: [&str; 7] = ["llm", "embedding", "multi_embedding", "rerank", "stt", "tts", "vlm"];

/// Opens the engines behind records for health checks (the binary wires llama.cpp, ONNX and remote clients).
pub trait ModelConnector: Send + Sync {
    /// A chat model for an `llm` / `vlm` record: the loaded local model, another local file, or a remote one.
    fn chat_model(&self, record: &ModelRecord) -> Result<SharedChatModel, ChatError>;
    /// An embedding model for an `embedding` record.
    fn embedder(&self, record: &ModelRecord) -> Result<SharedEmbedder, String>;
    /// The names of the embedding models that run in process, listed as local models.
    fn local_embedding_models(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A connector with no engines behind it (libraries and tests that open no models).
pub struct NoEngines;

impl ModelConnector for NoEngines {
    fn chat_model(&self, record: &ModelRecord) -> Result<SharedChatModel, ChatError> {
        Err(ChatError::Unavailable(format!("no engine can open {}", record.full_name())))
    }

    fn embedder(&self, record: &ModelRecord) -> Result<SharedEmbedder, String> {
        Err(format!("no engine can open {}", record.full_name()))
    }
}

/// The outcome of a health check, in Nexent's words.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthReport {
    pub connectivity: bool,
    pub status: ConnectStatus,
    /// What happened: the reply's first words, or the reason the model is unavailable.
    pub desc: String,
}

#[derive(Clone)]
pub struct ModelRegistry {
    db: Database,
    models_dir: PathBuf,
    connector: Arc<dyn ModelConnector>,
    /// The speech engines, which `stt` and `tts` records are checked against.
    voice: crate::voice::Voice,
}

impl ModelRegistry {
    pub fn new(
        db: Database,
        models_dir: PathBuf,
        connector: Arc<dyn ModelConnector>,
        voice: crate::voice::Voice,
    ) -> Self {
        Self { db, models_dir, connector, voice }
    }

    pub async fn create(&self, input: ModelInput) -> Result<ModelRecord, ModelError> {
        validate(&input)?;
        let (repo, name) = split_repo_name(input.model_name.trim());
        let display_name =
            input.display_name.clone().filter(|display| !display.trim().is_empty()).unwrap_or_else(|| name.clone());
        if self.display_name_owner(&display_name).await?.is_some() {
            return Err(ModelError::DisplayNameTaken(display_name));
        }
        let status =
            input.connect_status.as_deref().and_then(ConnectStatus::parse).unwrap_or(ConnectStatus::NotDetected);
        let now = now_millis();
        // fetch_all runs the statement to its end, where SQLite commits: see the crate's db module.
        let ids: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO model_record (model_repo, model_name, model_factory, model_type, api_key, base_url, max_tokens,
                                       used_token, display_name, connect_status, create_time, update_time)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             RETURNING model_id",
        )
        .bind(&repo)
        .bind(&name)
        .bind(input.model_factory.clone().filter(|factory| !factory.is_empty()).unwrap_or_else(|| DEFAULT_FACTORY.into()))
        .bind(input.model_type.as_deref().unwrap_or("llm"))
        .bind(input.api_key.clone().unwrap_or_default())
        .bind(input.base_url.clone().unwrap_or_default())
        .bind(input.max_tokens.unwrap_or(0))
        .bind(input.used_token.unwrap_or(0))
        .bind(&display_name)
        .bind(status.as_str())
        .bind(now)
        .bind(now)
        .fetch_all(self.db.pool())
        .await?;
        let id = ids.first().copied().ok_or(sqlx::Error::RowNotFound)?;
        self.by_id(id).await
    }

    pub async fn update(&self, input: ModelInput) -> Result<ModelRecord, ModelError> {
        validate(&input)?;
        let existing = self.find(&input.model_name).await?;
        let display_name = input
            .display_name
            .clone()
            .filter(|display| !display.trim().is_empty())
            .unwrap_or_else(|| existing.display_name.clone());
        if let Some(owner) = self.display_name_owner(&display_name).await?
            && owner != existing.model_id
        {
            return Err(ModelError::DisplayNameTaken(display_name));
        }
        let status = input.connect_status.as_deref().and_then(ConnectStatus::parse).map(ConnectStatus::as_str);
        sqlx::query(
            "UPDATE model_record SET model_factory = $1, model_type = $2, api_key = $3, base_url = $4, max_tokens = $5,
                 used_token = $6, display_name = $7, connect_status = $8, update_time = $9
             WHERE model_id = $10",
        )
        .bind(
            input.model_factory.clone().filter(|factory| !factory.is_empty()).unwrap_or(existing.model_factory.clone()),
        )
        .bind(input.model_type.as_deref().unwrap_or(&existing.model_type))
        // The list sends keys masked; an edit form that sends the mask back keeps the stored key.
        .bind(
            input
                .api_key
                .clone()
                .filter(|key| existing.api_key.is_empty() || *key != mask_key(&existing.api_key))
                .unwrap_or(existing.api_key.clone()),
        )
        .bind(input.base_url.clone().unwrap_or(existing.base_url.clone()))
        .bind(input.max_tokens.unwrap_or(existing.max_tokens))
        .bind(input.used_token.unwrap_or(existing.used_token))
        .bind(&display_name)
        .bind(status.unwrap_or(existing.connect_status.as_str()))
        .bind(now_millis())
        .bind(existing.model_id)
        .execute(self.db.pool())
        .await?;
        self.by_id(existing.model_id).await
    }

    /// Soft-deletes every live record of `full_name`.
    pub async fn delete(&self, full_name: &str) -> Result<String, ModelError> {
        let record = self.find(full_name).await?;
        sqlx::query("UPDATE model_record SET delete_flag = 'Y', update_time = $1 WHERE model_name = $2 AND model_repo = $3 AND delete_flag = 'N'")
            .bind(now_millis())
            .bind(&record.model_name)
            .bind(&record.model_repo)
            .execute(self.db.pool())
            .await?;
        Ok(record.full_name())
    }

    /// Every live record, local GGUF files included (the folder is read again each time).
    pub async fn list(&self) -> Result<Vec<ModelRecord>, ModelError> {
        self.sync_local_models().await?;
        let rows = sqlx::query("SELECT * FROM model_record WHERE delete_flag = 'N' ORDER BY model_id")
            .fetch_all(self.db.pool())
            .await?;
        Ok(rows.iter().map(record_from_row).collect())
    }

    /// The live record named `full_name` (`repo/name`).
    /// The models folder is read again only when the name is unknown (a file put there since the last list),
    /// not on every lookup: a health check looks its record up twice.
    pub async fn find(&self, full_name: &str) -> Result<ModelRecord, ModelError> {
        if let Some(record) = self.lookup(full_name).await? {
            return Ok(record);
        }
        self.sync_local_models().await?;
        self.lookup(full_name).await?.ok_or_else(|| ModelError::NotFound(full_name.to_owned()))
    }

    async fn lookup(&self, full_name: &str) -> Result<Option<ModelRecord>, ModelError> {
        let (repo, name) = split_repo_name(full_name.trim());
        let row = sqlx::query(
            "SELECT * FROM model_record WHERE model_name = $1 AND model_repo = $2 AND delete_flag = 'N' ORDER BY model_id LIMIT 1",
        )
        .bind(&name)
        .bind(&repo)
        .fetch_optional(self.db.pool())
        .await?;
        Ok(row.as_ref().map(record_from_row))
    }

    pub async fn set_status(&self, full_name: &str, status: ConnectStatus) -> Result<ModelRecord, ModelError> {
        let record = self.find(full_name).await?;
        sqlx::query("UPDATE model_record SET connect_status = $1, update_time = $2 WHERE model_id = $3")
            .bind(status.as_str())
            .bind(now_millis())
            .bind(record.model_id)
            .execute(self.db.pool())
            .await?;
        self.by_id(record.model_id).await
    }

    /// Calls the model and stores what came of it.
    pub async fn health_check(&self, full_name: &str) -> Result<HealthReport, ModelError> {
        let record = self.set_status(full_name, ConnectStatus::Detecting).await?;
        let checked = tokio::time::timeout(HEALTH_CHECK_TIMEOUT, self.check(&record)).await;
        let report = match checked {
            Ok(Ok(desc)) => HealthReport { connectivity: true, status: ConnectStatus::Available, desc },
            Ok(Err(reason)) => HealthReport { connectivity: false, status: ConnectStatus::Unavailable, desc: reason },
            Err(_) => HealthReport {
                connectivity: false,
                status: ConnectStatus::Unavailable,
                desc: format!("no answer within {} s", HEALTH_CHECK_TIMEOUT.as_secs()),
            },
        };
        self.set_status(full_name, report.status).await?;
        Ok(report)
    }

    async fn check(&self, record: &ModelRecord) -> Result<String, String> {
        match record.model_type.as_str() {
            "llm" | "vlm" => {
                let model = self.connector.chat_model(record).map_err(|error| error.to_string())?;
                let mut request = ChatRequest::new(vec![ChatMessage::new(Role::User, "Hello")]);
                request.max_tokens = Some(5);
                request.temperature = Some(0.0);
                let stream = model.chat(request).map_err(|error| error.to_string())?;
                let answer = collect(stream).await.map_err(|error| error.to_string())?;
                Ok(format!("replied {:?}", answer.text.trim()))
            }
            "embedding" | "multi_embedding" => {
                let embedder = self.connector.embedder(record)?;
                let vectors = embedder
                    .embed(vec!["hello".to_owned()], crate::knowledge::TextKind::Query)
                    .await
                    .map_err(|error| error.to_string())?;
                let dimension = vectors.first().map(Vec::len).unwrap_or(0);
                if dimension == 0 {
                    return Err("the model returned no vector".into());
                }
                Ok(format!("embedded a word into {dimension} dimensions"))
            }
            "stt" => self.voice.check_speech_to_text(Some(&record.model_name)).await.map_err(|error| error.to_string()),
            "tts" => self.voice.check_text_to_speech().await.map_err(|error| error.to_string()),
            other => Err(format!("health checks are not supported for {other} models")),
        }
    }

    async fn by_id(&self, id: i64) -> Result<ModelRecord, ModelError> {
        let row =
            sqlx::query("SELECT * FROM model_record WHERE model_id = $1").bind(id).fetch_one(self.db.pool()).await?;
        Ok(record_from_row(&row))
    }

    async fn display_name_owner(&self, display_name: &str) -> Result<Option<i64>, ModelError> {
        let row =
            sqlx::query("SELECT model_id FROM model_record WHERE display_name = $1 AND delete_flag = 'N' LIMIT 1")
                .bind(display_name)
                .fetch_optional(self.db.pool())
                .await?;
        Ok(row.map(|row| row.get("model_id")))
    }

    /// Records for the GGUF files of the models folder: new files get one, vanished files lose theirs.
    async fn sync_local_models(&self) -> Result<(), ModelError> {
        let dir = self.models_dir.clone();
        let files: Vec<String> = tokio::task::spawn_blocking(move || {
            gguf_files(&dir)
                .iter()
                .filter_map(|path| path.file_stem().map(|stem| stem.to_string_lossy().into_owned()))
                .collect()
        })
        .await
        .unwrap_or_default();
        let rows = sqlx::query(
            "SELECT model_id, model_name, model_type FROM model_record WHERE model_factory = $1 AND delete_flag = 'N'",
        )
        .bind(LOCAL_FACTORY)
        .fetch_all(self.db.pool())
        .await?;
        let known: Vec<(i64, String)> = rows.iter().map(|row| (row.get("model_id"), row.get("model_name"))).collect();
        // The engines that run in process besides the GGUF files: the embedder and the speech models.
        // (name, type, display name): a voice's display name says which language it speaks.
        let mut built_in: Vec<(String, &str, String)> = Vec::new();
        for name in self.connector.local_embedding_models() {
            built_in.push((name.clone(), "embedding", name));
        }
        for transcriber in self.voice.transcribers() {
            let name = transcriber.model_name().to_owned();
            built_in.push((name.clone(), "stt", name));
        }
        for (name, language) in self.voice.synthesizer().voices() {
            let display = format!("{name} ({language})");
            built_in.push((name, "tts", display));
        }
        let now = now_millis();
        for (name, model_type, display_name) in &built_in {
            if known.iter().any(|(_, known)| known == name) {
                continue;
            }
            sqlx::query(
                "INSERT INTO model_record (model_repo, model_name, model_factory, model_type, display_name, connect_status,
                                           create_time, update_time)
                 VALUES ('', $1, $2, $3, $4, 'not_detected', $5, $6)",
            )
            .bind(name)
            .bind(LOCAL_FACTORY)
            .bind(model_type)
            .bind(display_name)
            .bind(now)
            .bind(now)
            .execute(self.db.pool())
            .await?;
        }
        // Model files stay per node: with a shared database another node may hold a file this one lacks,
        // so only the embedded deployment (one node, one folder) forgets the records of vanished files.
        let forget_vanished = self.db.dialect() == crate::db::Dialect::Sqlite;
        for (id, name) in known.iter().filter(|_| forget_vanished) {
            if !files.contains(name) && !built_in.iter().any(|(built_in, _, _)| built_in == name) {
                sqlx::query("UPDATE model_record SET delete_flag = 'Y', update_time = $1 WHERE model_id = $2")
                    .bind(now)
                    .bind(id)
                    .execute(self.db.pool())
                    .await?;
            }
        }
        for name in files.iter().filter(|name| !known.iter().any(|(_, known)| known == *name)) {
            // A display name a user already took gets the factory as a suffix.
            let display =
                if self.display_name_owner(name).await?.is_some() { format!("{name} (local)") } else { name.clone() };
            sqlx::query(
                "INSERT INTO model_record (model_repo, model_name, model_factory, model_type, display_name, connect_status,
                                           base_url, create_time, update_time)
                 VALUES ('', $1, $2, 'llm', $3, 'not_detected', $4, $5, $6)",
            )
            .bind(name)
            .bind(LOCAL_FACTORY)
            .bind(&display)
            .bind(format!("{}.gguf", self.models_dir.join(name).display()))
            .bind(now)
            .bind(now)
            .execute(self.db.pool())
            .await?;
        }
        Ok(())
    }
}

/// The `.gguf` files directly in `dir`, sorted (none when it cannot be read).
pub fn gguf_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|extension| extension.eq_ignore_ascii_case("gguf")))
        .collect();
    files.sort();
    files
}

fn validate(input: &ModelInput) -> Result<(), ModelError> {
    if input.model_name.trim().is_empty() {
        return Err(ModelError::Invalid("model_name must not be empty".into()));
    }
    if let Some(model_type) = &input.model_type
        && !MODEL_TYPES.contains(&model_type.as_str())
    {
        return Err(ModelError::Invalid(format!(
            "model_type must be one of {}, not {model_type:?}",
            MODEL_TYPES.join(", "),
        )));
    }
    if let Some(status) = &input.connect_status
        && ConnectStatus::parse(status).is_none()
    {
        return Err(ModelError::Invalid(format!("unknown connect_status {status:?}")));
    }
    Ok(())
}

fn record_from_row(row: &sqlx::any::AnyRow) -> ModelRecord {
    ModelRecord {
        model_id: row.get("model_id"),
        model_repo: row.get("model_repo"),
        model_name: row.get("model_name"),
        model_factory: row.get("model_factory"),
        model_type: row.get("model_type"),
        api_key: row.get("api_key"),
        base_url: row.get("base_url"),
        max_tokens: row.get("max_tokens"),
        used_token: row.get("used_token"),
        display_name: row.get("display_name"),
        connect_status: row.get("connect_status"),
        create_time_ms: row.get("create_time"),
        update_time_ms: row.get("update_time"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_at_the_last_slash_and_keys_are_masked() {
        assert_eq!(split_repo_name("Pro/Qwen/Qwen2-7B"), ("Pro/Qwen".into(), "Qwen2-7B".into()));
        assert_eq!(split_repo_name("gpt-4o"), (String::new(), "gpt-4o".into()));
        assert_eq!(join_repo_name("Pro/Qwen", "Qwen2-7B"), "Pro/Qwen/Qwen2-7B");
        assert_eq!(join_repo_name("", "gpt-4o"), "gpt-4o");
        assert_eq!(mask_key("sk-1234567890abcdef"), "sk-…cdef");
        assert_eq!(mask_key("short"), "*****");
        assert_eq!(mask_key(""), "");
        assert_eq!(ConnectStatus::parse("可用"), Some(ConnectStatus::Available));
        assert_eq!(ConnectStatus::parse("maybe"), None);
    }
}
