//! Knowledge bases: one Tantivy keyword + vector index per base under `indices/<name>/`, and the
//! Elasticsearch App's operations on them (nexent-api.md §1.5, §3): create, delete, list, info, index
//! chunks, delete a file's chunks, and accurate / semantic / hybrid search over one or more bases.
//!
//! Responsibilities:
//! 1. Validate names, queries, `top_k` and vector dimensions (bad input is an error a client can read).
//! 2. Embed through the [`Embedder`] seam, off the async runtime, before touching an index, so a failed
//!    embedding changes nothing.
//! 3. Run every index operation on the blocking pool; one writer per index serialises changes.

pub mod analyzer;
pub mod ann;
pub mod chunk;
pub mod embedder;
pub mod fusion;
pub mod index;
pub mod names;
pub mod vectors;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Instant;

pub use chunk::Chunk;
pub use embedder::{EmbedError, Embedder, SharedEmbedder};
pub use fusion::Fusion;
use fusion::{FusedHit, ScoredKey};
pub use index::{IndexError, IndexMeta, IndexSnapshot, IndexStats, IndexedFile, KnowledgeIndex};
pub use names::{InvalidIndexName, validate_index_name};
use tantivy::DocAddress;

use crate::sync::{read, write};

/// Largest `top_k` a search accepts.
pub const MAX_TOP_K: usize = 1000;
/// Hybrid search looks this much deeper than `top_k` in each list before fusing, so a document ranked
/// just below the cut in one list can still be lifted by the other.
const HYBRID_DEPTH_FACTOR: usize = 4;
const HYBRID_MIN_DEPTH: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    #[error(transparent)]
    InvalidName(#[from] InvalidIndexName),
    #[error("Index {0} not found")]
    IndexNotFound(String),
    #[error("Search query cannot be empty")]
    EmptyQuery,
    #[error("At least one index name is required")]
    NoIndices,
    #[error("top_k must be between 1 and {MAX_TOP_K}, not {0}")]
    InvalidTopK(i64),
    #[error("weight_accurate must be between 0 and 1, not {0}")]
    InvalidWeight(f64),
    #[error(
        "embedding dimension mismatch for index {index}: the index holds {expected}-dimensional vectors but the embedding model produces {actual}"
    )]
    DimensionMismatch { index: String, expected: usize, actual: usize },
    #[error("invalid embedding_dim {0}: it must be between 1 and 8192")]
    InvalidDimension(i64),
    #[error("Document {index} has no text to index")]
    EmptyDocument { index: usize },
    #[error(transparent)]
    Embedding(#[from] EmbedError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("background task failed: {0}")]
    Join(String),
}

/// Which ranking a search uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SearchMode {
    Accurate,
    Semantic,
    Hybrid { weight_accurate: f32, fusion: Fusion },
}

#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub index_names: Vec<String>,
    pub query: String,
    pub top_k: i64,
    pub mode: SearchMode,
}

/// Nexent's default weight of the keyword list in hybrid search (§3.3).
pub const DEFAULT_WEIGHT_ACCURATE: f32 = 0.3;

impl SearchRequest {
    /// Hybrid search with Nexent's defaults (weighted max fusion, keyword weight 0.3).
    pub fn hybrid(index_names: Vec<String>, query: String, top_k: i64) -> Self {
        let mode = SearchMode::Hybrid { weight_accurate: DEFAULT_WEIGHT_ACCURATE, fusion: Fusion::WeightedMax };
        Self { index_names, query, top_k, mode }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub index: String,
    pub chunk: Chunk,
    pub score: f32,
    /// Normalised per-list scores of a hybrid search.
    pub accurate: Option<f32>,
    pub semantic: Option<f32>,
}

#[derive(Debug, Clone)]
pub struct SearchOutcome {
    pub hits: Vec<SearchHit>,
    pub query_time_ms: f64,
    /// Time spent embedding the query (0 for keyword search), part of `query_time_ms`.
    pub embedding_time_ms: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateOutcome {
    pub embedding_dim: usize,
    pub created: bool,
}

pub struct KnowledgeBase {
    root: PathBuf,
    embedder: SharedEmbedder,
    indices: RwLock<BTreeMap<String, Arc<KnowledgeIndex>>>,
    /// Serialises creations and deletions, so two requests can never build one folder at once.
    lifecycle: tokio::sync::Mutex<()>,
}

impl KnowledgeBase {
    /// Opens every index under `root` (created if missing).
    pub fn open(root: &Path, embedder: SharedEmbedder) -> Result<Self, KnowledgeError> {
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
        Ok(Self {
            root: root.to_path_buf(),
            embedder,
            indices: RwLock::new(indices),
            lifecycle: tokio::sync::Mutex::new(()),
        })
    }

    pub fn embedder(&self) -> &SharedEmbedder {
        &self.embedder
    }

    fn get(&self, name: &str) -> Result<Arc<KnowledgeIndex>, KnowledgeError> {
        validate_index_name(name)?;
        read(&self.indices).get(name).cloned().ok_or_else(|| KnowledgeError::IndexNotFound(name.to_owned()))
    }

    /// Creates an index; creating one that exists is a success that changes nothing.
    pub async fn create_index(&self, name: &str, embedding_dim: Option<i64>) -> Result<CreateOutcome, KnowledgeError> {
        validate_index_name(name)?;
        let _creating = self.lifecycle.lock().await;
        if let Ok(existing) = self.get(name) {
            return Ok(CreateOutcome { embedding_dim: existing.meta().embedding_dim, created: false });
        }
        let dimension = match embedding_dim {
            None => self.embedder.dimension(),
            Some(dimension) if (1..=8192).contains(&dimension) => dimension as usize,
            Some(invalid) => return Err(KnowledgeError::InvalidDimension(invalid)),
        };
        let dir = self.root.join(name);
        let model = self.embedder.model_name().to_owned();
        let index_name = name.to_owned();
        let index = blocking(move || {
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(IndexError::from)?;
            }
            Ok(KnowledgeIndex::create(&dir, &index_name, &model, dimension)?)
        })
        .await?;
        let mut indices = write(&self.indices);
        // Two concurrent creations: the first one wins, the second sees it and changes nothing.
        if let Some(existing) = indices.get(name) {
            return Ok(CreateOutcome { embedding_dim: existing.meta().embedding_dim, created: false });
        }
        indices.insert(name.to_owned(), Arc::new(index));
        Ok(CreateOutcome { embedding_dim: dimension, created: true })
    }

    pub async fn delete_index(&self, name: &str) -> Result<(), KnowledgeError> {
        validate_index_name(name)?;
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

    /// Names matching an Elasticsearch-style pattern (`*` wildcards, comma-separated), sorted.
    pub fn list_indices(&self, pattern: &str) -> Vec<String> {
        read(&self.indices).keys().filter(|name| names::matches_pattern(name, pattern)).cloned().collect()
    }

    pub async fn stats_and_files(
        &self,
        name: &str,
        chunks_per_file: usize,
    ) -> Result<(IndexStats, Vec<IndexedFile>), KnowledgeError> {
        let index = self.get(name)?;
        blocking(move || Ok(index.stats_and_files(chunks_per_file)?)).await
    }

    /// Embeds `chunks` and indexes them in one commit. Returns the number indexed.
    pub async fn add_chunks(&self, name: &str, chunks: Vec<Chunk>) -> Result<usize, KnowledgeError> {
        let index = self.get(name)?;
        if chunks.is_empty() {
            return Ok(0);
        }
        let pairs = self.embed_chunks(name, &index, chunks).await?;
        blocking(move || Ok(index.add_chunks(&pairs)?)).await
    }

    /// Embeds `chunks` and, in one commit, removes every chunk of `path_or_url` and adds them.
    pub async fn replace_path_chunks(
        &self,
        name: &str,
        path_or_url: &str,
        chunks: Vec<Chunk>,
    ) -> Result<usize, KnowledgeError> {
        let index = self.get(name)?;
        let pairs = self.embed_chunks(name, &index, chunks).await?;
        let path = path_or_url.to_owned();
        blocking(move || Ok(index.replace_path(&path, &pairs)?)).await
    }

    async fn embed_chunks(
        &self,
        name: &str,
        index: &KnowledgeIndex,
        chunks: Vec<Chunk>,
    ) -> Result<Vec<(Chunk, Vec<f32>)>, KnowledgeError> {
        if let Some(position) = chunks.iter().position(|chunk| embedding_text(chunk).trim().is_empty()) {
            return Err(KnowledgeError::EmptyDocument { index: position });
        }
        let expected = index.meta().embedding_dim;
        let texts: Vec<String> = chunks.iter().map(embedding_text).collect();
        let vectors = if texts.is_empty() { Vec::new() } else { self.embedder.embed(texts).await? };
        if let Some(vector) = vectors.iter().find(|vector| vector.len() != expected) {
            return Err(KnowledgeError::DimensionMismatch { index: name.to_owned(), expected, actual: vector.len() });
        }
        Ok(chunks.into_iter().zip(vectors).collect())
    }

    pub async fn delete_path(&self, name: &str, path_or_url: &str) -> Result<usize, KnowledgeError> {
        let index = self.get(name)?;
        let path = path_or_url.to_owned();
        blocking(move || Ok(index.delete_path(&path)?)).await
    }

    pub async fn search(&self, request: SearchRequest) -> Result<SearchOutcome, KnowledgeError> {
        let started = Instant::now();
        let query = request.query.trim().to_owned();
        if query.is_empty() {
            return Err(KnowledgeError::EmptyQuery);
        }
        if request.index_names.is_empty() {
            return Err(KnowledgeError::NoIndices);
        }
        if request.top_k < 1 || request.top_k > MAX_TOP_K as i64 {
            return Err(KnowledgeError::InvalidTopK(request.top_k));
        }
        let top_k = request.top_k as usize;
        if let SearchMode::Hybrid { weight_accurate, .. } = request.mode
            && !(0.0..=1.0).contains(&weight_accurate)
        {
            return Err(KnowledgeError::InvalidWeight(f64::from(weight_accurate)));
        }
        let mut indices = Vec::new();
        for name in &request.index_names {
            let index = self.get(name)?;
            if !indices.iter().any(|(known, _): &(String, Arc<KnowledgeIndex>)| known == name) {
                indices.push((name.clone(), index));
            }
        }

        let needs_vector = !matches!(request.mode, SearchMode::Accurate);
        let mut embedding_time_ms = 0.0;
        let query_vector = if needs_vector {
            let embedding_started = Instant::now();
            let mut vectors = self.embedder.embed(vec![query.clone()]).await?;
            embedding_time_ms = embedding_started.elapsed().as_secs_f64() * 1000.0;
            let vector = vectors.pop().ok_or_else(|| EmbedError::Failed("no vector returned".into()))?;
            for (name, index) in &indices {
                let expected = index.meta().embedding_dim;
                if vector.len() != expected {
                    return Err(KnowledgeError::DimensionMismatch {
                        index: name.clone(),
                        expected,
                        actual: vector.len(),
                    });
                }
            }
            Some(vector)
        } else {
            None
        };

        let mode = request.mode;
        let hits = blocking(move || {
            let depth = match mode {
                SearchMode::Hybrid { .. } => (top_k * HYBRID_DEPTH_FACTOR).max(HYBRID_MIN_DEPTH),
                _ => top_k,
            };
            // Hits are (index position, score, address); documents are read only for the final top_k.
            let snapshots: Vec<_> = indices.iter().map(|(_, index)| index.snapshot()).collect();
            // Hybrid runs its keyword and vector lists side by side on a second thread: they share nothing
            // but the snapshot, and each takes a few milliseconds on a large index.
            let keyword_list = || -> Result<Vec<(usize, f32, DocAddress)>, KnowledgeError> {
                let mut hits = Vec::new();
                if !matches!(mode, SearchMode::Semantic) {
                    for (position, (_, index)) in indices.iter().enumerate() {
                        for (score, address) in index.keyword_hits(&snapshots[position], &query, depth)? {
                            hits.push((position, score, address));
                        }
                    }
                }
                Ok(hits)
            };
            let vector_list = || -> Vec<(usize, f32, DocAddress)> {
                let mut hits = Vec::new();
                if let Some(vector) = &query_vector {
                    for (position, (_, index)) in indices.iter().enumerate() {
                        for (similarity, address) in index.vector_hits(&snapshots[position], vector, depth) {
                            // Semantic search answers Elasticsearch's cosine score, which Nexent's clients know:
                            // (1 + cos) / 2. Fusion works on the cosine itself, whose spread is twice as wide.
                            let score = match mode {
                                SearchMode::Semantic => (1.0 + similarity) / 2.0,
                                _ => similarity,
                            };
                            hits.push((position, score, address));
                        }
                    }
                }
                hits
            };
            let (keyword_result, vector_result) = if matches!(mode, SearchMode::Hybrid { .. }) {
                std::thread::scope(|scope| {
                    let vectors = scope.spawn(vector_list);
                    let keywords = keyword_list();
                    let vectors = vectors.join().map_err(|_| KnowledgeError::Join("the vector search panicked".into()));
                    (keywords, vectors)
                })
            } else {
                (keyword_list(), Ok(vector_list()))
            };
            let mut keyword_hits = keyword_result?;
            let mut vector_hits = vector_result?;
            let by_score =
                |left: &(usize, f32, DocAddress), right: &(usize, f32, DocAddress)| right.1.total_cmp(&left.1);
            keyword_hits.sort_by(by_score);
            vector_hits.sort_by(by_score);
            let ranked: Ranked = match mode {
                SearchMode::Accurate => plain_ranking(keyword_hits, top_k),
                SearchMode::Semantic => plain_ranking(vector_hits, top_k),
                SearchMode::Hybrid { weight_accurate, fusion } => {
                    fused_ranking(&keyword_hits, &vector_hits, weight_accurate, fusion, top_k)
                }
            };
            let mut hits = Vec::with_capacity(ranked.len());
            for (position, address, score, details) in ranked {
                let (name, index) = &indices[position];
                hits.push(SearchHit {
                    index: name.clone(),
                    chunk: index.chunk(&snapshots[position], address)?,
                    score,
                    accurate: details.map(|(accurate, _)| accurate),
                    semantic: details.map(|(_, semantic)| semantic),
                });
            }
            Ok(hits)
        })
        .await?;
        Ok(SearchOutcome { hits, query_time_ms: started.elapsed().as_secs_f64() * 1000.0, embedding_time_ms })
    }

    /// Blocks until no index is building its vector graph (benchmarks and tests).
    pub fn wait_for_graphs(&self) {
        let indices: Vec<Arc<KnowledgeIndex>> = read(&self.indices).values().cloned().collect();
        for index in indices {
            index.wait_for_graph();
        }
    }

    /// Writes every index's counters to disk (on shutdown).
    pub fn flush(&self) {
        for index in read(&self.indices).values() {
            if let Err(error) = index.flush_counters() {
                tracing::warn!(%error, "cannot save index counters");
            }
        }
    }
}

/// What gets embedded for a chunk: its title when it adds something, then its text.
pub fn embedding_text(chunk: &Chunk) -> String {
    if chunk.title.is_empty() || chunk.title == chunk.filename || chunk.content.starts_with(&chunk.title) {
        chunk.content.clone()
    } else {
        format!("{}\n{}", chunk.title, chunk.content)
    }
}

fn hit_key(position: usize, address: DocAddress) -> String {
    format!("{position}:{}:{}", address.segment_ord, address.doc_id)
}

type Ranked = Vec<(usize, DocAddress, f32, Option<(f32, f32)>)>;

fn plain_ranking(hits: Vec<(usize, f32, DocAddress)>, top_k: usize) -> Ranked {
    hits.into_iter().take(top_k).map(|(position, score, address)| (position, address, score, None)).collect()
}

fn fused_ranking(
    keyword_hits: &[(usize, f32, DocAddress)],
    vector_hits: &[(usize, f32, DocAddress)],
    weight_accurate: f32,
    fusion: Fusion,
    top_k: usize,
) -> Ranked {
    let keys = |hits: &[(usize, f32, DocAddress)]| -> Vec<ScoredKey> {
        hits.iter()
            .map(|(position, score, address)| ScoredKey { key: hit_key(*position, *address), score: *score })
            .collect()
    };
    let fused: Vec<FusedHit> = fusion::fuse(&keys(keyword_hits), &keys(vector_hits), weight_accurate, fusion, top_k);
    let mut locations: std::collections::HashMap<String, (usize, DocAddress)> = std::collections::HashMap::new();
    for (position, _, address) in keyword_hits.iter().chain(vector_hits) {
        locations.entry(hit_key(*position, *address)).or_insert((*position, *address));
    }
    fused
        .into_iter()
        .filter_map(|hit| {
            let (position, address) = locations.get(&hit.key)?;
            Some((*position, *address, hit.score, Some((hit.accurate, hit.semantic))))
        })
        .collect()
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, KnowledgeError> + Send + 'static,
) -> Result<T, KnowledgeError> {
    tokio::task::spawn_blocking(work).await.map_err(|error| KnowledgeError::Join(error.to_string()))?
}
