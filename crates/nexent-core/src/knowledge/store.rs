//! The knowledge-store seam: where the chunks of the knowledge bases live and how their two result lists
//! (keyword, vector) are computed. [`super::KnowledgeBase`] owns everything engine-free around it: names,
//! queries and `top_k` validated, texts embedded, dimensions checked, the lists fused into one ranking.
//!
//! Implementations: [`super::tantivy_store::TantivyStore`] (the embedded default: one Tantivy index per
//! base in the data dir) and [`super::postgres_store::PostgresStore`] (tables in a PostgreSQL database
//! that several nodes share: pgvector's HNSW for vectors, BM25 from term statistics kept in tables).
//! Another engine (Elasticsearch, say) is one more implementation chosen where the server wires its
//! services; the API crate never sees which one runs.
//!
//! A search is one call so that an engine can keep its lists and the chunks it finally reads on one
//! consistent view: the store computes both lists, hands them to the [`Ranker`], and reads only the chunks
//! the ranking kept.

use async_trait::async_trait;

use super::chunk::Chunk;
use super::index::{IndexMeta, IndexStats, IndexedFile};
use super::{CreateOutcome, KnowledgeError, SearchHit};

/// One hit of one result list: which of the searched bases (its position in the request), the store's
/// key of the chunk in that base (meaningful only within this search), and the list's raw score (BM25 for
/// keywords, the cosine similarity for vectors).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ListHit {
    pub position: usize,
    pub key: u64,
    pub score: f32,
}

/// Both lists of a search over every requested base, each at most `depth` hits per base, in any order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultLists {
    pub keyword: Vec<ListHit>,
    pub vector: Vec<ListHit>,
}

/// A hit the ranking kept, with its final score and, for hybrid search, the normalised per-list scores
/// (keyword, vector).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankedHit {
    pub position: usize,
    pub key: u64,
    pub score: f32,
    pub details: Option<(f32, f32)>,
}

/// What the store must compute for one search.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// The query text, for the keyword list (analysed by the store as its chunks were).
    pub text: String,
    /// Whether to compute the keyword list.
    pub keywords: bool,
    /// The query's vector for each base, in the order of the names searched (each base's model embeds
    /// the query), when the vector list is wanted.
    pub vectors: Option<Vec<Vec<f32>>>,
    /// Hits per list and base.
    pub depth: usize,
}

impl ListQuery {
    /// The query vector for the base at `position` of the names searched.
    pub fn vector_for(&self, position: usize) -> Option<&[f32]> {
        self.vectors.as_ref().and_then(|vectors| vectors.get(position)).map(Vec::as_slice)
    }
}

/// A base that could not be opened (a damaged file, a failed check) and was set aside, so the server
/// starts and the other bases work. It stays reported, and its name taken, until the base is deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedIndex {
    pub name: String,
    /// Why it could not be opened.
    pub reason: String,
    /// Where its files were moved (kept for whoever wants to look at them).
    pub moved_to: String,
    pub quarantined_ms: i64,
}

/// Turns the two lists into the final ranking (best first).
pub type Ranker = Box<dyn FnOnce(ResultLists) -> Vec<RankedHit> + Send>;

#[async_trait]
pub trait KnowledgeStore: Send + Sync {
    /// The engine's name, for logs and the health route.
    fn engine(&self) -> &'static str;

    /// Every base's name, sorted.
    async fn names(&self) -> Result<Vec<String>, KnowledgeError>;

    /// A base's metadata, `None` when it does not exist.
    async fn meta(&self, name: &str) -> Result<Option<IndexMeta>, KnowledgeError>;

    /// Creates a base; creating one that exists changes nothing and says so (`created: false`).
    async fn create(
        &self,
        name: &str,
        embedding_model: &str,
        embedding_dim: usize,
    ) -> Result<CreateOutcome, KnowledgeError>;

    /// Deletes a base and all its chunks ([`KnowledgeError::IndexNotFound`] when there is none).
    async fn delete(&self, name: &str) -> Result<(), KnowledgeError>;

    /// Counts and files, as the info route shows them; `chunks_per_file` > 0 includes that many chunks.
    async fn stats_and_files(
        &self,
        name: &str,
        chunks_per_file: usize,
    ) -> Result<(IndexStats, Vec<IndexedFile>), KnowledgeError>;

    /// In one atomic change: removes every chunk of `replace_path` (when given) and every chunk with the
    /// id of one being written, then adds `chunks` with their vectors. Returns how many were written.
    async fn write(
        &self,
        name: &str,
        replace_path: Option<&str>,
        chunks: Vec<(Chunk, Vec<f32>)>,
    ) -> Result<usize, KnowledgeError>;

    /// Deletes every chunk of one file; returns how many were removed.
    async fn delete_path(&self, name: &str, path_or_url: &str) -> Result<usize, KnowledgeError>;

    /// Computes the lists over `names` (all existing), ranks them with `rank`, and reads the kept chunks.
    async fn search(&self, names: &[String], query: ListQuery, rank: Ranker) -> Result<Vec<SearchHit>, KnowledgeError>;

    /// Bases set aside because they could not be opened ([`QuarantinedIndex`]); deleting one forgets it.
    async fn quarantined(&self) -> Vec<QuarantinedIndex> {
        Vec::new()
    }

    /// Blocks until no background index build is running (benchmarks and tests).
    fn wait_for_background_work(&self) {}

    /// Saves what is kept in memory (on shutdown).
    fn flush(&self) {}
}
