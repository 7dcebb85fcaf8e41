//! The embedded knowledge store (the default): one [`KnowledgeIndex`] (Tantivy + vectors) per base under
//! `indices/<name>/` in the data dir. Every index operation runs on the blocking pool; one writer per
//! index serialises its changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use tantivy::DocAddress;

use super::chunk::Chunk;
use super::index::{IndexError, IndexMeta, IndexStats, IndexedFile, KnowledgeIndex};
use super::names::validate_index_name;
use super::store::{KnowledgeStore, ListHit, ListQuery, QuarantinedIndex, Ranker, ResultLists};
use super::{CreateOutcome, KnowledgeError, SearchHit, blocking};
use crate::sync::{read, write};

pub struct TantivyStore {
    root: PathBuf,
    indices: RwLock<BTreeMap<String, Arc<KnowledgeIndex>>>,
    /// Bases that could not be opened, by name; their files are under `quarantine_dir`.
    quarantined: RwLock<BTreeMap<String, QuarantinedIndex>>,
    /// Where bases that cannot be opened are moved: beside `root`, so a move is a rename.
    quarantine_dir: PathBuf,
    /// Serialises creations and deletions, so two requests can never build one folder at once.
    lifecycle: tokio::sync::Mutex<()>,
}

impl TantivyStore {
    /// Opens every index under `root` (created if missing). Blocks: call it off the async runtime.
    ///
    /// An index that cannot be opened (a file whose checksum does not match, metadata that does not
    /// parse, a reader that fails or panics) is moved to the quarantine folder beside `root` with a
    /// `reason.txt`, and reported: the server starts, the other bases work, and nothing is deleted.
    pub fn open(root: &Path) -> Result<Self, KnowledgeError> {
        std::fs::create_dir_all(root).map_err(IndexError::from)?;
        let quarantine_dir = root.with_file_name(QUARANTINE_DIR);
        let mut quarantined = earlier_quarantines(&quarantine_dir);
        let mut indices = BTreeMap::new();
        for entry in std::fs::read_dir(root).map_err(IndexError::from)?.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|name| name.to_str()).map(str::to_owned) else { continue };
            if validate_index_name(&name).is_err() || !path.is_dir() {
                continue;
            }
            if !KnowledgeIndex::exists(&path) {
                tracing::warn!(index = %name, "removing an index folder whose creation never finished");
                let _ = std::fs::remove_dir_all(&path);
                continue;
            }
            match open_verified(&path) {
                Ok(index) => {
                    indices.insert(name, Arc::new(index));
                }
                // The disk, not the index: a read-only or full data dir, missing permissions, too many open
                // files. Moving the index would not help, and it may open fine next time.
                Err(OpenFailure::Environment(error)) => {
                    tracing::error!(index = %name, %error, "cannot open index; leaving it untouched")
                }
                Err(OpenFailure::Damaged(reason)) => {
                    let record = quarantine(&quarantine_dir, &name, &path, &reason);
                    tracing::error!(index = %name, %reason, moved_to = %record.moved_to, "index is damaged; set aside");
                    quarantined.insert(name, record);
                }
            }
        }
        // A base re-created after an earlier one was set aside (and whose copy could not be removed) is the
        // live one: the old record must not shadow it.
        quarantined.retain(|name, _| !indices.contains_key(name));
        Ok(Self {
            root: root.to_path_buf(),
            indices: RwLock::new(indices),
            quarantined: RwLock::new(quarantined),
            quarantine_dir,
            lifecycle: tokio::sync::Mutex::new(()),
        })
    }

    /// One open index (benchmarks and tests reach its knobs through it).
    pub fn index(&self, name: &str) -> Result<Arc<KnowledgeIndex>, KnowledgeError> {
        read(&self.indices).get(name).cloned().ok_or_else(|| KnowledgeError::IndexNotFound(name.to_owned()))
    }
}

/// The folder beside the indices' folder that holds the bases that could not be opened.
pub const QUARANTINE_DIR: &str = "quarantine";
/// The file in a quarantined folder that says why it is there.
const REASON_FILE: &str = "reason.txt";

/// Why an index did not open.
enum OpenFailure {
    /// The index's own files are bad: it is set aside.
    Damaged(String),
    /// The disk or the process's limits: the index is left where it is.
    Environment(String),
}

/// Opens an index after checking every live file against its checksum; a panic while reading is a
/// failure like any other (Tantivy trusts its files, and a damaged one can make it index out of bounds).
fn open_verified(dir: &Path) -> Result<KnowledgeIndex, OpenFailure> {
    let classify = |error: IndexError| {
        if caused_by_environment(&error) {
            OpenFailure::Environment(error.to_string())
        } else {
            OpenFailure::Damaged(error.to_string())
        }
    };
    let checked = std::panic::catch_unwind(|| KnowledgeIndex::damaged_files(dir))
        .map_err(|panic| OpenFailure::Damaged(format!("checking its files panicked: {}", panic_text(&panic))))?
        .map_err(classify)?;
    if !checked.is_empty() {
        let files: Vec<String> = checked.iter().map(|file| file.display().to_string()).collect();
        return Err(OpenFailure::Damaged(format!("damaged files (checksum mismatch): {}", files.join(", "))));
    }
    std::panic::catch_unwind(|| KnowledgeIndex::open(dir))
        .map_err(|panic| OpenFailure::Damaged(format!("opening it panicked: {}", panic_text(&panic))))?
        .map_err(classify)
}

/// Whether an error opening an index comes from the machine rather than the index's files: a full or
/// read-only disk, missing permissions, too many open files, no memory for a mapping. Tantivy wraps the
/// I/O error (sometimes behind an `Arc`, sometimes only in its message), so the chain and the messages
/// ("… (os error N)") are both read.
fn caused_by_environment(error: &(dyn std::error::Error + 'static)) -> bool {
    const ENVIRONMENT_ERRNOS: [i32; 4] = [12, 13, 23, 24]; // ENOMEM, EACCES, ENFILE, EMFILE
    crate::db::storage_condition_in(error).is_some()
        || crate::db::error_chain(error).any(|error| {
            let io = error.downcast_ref::<std::io::Error>();
            io.is_some_and(|io| {
                io.kind() == std::io::ErrorKind::PermissionDenied
                    || io.raw_os_error().is_some_and(|errno| ENVIRONMENT_ERRNOS.contains(&errno))
            }) || crate::db::os_error_in_message(error).is_some_and(|errno| ENVIRONMENT_ERRNOS.contains(&errno))
        })
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

/// Moves a damaged index to `<quarantine>/<name>-<ms>/` with its reason. If it cannot be moved (a
/// read-only disk), it stays where it is and is still reported (and the next start tries again).
fn quarantine(quarantine_dir: &Path, name: &str, dir: &Path, reason: &str) -> QuarantinedIndex {
    let now = crate::clock::now_millis();
    let target = quarantine_dir.join(format!("{name}-{now}"));
    let moved = std::fs::create_dir_all(quarantine_dir).and_then(|()| std::fs::rename(dir, &target));
    let moved_to = match moved {
        Ok(()) => {
            // The reason is for people and the next start; a copy without it is still found by its name.
            if let Err(error) = std::fs::write(target.join(REASON_FILE), reason) {
                tracing::warn!(index = %name, %error, "cannot write why the index was set aside");
            }
            target
        }
        Err(error) => {
            tracing::warn!(index = %name, %error, "cannot move the damaged index aside; it stays where it is");
            dir.to_path_buf()
        }
    };
    QuarantinedIndex {
        name: name.to_owned(),
        reason: reason.to_owned(),
        moved_to: moved_to.display().to_string(),
        quarantined_ms: now,
    }
}

/// The bases set aside at earlier starts (`<name>-<ms>` folders with a reason), the latest per name.
fn earlier_quarantines(quarantine_dir: &Path) -> BTreeMap<String, QuarantinedIndex> {
    let mut found: BTreeMap<String, QuarantinedIndex> = BTreeMap::new();
    for entry in std::fs::read_dir(quarantine_dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let Some(folder) = path.file_name().and_then(|name| name.to_str()) else { continue };
        let Some((name, at)) = folder.rsplit_once('-') else { continue };
        let Ok(quarantined_ms) = at.parse::<i64>() else { continue };
        if !path.is_dir() {
            continue;
        }
        let reason = std::fs::read_to_string(path.join(REASON_FILE))
            .unwrap_or_else(|_| "it could not be opened (the reason was not recorded)".to_owned());
        if validate_index_name(name).is_err()
            || found.get(name).is_some_and(|seen| seen.quarantined_ms > quarantined_ms)
        {
            continue;
        }
        let record =
            QuarantinedIndex { name: name.to_owned(), reason, moved_to: path.display().to_string(), quarantined_ms };
        found.insert(name.to_owned(), record);
    }
    found
}

/// Removes every set-aside copy of `name` (a user deleted the base).
fn forget_quarantined(quarantine_dir: &Path, name: &str, record: &QuarantinedIndex) {
    let prefix = format!("{name}-");
    for entry in std::fs::read_dir(quarantine_dir).into_iter().flatten().flatten() {
        let folder = entry.file_name().to_string_lossy().into_owned();
        let copy_of_name = folder
            .strip_prefix(&prefix)
            .is_some_and(|at| !at.is_empty() && at.bytes().all(|byte| byte.is_ascii_digit()));
        if copy_of_name && let Err(error) = std::fs::remove_dir_all(entry.path()) {
            tracing::warn!(index = %name, %error, "cannot remove a quarantined copy");
        }
    }
    // A damaged index that could not be moved aside is deleted where it is.
    let left_in_place = Path::new(&record.moved_to);
    if !left_in_place.starts_with(quarantine_dir) && left_in_place.is_dir() {
        let _ = std::fs::remove_dir_all(left_in_place);
    }
}

/// A hit's key: the document's address in the snapshot the search took.
fn key_of(address: DocAddress) -> u64 {
    (u64::from(address.segment_ord) << 32) | u64::from(address.doc_id)
}

fn address_of(key: u64) -> DocAddress {
    DocAddress::new((key >> 32) as u32, key as u32)
}

#[async_trait]
impl KnowledgeStore for TantivyStore {
    fn engine(&self) -> &'static str {
        "tantivy"
    }

    async fn names(&self) -> Result<Vec<String>, KnowledgeError> {
        Ok(read(&self.indices).keys().cloned().collect())
    }

    async fn meta(&self, name: &str) -> Result<Option<IndexMeta>, KnowledgeError> {
        Ok(read(&self.indices).get(name).map(|index| index.meta()))
    }

    async fn quarantined(&self) -> Vec<QuarantinedIndex> {
        read(&self.quarantined).values().cloned().collect()
    }

    async fn create(
        &self,
        name: &str,
        embedding_model: &str,
        embedding_dim: usize,
    ) -> Result<CreateOutcome, KnowledgeError> {
        let _creating = self.lifecycle.lock().await;
        if let Ok(existing) = self.index(name) {
            return Ok(CreateOutcome::existing(&existing.meta()));
        }
        // Never over a damaged base that could not be moved aside (the folder below would be removed).
        let set_aside = read(&self.quarantined).get(name).cloned();
        if let Some(record) = set_aside {
            return Err(KnowledgeError::Quarantined { name: record.name, reason: record.reason });
        }
        let dir = self.root.join(name);
        let model = embedding_model.to_owned();
        let index_name = name.to_owned();
        let index = blocking(move || {
            // A complete index that is not open was left closed at start-up because of the machine (a
            // permission, too many open files): it is the user's data, never replaced by an empty one.
            if KnowledgeIndex::exists(&dir) {
                return Err(KnowledgeError::NotOpened(index_name));
            }
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(IndexError::from)?;
            }
            Ok(KnowledgeIndex::create(&dir, &index_name, &model, embedding_dim)?)
        })
        .await?;
        let mut indices = write(&self.indices);
        // Two concurrent creations: the first one wins, the second sees it and changes nothing.
        if let Some(existing) = indices.get(name) {
            return Ok(CreateOutcome::existing(&existing.meta()));
        }
        indices.insert(name.to_owned(), Arc::new(index));
        Ok(CreateOutcome::created(embedding_model, embedding_dim))
    }

    async fn delete(&self, name: &str) -> Result<(), KnowledgeError> {
        let _deleting = self.lifecycle.lock().await;
        // Deleting a quarantined base is how a user lets it go: its set-aside files go too.
        let forgotten = write(&self.quarantined).remove(name);
        if let Some(record) = forgotten {
            let quarantine_dir = self.quarantine_dir.clone();
            let name = name.to_owned();
            return blocking(move || {
                forget_quarantined(&quarantine_dir, &name, &record);
                Ok(())
            })
            .await;
        }
        let removed =
            write(&self.indices).remove(name).ok_or_else(|| KnowledgeError::IndexNotFound(name.to_owned()))?;
        let dir = removed.dir().to_path_buf();
        drop(removed);
        blocking(move || {
            std::fs::remove_dir_all(&dir).map_err(IndexError::from)?;
            Ok(())
        })
        .await
    }

    async fn stats_and_files(
        &self,
        name: &str,
        chunks_per_file: usize,
    ) -> Result<(IndexStats, Vec<IndexedFile>), KnowledgeError> {
        let index = self.index(name)?;
        blocking(move || Ok(index.stats_and_files(chunks_per_file)?)).await
    }

    async fn write(
        &self,
        name: &str,
        replace_path: Option<&str>,
        chunks: Vec<(Chunk, Vec<f32>)>,
    ) -> Result<usize, KnowledgeError> {
        let index = self.index(name)?;
        let replace_path = replace_path.map(str::to_owned);
        blocking(move || {
            Ok(match replace_path {
                Some(path) => index.replace_path(&path, &chunks)?,
                None => index.add_chunks(&chunks)?,
            })
        })
        .await
    }

    async fn delete_path(&self, name: &str, path_or_url: &str) -> Result<usize, KnowledgeError> {
        let index = self.index(name)?;
        let path = path_or_url.to_owned();
        blocking(move || Ok(index.delete_path(&path)?)).await
    }

    async fn search(&self, names: &[String], query: ListQuery, rank: Ranker) -> Result<Vec<SearchHit>, KnowledgeError> {
        let indices = names
            .iter()
            .map(|name| Ok((name.clone(), self.index(name)?)))
            .collect::<Result<Vec<_>, KnowledgeError>>()?;
        blocking(move || {
            // Hits are addresses in one snapshot per index; documents are read only for the ranking's picks.
            let snapshots: Vec<_> = indices.iter().map(|(_, index)| index.snapshot()).collect();
            // The keyword and vector lists run side by side on a second thread: they share nothing but the
            // snapshot, and each takes a few milliseconds on a large index.
            let keyword_list = || -> Result<Vec<ListHit>, KnowledgeError> {
                let mut hits = Vec::new();
                if query.keywords {
                    for (position, (_, index)) in indices.iter().enumerate() {
                        for (score, address) in index.keyword_hits(&snapshots[position], &query.text, query.depth)? {
                            hits.push(ListHit { position, key: key_of(address), score });
                        }
                    }
                }
                Ok(hits)
            };
            let vector_list = || -> Vec<ListHit> {
                let mut hits = Vec::new();
                for (position, (_, index)) in indices.iter().enumerate() {
                    let Some(vector) = query.vector_for(position) else { continue };
                    for (score, address) in index.vector_hits(&snapshots[position], vector, query.depth) {
                        hits.push(ListHit { position, key: key_of(address), score });
                    }
                }
                hits
            };
            let (keyword, vector) = if query.keywords && query.vectors.is_some() {
                std::thread::scope(|scope| {
                    let vectors = scope.spawn(vector_list);
                    let keywords = keyword_list();
                    let vectors = vectors.join().map_err(|_| KnowledgeError::Join("the vector search panicked".into()));
                    (keywords, vectors)
                })
            } else {
                (keyword_list(), Ok(vector_list()))
            };
            let ranked = rank(ResultLists { keyword: keyword?, vector: vector? });
            let mut hits = Vec::with_capacity(ranked.len());
            for hit in ranked {
                let (name, index) = &indices[hit.position];
                hits.push(SearchHit {
                    index: name.clone(),
                    chunk: index.chunk(&snapshots[hit.position], address_of(hit.key))?,
                    score: hit.score,
                    accurate: hit.details.map(|(accurate, _)| accurate),
                    semantic: hit.details.map(|(_, semantic)| semantic),
                });
            }
            Ok(hits)
        })
        .await
    }

    fn wait_for_background_work(&self) {
        let indices: Vec<Arc<KnowledgeIndex>> = read(&self.indices).values().cloned().collect();
        for index in indices {
            index.wait_for_graph();
        }
    }

    fn flush(&self) {
        for index in read(&self.indices).values() {
            if let Err(error) = index.flush_counters() {
                tracing::warn!(%error, "cannot save index counters");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_round_trips_to_its_address() {
        for address in [DocAddress::new(0, 0), DocAddress::new(7, 123_456), DocAddress::new(u32::MAX, u32::MAX)] {
            assert_eq!(address_of(key_of(address)), address);
        }
    }

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn filled(root: &Path, name: &str) -> TestResult {
        let index = KnowledgeIndex::create(&root.join(name), name, "test-model", 2)?;
        let chunk = Chunk {
            id: format!("{name}-1"),
            path_or_url: "a.txt".into(),
            content: "the heron sings at dusk".into(),
            ..Chunk::default()
        };
        index.add_chunks(&[(chunk, vec![1.0, 0.0])])?;
        Ok(())
    }

    /// The largest file of the index's Tantivy folder (a segment's store or postings).
    fn largest_segment_file(dir: &Path) -> Result<PathBuf, Box<dyn std::error::Error>> {
        let largest = std::fs::read_dir(dir.join("tantivy"))?
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|extension| extension != "json" && extension != "lock"))
            .max_by_key(|path| std::fs::metadata(path).map(|metadata| metadata.len()).unwrap_or(0));
        Ok(largest.ok_or("no segment file")?)
    }

    #[tokio::test]
    async fn a_damaged_index_is_set_aside_with_its_reason_and_the_others_open() -> TestResult {
        let data = tempfile::tempdir()?;
        let root = data.path().join("indices");
        filled(&root, "good")?;
        filled(&root, "bad")?;
        // Bytes changed in the middle of a segment file, as a failing disk would.
        let damaged = largest_segment_file(&root.join("bad"))?;
        let mut bytes = std::fs::read(&damaged)?;
        let middle = bytes.len() / 2;
        for byte in &mut bytes[middle.saturating_sub(8)..middle + 8] {
            *byte ^= 0x5a;
        }
        std::fs::write(&damaged, bytes)?;

        let store = TantivyStore::open(&root)?;
        assert_eq!(store.names().await?, ["good"]);
        let quarantined = store.quarantined().await;
        assert_eq!(quarantined.len(), 1);
        assert_eq!(quarantined[0].name, "bad");
        assert!(quarantined[0].reason.contains("checksum mismatch"), "{:?}", quarantined[0]);
        assert!(Path::new(&quarantined[0].moved_to).join("reason.txt").is_file());
        assert!(!root.join("bad").exists(), "moved out of the indices");
        // Its name stays taken: nothing is created in its place.
        let refused = store.create("bad", "test-model", 2).await;
        assert!(matches!(refused, Err(KnowledgeError::Quarantined { .. })));
        drop(store);

        // Still reported after a restart, until deleted; then the name is free again.
        let store = TantivyStore::open(&root)?;
        assert_eq!(store.quarantined().await.len(), 1);
        store.delete("bad").await?;
        assert!(store.quarantined().await.is_empty());
        assert_eq!(std::fs::read_dir(data.path().join(QUARANTINE_DIR))?.count(), 0);
        assert!(store.create("bad", "test-model", 2).await?.created);
        assert!(matches!(store.delete("bad").await, Ok(())));
        assert!(matches!(store.delete("bad").await, Err(KnowledgeError::IndexNotFound(_))));
        Ok(())
    }

    #[test]
    fn the_machine_s_errors_are_told_from_the_index_s() {
        let denied = IndexError::Io(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert!(caused_by_environment(&denied));
        let too_many = IndexError::Meta("Too many open files (os error 24)".into());
        assert!(caused_by_environment(&too_many), "read from the message when the chain does not reach it");
        assert!(!caused_by_environment(&IndexError::Meta("expected value at line 1".into())));
    }

    #[tokio::test]
    async fn a_base_re_created_after_one_was_set_aside_is_not_shadowed_by_the_old_record() -> TestResult {
        let data = tempfile::tempdir()?;
        let root = data.path().join("indices");
        filled(&root, "notes")?;
        // An old set-aside copy whose removal failed, beside a live base of the same name.
        let copy = data.path().join(QUARANTINE_DIR).join("notes-1");
        std::fs::create_dir_all(&copy)?;
        let store = TantivyStore::open(&root)?;
        assert_eq!(store.names().await?, ["notes"]);
        assert!(store.quarantined().await.is_empty());
        assert!(!store.create("notes", "test-model", 2).await?.created, "the live one answers");
        Ok(())
    }

    #[tokio::test]
    async fn a_missing_segment_file_or_unreadable_metadata_is_damage_too() -> TestResult {
        let data = tempfile::tempdir()?;
        let root = data.path().join("indices");
        filled(&root, "truncated")?;
        filled(&root, "garbled")?;
        std::fs::remove_file(largest_segment_file(&root.join("truncated"))?)?;
        std::fs::write(root.join("garbled").join("tantivy").join("meta.json"), b"{ not json")?;
        let store = TantivyStore::open(&root)?;
        assert!(store.names().await?.is_empty());
        let names: Vec<String> = store.quarantined().await.into_iter().map(|record| record.name).collect();
        assert_eq!(names, ["garbled", "truncated"]);
        Ok(())
    }
}
