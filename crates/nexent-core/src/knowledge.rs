//! Knowledge bases and the Elasticsearch App's operations on them (nexent-api.md §1.5, §3): create,
//! delete, list, info, index chunks, delete a file's chunks, and accurate / semantic / hybrid search over
//! one or more bases. Where the chunks live is the [`KnowledgeStore`] seam: Tantivy indices in the data
//! dir by default ([`TantivyStore`]), or tables in a shared PostgreSQL database
//! ([`postgres_store::PostgresStore`]).
//!
//! Responsibilities here, the same for every store:
//! 1. Validate names, queries, `top_k` and vector dimensions (bad input is an error a client can read).
//! 2. Embed through the [`Embedder`] seam, off the async runtime, before touching a store, so a failed
//!    embedding changes nothing.
//! 3. Rank: cut a plain list to `top_k`, or fuse the keyword and vector lists ([`fusion`]).

pub mod analyzer;
pub mod ann;
pub mod chunk;
pub mod embedder;
pub mod fusion;
pub mod index;
pub mod names;
pub mod postgres_store;
pub mod store;
pub mod tantivy_store;
pub mod vectors;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::disk::DiskReserve;
pub use chunk::Chunk;
pub use embedder::{EmbedError, Embedder, Embedders, SharedEmbedder, TextKind};
pub use fusion::Fusion;
use fusion::{FusedHit, ScoredKey};
pub use index::{IndexError, IndexMeta, IndexSnapshot, IndexStats, IndexedFile, KnowledgeIndex};
pub use names::{InvalidIndexName, validate_index_name};
pub use store::{KnowledgeStore, QuarantinedIndex};
use store::{ListHit, ListQuery, RankedHit, ResultLists};
pub use tantivy_store::TantivyStore;

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
    #[error("unknown embedding model {requested:?}: this server has {loaded}")]
    UnknownEmbeddingModel { requested: String, loaded: String },
    #[error(
        "index {index} was built with the embedding model {model}, which this server has not loaded (it has {loaded})"
    )]
    EmbeddingModelNotLoaded { index: String, model: String, loaded: String },
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
    #[error("knowledge store: {0}")]
    Store(String),
    #[error("knowledge store database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    LowDisk(#[from] crate::disk::LowDisk),
    #[error(
        "Knowledge base {name} could not be opened and was set aside ({reason}); its uploaded files are still \
         stored. Delete the base to free its name, then upload its files again"
    )]
    Quarantined { name: String, reason: String },
    #[error(
        "Knowledge base {0} exists on disk but could not be opened at start-up (see the log); restart the \
         server once its data dir is readable"
    )]
    NotOpened(String),
}

/// About what indexing `chunks` writes: the text twice (stored and indexed) and the vectors, checked
/// against the disk reserve before any embedding work is spent on them.
fn written_bytes(meta: &IndexMeta, chunks: &[Chunk]) -> u64 {
    let text: usize = chunks.iter().map(|chunk| chunk.content.len() + chunk.title.len()).sum();
    (2 * text + chunks.len() * meta.embedding_dim * 4) as u64
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

/// What creating a base found or made: the base's model and dimension (an existing base's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOutcome {
    pub embedding_model: String,
    pub embedding_dim: usize,
    pub created: bool,
}

impl CreateOutcome {
    pub fn existing(meta: &IndexMeta) -> Self {
        Self { embedding_model: meta.embedding_model.clone(), embedding_dim: meta.embedding_dim, created: false }
    }

    pub fn created(embedding_model: &str, embedding_dim: usize) -> Self {
        Self { embedding_model: embedding_model.to_owned(), embedding_dim, created: true }
    }
}

pub struct KnowledgeBase {
    store: Arc<dyn KnowledgeStore>,
    embedders: Embedders,
    /// Free space kept on the disk the store writes to (none for a remote store).
    reserve: DiskReserve,
}

impl KnowledgeBase {
    /// The embedded default: every Tantivy index under `root` (created if missing). Blocks.
    pub fn open(root: &Path, embedders: Embedders) -> Result<Self, KnowledgeError> {
        Ok(Self::new(Arc::new(TantivyStore::open(root)?), embedders))
    }

    pub fn new(store: Arc<dyn KnowledgeStore>, embedders: Embedders) -> Self {
        Self { store, embedders, reserve: DiskReserve::none() }
    }

    /// Refuses new bases and new chunks (never deletions) that would eat into the disk's reserve.
    pub fn with_reserve(mut self, reserve: DiskReserve) -> Self {
        self.reserve = reserve;
        self
    }

    /// The embedding model new bases get unless they name another.
    pub fn embedder(&self) -> &SharedEmbedder {
        self.embedders.default_embedder()
    }

    /// Every embedding model a base may be built with.
    pub fn embedders(&self) -> &Embedders {
        &self.embedders
    }

    /// The model that embeds for `meta`'s base: the one it was built with. A base whose model is not
    /// loaded (built before models could be chosen, or with a remote model since replaced) is served by
    /// the default model when its vectors have the same length, as before models could be chosen.
    fn embedder_for(&self, name: &str, meta: &IndexMeta) -> Result<&SharedEmbedder, KnowledgeError> {
        if let Some(embedder) = self.embedders.get(&meta.embedding_model) {
            return Ok(embedder);
        }
        let default = self.embedders.default_embedder();
        if default.dimension() == meta.embedding_dim {
            return Ok(default);
        }
        Err(KnowledgeError::EmbeddingModelNotLoaded {
            index: name.to_owned(),
            model: meta.embedding_model.clone(),
            loaded: self.loaded_models(),
        })
    }

    fn loaded_models(&self) -> String {
        self.embedders.all().map(|embedder| embedder.model_name().to_owned()).collect::<Vec<_>>().join(", ")
    }

    /// The store itself (benchmarks write through it with vectors they already have).
    pub fn store(&self) -> &Arc<dyn KnowledgeStore> {
        &self.store
    }

    /// The store's engine name (`tantivy`, `postgres`).
    pub fn engine(&self) -> &'static str {
        self.store.engine()
    }

    async fn meta_of(&self, name: &str) -> Result<IndexMeta, KnowledgeError> {
        validate_index_name(name)?;
        match self.store.meta(name).await? {
            Some(meta) => Ok(meta),
            None => Err(self.not_found(name).await),
        }
    }

    /// A base's metadata ([`KnowledgeError::IndexNotFound`] when there is none, `Quarantined` when it was
    /// set aside).
    pub async fn meta(&self, name: &str) -> Result<IndexMeta, KnowledgeError> {
        self.meta_of(name).await
    }

    /// Bases set aside because they could not be opened.
    pub async fn quarantined(&self) -> Vec<QuarantinedIndex> {
        self.store.quarantined().await
    }

    /// The error for a quarantined base, None when `name` is not one.
    async fn quarantine_error(&self, name: &str) -> Option<KnowledgeError> {
        let record = self.store.quarantined().await.into_iter().find(|record| record.name == name)?;
        Some(KnowledgeError::Quarantined { name: record.name, reason: record.reason })
    }

    /// Creates an index built with `embedding_model` (a loaded model's name; the default when None or
    /// empty); creating one that exists is a success that changes nothing.
    pub async fn create_index(
        &self,
        name: &str,
        embedding_dim: Option<i64>,
        embedding_model: Option<&str>,
    ) -> Result<CreateOutcome, KnowledgeError> {
        validate_index_name(name)?;
        let embedder = match embedding_model.map(str::trim).filter(|model| !model.is_empty()) {
            None => self.embedders.default_embedder(),
            Some(model) => self.embedders.get(model).ok_or_else(|| KnowledgeError::UnknownEmbeddingModel {
                // The client's text, shortened: it is echoed in the message.
                requested: model.chars().take(100).collect(),
                loaded: self.loaded_models(),
            })?,
        };
        let dimension = match embedding_dim {
            None => embedder.dimension(),
            Some(dimension) if (1..=8192).contains(&dimension) => dimension as usize,
            Some(invalid) => return Err(KnowledgeError::InvalidDimension(invalid)),
        };
        if self.store.meta(name).await?.is_none() {
            // A quarantined base keeps its name until it is deleted: an upload must not quietly start an
            // empty base in its place.
            if let Some(error) = self.quarantine_error(name).await {
                return Err(error);
            }
            self.reserve.check(0)?;
        }
        self.store.create(name, embedder.model_name(), dimension).await
    }

    pub async fn delete_index(&self, name: &str) -> Result<(), KnowledgeError> {
        validate_index_name(name)?;
        self.store.delete(name).await
    }

    /// Names matching an Elasticsearch-style pattern (`*` wildcards, comma-separated), sorted.
    pub async fn list_indices(&self, pattern: &str) -> Result<Vec<String>, KnowledgeError> {
        Ok(self.store.names().await?.into_iter().filter(|name| names::matches_pattern(name, pattern)).collect())
    }

    pub async fn stats_and_files(
        &self,
        name: &str,
        chunks_per_file: usize,
    ) -> Result<(IndexStats, Vec<IndexedFile>), KnowledgeError> {
        validate_index_name(name)?;
        match self.store.stats_and_files(name, chunks_per_file).await {
            Err(KnowledgeError::IndexNotFound(_)) => Err(self.not_found(name).await),
            outcome => outcome,
        }
    }

    /// Not found, or set aside as damaged.
    async fn not_found(&self, name: &str) -> KnowledgeError {
        self.quarantine_error(name).await.unwrap_or_else(|| KnowledgeError::IndexNotFound(name.to_owned()))
    }

    /// Embeds `chunks` and indexes them in one commit. Returns the number indexed.
    pub async fn add_chunks(&self, name: &str, chunks: Vec<Chunk>) -> Result<usize, KnowledgeError> {
        let meta = self.meta_of(name).await?;
        if chunks.is_empty() {
            return Ok(0);
        }
        self.reserve.check(written_bytes(&meta, &chunks))?;
        let pairs = self.embed_chunks(name, &meta, chunks).await?;
        self.store.write(name, None, pairs).await
    }

    /// Embeds `chunks` and, in one commit, removes every chunk of `path_or_url` and adds them.
    pub async fn replace_path_chunks(
        &self,
        name: &str,
        path_or_url: &str,
        chunks: Vec<Chunk>,
    ) -> Result<usize, KnowledgeError> {
        let meta = self.meta_of(name).await?;
        self.reserve.check(written_bytes(&meta, &chunks))?;
        let pairs = self.embed_chunks(name, &meta, chunks).await?;
        self.store.write(name, Some(path_or_url), pairs).await
    }

    async fn embed_chunks(
        &self,
        name: &str,
        meta: &IndexMeta,
        chunks: Vec<Chunk>,
    ) -> Result<Vec<(Chunk, Vec<f32>)>, KnowledgeError> {
        if let Some(position) = chunks.iter().position(|chunk| embedding_text(chunk).trim().is_empty()) {
            return Err(KnowledgeError::EmptyDocument { index: position });
        }
        let expected = meta.embedding_dim;
        let texts: Vec<String> = chunks.iter().map(embedding_text).collect();
        let embedder = self.embedder_for(name, meta)?;
        let vectors = if texts.is_empty() { Vec::new() } else { embedder.embed(texts, TextKind::Passage).await? };
        if let Some(vector) = vectors.iter().find(|vector| vector.len() != expected) {
            return Err(KnowledgeError::DimensionMismatch { index: name.to_owned(), expected, actual: vector.len() });
        }
        Ok(chunks.into_iter().zip(vectors).collect())
    }

    pub async fn delete_path(&self, name: &str, path_or_url: &str) -> Result<usize, KnowledgeError> {
        validate_index_name(name)?;
        match self.store.delete_path(name, path_or_url).await {
            Err(KnowledgeError::IndexNotFound(_)) => Err(self.not_found(name).await),
            outcome => outcome,
        }
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
        let mut names: Vec<String> = Vec::new();
        let mut metas = Vec::new();
        for name in &request.index_names {
            if !names.contains(name) {
                metas.push(self.meta_of(name).await?);
                names.push(name.clone());
            }
        }

        let needs_vector = !matches!(request.mode, SearchMode::Accurate);
        let mut embedding_time_ms = 0.0;
        // Per base, the cosine of unrelated texts under its model (see `Embedder::similarity_floor`).
        let mut floors: Vec<f32> = Vec::new();
        let query_vectors = if needs_vector {
            // The query is embedded once by each model the bases were built with.
            let embedding_started = Instant::now();
            let mut by_model: Vec<(&str, Vec<f32>)> = Vec::new();
            let mut vectors = Vec::with_capacity(names.len());
            for (name, meta) in names.iter().zip(&metas) {
                let embedder = self.embedder_for(name, meta)?;
                floors.push(embedder.similarity_floor());
                let model = embedder.model_name();
                let vector = match by_model.iter().find(|(embedded_by, _)| *embedded_by == model) {
                    Some((_, vector)) => vector.clone(),
                    None => {
                        let vector = embedder
                            .embed(vec![query.clone()], TextKind::Query)
                            .await?
                            .pop()
                            .ok_or_else(|| EmbedError::Failed("no vector returned".into()))?;
                        by_model.push((model, vector.clone()));
                        vector
                    }
                };
                if vector.len() != meta.embedding_dim {
                    return Err(KnowledgeError::DimensionMismatch {
                        index: name.clone(),
                        expected: meta.embedding_dim,
                        actual: vector.len(),
                    });
                }
                vectors.push(vector);
            }
            embedding_time_ms = embedding_started.elapsed().as_secs_f64() * 1000.0;
            Some(vectors)
        } else {
            None
        };

        let mode = request.mode;
        let depth = match mode {
            SearchMode::Hybrid { .. } => (top_k * HYBRID_DEPTH_FACTOR).max(HYBRID_MIN_DEPTH),
            _ => top_k,
        };
        let lists =
            ListQuery { text: query, keywords: !matches!(mode, SearchMode::Semantic), vectors: query_vectors, depth };
        let ranker = move |mut lists: ResultLists| {
            for hit in &mut lists.vector {
                let floor = floors.get(hit.position).copied().unwrap_or(0.0);
                hit.score = rescaled_similarity(hit.score, floor);
            }
            rank(lists, mode, top_k)
        };
        let hits = self.store.search(&names, lists, Box::new(ranker)).await?;
        Ok(SearchOutcome { hits, query_time_ms: started.elapsed().as_secs_f64() * 1000.0, embedding_time_ms })
    }

    /// Blocks until no index is building in the background (benchmarks and tests).
    pub fn wait_for_graphs(&self) {
        self.store.wait_for_background_work();
    }

    /// Writes what the store keeps in memory to disk (on shutdown).
    pub fn flush(&self) {
        self.store.flush();
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

/// A cosine similarity rescaled so that the model's `floor` (unrelated texts) becomes 0 and 1 stays 1;
/// below the floor it goes negative, as a cosine can. With a floor of 0 it is unchanged.
fn rescaled_similarity(similarity: f32, floor: f32) -> f32 {
    if floor <= 0.0 || floor >= 1.0 { similarity } else { ((similarity - floor) / (1.0 - floor)).max(-1.0) }
}

/// The final ranking of one search: a plain list cut to `top_k`, or the two lists fused.
fn rank(lists: ResultLists, mode: SearchMode, top_k: usize) -> Vec<RankedHit> {
    let by_score = |left: &ListHit, right: &ListHit| right.score.total_cmp(&left.score);
    let ResultLists { keyword: mut keyword_hits, vector: mut vector_hits } = lists;
    keyword_hits.sort_by(by_score);
    vector_hits.sort_by(by_score);
    let plain = |hits: Vec<ListHit>, score: fn(f32) -> f32| -> Vec<RankedHit> {
        hits.into_iter()
            .take(top_k)
            .map(|hit| RankedHit { position: hit.position, key: hit.key, score: score(hit.score), details: None })
            .collect()
    };
    match mode {
        SearchMode::Accurate => plain(keyword_hits, |score| score),
        // Semantic search answers Elasticsearch's cosine score, which Nexent's clients know: (1 + cos) / 2.
        // Fusion works on the cosine itself, whose spread is twice as wide.
        SearchMode::Semantic => plain(vector_hits, |similarity| (1.0 + similarity) / 2.0),
        SearchMode::Hybrid { weight_accurate, fusion } => {
            let key = |hit: &ListHit| format!("{}:{}", hit.position, hit.key);
            let scored = |hits: &[ListHit]| -> Vec<ScoredKey> {
                hits.iter().map(|hit| ScoredKey { key: key(hit), score: hit.score }).collect()
            };
            let fused: Vec<FusedHit> =
                fusion::fuse(&scored(&keyword_hits), &scored(&vector_hits), weight_accurate, fusion, top_k);
            let mut locations: HashMap<String, (usize, u64)> = HashMap::new();
            for hit in keyword_hits.iter().chain(&vector_hits) {
                locations.entry(key(hit)).or_insert((hit.position, hit.key));
            }
            fused
                .into_iter()
                .filter_map(|hit| {
                    let (position, key) = locations.get(&hit.key)?;
                    Some(RankedHit {
                        position: *position,
                        key: *key,
                        score: hit.score,
                        details: Some((hit.accurate, hit.semantic)),
                    })
                })
                .collect()
        }
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, KnowledgeError> + Send + 'static,
) -> Result<T, KnowledgeError> {
    tokio::task::spawn_blocking(work).await.map_err(|error| KnowledgeError::Join(error.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::rescaled_similarity;

    #[test]
    fn similarities_are_rescaled_from_the_models_floor() {
        assert_eq!(rescaled_similarity(0.42, 0.0), 0.42, "a floor of 0 changes nothing");
        assert!((rescaled_similarity(0.85, 0.7) - 0.5).abs() < 1e-6);
        assert!((rescaled_similarity(1.0, 0.7) - 1.0).abs() < 1e-6);
        assert!(rescaled_similarity(0.6, 0.7) < 0.0, "below the floor: less than unrelated");
        assert_eq!(rescaled_similarity(-1.0, 0.7), -1.0, "bounded like a cosine");
    }
}
