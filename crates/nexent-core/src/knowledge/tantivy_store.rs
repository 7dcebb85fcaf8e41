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
use super::store::{KnowledgeStore, ListHit, ListQuery, Ranker, ResultLists};
use super::{CreateOutcome, KnowledgeError, SearchHit, blocking};
use crate::sync::{read, write};

pub struct TantivyStore {
    root: PathBuf,
    indices: RwLock<BTreeMap<String, Arc<KnowledgeIndex>>>,
    /// Serialises creations and deletions, so two requests can never build one folder at once.
    lifecycle: tokio::sync::Mutex<()>,
}

impl TantivyStore {
    /// Opens every index under `root` (created if missing). Blocks: call it off the async runtime.
    pub fn open(root: &Path) -> Result<Self, KnowledgeError> {
        std::fs::create_dir_all(root).map_err(IndexError::from)?;
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
            match KnowledgeIndex::open(&path) {
                Ok(index) => {
                    indices.insert(name, Arc::new(index));
                }
                Err(error) => tracing::error!(index = %name, %error, "cannot open index; leaving it untouched"),
            }
        }
        Ok(Self { root: root.to_path_buf(), indices: RwLock::new(indices), lifecycle: tokio::sync::Mutex::new(()) })
    }

    /// One open index (benchmarks and tests reach its knobs through it).
    pub fn index(&self, name: &str) -> Result<Arc<KnowledgeIndex>, KnowledgeError> {
        read(&self.indices).get(name).cloned().ok_or_else(|| KnowledgeError::IndexNotFound(name.to_owned()))
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
        let dir = self.root.join(name);
        let model = embedding_model.to_owned();
        let index_name = name.to_owned();
        let index = blocking(move || {
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
}
