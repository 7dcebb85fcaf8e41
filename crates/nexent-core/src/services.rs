//! Opening every core service on a data dir, in one place, so the server binary, the desktop shell and
//! the tests wire the same thing.

use std::path::{Path, PathBuf};

use crate::agent::mcp::{McpServerConfig, McpTools};
use crate::agent::{Agent, AgentRuns};
use crate::chat::{SharedChatModel, UnavailableChat};
use crate::config_sync::{CONFIG_FILE_NAME, ConfigSync, ConfigSyncError};
use crate::conversation::ConversationStore;
use crate::db::{DATABASE_FILE_NAME, DatabaseError, connect_database, open_database};
use crate::disk::DiskReserve;
use crate::fetch::{FetchError, FetchPolicy, SafeFetcher};
use crate::image_proxy::ImageProxy;
use crate::ingest::{IngestError, IngestQueue};
use crate::knowledge::embedder::{Embedders, UnavailableEmbedder};
use crate::knowledge::postgres_store::PostgresStore;
use crate::knowledge::{KnowledgeBase, KnowledgeError, KnowledgeStore, TantivyStore};
use crate::models::{ModelConnector, ModelRegistry, NoEngines};
use crate::storage::{DEFAULT_MAX_UPLOAD_BYTES, FileStorage, StorageBackend, StorageError, UrlSigner};
use crate::voice::Voice;
use crate::watch::{FolderWatcher, WatchError};

#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    #[error("cannot create the data dir {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error(transparent)]
    Database(#[from] DatabaseError),
    #[error(transparent)]
    ConfigSync(#[from] ConfigSyncError),
    #[error("cannot build the HTTP client: {0}")]
    Fetcher(#[from] FetchError),
    #[error("cannot open the knowledge bases: {0}")]
    Knowledge(#[from] KnowledgeError),
    #[error("cannot open file storage: {0}")]
    Storage(#[from] StorageError),
    #[error("cannot start the ingestion queue: {0}")]
    Ingest(#[from] IngestError),
    #[error("cannot start the folder watcher: {0}")]
    Watch(#[from] WatchError),
}

/// The folder under the data dir that holds stored files.
pub const OBJECTS_DIR: &str = "objects";

/// The folder under the data dir that holds one folder per knowledge base.
pub const INDICES_DIR: &str = "indices";

#[derive(Clone)]
pub struct ServicesOptions {
    pub fetch_policy: FetchPolicy,
    /// The embedding engines the binary loaded, the default for new knowledge bases first (or an
    /// [`UnavailableEmbedder`] saying why none could be).
    pub embedders: Embedders,
    /// Largest file an upload may store.
    pub max_upload_bytes: u64,
    /// Most bytes all stored files may take together (`None`: no quota).
    pub storage_quota_bytes: Option<u64>,
    /// Free space kept on the data dir's disk: uploads, new bases and indexing that would eat into it are
    /// refused (0: no reserve).
    pub disk_reserve_bytes: u64,
    /// Ingestion workers (tasks processed at once).
    pub ingest_workers: usize,
    /// Where stored files' bytes live.
    pub storage_backend: StorageBackend,
    /// The chat model (or an [`UnavailableChat`] saying why none could be loaded).
    pub chat_model: SharedChatModel,
    /// The folder of model files (local GGUF models are listed from it).
    pub models_dir: PathBuf,
    /// Opens the engines behind model records for health checks.
    pub model_connector: std::sync::Arc<dyn ModelConnector>,
    /// MCP servers whose tools the agent may call.
    pub mcp_servers: Vec<McpServerConfig>,
    /// Speech-to-text and text-to-speech engines.
    pub voice: Voice,
    /// The shared relational database (`postgres://…`); `None`: `nexent.db` in the data dir.
    pub database_url: Option<String>,
    /// Where the knowledge bases live; `None`: in the shared database when there is one (so every node
    /// searches the same bases), else in Tantivy indices in the data dir.
    pub knowledge_store: Option<KnowledgeStoreKind>,
}

/// The engines a knowledge base can live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnowledgeStoreKind {
    /// Tantivy indices in the data dir (per node).
    Tantivy,
    /// Tables in the PostgreSQL database (shared by the nodes), with pgvector.
    Postgres,
}

impl std::str::FromStr for KnowledgeStoreKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "tantivy" => Ok(Self::Tantivy),
            "postgres" | "postgresql" => Ok(Self::Postgres),
            other => Err(format!("unknown knowledge store {other:?}: use tantivy or postgres")),
        }
    }
}

impl Default for ServicesOptions {
    fn default() -> Self {
        Self {
            fetch_policy: FetchPolicy::default(),
            embedders: Embedders::only(std::sync::Arc::new(UnavailableEmbedder {
                model_name: "none".into(),
                dimension: 384,
                reason: "no embedding model was configured".into(),
            })),
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            storage_quota_bytes: None,
            disk_reserve_bytes: crate::disk::DEFAULT_RESERVE_BYTES,
            ingest_workers: 2,
            storage_backend: StorageBackend::Local,
            chat_model: std::sync::Arc::new(UnavailableChat {
                model_name: "none".into(),
                reason: "no chat model was configured".into(),
            }),
            models_dir: PathBuf::from("models"),
            model_connector: std::sync::Arc::new(NoEngines),
            mcp_servers: Vec::new(),
            voice: Voice::unavailable("no speech engines were configured"),
            database_url: None,
            knowledge_store: None,
        }
    }
}

/// The file in the data dir that names this node for good (a UUID): a deployment's other nodes leave the
/// node's watched folders, and the tasks that read their files, to it.
const NODE_ID_FILE: &str = "node-id";

/// This data dir's lasting node identity, created on first use (written whole, then renamed).
fn node_identity(data_dir: &Path) -> Result<String, ServicesError> {
    let path = data_dir.join(NODE_ID_FILE);
    let failed = |source| ServicesError::DataDir { path: path.display().to_string(), source };
    match std::fs::read_to_string(&path) {
        Ok(text) if uuid::Uuid::parse_str(text.trim()).is_ok() => return Ok(text.trim().to_owned()),
        Ok(_) => tracing::warn!(file = %path.display(), "the node id file is damaged; writing a new one"),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(failed(error)),
    }
    let id = uuid::Uuid::new_v4().to_string();
    let partial = data_dir.join(format!("{NODE_ID_FILE}.partial"));
    std::fs::write(&partial, &id).map_err(failed)?;
    std::fs::rename(&partial, &path).map_err(failed)?;
    Ok(id)
}

/// The domain services of one data dir.
#[derive(Clone)]
pub struct Services {
    pub data_dir: PathBuf,
    pub conversations: ConversationStore,
    pub config_sync: std::sync::Arc<ConfigSync>,
    pub image_proxy: ImageProxy,
    pub knowledge: std::sync::Arc<KnowledgeBase>,
    pub storage: FileStorage,
    pub ingest: IngestQueue,
    pub watcher: FolderWatcher,
    pub chat: SharedChatModel,
    pub models: ModelRegistry,
    pub agent: Agent,
    pub voice: Voice,
}

impl Services {
    pub async fn open(data_dir: &Path, options: ServicesOptions) -> Result<Self, ServicesError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|source| ServicesError::DataDir { path: data_dir.display().to_string(), source })?;
        crate::process::make_private(data_dir)
            .map_err(|source| ServicesError::DataDir { path: data_dir.display().to_string(), source })?;
        let pool = match &options.database_url {
            Some(url) => connect_database(url).await?,
            None => open_database(&data_dir.join(DATABASE_FILE_NAME)).await?,
        };
        // One deployment, one signing secret: with a shared database every node signs with the same one.
        let signer = match pool.dialect() {
            crate::db::Dialect::Postgres => UrlSigner::shared(&pool).await?,
            crate::db::Dialect::Sqlite => UrlSigner::open(data_dir)?,
        };
        let reserve = DiskReserve::new(data_dir, options.disk_reserve_bytes);
        let storage = match &options.storage_backend {
            StorageBackend::Local => {
                FileStorage::local(&data_dir.join(OBJECTS_DIR), pool.clone(), signer, options.max_upload_bytes)?
                    .with_reserve(reserve.clone())
            }
            StorageBackend::S3(config) => FileStorage::s3(config, pool.clone(), signer, options.max_upload_bytes)?,
        }
        .with_quota(options.storage_quota_bytes);
        // Several nodes on one database must agree on the selected models and knowledge bases.
        let config_sync = match pool.dialect() {
            crate::db::Dialect::Postgres => {
                ConfigSync::open_shared(&data_dir.join(CONFIG_FILE_NAME), pool.clone()).await?
            }
            crate::db::Dialect::Sqlite => ConfigSync::open(&data_dir.join(CONFIG_FILE_NAME))?,
        };
        let fetcher = SafeFetcher::new(options.fetch_policy)?;
        let ingest_pool = pool.clone();
        let model_pool = pool.clone();
        let store_kind = options.knowledge_store.unwrap_or(match pool.dialect() {
            crate::db::Dialect::Postgres => KnowledgeStoreKind::Postgres,
            crate::db::Dialect::Sqlite => KnowledgeStoreKind::Tantivy,
        });
        let store: std::sync::Arc<dyn KnowledgeStore> = match store_kind {
            KnowledgeStoreKind::Postgres => std::sync::Arc::new(PostgresStore::open(pool.clone()).await?),
            KnowledgeStoreKind::Tantivy => {
                let indices_dir = data_dir.join(INDICES_DIR);
                std::sync::Arc::new(
                    tokio::task::spawn_blocking(move || TantivyStore::open(&indices_dir))
                        .await
                        .map_err(|error| KnowledgeError::Join(error.to_string()))??,
                )
            }
        };
        tracing::info!(store = store.engine(), "knowledge bases opened");
        // A PostgreSQL store's disk is the database server's, which keeps its own limits.
        let knowledge_reserve = match store_kind {
            KnowledgeStoreKind::Tantivy => reserve,
            KnowledgeStoreKind::Postgres => DiskReserve::none(),
        };
        let knowledge =
            std::sync::Arc::new(KnowledgeBase::new(store, options.embedders).with_reserve(knowledge_reserve));
        let ingest = IngestQueue::new(
            ingest_pool,
            knowledge.clone(),
            storage.clone(),
            fetcher.clone(),
            // Stored objects only: the data dir also holds secrets and the database. Watched folders
            // add their roots as they are watched.
            Vec::new(),
            node_identity(data_dir)?,
        );
        ingest.start(options.ingest_workers).await?;
        let watcher = FolderWatcher::start(pool.clone(), ingest.clone(), knowledge.clone(), data_dir).await?;
        let (conversations_dialect, agent_database) = (pool.dialect(), pool.clone());
        let conversations = ConversationStore::new(pool);
        let config_sync = std::sync::Arc::new(config_sync);
        config_sync.keep_refreshed();
        let agent = Agent {
            conversations: conversations.clone(),
            config_sync: config_sync.clone(),
            knowledge: knowledge.clone(),
            storage: storage.clone(),
            chat: options.chat_model.clone(),
            mcp: McpTools::connect(options.mcp_servers.clone()),
            runs: match conversations_dialect {
                crate::db::Dialect::Postgres => AgentRuns::shared(agent_database),
                crate::db::Dialect::Sqlite => AgentRuns::default(),
            },
        };
        Ok(Self {
            data_dir: data_dir.to_path_buf(),
            conversations,
            config_sync,
            image_proxy: ImageProxy::new(fetcher),
            knowledge,
            storage,
            ingest,
            watcher,
            chat: options.chat_model,
            models: ModelRegistry::new(model_pool, options.models_dir, options.model_connector, options.voice.clone()),
            agent,
            voice: options.voice,
        })
    }
}
