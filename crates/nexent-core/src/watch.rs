//! Watched folders (beyond Nexent; GPT4All and Reor users rely on them): a folder → knowledge base pair whose
//! files are kept ingested. Added and changed files become ingestion tasks, deleted files leave the index.
//!
//! How it stays right:
//! 1. `watched_file` remembers, per file, the size, modification time and SHA-256 last submitted. A change
//!    event or a restart re-ingests a file only when its content hash differs, so unchanged files are never
//!    embedded twice; a file whose time changed but whose bytes did not only has its row updated.
//! 2. The task is submitted before the row is updated: a crash in between re-submits at the next start
//!    (harmless: indexing replaces a path's chunks), never skips.
//! 3. Events from `notify` are gathered for a short quiet period, then each touched path is compared with the
//!    disk: a file that exists is synced, a path that is gone removes its rows and chunks (a deleted folder
//!    removes everything below it). An overflowing event queue triggers a full reconcile of the folder.
//! 4. All syncs run one at a time under one lock, so an event and a reconcile never race on a file.
//! 5. Hidden files and folders (`.git`, editor swap files) and anything inside the data dir are skipped, so
//!    watching a home folder never indexes our own logs or database; a folder that holds the data dir, or
//!    lies inside it, cannot be watched at all. The rules are checked on the real path (symbolic links
//!    resolved) when a file is submitted, and again by the queue when it reads the file.
//! 6. A refused folder gets the same answer whether it exists or not ("not a readable folder"), so the API
//!    cannot be used to probe which paths exist.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::Watcher;
use sha2::Digest;
use sqlx::Row;

use crate::db::Database;
use tokio::sync::mpsc;

use crate::clock::now_millis;
use crate::ingest::chunking::ChunkingStrategy;
use crate::ingest::{IngestQueue, TaskRequest, new_task_id, parse};
use crate::knowledge::{KnowledgeBase, validate_index_name};

/// How long events must pause before the gathered paths are synced.
const QUIET_PERIOD: Duration = Duration::from_millis(300);

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("{0}")]
    Invalid(String),
    #[error("Watched folder {0} not found")]
    NotFound(String),
    #[error("cannot watch the folder: {0}")]
    Notify(#[from] notify::Error),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The queue refused a file's task (its base set aside, the disk's reserve, ...).
    #[error(transparent)]
    Ingest(#[from] crate::ingest::IngestError),
}

#[derive(Debug, Clone, PartialEq)]
pub struct WatchedFolder {
    pub id: String,
    /// Canonical absolute path.
    pub path: PathBuf,
    pub index_name: String,
    pub chunking_strategy: Option<String>,
    pub created_at_ms: i64,
    /// Files currently tracked (submitted at least once).
    pub file_count: i64,
}

#[derive(Clone)]
pub struct FolderWatcher {
    inner: Arc<WatcherInner>,
}

struct WatcherInner {
    db: Database,
    ingest: IngestQueue,
    knowledge: Arc<KnowledgeBase>,
    data_dir: PathBuf,
    /// `None` when the platform's watcher could not start; folders are then reconciled only at start-up.
    watcher: std::sync::Mutex<Option<notify::RecommendedWatcher>>,
    sync_lock: tokio::sync::Mutex<()>,
}

enum Touched {
    Path(PathBuf),
    /// The event queue overflowed: every folder must be compared with the disk again.
    Rescan,
}

impl FolderWatcher {
    /// Starts watching every stored folder and reconciles each with the disk in the background.
    pub async fn start(
        db: Database,
        ingest: IngestQueue,
        knowledge: Arc<KnowledgeBase>,
        data_dir: &Path,
    ) -> Result<Self, WatchError> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) if event.need_rescan() => {
                let _ = sender.send(Touched::Rescan);
            }
            Ok(event) => {
                for path in event.paths {
                    let _ = sender.send(Touched::Path(path));
                }
            }
            Err(error) => tracing::warn!(%error, "folder watcher error"),
        });
        let watcher = match watcher {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::warn!(%error, "cannot start the folder watcher; watched folders sync at start-up only");
                None
            }
        };
        let data_dir = data_dir.canonicalize().unwrap_or_else(|_| data_dir.to_path_buf());
        let ingest_for_rules = ingest.clone();
        let this = Self {
            inner: Arc::new(WatcherInner {
                db,
                ingest,
                knowledge,
                data_dir,
                watcher: std::sync::Mutex::new(watcher),
                sync_lock: tokio::sync::Mutex::new(()),
            }),
        };
        let folders = this.list().await?;
        for folder in &folders {
            this.begin_watching(folder);
        }
        // Only now may the queue read watched files: every folder is allowed and the data dir is known.
        ingest_for_rules.watcher_ready(this.inner.data_dir.clone());
        for folder in folders {
            this.spawn_reconcile(folder);
        }
        let events = this.clone();
        tokio::spawn(async move { events.handle_events(receiver).await });
        Ok(this)
    }

    pub async fn list(&self) -> Result<Vec<WatchedFolder>, WatchError> {
        let rows = sqlx::query(
            "SELECT f.*, (SELECT COUNT(*) FROM watched_file w WHERE w.folder_id = f.id) AS file_count
             FROM watched_folder f WHERE f.home_node IS NULL OR f.home_node = $1 ORDER BY created_at",
        )
        .bind(self.inner.ingest.home_node())
        .fetch_all(self.inner.db.pool())
        .await?;
        Ok(rows.iter().map(folder_from_row).collect())
    }

    pub async fn get(&self, id: &str) -> Result<WatchedFolder, WatchError> {
        self.list().await?.into_iter().find(|folder| folder.id == id).ok_or_else(|| WatchError::NotFound(id.into()))
    }

    /// Watches `path` into `index_name` (idempotent for the same pair) and ingests what it holds.
    pub async fn add(
        &self,
        path: &str,
        index_name: &str,
        chunking_strategy: Option<String>,
    ) -> Result<WatchedFolder, WatchError> {
        validate_index_name(index_name).map_err(|error| WatchError::Invalid(error.to_string()))?;
        ChunkingStrategy::parse(chunking_strategy.as_deref()).map_err(WatchError::Invalid)?;
        let requested = PathBuf::from(path.trim());
        if !requested.is_absolute() {
            return Err(WatchError::Invalid(format!("the folder must be an absolute path, not {path:?}")));
        }
        // One answer for a missing path, a file, and a folder we may not list: nothing to learn about paths.
        let not_readable = || WatchError::Invalid(format!("{path} is not a readable folder"));
        let canonical = tokio::fs::canonicalize(&requested).await.map_err(|_| not_readable())?;
        let readable = tokio::fs::read_dir(&canonical).await.is_ok();
        if !readable {
            return Err(not_readable());
        }
        let data_dir = &self.inner.data_dir;
        if canonical.starts_with(data_dir) || data_dir.starts_with(&canonical) {
            return Err(WatchError::Invalid(format!(
                "{path} cannot be watched: it holds or lies inside Nexent's own data dir (settings, keys and logs)"
            )));
        }
        let path_text = canonical.to_string_lossy().into_owned();
        let existing = self.list().await?.into_iter().find(|f| f.path == canonical && f.index_name == index_name);
        if let Some(folder) = existing {
            return Ok(folder);
        }
        self.inner
            .knowledge
            .create_index(index_name, None, None)
            .await
            .map_err(|error| WatchError::Invalid(error.to_string()))?;
        let id = new_task_id();
        sqlx::query(
            "INSERT INTO watched_folder (id, path, index_name, chunking_strategy, created_at, home_node)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(&path_text)
        .bind(index_name)
        .bind(&chunking_strategy)
        .bind(now_millis())
        .bind(self.inner.ingest.home_node())
        .execute(self.inner.db.pool())
        .await?;
        let folder = self.get(&id).await?;
        self.begin_watching(&folder);
        self.spawn_reconcile(folder.clone());
        tracing::info!(folder = %path_text, index = index_name, "watching a folder");
        Ok(folder)
    }

    /// Stops watching; with `remove_documents`, the folder's files also leave the index.
    pub async fn remove(&self, id: &str, remove_documents: bool) -> Result<WatchedFolder, WatchError> {
        let folder = self.get(id).await?;
        let _guard = self.inner.sync_lock.lock().await;
        if remove_documents {
            for path in self.tracked_paths(&folder.id, None).await? {
                self.remove_from_index(&folder, &path).await;
            }
        }
        sqlx::query("DELETE FROM watched_folder WHERE id = $1").bind(id).execute(self.inner.db.pool()).await?;
        let still_watched = self.list().await?.iter().any(|other| other.path == folder.path);
        if !still_watched {
            if let Some(watcher) = crate::sync::lock(&self.inner.watcher).as_mut() {
                let _ = watcher.unwatch(&folder.path);
            }
            self.inner.ingest.forbid_root(&folder.path);
        }
        Ok(folder)
    }

    fn begin_watching(&self, folder: &WatchedFolder) {
        self.inner.ingest.allow_root(folder.path.clone());
        if let Some(watcher) = crate::sync::lock(&self.inner.watcher).as_mut()
            && let Err(error) = watcher.watch(&folder.path, notify::RecursiveMode::Recursive)
        {
            tracing::warn!(%error, folder = %folder.path.display(), "cannot watch the folder; it syncs at start-up");
        }
    }

    fn spawn_reconcile(&self, folder: WatchedFolder) {
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(error) = this.reconcile(&folder).await {
                tracing::warn!(%error, folder = %folder.path.display(), "cannot reconcile the watched folder");
            }
        });
    }

    /// Compares a whole folder with what was submitted: new and changed files are ingested, vanished ones
    /// removed.
    pub async fn reconcile(&self, folder: &WatchedFolder) -> Result<(), WatchError> {
        let _guard = self.inner.sync_lock.lock().await;
        let root = folder.path.clone();
        let data_dir = self.inner.data_dir.clone();
        let files = tokio::task::spawn_blocking(move || list_files(&root, &root, &data_dir))
            .await
            .map_err(|error| WatchError::Invalid(error.to_string()))?;
        for file in &files {
            self.sync_file(folder, file).await?;
        }
        for path in self.tracked_paths(&folder.id, None).await? {
            if !files.contains(&path) {
                self.remove_from_index(folder, &path).await;
            }
        }
        Ok(())
    }

    async fn handle_events(&self, mut receiver: mpsc::UnboundedReceiver<Touched>) {
        while let Some(first) = receiver.recv().await {
            let (mut paths, mut rescan) = (BTreeSet::new(), false);
            let mut note = |touched: Touched| match touched {
                Touched::Path(path) => {
                    paths.insert(path);
                }
                Touched::Rescan => rescan = true,
            };
            note(first);
            while let Ok(Some(touched)) = tokio::time::timeout(QUIET_PERIOD, receiver.recv()).await {
                note(touched);
            }
            if let Err(error) = self.sync_touched(paths, rescan).await {
                tracing::warn!(%error, "cannot sync a watched folder");
            }
        }
    }

    async fn sync_touched(&self, paths: BTreeSet<PathBuf>, rescan: bool) -> Result<(), WatchError> {
        let folders = self.list().await?;
        if rescan {
            for folder in &folders {
                self.reconcile(folder).await?;
            }
            return Ok(());
        }
        let _guard = self.inner.sync_lock.lock().await;
        for path in paths {
            for folder in folders.iter().filter(|folder| path.starts_with(&folder.path)) {
                if skipped(&folder.path, &path, &self.inner.data_dir) {
                    continue;
                }
                let metadata = tokio::fs::symlink_metadata(&path).await;
                match metadata {
                    Ok(metadata) if metadata.is_file() => self.sync_file(folder, &path).await?,
                    Ok(metadata) if metadata.is_dir() => {
                        // A folder moved in: sync what it holds.
                        let (root, below, data_dir) = (folder.path.clone(), path.clone(), self.inner.data_dir.clone());
                        let files = tokio::task::spawn_blocking(move || list_files(&root, &below, &data_dir))
                            .await
                            .map_err(|error| WatchError::Invalid(error.to_string()))?;
                        for file in files {
                            self.sync_file(folder, &file).await?;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => {
                        for tracked in self.tracked_paths(&folder.id, Some(&path)).await? {
                            if tokio::fs::symlink_metadata(&tracked).await.is_err() {
                                self.remove_from_index(folder, &tracked).await;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Submits `path` for ingestion when its content differs from what was last submitted.
    async fn sync_file(&self, folder: &WatchedFolder, path: &Path) -> Result<(), WatchError> {
        let file_name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        if !parse::is_allowed(&file_name) {
            return Ok(());
        }
        // The rules hold for the real file, not only for the name the event carried (a link, or a folder
        // link on the way, could lead anywhere).
        let Ok(real) = tokio::fs::canonicalize(path).await else { return Ok(()) };
        let real_name = real.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        if real != path || skipped(&folder.path, &real, &self.inner.data_dir) || !parse::is_allowed(&real_name) {
            return Ok(());
        }
        let Ok(metadata) = tokio::fs::metadata(path).await else { return Ok(()) };
        let size = metadata.len() as i64;
        let modified_ms = metadata
            .modified()
            .ok()
            .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|since| since.as_millis() as i64)
            .unwrap_or(0);
        let path_text = path.to_string_lossy().into_owned();
        let known =
            sqlx::query("SELECT size, modified_ms, sha256 FROM watched_file WHERE folder_id = $1 AND path = $2")
                .bind(&folder.id)
                .bind(&path_text)
                .fetch_optional(self.inner.db.pool())
                .await?;
        let known = known
            .map(|row| (row.get::<i64, _>("size"), row.get::<i64, _>("modified_ms"), row.get::<String, _>("sha256")));
        if let Some((known_size, known_modified, _)) = &known
            && *known_size == size
            && *known_modified == modified_ms
        {
            return Ok(());
        }
        let hashed = path.to_path_buf();
        let Ok(Ok(sha256)) = tokio::task::spawn_blocking(move || hash_file(&hashed)).await else {
            return Ok(()); // Vanished or unreadable meanwhile: its delete event follows.
        };
        if let Some((_, _, known_hash)) = &known
            && *known_hash == sha256
        {
            sqlx::query("UPDATE watched_file SET size = $1, modified_ms = $2 WHERE folder_id = $3 AND path = $4")
                .bind(size)
                .bind(modified_ms)
                .bind(&folder.id)
                .bind(&path_text)
                .execute(self.inner.db.pool())
                .await?;
            return Ok(());
        }
        let task_id = self
            .inner
            .ingest
            .submit_watched(TaskRequest {
                source: path_text.clone(),
                source_type: "file".into(),
                index_name: folder.index_name.clone(),
                chunking_strategy: folder.chunking_strategy.clone(),
                file_name: Some(file_name),
            })
            .await?;
        sqlx::query(
            "INSERT INTO watched_file (folder_id, path, size, modified_ms, sha256, task_id) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (folder_id, path) DO UPDATE SET size = excluded.size, modified_ms = excluded.modified_ms,
                 sha256 = excluded.sha256, task_id = excluded.task_id",
        )
        .bind(&folder.id)
        .bind(&path_text)
        .bind(size)
        .bind(modified_ms)
        .bind(&sha256)
        .bind(&task_id)
        .execute(self.inner.db.pool())
        .await
        // The folder was unwatched meanwhile (a sync racing an unwatch): its row is gone.
        .map_err(|error| {
            if is_foreign_key_violation(&error) { WatchError::NotFound(folder.id.clone()) } else { error.into() }
        })?;
        tracing::info!(file = %path_text, index = %folder.index_name, task = %task_id, "watched file submitted");
        Ok(())
    }

    /// Tracked paths of a folder, all or those at or below `below`.
    async fn tracked_paths(&self, folder_id: &str, below: Option<&Path>) -> Result<Vec<PathBuf>, WatchError> {
        let rows = sqlx::query("SELECT path FROM watched_file WHERE folder_id = $1")
            .bind(folder_id)
            .fetch_all(self.inner.db.pool())
            .await?;
        Ok(rows
            .iter()
            .map(|row| PathBuf::from(row.get::<String, _>("path")))
            .filter(|path| below.is_none_or(|below| path.starts_with(below)))
            .collect())
    }

    async fn remove_from_index(&self, folder: &WatchedFolder, path: &Path) {
        let path_text = path.to_string_lossy().into_owned();
        match self.inner.knowledge.delete_path(&folder.index_name, &path_text).await {
            Ok(deleted) => tracing::info!(file = %path_text, deleted, "watched file removed from the index"),
            Err(error) => tracing::warn!(%error, file = %path_text, "cannot remove a watched file from the index"),
        }
        let forgotten = sqlx::query("DELETE FROM watched_file WHERE folder_id = $1 AND path = $2")
            .bind(&folder.id)
            .bind(&path_text)
            .execute(self.inner.db.pool())
            .await;
        if let Err(error) = forgotten {
            tracing::warn!(%error, file = %path_text, "cannot forget a watched file");
        }
    }
}

fn folder_from_row(row: &sqlx::any::AnyRow) -> WatchedFolder {
    WatchedFolder {
        id: row.get("id"),
        path: PathBuf::from(row.get::<String, _>("path")),
        index_name: row.get("index_name"),
        chunking_strategy: row.get("chunking_strategy"),
        created_at_ms: row.get("created_at"),
        file_count: row.get("file_count"),
    }
}

/// Hidden entries below the folder's root and anything inside the data dir are never ingested.
pub(crate) fn skipped(root: &Path, path: &Path, data_dir: &Path) -> bool {
    // Every path starts with the empty path: an empty data dir means none is known (a remote server's).
    (!data_dir.as_os_str().is_empty() && path.starts_with(data_dir))
        || path
            .strip_prefix(root)
            .map(|relative| relative.components().any(|part| part.as_os_str().to_string_lossy().starts_with('.')))
            .unwrap_or(true)
}

/// The files a watched folder at `root` would ingest: regular files below it, hidden entries and the data
/// dir skipped (none when it is empty), symbolic links not followed. The command line's `nexent ingest
/// FOLDER` takes the same.
pub fn files_of_folder(root: &Path, data_dir: &Path) -> BTreeSet<PathBuf> {
    list_files(root, root, data_dir)
}

/// Regular files at or below `below` (inside `root`), without following symbolic links.
fn list_files(root: &Path, below: &Path, data_dir: &Path) -> BTreeSet<PathBuf> {
    let mut files = BTreeSet::new();
    let mut pending = vec![below.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if skipped(root, &path, data_dir) {
                continue;
            }
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => pending.push(path),
                Ok(kind) if kind.is_file() => {
                    files.insert(path);
                }
                _ => {}
            }
        }
    }
    files
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect())
}

/// SQLite's SQLITE_CONSTRAINT_FOREIGNKEY (787) or PostgreSQL's foreign_key_violation (23503).
fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database) if matches!(database.code().as_deref(), Some("787" | "23503")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_recorded_for_a_folder_that_is_gone_is_a_foreign_key_violation()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let db = crate::db::open_database(&dir.path().join("nexent.db")).await?;
        let inserted = sqlx::query(
            "INSERT INTO watched_file (folder_id, path, size, modified_ms, sha256, task_id) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind("no-such-folder")
        .bind("/tmp/a.txt")
        .bind(1i64)
        .bind(1i64)
        .bind("00")
        .bind("task")
        .execute(db.pool())
        .await;
        assert!(matches!(&inserted, Err(error) if is_foreign_key_violation(error)), "{inserted:?}");
        Ok(())
    }

    #[test]
    fn hidden_entries_and_the_data_dir_are_skipped() {
        let root = Path::new("/home/ada/notes");
        let data_dir = Path::new("/home/ada/notes/nexent-data");
        assert!(!skipped(root, Path::new("/home/ada/notes/plan.md"), data_dir));
        assert!(!skipped(root, Path::new("/home/ada/notes/2026/plan.md"), data_dir));
        assert!(skipped(root, Path::new("/home/ada/notes/.git/config"), data_dir));
        assert!(skipped(root, Path::new("/home/ada/notes/.plan.md.swp"), data_dir));
        assert!(skipped(root, Path::new("/home/ada/notes/nexent-data/logs/nexent.log"), data_dir));
        assert!(skipped(root, Path::new("/elsewhere/plan.md"), data_dir));
    }

    #[test]
    fn listing_finds_files_below_and_skips_hidden_ones() {
        let folder = tempfile::tempdir().expect("temp dir");
        let root = folder.path();
        std::fs::create_dir_all(root.join("sub/.hidden")).expect("dirs");
        for file in ["a.txt", "sub/b.md", "sub/.hidden/c.txt", ".d.txt"] {
            std::fs::write(root.join(file), "x").expect("write");
        }
        let files = list_files(root, root, Path::new("/nonexistent"));
        let names: Vec<String> =
            files.iter().map(|path| path.strip_prefix(root).expect("below").display().to_string()).collect();
        assert_eq!(names, ["a.txt", "sub/b.md"]);
        assert_eq!(hash_file(&root.join("a.txt")).expect("hash").len(), 64);
    }
}
