//! Config Sync: the settings Nexent's UI saves (app identity, the model of each role, the selected
//! knowledge bases), persisted as a dotenv file in the data dir under Nexent's variable names
//! (`APP_NAME`, `LLM_MODEL_NAME`, `SELECTED_KB_NAMES`, ... — nexent-api.md §5).
//!
//! The file is rewritten atomically (temp file in the same folder, fsync, rename), keeps keys it does not
//! know, and is re-read on [`ConfigSync::reload`]. A variable set in the process environment overrides
//! the file's value when read.
//!
//! With a shared database ([`ConfigSync::open_shared`]) the variables live in its `config_sync` table
//! instead, so every node of a deployment agrees on the selected knowledge bases and models: a save writes
//! the table in one transaction, and each node re-reads it every few seconds
//! ([`ConfigSync::refresh_from_database`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use crate::sync::{read, write};

/// The dotenv file's name inside the data dir.
pub const CONFIG_FILE_NAME: &str = ".env";

pub const DEFAULT_APP_NAME: &str = "Nexent Local";
pub const DEFAULT_APP_DESCRIPTION: &str =
    "A private knowledge assistant that runs on this machine: drop documents in and ask.";
pub const DEFAULT_ICON_TYPE: &str = "preset";

#[derive(Debug, thiserror::Error)]
pub enum ConfigSyncError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("cannot read or write the settings in the database: {0}")]
    Database(#[from] sqlx::Error),
}

/// The roles a model can be configured for, with the prefix of their variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ModelRole {
    Llm,
    LlmSecondary,
    Embedding,
    MultiEmbedding,
    Rerank,
    Vlm,
    Stt,
    Tts,
}

impl ModelRole {
    pub const ALL: [ModelRole; 8] = [
        ModelRole::Llm,
        ModelRole::LlmSecondary,
        ModelRole::Embedding,
        ModelRole::MultiEmbedding,
        ModelRole::Rerank,
        ModelRole::Vlm,
        ModelRole::Stt,
        ModelRole::Tts,
    ];

    pub fn env_prefix(self) -> &'static str {
        match self {
            ModelRole::Llm => "LLM",
            ModelRole::LlmSecondary => "LLM_SECONDARY",
            ModelRole::Embedding => "EMBEDDING",
            ModelRole::MultiEmbedding => "MULTI_EMBEDDING",
            ModelRole::Rerank => "RERANK",
            ModelRole::Vlm => "VLM",
            ModelRole::Stt => "STT",
            ModelRole::Tts => "TTS",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct AppIdentity {
    pub name: String,
    pub description: String,
    pub icon_type: String,
    pub custom_icon_url: String,
    pub avatar_uri: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelSelection {
    pub model_name: String,
    pub display_name: String,
    pub api_key: String,
    pub model_url: String,
    pub dimension: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct KnowledgeSelection {
    pub kb_names: Vec<String>,
    pub kb_models: Vec<String>,
    pub kb_sources: Vec<String>,
}

/// Everything the UI saves with `save_config` and reads with `load_config`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GlobalSettings {
    pub app: AppIdentity,
    pub models: BTreeMap<ModelRole, ModelSelection>,
    pub data: KnowledgeSelection,
}

/// The dotenv-backed settings store, cached in memory.
pub struct ConfigSync {
    path: PathBuf,
    file_values: RwLock<BTreeMap<String, String>>,
    /// The shared database that holds the variables instead of the file, with the runtime its blocking
    /// writes are run on.
    database: Option<(crate::db::Database, tokio::runtime::Handle)>,
}

impl ConfigSync {
    /// Opens the store at `path`; a missing file is an empty configuration.
    pub fn open(path: &Path) -> Result<Self, ConfigSyncError> {
        let store = Self { path: path.to_path_buf(), file_values: RwLock::new(BTreeMap::new()), database: None };
        store.reload()?;
        Ok(store)
    }

    /// Opens the store in a shared database. The first node to start with settings in its data dir's file
    /// and an empty table seeds the table from the file.
    pub async fn open_shared(path: &Path, database: crate::db::Database) -> Result<Self, ConfigSyncError> {
        let file = Self::open(path)?;
        let empty: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM config_sync").fetch_one(database.pool()).await?;
        let seed = read(&file.file_values).clone();
        if empty == 0 && !seed.is_empty() {
            write_rows(&database, &seed.into_iter().collect::<Vec<_>>()).await?;
        }
        let store = Self {
            path: path.to_path_buf(),
            file_values: RwLock::new(BTreeMap::new()),
            database: Some((database, tokio::runtime::Handle::current())),
        };
        store.refresh_from_database().await?;
        Ok(store)
    }

    /// Re-reads the shared database's variables (other nodes' saves); a no-op without one.
    pub async fn refresh_from_database(&self) -> Result<(), ConfigSyncError> {
        let Some((database, _)) = &self.database else { return Ok(()) };
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT name, value FROM config_sync").fetch_all(database.pool()).await?;
        *write(&self.file_values) = rows.into_iter().collect();
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// With a shared database, re-reads it every 2 s for as long as the store lives, so other nodes'
    /// saves reach this one; nothing to do for the file.
    pub fn keep_refreshed(self: &std::sync::Arc<Self>) {
        if self.database.is_none() {
            return;
        }
        let store = std::sync::Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                let Some(store) = store.upgrade() else { break };
                if let Err(error) = store.refresh_from_database().await {
                    tracing::warn!(%error, "cannot refresh the settings from the database");
                }
            }
        });
    }

    /// Re-reads the file (e.g. after a user edited it by hand), or the shared database. With a database it
    /// blocks on it: call it off the async runtime (`spawn_blocking`).
    pub fn reload(&self) -> Result<(), ConfigSyncError> {
        if let Some((_, runtime)) = &self.database {
            return runtime.block_on(self.refresh_from_database());
        }
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(ConfigSyncError::Read { path: self.path.display().to_string(), source }),
        };
        let parsed = parse_dotenv(&text);
        *write(&self.file_values) = parsed;
        Ok(())
    }

    /// A variable's value: the process environment first, then the file.
    pub fn get(&self, key: &str) -> Option<String> {
        if let Ok(value) = std::env::var(key) {
            return Some(value);
        }
        read(&self.file_values).get(key).cloned()
    }

    fn get_or(&self, key: &str, default: &str) -> String {
        self.get(key).filter(|value| !value.is_empty()).unwrap_or_else(|| default.to_owned())
    }

    fn get_list(&self, key: &str) -> Vec<String> {
        self.get(key).map(|value| parse_list(&value)).unwrap_or_default()
    }

    /// Sets several variables at once and rewrites the file atomically, or writes them to the shared
    /// database in one transaction (blocking on it: call it off the async runtime, `spawn_blocking`).
    pub fn set_many(&self, updates: &[(String, String)]) -> Result<(), ConfigSyncError> {
        if let Some((database, runtime)) = &self.database {
            runtime.block_on(write_rows(database, updates))?;
            let mut values = write(&self.file_values);
            for (key, value) in updates {
                values.insert(key.clone(), value.clone());
            }
            return Ok(());
        }
        let mut values = write(&self.file_values);
        let mut next = values.clone();
        for (key, value) in updates {
            next.insert(key.clone(), value.clone());
        }
        write_atomically(&self.path, &render_dotenv(&next))
            .map_err(|source| ConfigSyncError::Write { path: self.path.display().to_string(), source })?;
        *values = next;
        Ok(())
    }

    pub fn save(&self, settings: &GlobalSettings) -> Result<(), ConfigSyncError> {
        let mut updates: Vec<(String, String)> = vec![
            ("APP_NAME".into(), settings.app.name.clone()),
            ("APP_DESCRIPTION".into(), settings.app.description.clone()),
            ("ICON_TYPE".into(), settings.app.icon_type.clone()),
            ("CUSTOM_ICON_URL".into(), settings.app.custom_icon_url.clone()),
            ("AVATAR_URI".into(), settings.app.avatar_uri.clone()),
        ];
        for (role, selection) in &settings.models {
            let prefix = role.env_prefix();
            updates.push((format!("{prefix}_MODEL_NAME"), selection.model_name.clone()));
            updates.push((format!("{prefix}_DISPLAY_NAME"), selection.display_name.clone()));
            // load_config sends keys masked; a client that saves what it loaded sends the mask back.
            let stored_key = self.model(*role).api_key;
            let api_key = if !stored_key.is_empty() && selection.api_key == crate::models::mask_key(&stored_key) {
                stored_key
            } else {
                selection.api_key.clone()
            };
            updates.push((format!("{prefix}_API_KEY"), api_key));
            updates.push((format!("{prefix}_MODEL_URL"), selection.model_url.clone()));
            if let Some(dimension) = selection.dimension {
                updates.push((format!("{prefix}_DIMENSION"), dimension.to_string()));
            }
        }
        updates.push(("SELECTED_KB_NAMES".into(), render_list(&settings.data.kb_names)));
        updates.push(("SELECTED_KB_MODELS".into(), render_list(&settings.data.kb_models)));
        updates.push(("SELECTED_KB_SOURCES".into(), render_list(&settings.data.kb_sources)));
        self.set_many(&updates)
    }

    /// The model chosen for `role` (`{PREFIX}_MODEL_NAME`, `_DISPLAY_NAME`, `_API_KEY`, `_MODEL_URL`,
    /// `_DIMENSION`); empty fields where nothing is set.
    pub fn model(&self, role: ModelRole) -> ModelSelection {
        let prefix = role.env_prefix();
        let var = |suffix: &str| self.get(&format!("{prefix}_{suffix}")).unwrap_or_default();
        ModelSelection {
            model_name: var("MODEL_NAME"),
            display_name: var("DISPLAY_NAME"),
            api_key: var("API_KEY"),
            model_url: var("MODEL_URL"),
            dimension: var("DIMENSION").trim().parse().ok(),
        }
    }

    pub fn load(&self) -> GlobalSettings {
        let app = AppIdentity {
            name: self.get_or("APP_NAME", DEFAULT_APP_NAME),
            description: self.get_or("APP_DESCRIPTION", DEFAULT_APP_DESCRIPTION),
            icon_type: self.get_or("ICON_TYPE", DEFAULT_ICON_TYPE),
            custom_icon_url: self.get("CUSTOM_ICON_URL").unwrap_or_default(),
            avatar_uri: self.get("AVATAR_URI").unwrap_or_default(),
        };
        let models = ModelRole::ALL.iter().map(|role| (*role, self.model(*role))).collect();
        let data = KnowledgeSelection {
            kb_names: self.get_list("SELECTED_KB_NAMES"),
            kb_models: self.get_list("SELECTED_KB_MODELS"),
            kb_sources: self.get_list("SELECTED_KB_SOURCES"),
        };
        GlobalSettings { app, models, data }
    }

    pub fn selected_knowledge_bases(&self) -> Vec<String> {
        self.get_list("SELECTED_KB_NAMES")
    }
}

/// Upserts variables in the shared database, all or none.
async fn write_rows(database: &crate::db::Database, rows: &[(String, String)]) -> Result<(), sqlx::Error> {
    let mut transaction = database.pool().begin().await?;
    for (name, value) in rows {
        sqlx::query("INSERT INTO config_sync (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value")
            .bind(name)
            .bind(value)
            .execute(&mut *transaction)
            .await?;
    }
    transaction.commit().await
}

/// Lists are stored as JSON arrays, as Nexent; a hand-written comma list is read too.
fn parse_list(value: &str) -> Vec<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Vec::new();
    }
    if let Ok(items) = serde_json::from_str::<Vec<String>>(trimmed) {
        return items;
    }
    trimmed.split(',').map(|item| item.trim().to_owned()).filter(|item| !item.is_empty()).collect()
}

fn render_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

/// Parses the dotenv subset python-dotenv writes: `KEY=value`, `KEY='value'`, `KEY="value"` with escapes,
/// optional `export `, comments and blank lines.
pub fn parse_dotenv(text: &str) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, raw_value)) = line.split_once('=') else { continue };
        let key = key.trim();
        if key.is_empty() {
            continue;
        }
        values.insert(key.to_owned(), parse_dotenv_value(raw_value.trim()));
    }
    values
}

fn parse_dotenv_value(raw: &str) -> String {
    if let Some(inner) = raw.strip_prefix('\'').and_then(|rest| rest.rfind('\'').map(|end| &rest[..end])) {
        return inner.replace("\\'", "'");
    }
    if let Some(inner) = raw.strip_prefix('"').and_then(|rest| rest.rfind('"').map(|end| &rest[..end])) {
        let mut value = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(character) = chars.next() {
            if character != '\\' {
                value.push(character);
                continue;
            }
            match chars.next() {
                Some('n') => value.push('\n'),
                Some('r') => value.push('\r'),
                Some('t') => value.push('\t'),
                Some(other) => value.push(other),
                None => value.push('\\'),
            }
        }
        return value;
    }
    // Unquoted: an inline comment starts at " #".
    raw.split(" #").next().unwrap_or("").trim().to_owned()
}

fn render_dotenv(values: &BTreeMap<String, String>) -> String {
    let mut text = String::from("# Nexent Local settings (Config Sync). Written by the app; edits are kept.\n");
    for (key, value) in values {
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n").replace('\r', "\\r");
        text.push_str(&format!("{key}=\"{escaped}\"\n"));
    }
    text
}

/// Writes `contents` to `path` so that a crash leaves either the old file or the new one, never half.
pub fn write_atomically(path: &Path, contents: &str) -> std::io::Result<()> {
    let folder = path.parent().filter(|folder| !folder.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder)?;
    let mut temporary = tempfile::NamedTempFile::new_in(folder)?;
    temporary.write_all(contents.as_bytes())?;
    temporary.as_file().sync_all()?;
    temporary.persist(path).map_err(|error| error.error)?;
    if let Ok(directory) = std::fs::File::open(folder) {
        // Makes the rename itself durable; failure here only weakens durability, never correctness.
        let _ = directory.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_round_trips_awkward_values() {
        let mut values = BTreeMap::new();
        values.insert("A".to_owned(), "quote \" and 'single' and \\ back".to_owned());
        values.insert("B".to_owned(), "line1\nline2".to_owned());
        values.insert("C".to_owned(), "中文 #not-a-comment".to_owned());
        assert_eq!(parse_dotenv(&render_dotenv(&values)), values);
    }

    #[test]
    fn reads_python_dotenv_style_lines() {
        let parsed = parse_dotenv("# c\nAPP_NAME='My App'\nexport X=plain # comment\nSELECTED_KB_NAMES='[\"a\"]'\n");
        assert_eq!(parsed["APP_NAME"], "My App");
        assert_eq!(parsed["X"], "plain");
        assert_eq!(parse_list(&parsed["SELECTED_KB_NAMES"]), ["a"]);
    }

    #[test]
    fn a_masked_key_saved_back_keeps_the_stored_key() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = ConfigSync::open(&dir.path().join(CONFIG_FILE_NAME)).expect("open");
        let mut settings = store.load();
        settings.models.entry(ModelRole::Llm).or_default().api_key = "sk-0123456789abcdef".into();
        store.save(&settings).expect("save");
        let llm = settings.models.entry(ModelRole::Llm).or_default();
        llm.api_key = crate::models::mask_key("sk-0123456789abcdef");
        store.save(&settings).expect("save the mask back");
        assert_eq!(store.model(ModelRole::Llm).api_key, "sk-0123456789abcdef");
        settings.models.entry(ModelRole::Llm).or_default().api_key = "sk-new-key-000000".into();
        store.save(&settings).expect("save a new key");
        assert_eq!(store.model(ModelRole::Llm).api_key, "sk-new-key-000000");
    }

    #[test]
    fn save_then_open_again_loads_the_same_settings_and_keeps_foreign_keys() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(CONFIG_FILE_NAME);
        std::fs::write(&path, "MY_OWN_KEY=kept\n").expect("seed file");
        let store = ConfigSync::open(&path).expect("open");
        let mut settings = store.load();
        settings.app.name = "Test App".into();
        settings.data.kb_names = vec!["kb1".into(), "kb 2".into()];
        let llm = settings.models.entry(ModelRole::Llm).or_default();
        llm.model_name = "Qwen/Qwen2.5".into();
        llm.api_key = "sk-1".into();
        store.save(&settings).expect("save");
        let reopened = ConfigSync::open(&path).expect("reopen");
        assert_eq!(reopened.load(), settings);
        assert_eq!(reopened.get("MY_OWN_KEY").as_deref(), Some("kept"));
        assert_eq!(reopened.selected_knowledge_bases(), ["kb1", "kb 2"]);
    }
}
