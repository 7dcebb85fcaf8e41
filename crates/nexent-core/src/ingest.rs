//! Data Process: a persistent queue of ingestion tasks in SQLite (nexent-api.md §1.4, §3.4). A task
//! reads its source (a stored object, a local file, a URL through the SSRF-safe fetcher, or inline
//! text), parses it, chunks it and indexes the chunks into a knowledge base.
//!
//! Responsibilities and thread model:
//! 1. `submit` records a task as WAITING and wakes the workers; it never does the work itself.
//! 2. A fixed number of worker tasks (tokio) claim WAITING tasks one at a time with a single UPDATE, so
//!    no task runs twice. Parsing and chunking run on the blocking pool; embedding runs on the embedder's
//!    engine thread; the index commit runs on the blocking pool.
//! 3. Every state change is written before the next step starts. On start-up, tasks caught in PROCESSING
//!    or FORWARDING by a crash are put back to WAITING (at most [`MAX_ATTEMPTS`] times, then FAILED with
//!    the reason). Re-running is safe: chunk ids are `{task_id}_{i}` and indexing replaces same-id chunks,
//!    so nothing is indexed twice. A task caught while a binary-format parser was reading its file
//!    (`parse_started_at` set) for the second time (`parse_interruptions`) is FAILED instead: that parser
//!    most likely killed the process, and would kill it again at every start. The first time it is
//!    retried: a SIGKILL, a power cut or a closed lid stops a parser too.
//! 4. A request names stored objects (or URLs, or text) only. Local paths enter the queue only from the
//!    folder watcher (`submit_watched`, marked `local_file`), and are checked again when read, on the real
//!    path after symbolic links are resolved, against the watcher's rules: below a watched folder, not
//!    hidden, not in the data dir, an allowed extension.

pub mod chunking;
pub mod parse;
pub mod preprocess;

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};
use sqlx::Row;

use crate::db::{Database, Dialect};
use tokio::sync::Notify;

use crate::clock::now_millis;
use crate::fetch::SafeFetcher;
use crate::knowledge::chunk::{Chunk, DEFAULT_PROCESS_SOURCE, now_iso};
use crate::knowledge::{KnowledgeBase, validate_index_name};
use crate::storage::{FileStorage, StorageError};
use chunking::{ChunkingStrategy, chunk_elements};

/// A task interrupted this many times by crashes is failed instead of retried once more.
pub const MAX_ATTEMPTS: i64 = 3;

/// How long a claimed task stays its node's without a heartbeat. On a shared database a node that dies
/// leaves its tasks to the others once this has passed.
const LEASE_MS: i64 = 30_000;
/// How often a node renews the leases of the tasks it runs.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(10);
/// How often a node on a shared database looks for tasks whose lease expired.
const RECLAIM_EVERY: std::time::Duration = std::time::Duration::from_secs(15);
/// Largest source a task reads (text, file or URL).
pub const MAX_SOURCE_BYTES: u64 = 200 * 1024 * 1024;
/// Chunks kept with a task for `GET /api/tasks/{id}/details`.
const RESULT_PREVIEW_CHUNKS: usize = 50;
/// Why a task found mid-parse at start-up a second time is failed rather than retried.
pub const PARSER_CRASH_REASON: &str = "the parser stopped the server twice while reading this file; it is not tried \
     again (the file may be hostile or damaged)";
/// Interruptions with the parser running after which a task is failed. One is not proof against the
/// file: a power cut, a SIGKILL or the laptop's lid stops the parser too, so the file gets one more try; a
/// file that stops the process again is failed, so a hostile one costs at most two restarts. Interruptions
/// elsewhere (embedding, indexing) are not counted here, only against [`MAX_ATTEMPTS`].
const PARSER_CRASH_INTERRUPTIONS: i64 = 2;
/// How long a worker waits for the folder watcher's rules before it reads a watched file.
const WATCHER_READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("Task with ID {0} not found")]
    NotFound(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The task's knowledge base cannot take it (a bad name, a base set aside, the disk's reserve).
    #[error(transparent)]
    Knowledge(#[from] crate::knowledge::KnowledgeError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Waiting,
    Processing,
    Forwarding,
    Completed,
    Failed,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Waiting => "WAITING",
            TaskStatus::Processing => "PROCESSING",
            TaskStatus::Forwarding => "FORWARDING",
            TaskStatus::Completed => "COMPLETED",
            TaskStatus::Failed => "FAILED",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "PROCESSING" => TaskStatus::Processing,
            "FORWARDING" => TaskStatus::Forwarding,
            "COMPLETED" => TaskStatus::Completed,
            "FAILED" => TaskStatus::Failed,
            _ => TaskStatus::Waiting,
        }
    }

    pub fn is_active(self) -> bool {
        matches!(self, TaskStatus::Waiting | TaskStatus::Processing | TaskStatus::Forwarding)
    }
}

/// What a client asks to ingest.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRequest {
    pub source: String,
    pub source_type: String,
    pub index_name: String,
    pub chunking_strategy: Option<String>,
    /// Shown as the file's name (defaults to the last segment of the source).
    pub file_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub task_id: String,
    pub source: String,
    pub source_type: String,
    pub index_name: String,
    pub chunking_strategy: Option<String>,
    pub file_name: String,
    pub file_size: Option<i64>,
    pub status: TaskStatus,
    pub error: Option<String>,
    pub chunk_count: Option<i64>,
    pub result_preview: Option<Value>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Submitted by the folder watcher: `source` is a local path.
    pub local_file: bool,
}

impl Task {
    /// Where the task's chunks say they come from: the stored object, path or URL; for inline text, its
    /// file name (the text itself would make a poor identifier).
    pub fn path_or_url(&self) -> &str {
        if self.source_type == "text" { &self.file_name } else { &self.source }
    }
}

#[derive(Clone)]
pub struct IngestQueue {
    inner: Arc<QueueInner>,
}

struct QueueInner {
    db: Database,
    knowledge: Arc<KnowledgeBase>,
    storage: FileStorage,
    fetcher: SafeFetcher,
    /// Local folders a watched file may be read from: the watched folders.
    allowed_roots: std::sync::RwLock<Vec<PathBuf>>,
    /// The data dir (canonical), set by the folder watcher once its folders are allowed; watched files are
    /// read only after that.
    data_dir: tokio::sync::watch::Sender<Option<PathBuf>>,
    wake: Notify,
    /// This process, as the `claimed_by` of the tasks it runs.
    node_id: String,
    /// This node's data dir, as the `home_node` of the watched files' tasks: only it can read them.
    home_node: String,
}

impl IngestQueue {
    pub fn new(
        db: Database,
        knowledge: Arc<KnowledgeBase>,
        storage: FileStorage,
        fetcher: SafeFetcher,
        allowed_roots: Vec<PathBuf>,
        home_node: String,
    ) -> Self {
        let allowed_roots =
            std::sync::RwLock::new(allowed_roots.into_iter().filter_map(|root| root.canonicalize().ok()).collect());
        let (data_dir, _) = tokio::sync::watch::channel(None);
        Self {
            inner: Arc::new(QueueInner {
                db,
                knowledge,
                storage,
                fetcher,
                allowed_roots,
                data_dir,
                wake: Notify::new(),
                node_id: uuid::Uuid::new_v4().to_string(),
                home_node,
            }),
        }
    }

    /// This node's lasting identity (its data dir's), which owns its watched folders and their tasks.
    pub fn home_node(&self) -> &str {
        &self.inner.home_node
    }

    /// The folder watcher's rules are in place: its folders are allowed and `data_dir` is never read.
    pub fn watcher_ready(&self, data_dir: PathBuf) {
        self.inner.data_dir.send_replace(Some(data_dir));
    }

    /// Lets `file` tasks read below `root` (a watched folder, already canonical).
    pub fn allow_root(&self, root: PathBuf) {
        let mut roots = crate::sync::write(&self.inner.allowed_roots);
        if !roots.contains(&root) {
            roots.push(root);
        }
    }

    pub fn forbid_root(&self, root: &std::path::Path) {
        crate::sync::write(&self.inner.allowed_roots).retain(|existing| existing != root);
    }

    /// Puts tasks a crash interrupted back in the queue (or fails them after too many attempts), then
    /// starts `workers` workers.
    pub async fn start(&self, workers: usize) -> Result<(), IngestError> {
        self.take_back_interrupted().await?;
        if self.inner.db.dialect() == Dialect::Postgres {
            // Other nodes share the queue and may die while this one runs.
            let queue = self.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(RECLAIM_EVERY).await;
                    if let Err(error) = queue.take_back_interrupted().await {
                        tracing::warn!(%error, "cannot take back the tasks of stopped nodes");
                    }
                }
            });
        }
        for worker in 0..workers.max(1) {
            let queue = self.clone();
            tokio::spawn(async move { queue.work(worker).await });
        }
        self.inner.wake.notify_waiters();
        Ok(())
    }

    pub async fn submit(&self, request: TaskRequest) -> Result<String, IngestError> {
        let ids = self.submit_batch(vec![request]).await?;
        Ok(ids.into_iter().next().unwrap_or_default())
    }

    /// Records every task (all or none) and wakes the workers. A `file` source must name a stored object.
    pub async fn submit_batch(&self, requests: Vec<TaskRequest>) -> Result<Vec<String>, IngestError> {
        for request in &requests {
            validate_request(request)?;
            if request.source_type == "file" {
                crate::storage::validate_object_name(&request.source).map_err(|error| {
                    IngestError::InvalidRequest(format!(
                        "source must name a stored file (upload it first; local folders are read by watching them): {error}"
                    ))
                })?;
            }
        }
        self.insert(requests, false).await
    }

    /// A file of a watched folder, by its path: only the folder watcher calls this, after its own checks.
    pub(crate) async fn submit_watched(&self, request: TaskRequest) -> Result<String, IngestError> {
        validate_request(&request)?;
        let ids = self.insert(vec![request], true).await?;
        Ok(ids.into_iter().next().unwrap_or_default())
    }

    async fn insert(&self, requests: Vec<TaskRequest>, local_file: bool) -> Result<Vec<String>, IngestError> {
        // The knowledge base exists from its first upload on, so failed files can be shown in it.
        for request in &requests {
            self.inner.knowledge.create_index(&request.index_name, None, None).await?;
        }
        let now = now_millis();
        let mut transaction = self.inner.db.pool().begin().await?;
        let mut ids = Vec::with_capacity(requests.len());
        for request in requests {
            let task_id = new_task_id();
            let file_name = file_name_of(&request, &task_id);
            sqlx::query(
                "INSERT INTO ingest_task (task_id, source, source_type, index_name, chunking_strategy, file_name,
                                          status, created_at, updated_at, local_file, home_node)
                 VALUES ($1, $2, $3, $4, $5, $6, 'WAITING', $7, $8, $9, $10)",
            )
            .bind(&task_id)
            .bind(&request.source)
            .bind(&request.source_type)
            .bind(&request.index_name)
            .bind(&request.chunking_strategy)
            .bind(&file_name)
            .bind(now)
            .bind(now)
            .bind(i64::from(local_file))
            // A local file can be read only where it is.
            .bind(local_file.then(|| self.inner.home_node.clone()))
            .execute(&mut *transaction)
            .await?;
            ids.push(task_id);
        }
        transaction.commit().await?;
        for _ in 0..ids.len() {
            self.inner.wake.notify_one();
        }
        Ok(ids)
    }

    pub async fn get(&self, task_id: &str) -> Result<Task, IngestError> {
        let row = sqlx::query("SELECT * FROM ingest_task WHERE task_id = $1")
            .bind(task_id)
            .fetch_optional(self.inner.db.pool())
            .await?;
        row.as_ref().map(task_from_row).ok_or_else(|| IngestError::NotFound(task_id.to_owned()))
    }

    pub async fn list(&self) -> Result<Vec<Task>, IngestError> {
        let rows =
            sqlx::query("SELECT * FROM ingest_task ORDER BY created_at DESC").fetch_all(self.inner.db.pool()).await?;
        Ok(rows.iter().map(task_from_row).collect())
    }

    /// Tasks of one index that are not completed (waiting, running or failed), newest first.
    pub async fn unfinished_for_index(&self, index_name: &str) -> Result<Vec<Task>, IngestError> {
        let rows = sqlx::query(
            "SELECT * FROM ingest_task WHERE index_name = $1 AND status != 'COMPLETED' ORDER BY created_at DESC",
        )
        .bind(index_name)
        .fetch_all(self.inner.db.pool())
        .await?;
        Ok(rows.iter().map(task_from_row).collect())
    }

    /// Puts tasks whose run was interrupted back in the queue, failing those interrupted too often and those
    /// whose parser was running at two interruptions (it may be what stopped the process). Which tasks
    /// were interrupted depends on who else runs them: on SQLite one process owns the data dir, so at
    /// start-up every task left running was this node's; on a shared database only tasks whose lease
    /// expired are.
    async fn take_back_interrupted(&self) -> Result<(), IngestError> {
        let interrupted = match self.inner.db.dialect() {
            Dialect::Sqlite => "status IN ('PROCESSING', 'FORWARDING')",
            Dialect::Postgres => "status IN ('PROCESSING', 'FORWARDING') AND COALESCE(lease_until, 0) < $1",
        };
        let now = now_millis();
        let pool = self.inner.db.pool();
        let crashed = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE ingest_task SET status = 'FAILED', updated_at = $1, error = $2, parse_started_at = NULL,
                 claimed_by = NULL, parse_interruptions = parse_interruptions + 1
             WHERE {interrupted} AND parse_started_at IS NOT NULL AND parse_interruptions + 1 >= $3"
        )))
        .bind(now)
        .bind(PARSER_CRASH_REASON)
        .bind(PARSER_CRASH_INTERRUPTIONS)
        .execute(pool)
        .await?;
        let exhausted = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE ingest_task SET status = 'FAILED', updated_at = $1, claimed_by = NULL,
                 error = 'interrupted ' || attempts || ' times by a restart; giving up'
             WHERE {interrupted} AND attempts >= $2"
        )))
        .bind(now)
        .bind(MAX_ATTEMPTS)
        .execute(pool)
        .await?;
        let resumed = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE ingest_task SET status = 'WAITING', updated_at = $1, claimed_by = NULL, parse_started_at = NULL,
                 parse_interruptions = parse_interruptions + CASE WHEN parse_started_at IS NULL THEN 0 ELSE 1 END
             WHERE {interrupted}"
        )))
        .bind(now)
        .execute(pool)
        .await?;
        if crashed.rows_affected() + exhausted.rows_affected() + resumed.rows_affected() > 0 {
            tracing::info!(
                resumed = resumed.rows_affected(),
                failed_while_parsing = crashed.rows_affected(),
                failed_too_often = exhausted.rows_affected(),
                "took back interrupted tasks"
            );
            for _ in 0..resumed.rows_affected() {
                self.inner.wake.notify_one();
            }
        }
        Ok(())
    }

    /// Extends this node's lease on a task it still runs.
    async fn renew_lease(&self, task_id: &str) {
        let renewed = sqlx::query("UPDATE ingest_task SET lease_until = $1 WHERE task_id = $2 AND claimed_by = $3")
            .bind(now_millis() + LEASE_MS)
            .bind(task_id)
            .bind(&self.inner.node_id)
            .execute(self.inner.db.pool())
            .await;
        if let Err(error) = renewed {
            tracing::warn!(%error, task = %task_id, "cannot renew the task's lease");
        }
    }

    async fn work(&self, worker: usize) {
        loop {
            match self.claim().await {
                Ok(Some(task)) => {
                    tracing::info!(worker, task = %task.task_id, index = %task.index_name, file = %task.file_name, "processing task");
                    // The lease is renewed while the task runs, so other nodes leave it alone.
                    let outcome = {
                        let run = self.run(&task);
                        tokio::pin!(run);
                        let mut heartbeat =
                            tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
                        loop {
                            tokio::select! {
                                outcome = &mut run => break outcome,
                                _ = heartbeat.tick() => self.renew_lease(&task.task_id).await,
                            }
                        }
                    };
                    let recorded = match outcome {
                        Ok((chunk_count, preview)) => self.finish(&task.task_id, chunk_count, preview).await,
                        Err(reason) => {
                            tracing::warn!(task = %task.task_id, %reason, "task failed");
                            self.fail(&task.task_id, &reason).await
                        }
                    };
                    if let Err(error) = recorded {
                        tracing::error!(%error, task = %task.task_id, "cannot record the task's outcome");
                    }
                }
                Ok(None) => {
                    // Sleep until a submit wakes us, or poll now and then in case a wake-up was missed.
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.inner.wake.notified()).await;
                }
                Err(error) => {
                    tracing::error!(%error, "cannot claim a task");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Takes the oldest waiting task in one statement, so two workers can never take the same one. SQLite
    /// runs the statement under its single write lock; on PostgreSQL, where workers of several nodes claim
    /// at once, the candidate row is locked with `SKIP LOCKED` (a worker takes the next one instead of
    /// waiting) and the outer `status` check keeps a row another worker just took from being taken twice.
    async fn claim(&self) -> Result<Option<Task>, IngestError> {
        let lock = match self.inner.db.dialect() {
            Dialect::Sqlite => "",
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
        };
        let sql = sqlx::AssertSqlSafe(format!(
            "UPDATE ingest_task SET status = 'PROCESSING', attempts = attempts + 1, updated_at = $1,
                 claimed_by = $2, lease_until = $3
             WHERE status = 'WAITING' AND task_id = (SELECT task_id FROM ingest_task WHERE status = 'WAITING'
                               AND (home_node IS NULL OR home_node = $4)
                               ORDER BY created_at, task_id LIMIT 1 {lock})
             RETURNING *"
        ));
        let now = now_millis();
        // fetch_all runs the statement to its end, where SQLite commits: a claim whose commit failed must
        // not be worked on (see the crate's db module).
        let rows = sqlx::query(sql)
            .bind(now)
            .bind(&self.inner.node_id)
            .bind(now + LEASE_MS)
            .bind(&self.inner.home_node)
            .fetch_all(self.inner.db.pool())
            .await?;
        Ok(rows.first().map(task_from_row))
    }

    async fn finish(&self, task_id: &str, chunk_count: usize, preview: Value) -> Result<(), IngestError> {
        sqlx::query(
            "UPDATE ingest_task SET status = 'COMPLETED', chunk_count = $1, result_preview = $2, error = NULL, updated_at = $3,
                 parse_started_at = NULL
             WHERE task_id = $4 AND claimed_by = $5",
        )
        .bind(chunk_count as i64)
        .bind(preview.to_string())
        .bind(now_millis())
        .bind(task_id)
        .bind(&self.inner.node_id)
        .execute(self.inner.db.pool())
        .await?;
        Ok(())
    }

    async fn fail(&self, task_id: &str, reason: &str) -> Result<(), IngestError> {
        sqlx::query(
            "UPDATE ingest_task SET status = 'FAILED', error = $1, updated_at = $2, parse_started_at = NULL
             WHERE task_id = $3 AND claimed_by = $4",
        )
        .bind(reason)
        .bind(now_millis())
        .bind(task_id)
        .bind(&self.inner.node_id)
        .execute(self.inner.db.pool())
        .await?;
        Ok(())
    }

    /// Runs one task to its chunks in the index; an error is the reason the task failed.
    async fn run(&self, task: &Task) -> Result<(usize, Value), String> {
        // Early, so a deleted base costs no reading or parsing; a watched file's base is created (if it
        // was deleted) only once the file was read, so a folder no longer watched does not bring it back.
        if !task.local_file {
            self.target_model(task).await?;
        }
        let bytes = self.read_source(task).await?;
        let file_size = bytes.len() as u64;
        let strategy = ChunkingStrategy::parse(task.chunking_strategy.as_deref())?;
        let file_name = task.file_name.clone();
        let parse_name = if task.source_type == "text" && parse::extension_of(&file_name).is_empty() {
            format!("{file_name}.txt")
        } else {
            file_name.clone()
        };
        // Recorded before a binary-format parser runs (durably: the next statement waits for it), so that a
        // parser that kills the process is known at the next start. Our own text parsers are not marked:
        // they run under the output budget, and marking them would fail inline texts a crash interrupted.
        let parse_started_at = parse::is_binary_format(&parse_name).then(now_millis);
        sqlx::query("UPDATE ingest_task SET file_size = $1, parse_started_at = $2 WHERE task_id = $3")
            .bind(file_size as i64)
            .bind(parse_started_at)
            .bind(&task.task_id)
            .execute(self.inner.db.pool())
            .await
            .map_err(failure_reason)?;
        let pieces = tokio::task::spawn_blocking(move || {
            parse::parse_document(&parse_name, &bytes).map(|elements| chunk_elements(&elements, strategy))
        })
        .await
        .map_err(|error| format!("the parser stopped: {error}"))?
        .map_err(|error| error.to_string())?;
        sqlx::query(
            "UPDATE ingest_task SET status = 'FORWARDING', parse_started_at = NULL, updated_at = $1 WHERE task_id = $2",
        )
        .bind(now_millis())
        .bind(&task.task_id)
        .execute(self.inner.db.pool())
        .await
        .map_err(failure_reason)?;

        let now = now_iso();
        let knowledge = &self.inner.knowledge;
        let model = self.target_model(task).await?;
        let chunks: Vec<Chunk> = pieces
            .iter()
            .enumerate()
            .map(|(position, piece)| Chunk {
                id: format!("{}_{position}", task.task_id),
                title: piece.heading_path.last().cloned().unwrap_or_else(|| file_name.clone()),
                filename: file_name.clone(),
                path_or_url: task.path_or_url().to_owned(),
                source_type: task.source_type.clone(),
                language: "null".into(),
                author: "null".into(),
                date: now.clone(),
                content: piece.text.clone(),
                process_source: DEFAULT_PROCESS_SOURCE.into(),
                embedding_model_name: model.clone(),
                file_size,
                create_time: now.clone(),
                languages: Vec::new(),
            })
            .collect();
        let preview: Vec<Value> = chunks
            .iter()
            .take(RESULT_PREVIEW_CHUNKS)
            .map(|chunk| json!({ "text": chunk.content, "metadata": { "filename": chunk.filename, "title": chunk.title }, "source": chunk.path_or_url, "source_type": chunk.source_type }))
            .collect();
        // Re-ingesting a file replaces what an earlier task indexed from it, in the same commit.
        let indexed = match knowledge.replace_path_chunks(&task.index_name, task.path_or_url(), chunks).await {
            Ok(indexed) => indexed,
            // A base deleted while this document was written into it fails the write in whatever way the
            // store notices (a file gone from under Tantivy); say what happened.
            Err(error) => {
                return Err(match knowledge.meta(&task.index_name).await {
                    Err(crate::knowledge::KnowledgeError::IndexNotFound(_)) => format!(
                        "the knowledge base {} was deleted while this document was being indexed",
                        task.index_name
                    ),
                    _ => failure_reason(error),
                });
            }
        };
        Ok((indexed, Value::Array(preview)))
    }

    /// The embedding model of the task's base. Submitting created the base, so a base that is gone was
    /// deleted since: an upload's task fails rather than bring the base back (a user who deletes a base
    /// while its files are queued wants it gone); a watched folder's task re-creates it, since the
    /// folder is still watched into it.
    async fn target_model(&self, task: &Task) -> Result<String, String> {
        let knowledge = &self.inner.knowledge;
        if task.local_file {
            return Ok(knowledge
                .create_index(&task.index_name, None, None)
                .await
                .map_err(failure_reason)?
                .embedding_model);
        }
        match knowledge.meta(&task.index_name).await {
            Ok(meta) => Ok(meta.embedding_model),
            Err(crate::knowledge::KnowledgeError::IndexNotFound(_)) => {
                Err(format!("the knowledge base {} was deleted before this document was indexed", task.index_name))
            }
            Err(error) => Err(failure_reason(error)),
        }
    }

    async fn read_source(&self, task: &Task) -> Result<Vec<u8>, String> {
        match task.source_type.as_str() {
            "text" => Ok(task.source.clone().into_bytes()),
            "url" => self
                .inner
                .fetcher
                .get(&task.source, "*/*")
                .await
                .map(|body| body.bytes)
                .map_err(|error| format!("cannot fetch {}: {error}", task.source)),
            _ if task.local_file => self.read_watched_file(task).await,
            _ => match self.inner.storage.read_bounded(&task.source, MAX_SOURCE_BYTES).await {
                Ok((_, bytes)) => Ok(bytes),
                Err(StorageError::TooLarge { .. }) => Err(format!("the file is larger than {MAX_SOURCE_BYTES} bytes")),
                // Tasks recorded before local paths were refused at submission end here too.
                Err(_) => Err(format!("{} is not a stored file", task.source)),
            },
        }
    }

    /// A watched folder's file, read only if the watcher's rules hold for its real path now: it may have
    /// become a link to somewhere else since the watcher saw it.
    async fn read_watched_file(&self, task: &Task) -> Result<Vec<u8>, String> {
        let mut ready = self.inner.data_dir.subscribe();
        let data_dir = tokio::time::timeout(WATCHER_READY_TIMEOUT, ready.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(|waited| waited.ok().and_then(|data_dir| data_dir.clone()))
            .ok_or_else(|| "the folder watcher is not running".to_owned())?;
        let refused = || format!("{} is not a file of a watched folder", task.source);
        let path = tokio::fs::canonicalize(&task.source).await.map_err(|_| refused())?;
        let root = crate::sync::read(&self.inner.allowed_roots).iter().find(|root| path.starts_with(root)).cloned();
        let Some(root) = root else { return Err(refused()) };
        let file_name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        if crate::watch::skipped(&root, &path, &data_dir) || !parse::is_allowed(&file_name) {
            return Err(refused());
        }
        let metadata = tokio::fs::metadata(&path).await.map_err(|_| refused())?;
        if !metadata.is_file() {
            return Err(refused());
        }
        if metadata.len() > MAX_SOURCE_BYTES {
            return Err(format!("the file is larger than {MAX_SOURCE_BYTES} bytes"));
        }
        tokio::fs::read(&path).await.map_err(|error| format!("cannot read {}: {error}", task.source))
    }
}

/// A task's failure reason for a database or index error: a full or read-only disk is said as such
/// (Tantivy's own text for it is an I/O error several wrappers deep), anything else as the error says.
fn failure_reason<E: std::error::Error + 'static>(error: E) -> String {
    match crate::db::storage_condition_in(&error) {
        Some(crate::db::StorageCondition::Full) => {
            "the disk holding the data is full: the document was not indexed; free some space and upload it again"
                .to_owned()
        }
        Some(crate::db::StorageCondition::ReadOnly) => {
            "the data dir is read-only: the document was not indexed; make it writable and upload it again".to_owned()
        }
        None => error.to_string(),
    }
}

/// A fresh task id (also used for documents indexed without one).
pub fn new_task_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn validate_request(request: &TaskRequest) -> Result<(), IngestError> {
    if !matches!(request.source_type.as_str(), "file" | "url" | "text") {
        return Err(IngestError::InvalidRequest(format!(
            "source_type must be file, url or text, not {:?}",
            request.source_type
        )));
    }
    if request.source.trim().is_empty() {
        return Err(IngestError::InvalidRequest("source cannot be empty".into()));
    }
    validate_index_name(&request.index_name).map_err(|error| IngestError::InvalidRequest(error.to_string()))?;
    ChunkingStrategy::parse(request.chunking_strategy.as_deref()).map_err(IngestError::InvalidRequest)?;
    if request.source_type == "file" {
        let file_name = file_name_of(request, "");
        if !parse::is_allowed(&file_name) {
            return Err(IngestError::InvalidRequest(format!("File type not allowed: {file_name}")));
        }
    }
    Ok(())
}

/// The name a task's document is shown under: the client's, else the source's last path segment. An
/// unnamed inline text gets one of its own, so re-ingestion never replaces another text.
fn file_name_of(request: &TaskRequest, task_id: &str) -> String {
    match (&request.file_name, request.source_type.as_str()) {
        (Some(name), _) => name.clone(),
        (None, "text") => format!("text-{task_id}.txt"),
        (None, _) => {
            request.source.trim_end_matches('/').rsplit(['/', '\\']).next().unwrap_or(&request.source).to_owned()
        }
    }
}

fn task_from_row(row: &sqlx::any::AnyRow) -> Task {
    Task {
        task_id: row.get("task_id"),
        source: row.get("source"),
        source_type: row.get("source_type"),
        index_name: row.get("index_name"),
        chunking_strategy: row.get("chunking_strategy"),
        file_name: row.get("file_name"),
        file_size: row.get("file_size"),
        status: TaskStatus::parse(&row.get::<String, _>("status")),
        error: row.get("error"),
        chunk_count: row.get("chunk_count"),
        result_preview: row
            .get::<Option<String>, _>("result_preview")
            .and_then(|text| serde_json::from_str(&text).ok()),
        created_at_ms: row.get("created_at"),
        updated_at_ms: row.get("updated_at"),
        local_file: row.get::<i64, _>("local_file") != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_or_read_only_disk_is_said_as_such_in_the_reason_and_other_errors_as_they_are() {
        // As Tantivy reports it: the I/O error only in its message.
        #[derive(Debug, thiserror::Error)]
        #[error("Failed to open file for write: 'No space left on device (os error 28)'")]
        struct Wrapped;
        let full = failure_reason(Wrapped);
        assert!(full.starts_with("the disk holding the data is full"), "{full}");
        let read_only = failure_reason(std::io::Error::from(std::io::ErrorKind::ReadOnlyFilesystem));
        assert!(read_only.starts_with("the data dir is read-only"), "{read_only}");
        assert_eq!(failure_reason(std::io::Error::other("bad zip")), "bad zip");
    }
}
