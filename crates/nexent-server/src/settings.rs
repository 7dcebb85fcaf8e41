//! The server's settings in two layers, as ripgrep does: raw inputs (command-line flags, which clap
//! already merges with `NEXENT_*` environment variables, and the data dir's `config.toml`) become one
//! validated [`Settings`], checked once and passed explicitly. Precedence: flag > environment > file >
//! default.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use nexent_core::agent::mcp::{McpServerConfig, McpTransport};
use nexent_core::services::KnowledgeStoreKind;
use nexent_core::storage::{S3Config, StorageBackend};
use nexent_engines::llama_chat::speculative::{DEFAULT_DRAFT_TOKENS, MAX_DRAFT_TOKENS, SpeculationConfig};
use serde::Deserialize;

pub const DEFAULT_PORT: u16 = 5010;
pub const CONFIG_TOML_NAME: &str = "config.toml";
/// The embedding models that run in process, by the names knowledge bases record.
pub const LOCAL_EMBEDDING_MODELS: [&str; 2] =
    [nexent_engines::e5_embedder::E5_MODEL_NAME, nexent_engines::onnx_embedder::MINILM_MODEL_NAME];
/// What new knowledge bases get by default (chosen from bench/results/multilingual.md).
pub const DEFAULT_EMBEDDING_MODEL: &str = nexent_engines::onnx_embedder::MINILM_MODEL_NAME;

/// Flags of `nexent serve` (each also readable from its environment variable).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// Address to bind. Anything but loopback requires an API token.
    #[arg(long, env = "NEXENT_HOST")]
    pub host: Option<IpAddr>,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "NEXENT_PORT")]
    pub port: Option<u16>,
    /// Where the database, settings, indices and files live.
    #[arg(long, env = "NEXENT_HOME")]
    pub data_dir: Option<PathBuf>,
    /// Bearer token every API request must carry.
    #[arg(long, env = "NEXENT_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Extra Host names to answer to (comma-separated; `*` disables the Host check).
    #[arg(long, env = "NEXENT_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// Extra browser origins allowed to call the API (comma-separated).
    #[arg(long, env = "NEXENT_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Let the image proxy (and URL sources) fetch loopback and private addresses.
    #[arg(long, env = "NEXENT_ALLOW_PRIVATE_FETCH")]
    pub allow_private_fetch: Option<bool>,
    /// Folder holding the model files (`python3 models/fetch.py` fills `models/files`).
    #[arg(long, env = "NEXENT_MODELS_DIR")]
    pub models_dir: Option<PathBuf>,
    /// Threads the local embedding model may use.
    #[arg(long, env = "NEXENT_EMBED_THREADS")]
    pub embed_threads: Option<usize>,
    /// The local embedding model new knowledge bases get unless they name one: `multilingual-e5-small`
    /// (about 100 languages) or `all-MiniLM-L6-v2` (English). Config Sync's embedding model, when it names
    /// one of them, comes first.
    #[arg(long, env = "NEXENT_EMBEDDING_MODEL")]
    pub embedding_model: Option<String>,
    /// Largest file an upload may store, in bytes (default 100 MB).
    #[arg(long, env = "NEXENT_MAX_UPLOAD_BYTES")]
    pub max_upload_bytes: Option<u64>,
    /// A PostgreSQL database shared by several nodes (`postgres://USER:PASSWORD@HOST:PORT/DB`); default:
    /// `nexent.db` in the data dir. Nexent's `POSTGRES_HOST`/`POSTGRES_USER`/`POSTGRES_PASSWORD`/
    /// `POSTGRES_DB`/`POSTGRES_PORT` are read when this is not given.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Where knowledge bases live: `tantivy` (indices in the data dir, per node) or `postgres` (tables in
    /// the PostgreSQL database, shared by the nodes; needs pgvector). Default: postgres when a PostgreSQL
    /// database is configured, else tantivy.
    #[arg(long, env = "NEXENT_KNOWLEDGE_STORE")]
    pub knowledge_store: Option<String>,
    /// Most bytes all stored files may take together; uploads past it get 507 (default: no quota).
    #[arg(long, env = "NEXENT_STORAGE_QUOTA_BYTES")]
    pub storage_quota_bytes: Option<u64>,
    /// Free space kept on the data dir's disk for the database and indices: uploads, new knowledge bases
    /// and indexing that would eat into it get 507 (default 256 MiB; 0 turns it off).
    #[arg(long, env = "NEXENT_DISK_RESERVE_BYTES")]
    pub disk_reserve_bytes: Option<u64>,
    /// Ingestion tasks processed at once (default 2).
    #[arg(long, env = "NEXENT_INGEST_WORKERS")]
    pub ingest_workers: Option<usize>,
    /// The GGUF chat model (default: the Qwen2.5-Coder-0.5B file in the models folder, else any .gguf there).
    #[arg(long, env = "NEXENT_CHAT_MODEL")]
    pub chat_model: Option<PathBuf>,
    /// Threads llama.cpp may use, for generating and for reading prompts (default: one fewer than the
    /// cores, at least one, for generating; every core for reading prompts).
    #[arg(long, env = "NEXENT_LLM_THREADS")]
    pub llm_threads: Option<usize>,
    /// Threads llama.cpp reads prompts with (default: `--llm-threads` when given, else every core).
    #[arg(long, env = "NEXENT_LLM_BATCH_THREADS")]
    pub llm_batch_threads: Option<usize>,
    /// Tokens of context for the chat model (prompt and answer together; default 4096).
    #[arg(long, env = "NEXENT_LLM_CONTEXT")]
    pub llm_context: Option<u32>,
    /// Most tokens the chat model guesses ahead and checks in one pass (speculative decoding; default 6,
    /// at most 32; 0 turns guessing off). The answer is the same with or without.
    #[arg(long, env = "NEXENT_DRAFT_TOKENS", value_parser = clap::value_parser!(u64).range(0..=32))]
    pub draft_tokens: Option<u64>,
    /// Guess ahead by looking the last words written up in the conversation (default true).
    #[arg(long, env = "NEXENT_PROMPT_LOOKUP")]
    pub prompt_lookup: Option<bool>,
    /// A smaller GGUF model of the same tokenizer that drafts the chat model's next tokens (e.g. the
    /// Qwen2.5-Coder 0.5B file for the 1.5B); one that does not fit is reported and left unused.
    #[arg(long, env = "NEXENT_DRAFT_MODEL")]
    pub draft_model: Option<PathBuf>,
    /// Threads each speech engine (whisper.cpp, Piper) may use (default: one fewer than the cores, at least one).
    #[arg(long, env = "NEXENT_VOICE_THREADS")]
    pub voice_threads: Option<usize>,
    /// The `nexent-stt` speech-to-text helper (default: next to this executable).
    #[arg(long, env = "NEXENT_STT_HELPER")]
    pub stt_helper: Option<PathBuf>,
    /// Keep a folder ingested into a knowledge base: `FOLDER=INDEX` (repeatable).
    #[arg(long = "watch", value_name = "FOLDER=INDEX", value_parser = parse_watch)]
    pub watch: Vec<WatchSpec>,
    /// An MCP server whose tools the agent may call: `NAME=URL` (streamable HTTP) or `NAME=COMMAND ARGS...`
    /// (stdio; split on spaces). Repeatable.
    #[arg(long = "mcp-server", value_name = "NAME=URL|COMMAND", value_parser = parse_mcp)]
    pub mcp_servers: Vec<McpSpec>,
}

/// An MCP server, from `--mcp-server` or `[[mcp_server]]` in config.toml (`url`, or `command` and `args`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpSpec {
    pub name: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
}

impl McpSpec {
    pub fn config(&self) -> anyhow::Result<McpServerConfig> {
        let transport = match (&self.url, &self.command) {
            (Some(url), None) => {
                anyhow::ensure!(
                    url.starts_with("http://") || url.starts_with("https://"),
                    "MCP server {}: the url must start with http:// or https://, not {url:?}",
                    self.name
                );
                McpTransport::Http { url: url.clone() }
            }
            (None, Some(command)) => McpTransport::Stdio { command: command.clone(), args: self.args.clone() },
            _ => bail!("MCP server {}: give either url or command", self.name),
        };
        Ok(McpServerConfig { name: self.name.clone(), transport })
    }
}

fn parse_mcp(text: &str) -> Result<McpSpec, String> {
    let (name, target) = text.split_once('=').ok_or("expected NAME=URL or NAME=COMMAND ARGS...")?;
    let (name, target) = (name.trim(), target.trim());
    if name.is_empty() || target.is_empty() {
        return Err("expected NAME=URL or NAME=COMMAND ARGS...".into());
    }
    if target.starts_with("http://") || target.starts_with("https://") {
        return Ok(McpSpec { name: name.into(), url: Some(target.into()), command: None, args: Vec::new() });
    }
    let mut words = target.split_whitespace().map(str::to_owned);
    let command = words.next();
    Ok(McpSpec { name: name.into(), url: None, command, args: words.collect() })
}

/// A folder to keep ingested, from `--watch` or `[[watch]]` in config.toml.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchSpec {
    pub path: PathBuf,
    pub index_name: String,
    #[serde(default)]
    pub chunking_strategy: Option<String>,
}

/// `[storage]` in config.toml: `backend = "local"` (the default) or `"s3"` with a bucket.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    #[serde(default)]
    pub backend: Option<String>,
    pub bucket: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    #[serde(default)]
    pub allow_http: Option<bool>,
}

impl StorageSection {
    /// Nexent's MinIO variables (`MINIO_ENDPOINT`, `MINIO_ACCESS_KEY`, `MINIO_SECRET_KEY`, `MINIO_REGION`,
    /// `MINIO_DEFAULT_BUCKET`), so a Nexent `.env` moves over as it is.
    pub fn from_minio_environment(read: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let endpoint = read("MINIO_ENDPOINT").filter(|endpoint| !endpoint.trim().is_empty())?;
        Some(Self {
            backend: Some("s3".into()),
            allow_http: Some(endpoint.starts_with("http://")),
            endpoint: Some(endpoint),
            bucket: read("MINIO_DEFAULT_BUCKET"),
            region: read("MINIO_REGION"),
            access_key_id: read("MINIO_ACCESS_KEY"),
            secret_access_key: read("MINIO_SECRET_KEY"),
        })
    }

    pub fn backend(&self) -> anyhow::Result<StorageBackend> {
        match self.backend.as_deref().unwrap_or("local") {
            "local" => Ok(StorageBackend::Local),
            "s3" => {
                let required = |value: &Option<String>, key: &str| {
                    value
                        .clone()
                        .filter(|value| !value.trim().is_empty())
                        .with_context(|| format!("storage: s3 needs {key}"))
                };
                Ok(StorageBackend::S3(S3Config {
                    bucket: required(&self.bucket, "bucket (MINIO_DEFAULT_BUCKET)")?,
                    endpoint: self.endpoint.clone(),
                    region: self.region.clone(),
                    access_key_id: required(&self.access_key_id, "access_key_id (MINIO_ACCESS_KEY)")?,
                    secret_access_key: required(&self.secret_access_key, "secret_access_key (MINIO_SECRET_KEY)")?,
                    allow_http: self.allow_http.unwrap_or(false),
                }))
            }
            other => bail!("storage: backend must be \"local\" or \"s3\", not {other:?}"),
        }
    }
}

/// A database URL from Nexent's own variables (`POSTGRES_HOST`, `POSTGRES_USER`, `POSTGRES_PASSWORD`,
/// `POSTGRES_DB`, `POSTGRES_PORT`), so a Nexent `.env` moves over as it is; `None` without a host.
pub fn postgres_url_from_environment(read: impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<String>> {
    let Some(host) = read("POSTGRES_HOST").filter(|host| !host.trim().is_empty()) else {
        return Ok(None);
    };
    let port = match read("POSTGRES_PORT").filter(|port| !port.trim().is_empty()) {
        Some(port) => {
            port.trim().parse::<u16>().with_context(|| format!("POSTGRES_PORT must be a port, not {port:?}"))?
        }
        None => 5432,
    };
    // The URL type percent-encodes what a user name or password may hold (@, :, /).
    let mut url = url::Url::parse("postgres://localhost/")?;
    url.set_host(Some(host.trim())).with_context(|| format!("POSTGRES_HOST is not a host name: {host:?}"))?;
    let _ = url.set_port(Some(port));
    let user = read("POSTGRES_USER").unwrap_or_else(|| "postgres".into());
    let _ = url.set_username(&user);
    if let Some(password) = read("POSTGRES_PASSWORD").filter(|password| !password.is_empty()) {
        let _ = url.set_password(Some(&password));
    }
    url.set_path(&read("POSTGRES_DB").filter(|db| !db.trim().is_empty()).unwrap_or_else(|| "nexent".into()));
    Ok(Some(url.to_string()))
}

fn parse_watch(text: &str) -> Result<WatchSpec, String> {
    let (path, index_name) = text.rsplit_once('=').ok_or_else(|| format!("expected FOLDER=INDEX, got {text:?}"))?;
    if path.trim().is_empty() || index_name.trim().is_empty() {
        return Err(format!("expected FOLDER=INDEX, got {text:?}"));
    }
    Ok(WatchSpec {
        path: PathBuf::from(path.trim()),
        index_name: index_name.trim().to_owned(),
        chunking_strategy: None,
    })
}

/// `config.toml` in the data dir.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub host: Option<IpAddr>,
    pub port: Option<u16>,
    pub api_token: Option<String>,
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    pub allow_private_fetch: Option<bool>,
    pub models_dir: Option<PathBuf>,
    pub embed_threads: Option<usize>,
    pub embedding_model: Option<String>,
    pub max_upload_bytes: Option<u64>,
    pub storage_quota_bytes: Option<u64>,
    pub disk_reserve_bytes: Option<u64>,
    pub database_url: Option<String>,
    pub knowledge_store: Option<String>,
    pub ingest_workers: Option<usize>,
    pub chat_model: Option<PathBuf>,
    pub llm_threads: Option<usize>,
    pub llm_batch_threads: Option<usize>,
    pub llm_context: Option<u32>,
    pub draft_tokens: Option<u64>,
    pub prompt_lookup: Option<bool>,
    pub draft_model: Option<PathBuf>,
    pub voice_threads: Option<usize>,
    pub stt_helper: Option<PathBuf>,
    #[serde(default)]
    pub watch: Vec<WatchSpec>,
    #[serde(default)]
    pub mcp_server: Vec<McpSpec>,
    /// Where stored files live; `objects/` in the data dir unless this says otherwise.
    pub storage: Option<StorageSection>,
    /// A `tracing` filter such as `info` or `nexent_api=debug`; `NEXENT_LOG` overrides it.
    pub log: Option<String>,
}

impl ConfigFile {
    pub fn read(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join(CONFIG_TOML_NAME);
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).with_context(|| format!("invalid {}", path.display())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
        }
    }
}

/// Validated settings of one server process.
#[derive(Debug, Clone)]
pub struct Settings {
    pub host: IpAddr,
    pub port: u16,
    pub data_dir: PathBuf,
    pub api_token: Option<String>,
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub allow_private_fetch: bool,
    pub models_dir: PathBuf,
    pub embed_threads: usize,
    /// The local embedding model new knowledge bases get (one of [`LOCAL_EMBEDDING_MODELS`]).
    pub embedding_model: String,
    pub max_upload_bytes: u64,
    pub storage_quota_bytes: Option<u64>,
    /// Free space kept on the data dir's disk (0: none).
    pub disk_reserve_bytes: u64,
    /// The shared database; `None`: SQLite in the data dir.
    pub database_url: Option<String>,
    /// Where knowledge bases live; `None`: chosen by the database.
    pub knowledge_store: Option<KnowledgeStoreKind>,
    pub ingest_workers: usize,
    pub chat_model: Option<PathBuf>,
    pub llm_threads: Option<usize>,
    pub llm_batch_threads: Option<usize>,
    pub llm_context: u32,
    /// Guessing ahead for the local chat model.
    pub speculation: SpeculationConfig,
    pub voice_threads: usize,
    pub stt_helper: PathBuf,
    pub watch: Vec<WatchSpec>,
    pub mcp_servers: Vec<McpServerConfig>,
    pub storage: StorageBackend,
    pub log_filter: Option<String>,
    /// Whether the server names itself in the data dir's `server.json` (not when a command runs a
    /// private server for itself).
    pub advertise: bool,
}

/// `nexent-stt` beside the running executable (where cargo and the desktop bundle put it).
fn default_stt_helper() -> PathBuf {
    let name = format!("nexent-stt{}", std::env::consts::EXE_SUFFIX);
    std::env::current_exe().map(|exe| exe.with_file_name(&name)).unwrap_or_else(|_| PathBuf::from(name))
}

/// The data dir: the flag or `NEXENT_HOME`, else the platform's data dir.
pub fn resolve_data_dir(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = flag {
        return Ok(path.to_path_buf());
    }
    let base = dirs::data_dir().context("no platform data dir; pass --data-dir or set NEXENT_HOME")?;
    Ok(base.join("nexent-local"))
}

impl Settings {
    pub fn resolve(args: ServeArgs, data_dir: PathBuf, file: ConfigFile) -> anyhow::Result<Self> {
        let host = args.host.or(file.host).unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let port = args.port.or(file.port).unwrap_or(DEFAULT_PORT);
        let api_token = args.api_token.or(file.api_token).filter(|token| !token.trim().is_empty());
        if !host.is_loopback() && api_token.is_none() {
            bail!(
                "refusing to listen on {host}: a non-loopback address needs an API token \
                 (set NEXENT_API_TOKEN, --api-token, or api_token in {CONFIG_TOML_NAME})"
            );
        }
        if api_token.as_ref().is_some_and(|token| token.len() < 16) {
            bail!("the API token must be at least 16 characters long");
        }
        let mut allowed_hosts = nexent_api::security::default_allowed_hosts();
        if !host.is_loopback() && !host.is_unspecified() {
            allowed_hosts.push(match host {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            });
        }
        allowed_hosts.extend(file.allowed_hosts);
        allowed_hosts.extend(args.allowed_hosts.into_iter().filter(|name| !name.trim().is_empty()));
        let mut allowed_origins = file.allowed_origins;
        allowed_origins.extend(args.allowed_origins.into_iter().filter(|origin| !origin.trim().is_empty()));
        if let Some(wildcard) = allowed_origins.iter().find(|origin| origin.contains('*')) {
            bail!("allowed origins must be exact origins, not {wildcard:?}");
        }
        let models_dir = args.models_dir.or(file.models_dir).unwrap_or_else(|| data_dir.join("models"));
        let cores = std::thread::available_parallelism().map(|count| count.get()).unwrap_or(1);
        let embed_threads = args.embed_threads.or(file.embed_threads).unwrap_or(cores.min(4)).max(1);
        let embedding_model = args
            .embedding_model
            .or(file.embedding_model)
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| DEFAULT_EMBEDDING_MODEL.to_owned());
        if !LOCAL_EMBEDDING_MODELS.contains(&embedding_model.as_str()) {
            bail!("unknown embedding model {embedding_model:?}: use one of {}", LOCAL_EMBEDDING_MODELS.join(", "));
        }
        Ok(Self {
            host,
            port,
            data_dir,
            api_token,
            allowed_hosts,
            allowed_origins,
            allow_private_fetch: args.allow_private_fetch.or(file.allow_private_fetch).unwrap_or(false),
            models_dir,
            embed_threads,
            embedding_model,
            max_upload_bytes: args
                .max_upload_bytes
                .or(file.max_upload_bytes)
                .unwrap_or(nexent_core::storage::DEFAULT_MAX_UPLOAD_BYTES),
            storage_quota_bytes: args.storage_quota_bytes.or(file.storage_quota_bytes).filter(|quota| *quota > 0),
            disk_reserve_bytes: args
                .disk_reserve_bytes
                .or(file.disk_reserve_bytes)
                .unwrap_or(nexent_core::disk::DEFAULT_RESERVE_BYTES),
            database_url: args
                .database_url
                .or(file.database_url)
                .filter(|url| !url.trim().is_empty())
                .map(Ok)
                .or_else(|| postgres_url_from_environment(|key| std::env::var(key).ok()).transpose())
                .transpose()?,
            knowledge_store: args
                .knowledge_store
                .or(file.knowledge_store)
                .filter(|kind| !kind.trim().is_empty())
                .map(|kind| kind.parse::<KnowledgeStoreKind>().map_err(anyhow::Error::msg))
                .transpose()?,
            ingest_workers: args.ingest_workers.or(file.ingest_workers).unwrap_or(2).clamp(1, 64),
            chat_model: args.chat_model.or(file.chat_model),
            llm_threads: args.llm_threads.or(file.llm_threads).map(|threads| threads.max(1)),
            llm_batch_threads: args
                .llm_batch_threads
                .or(file.llm_batch_threads)
                .or(args.llm_threads)
                .or(file.llm_threads)
                .map(|threads| threads.max(1)),
            llm_context: args.llm_context.or(file.llm_context).unwrap_or(4096).clamp(512, 131_072),
            speculation: SpeculationConfig {
                draft_tokens: args
                    .draft_tokens
                    .or(file.draft_tokens)
                    .map_or(DEFAULT_DRAFT_TOKENS, |tokens| (tokens as usize).min(MAX_DRAFT_TOKENS)),
                prompt_lookup: args.prompt_lookup.or(file.prompt_lookup).unwrap_or(true),
                draft_model: args.draft_model.or(file.draft_model),
            },
            voice_threads: args.voice_threads.or(file.voice_threads).unwrap_or(cores.saturating_sub(1)).max(1),
            stt_helper: args.stt_helper.or(file.stt_helper).unwrap_or_else(default_stt_helper),
            watch: file.watch.into_iter().chain(args.watch).collect(),
            mcp_servers: file
                .mcp_server
                .iter()
                .chain(&args.mcp_servers)
                .map(McpSpec::config)
                .collect::<anyhow::Result<_>>()?,
            storage: file
                .storage
                .or_else(|| StorageSection::from_minio_environment(|key| std::env::var(key).ok()))
                .unwrap_or_default()
                .backend()?,
            log_filter: file.log,
            advertise: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_and_defaults_are_loopback() {
        let file = ConfigFile { port: Some(6000), allow_private_fetch: Some(true), ..ConfigFile::default() };
        let settings = Settings::resolve(ServeArgs::default(), PathBuf::from("/tmp/x"), file.clone()).expect("ok");
        assert_eq!(
            (settings.host, settings.port, settings.allow_private_fetch),
            ("127.0.0.1".parse().expect("ip"), 6000, true)
        );
        let args = ServeArgs { port: Some(7000), ..ServeArgs::default() };
        assert_eq!(Settings::resolve(args, PathBuf::from("/tmp/x"), file).expect("ok").port, 7000);
    }

    #[test]
    fn nexents_postgres_variables_make_a_url_with_the_password_encoded() {
        let environment = |key: &str| match key {
            "POSTGRES_HOST" => Some("db.internal".to_owned()),
            "POSTGRES_USER" => Some("root".to_owned()),
            "POSTGRES_PASSWORD" => Some("p@ss:w/rd".to_owned()),
            "POSTGRES_DB" => Some("nexent".to_owned()),
            "POSTGRES_PORT" => Some("5434".to_owned()),
            _ => None,
        };
        let url = postgres_url_from_environment(environment).expect("valid").expect("configured");
        assert_eq!(url, "postgres://root:p%40ss%3Aw%2Frd@db.internal:5434/nexent");
        assert_eq!(postgres_url_from_environment(|_| None).expect("valid"), None);
        let bad_port = |key: &str| match key {
            "POSTGRES_HOST" => Some("localhost".to_owned()),
            "POSTGRES_PORT" => Some("fifty".to_owned()),
            _ => None,
        };
        let message = postgres_url_from_environment(bad_port).expect_err("refused").to_string();
        assert!(message.contains("POSTGRES_PORT"), "{message}");
    }

    #[test]
    fn a_public_bind_needs_a_long_token() {
        let public = ServeArgs { host: Some("0.0.0.0".parse().expect("ip")), ..ServeArgs::default() };
        assert!(Settings::resolve(public.clone(), PathBuf::new(), ConfigFile::default()).is_err());
        let short = ServeArgs { api_token: Some("short".into()), ..public.clone() };
        assert!(Settings::resolve(short, PathBuf::new(), ConfigFile::default()).is_err());
        let good = ServeArgs { api_token: Some("0123456789abcdef0123".into()), ..public };
        assert!(Settings::resolve(good, PathBuf::new(), ConfigFile::default()).is_ok());
    }

    #[test]
    fn watched_folders_come_from_the_file_and_the_flags() {
        let file: ConfigFile =
            toml::from_str("[[watch]]\npath = \"/home/ada/notes\"\nindex_name = \"notes\"\n").expect("toml");
        let args = ServeArgs { watch: vec![parse_watch("/srv/a=b=docs").expect("spec")], ..ServeArgs::default() };
        let settings = Settings::resolve(args, PathBuf::from("/tmp/x"), file).expect("ok");
        let pairs: Vec<(String, &str)> =
            settings.watch.iter().map(|spec| (spec.path.display().to_string(), spec.index_name.as_str())).collect();
        assert_eq!(pairs, [("/home/ada/notes".to_owned(), "notes"), ("/srv/a=b".to_owned(), "docs")]);
        assert!(parse_watch("/srv/a").is_err() && parse_watch("=docs").is_err());
    }

    #[test]
    fn storage_is_local_unless_s3_is_configured_completely() {
        assert_eq!(StorageSection::default().backend().expect("local"), StorageBackend::Local);
        let minio = StorageSection::from_minio_environment(|key| {
            Some(match key {
                "MINIO_ENDPOINT" => "http://127.0.0.1:9000".into(),
                "MINIO_DEFAULT_BUCKET" => "nexent".into(),
                "MINIO_ACCESS_KEY" => "ak".into(),
                "MINIO_SECRET_KEY" => "sk".into(),
                _ => return None,
            })
        })
        .expect("minio");
        let StorageBackend::S3(config) = minio.backend().expect("s3") else { panic!("not s3") };
        assert_eq!((config.bucket.as_str(), config.allow_http, config.region), ("nexent", true, None));
        let incomplete =
            StorageSection { backend: Some("s3".into()), bucket: Some("b".into()), ..StorageSection::default() };
        assert!(incomplete.backend().is_err());
        let unknown = StorageSection { backend: Some("ftp".into()), ..StorageSection::default() };
        assert!(unknown.backend().is_err());
        assert!(StorageSection::from_minio_environment(|_| None).is_none());
    }
}
