//! One knowledge base on disk: a Tantivy index (the source of truth, embeddings included, in a stored
//! field) plus its in-memory [`VectorMatrix`] and a small `index.json` (model, dimension, dates,
//! counters).
//!
//! Thread model: every method here blocks (Tantivy IO, commits, scans) and is called from
//! `spawn_blocking` by [`super::KnowledgeBase`]. One writer per index behind a mutex serialises all
//! changes; each change is one Tantivy commit (all or nothing), after which the reader view and the
//! vector matrix are brought up to date. Readers only ever see committed data.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    BytesOptions, FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
    Value,
};
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term};

use super::analyzer::{MIXED_ANALYZER, keyword_analyzer};
use super::ann::{ANN_MIN_VECTORS, AnnGraph};
use super::chunk::Chunk;
use super::vectors::{VectorMatrix, vector_from_bytes, vector_to_bytes};
use crate::clock::now_millis;
use crate::sync::{lock, read, write};

const META_FILE: &str = "index.json";
const TANTIVY_DIR: &str = "tantivy";
const WRITER_MEMORY_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("search engine error: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("query error: {0}")]
    Query(#[from] tantivy::query::QueryParserError),
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt index metadata: {0}")]
    Meta(String),
}

/// `index.json`: what an index remembers about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexMeta {
    pub name: String,
    pub embedding_model: String,
    pub embedding_dim: usize,
    pub created_ms: i64,
    pub updated_ms: i64,
    #[serde(default)]
    pub total_search_count: u64,
    #[serde(default)]
    pub hit_count: u64,
    /// Time spent answering those searches (keyword and vector lookups), in microseconds.
    #[serde(default)]
    pub total_search_micros: u64,
}

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    search_text: Field,
    title: Field,
    filename: Field,
    path_or_url: Field,
    source_type: Field,
    language: Field,
    author: Field,
    date: Field,
    content: Field,
    process_source: Field,
    embedding_model_name: Field,
    file_size: Field,
    create_time: Field,
    languages: Field,
    embedding: Field,
    vec_id: Field,
}

/// Field names clients see in `fields` of the info route (the internal ones are left out).
pub const PUBLIC_FIELDS: [&str; 14] = [
    "id",
    "title",
    "filename",
    "path_or_url",
    "source_type",
    "language",
    "author",
    "date",
    "content",
    "process_source",
    "embedding_model_name",
    "file_size",
    "create_time",
    "languages",
];

fn build_schema() -> Schema {
    let mut builder = Schema::builder();
    // Title and content are scored as one text, as BM25 baselines do (bm25s, Pyserini on BEIR).
    let searchable = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(MIXED_ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    builder.add_text_field("id", STRING | STORED);
    builder.add_text_field("search_text", searchable);
    builder.add_text_field("title", STORED);
    builder.add_text_field("filename", STRING | STORED | FAST);
    builder.add_text_field("path_or_url", STRING | STORED | FAST);
    builder.add_text_field("source_type", STRING | STORED);
    builder.add_text_field("language", STRING | STORED);
    builder.add_text_field("author", STRING | STORED);
    builder.add_text_field("date", STRING | STORED);
    builder.add_text_field("content", STORED);
    builder.add_text_field("process_source", STRING | STORED | FAST);
    builder.add_text_field("embedding_model_name", STRING | STORED | FAST);
    builder.add_u64_field("file_size", STORED | FAST);
    builder.add_text_field("create_time", STRING | STORED);
    builder.add_text_field("languages", STORED);
    builder.add_bytes_field("embedding", BytesOptions::default().set_stored());
    builder.add_u64_field("vec_id", INDEXED | STORED | FAST);
    builder.build()
}

fn resolve_fields(schema: &Schema) -> Result<Fields, IndexError> {
    let field = |name: &str| schema.get_field(name).map_err(|_| IndexError::Meta(format!("field {name} missing")));
    Ok(Fields {
        id: field("id")?,
        search_text: field("search_text")?,
        title: field("title")?,
        filename: field("filename")?,
        path_or_url: field("path_or_url")?,
        source_type: field("source_type")?,
        language: field("language")?,
        author: field("author")?,
        date: field("date")?,
        content: field("content")?,
        process_source: field("process_source")?,
        embedding_model_name: field("embedding_model_name")?,
        file_size: field("file_size")?,
        create_time: field("create_time")?,
        languages: field("languages")?,
        embedding: field("embedding")?,
        vec_id: field("vec_id")?,
    })
}

/// A committed point in time: the searcher and where each vector's chunk lives in it.
struct SearchView {
    searcher: Searcher,
    address_of: HashMap<u64, DocAddress>,
}

/// A committed point in time of one index (see [`KnowledgeIndex::snapshot`]).
pub struct IndexSnapshot {
    view: Arc<SearchView>,
}

/// Per-file summary for the info route.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedFile {
    pub path_or_url: String,
    pub filename: String,
    pub file_size: u64,
    pub create_time: String,
    pub chunk_count: usize,
    /// Up to the requested number of chunks, when asked for.
    pub chunks: Vec<Chunk>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IndexStats {
    pub meta: IndexMeta,
    pub doc_count: usize,
    pub chunk_count: u64,
    pub store_size_bytes: u64,
    pub process_source: String,
    pub embedding_model: String,
}

pub struct KnowledgeIndex {
    dir: PathBuf,
    index: Index,
    reader: IndexReader,
    fields: Fields,
    writer: Mutex<Option<IndexWriter>>,
    view: RwLock<Arc<SearchView>>,
    // Lock order: `vectors` before `graph`, everywhere.
    vectors: Arc<RwLock<VectorMatrix>>,
    graph: Arc<RwLock<Option<AnnGraph>>>,
    graph_building: Arc<AtomicBool>,
    ann_min_vectors: AtomicUsize,
    meta: Mutex<IndexMeta>,
    next_vec_id: AtomicU64,
    search_count: AtomicU64,
    hit_count: AtomicU64,
    search_micros: AtomicU64,
}

impl KnowledgeIndex {
    /// Creates a new, empty index in `dir` (which must not hold one).
    pub fn create(dir: &Path, name: &str, embedding_model: &str, embedding_dim: usize) -> Result<Self, IndexError> {
        std::fs::create_dir_all(dir.join(TANTIVY_DIR))?;
        let index = Index::create_in_dir(dir.join(TANTIVY_DIR), build_schema())?;
        let now = now_millis();
        let meta = IndexMeta {
            name: name.to_owned(),
            embedding_model: embedding_model.to_owned(),
            embedding_dim,
            created_ms: now,
            updated_ms: now,
            total_search_count: 0,
            hit_count: 0,
            total_search_micros: 0,
        };
        // index.json is written last: a folder without it is an unfinished creation, ignored and replaced.
        write_meta(dir, &meta)?;
        Self::from_parts(dir, index, meta)
    }

    /// Opens an existing index, rebuilding its vector matrix from the stored embeddings.
    pub fn open(dir: &Path) -> Result<Self, IndexError> {
        let meta_text = std::fs::read_to_string(dir.join(META_FILE))?;
        let meta: IndexMeta = serde_json::from_str(&meta_text).map_err(|error| IndexError::Meta(error.to_string()))?;
        let index = Index::open_in_dir(dir.join(TANTIVY_DIR))?;
        Self::from_parts(dir, index, meta)
    }

    /// The files of the index's live segments whose checksum (Tantivy's footer) does not match their
    /// bytes: a damaged disk, a write torn outside Tantivy's commit protocol, a hand that edited them.
    pub fn damaged_files(dir: &Path) -> Result<Vec<PathBuf>, IndexError> {
        let index = Index::open_in_dir(dir.join(TANTIVY_DIR))?;
        let mut damaged: Vec<PathBuf> = index.validate_checksum()?.into_iter().collect();
        damaged.sort();
        Ok(damaged)
    }

    /// Whether `dir` holds a complete index (its metadata was written).
    pub fn exists(dir: &Path) -> bool {
        dir.join(META_FILE).is_file()
    }

    fn from_parts(dir: &Path, index: Index, meta: IndexMeta) -> Result<Self, IndexError> {
        index.tokenizers().register(MIXED_ANALYZER, keyword_analyzer());
        let fields = resolve_fields(&index.schema())?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let view = build_view(&reader)?;
        let mut vectors = VectorMatrix::new(meta.embedding_dim);
        let mut max_vec_id = None;
        for segment in view.searcher.segment_readers() {
            let store = segment.get_store_reader(64)?;
            for document in store.iter::<TantivyDocument>(segment.alive_bitset()) {
                let document = document?;
                let vec_id = document.get_first(fields.vec_id).and_then(|value| value.as_u64());
                let embedding = document.get_first(fields.embedding).and_then(|value| value.as_bytes());
                if let (Some(vec_id), Some(bytes)) = (vec_id, embedding) {
                    let vector = vector_from_bytes(bytes);
                    if vector.len() == meta.embedding_dim {
                        vectors.insert(vec_id, &vector);
                    }
                    max_vec_id = max_vec_id.max(Some(vec_id));
                }
            }
        }
        let next_vec_id = max_vec_id.map_or(0, |max| max + 1);
        let index = Self {
            dir: dir.to_path_buf(),
            index,
            reader,
            fields,
            writer: Mutex::new(None),
            view: RwLock::new(Arc::new(view)),
            vectors: Arc::new(RwLock::new(vectors)),
            graph: Arc::new(RwLock::new(None)),
            graph_building: Arc::new(AtomicBool::new(false)),
            ann_min_vectors: AtomicUsize::new(ANN_MIN_VECTORS),
            search_count: AtomicU64::new(meta.total_search_count),
            hit_count: AtomicU64::new(meta.hit_count),
            search_micros: AtomicU64::new(meta.total_search_micros),
            meta: Mutex::new(meta),
            next_vec_id: AtomicU64::new(next_vec_id),
        };
        index.maintain_graph();
        Ok(index)
    }

    pub fn meta(&self) -> IndexMeta {
        let mut meta = lock(&self.meta).clone();
        meta.total_search_count = self.search_count.load(Ordering::Relaxed);
        meta.hit_count = self.hit_count.load(Ordering::Relaxed);
        meta.total_search_micros = self.search_micros.load(Ordering::Relaxed);
        meta
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn current_view(&self) -> Arc<SearchView> {
        read(&self.view).clone()
    }

    /// Adds chunks with their vectors in one commit, replacing chunks with the same ids.
    /// Returns how many were indexed. On any error nothing is changed.
    pub fn add_chunks(&self, chunks: &[(Chunk, Vec<f32>)]) -> Result<usize, IndexError> {
        self.commit_chunks(None, chunks)
    }

    /// In one commit, deletes every chunk of `path_or_url` and adds `chunks` (re-ingesting a file).
    pub fn replace_path(&self, path_or_url: &str, chunks: &[(Chunk, Vec<f32>)]) -> Result<usize, IndexError> {
        self.commit_chunks(Some(path_or_url), chunks)
    }

    fn commit_chunks(&self, replace_path: Option<&str>, chunks: &[(Chunk, Vec<f32>)]) -> Result<usize, IndexError> {
        let mut writer_slot = lock(&self.writer);
        let writer = self.writer_in(&mut writer_slot)?;
        let view = self.current_view();
        let mut replaced = Vec::new();
        let mut added = Vec::with_capacity(chunks.len());
        let first_vec_id = self.next_vec_id.load(Ordering::SeqCst);
        let attempt = (|| -> Result<(), IndexError> {
            if let Some(path) = replace_path {
                let term = Term::from_field_text(self.fields.path_or_url, path);
                replaced.extend(self.vec_ids_matching(&view.searcher, &term)?);
                writer.delete_term(term);
            }
            for (offset, (chunk, vector)) in chunks.iter().enumerate() {
                let id_term = Term::from_field_text(self.fields.id, &chunk.id);
                replaced.extend(self.vec_ids_matching(&view.searcher, &id_term)?);
                writer.delete_term(id_term);
                let vec_id = first_vec_id + offset as u64;
                writer.add_document(self.document_of(chunk, vector, vec_id))?;
                added.push((vec_id, vector));
            }
            writer.commit()?;
            Ok(())
        })();
        if let Err(error) = attempt {
            roll_back(&mut writer_slot);
            return Err(error);
        }
        self.next_vec_id.store(first_vec_id + chunks.len() as u64, Ordering::SeqCst);
        self.refresh_view()?;
        {
            let mut vectors = write(&self.vectors);
            for vec_id in replaced {
                vectors.remove(vec_id);
            }
            for (vec_id, vector) in &added {
                vectors.insert(*vec_id, vector);
            }
            if let Some(graph) = write(&self.graph).as_mut() {
                for (vec_id, vector) in &added {
                    graph.insert(*vec_id, vector);
                }
            }
        }
        self.maintain_graph();
        self.touch_after_commit();
        Ok(chunks.len())
    }

    /// Deletes every chunk of one file (`path_or_url`); returns how many chunks were removed.
    pub fn delete_path(&self, path_or_url: &str) -> Result<usize, IndexError> {
        let mut writer_slot = lock(&self.writer);
        let writer = self.writer_in(&mut writer_slot)?;
        let view = self.current_view();
        let term = Term::from_field_text(self.fields.path_or_url, path_or_url);
        let removed = self.vec_ids_matching(&view.searcher, &term)?;
        if removed.is_empty() {
            return Ok(0);
        }
        writer.delete_term(term);
        if let Err(error) = writer.commit() {
            roll_back(&mut writer_slot);
            return Err(error.into());
        }
        self.refresh_view()?;
        {
            let mut vectors = write(&self.vectors);
            for vec_id in &removed {
                vectors.remove(*vec_id);
            }
        }
        self.maintain_graph();
        self.touch_after_commit();
        Ok(removed.len())
    }

    fn writer_in<'a>(&self, slot: &'a mut Option<IndexWriter>) -> Result<&'a mut IndexWriter, IndexError> {
        if slot.is_none() {
            *slot = Some(self.index.writer_with_num_threads(1, WRITER_MEMORY_BYTES)?);
        }
        slot.as_mut().ok_or_else(|| IndexError::Meta("writer unavailable".into()))
    }

    fn vec_ids_matching(&self, searcher: &Searcher, term: &Term) -> Result<Vec<u64>, IndexError> {
        let query = TermQuery::new(term.clone(), IndexRecordOption::Basic);
        let matches = searcher.search(&query, &tantivy::collector::DocSetCollector)?;
        let mut vec_ids = Vec::with_capacity(matches.len());
        for address in matches {
            let column = searcher.segment_reader(address.segment_ord).fast_fields().u64("vec_id")?;
            if let Some(vec_id) = column.first(address.doc_id) {
                vec_ids.push(vec_id);
            }
        }
        Ok(vec_ids)
    }

    fn document_of(&self, chunk: &Chunk, vector: &[f32], vec_id: u64) -> TantivyDocument {
        let fields = self.fields;
        let mut document = TantivyDocument::default();
        document.add_text(fields.id, &chunk.id);
        document.add_text(fields.search_text, format!("{}\n{}", chunk.title, chunk.content));
        document.add_text(fields.title, &chunk.title);
        document.add_text(fields.filename, &chunk.filename);
        document.add_text(fields.path_or_url, &chunk.path_or_url);
        document.add_text(fields.source_type, &chunk.source_type);
        document.add_text(fields.language, &chunk.language);
        document.add_text(fields.author, &chunk.author);
        document.add_text(fields.date, &chunk.date);
        document.add_text(fields.content, &chunk.content);
        document.add_text(fields.process_source, &chunk.process_source);
        document.add_text(fields.embedding_model_name, &chunk.embedding_model_name);
        document.add_u64(fields.file_size, chunk.file_size);
        document.add_text(fields.create_time, &chunk.create_time);
        document.add_text(fields.languages, serde_json::to_string(&chunk.languages).unwrap_or_else(|_| "[]".into()));
        document.add_bytes(fields.embedding, &vector_to_bytes(vector));
        document.add_u64(fields.vec_id, vec_id);
        document
    }

    fn refresh_view(&self) -> Result<(), IndexError> {
        self.reader.reload()?;
        let view = build_view(&self.reader)?;
        *write(&self.view) = Arc::new(view);
        Ok(())
    }

    /// Marks the index as changed now and saves its metadata, after a commit. The commit is what the caller
    /// asked for and it is done, so failing to save the time of the change (a full disk has no room for the
    /// new `index.json`) is logged, not returned: an error here made a committed document's task FAILED
    /// ("not indexed") and a committed delete a 507.
    fn touch_after_commit(&self) {
        if let Err(error) = self.save_meta(Some(now_millis())) {
            tracing::warn!(%error, index = %self.dir.display(), "the change is committed; its time was not saved");
        }
    }

    /// Persists the search counters (called on shutdown and periodically by the service).
    pub fn flush_counters(&self) -> Result<(), IndexError> {
        self.save_meta(None)
    }

    fn save_meta(&self, updated_ms: Option<i64>) -> Result<(), IndexError> {
        let mut meta = lock(&self.meta);
        if let Some(updated_ms) = updated_ms {
            meta.updated_ms = updated_ms;
        }
        meta.total_search_count = self.search_count.load(Ordering::Relaxed);
        meta.hit_count = self.hit_count.load(Ordering::Relaxed);
        meta.total_search_micros = self.search_micros.load(Ordering::Relaxed);
        write_meta(&self.dir, &meta)
    }

    fn record_search(&self, hits: usize, started: std::time::Instant) {
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.search_micros.fetch_add(micros, Ordering::Relaxed);
        self.search_count.fetch_add(1, Ordering::Relaxed);
        if hits > 0 {
            self.hit_count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A committed point in time to search: keyword and vector hits taken from one snapshot refer to the
    /// same documents, so they can be fused by address before any document is read.
    pub fn snapshot(&self) -> IndexSnapshot {
        IndexSnapshot { view: self.current_view() }
    }

    /// BM25 over title and content; the query is plain text (operators are not interpreted).
    pub fn keyword_hits(
        &self,
        snapshot: &IndexSnapshot,
        query: &str,
        limit: usize,
    ) -> Result<Vec<(f32, DocAddress)>, IndexError> {
        let started = std::time::Instant::now();
        // Any of the query's analysed terms, each scored by BM25 (as the PostgreSQL store computes it). Not
        // Tantivy's QueryParser: it reads a run of text without spaces as one phrase, and Chinese has no
        // spaces, so a Chinese question matched only documents holding it word for word.
        let clauses: Vec<(Occur, Box<dyn Query>)> = super::analyzer::analyse(query)
            .into_iter()
            .map(|term| {
                let term = Term::from_field_text(self.fields.search_text, &term);
                (Occur::Should, Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs)) as Box<dyn Query>)
            })
            .collect();
        let parsed = BooleanQuery::new(clauses);
        let top = snapshot.view.searcher.search(&parsed, &TopDocs::with_limit(limit.max(1)).order_by_score())?;
        self.record_search(top.len(), started);
        Ok(top)
    }

    /// Cosine similarity to the stored vectors (exact scan, or the graph for large indices).
    pub fn vector_hits(&self, snapshot: &IndexSnapshot, query: &[f32], limit: usize) -> Vec<(f32, DocAddress)> {
        let started = std::time::Instant::now();
        let nearest = {
            let vectors = read(&self.vectors);
            match read(&self.graph).as_ref() {
                Some(graph) => graph
                    .search(query, limit, graph.inserted().saturating_sub(vectors.len()), &|vec_id| {
                        vectors.contains(vec_id)
                    })
                    .into_iter()
                    .map(|(vec_id, similarity)| super::vectors::VectorHit { vec_id, similarity })
                    .collect(),
                None => vectors.search(query, limit),
            }
        };
        // A vector whose chunk is not in this snapshot was changed by a concurrent commit: skip it.
        let hits: Vec<(f32, DocAddress)> = nearest
            .into_iter()
            .filter_map(|hit| snapshot.view.address_of.get(&hit.vec_id).map(|address| (hit.similarity, *address)))
            .collect();
        self.record_search(hits.len(), started);
        hits
    }

    /// The chunk at an address of a snapshot.
    pub fn chunk(&self, snapshot: &IndexSnapshot, address: DocAddress) -> Result<Chunk, IndexError> {
        self.chunk_at(&snapshot.view.searcher, address)
    }

    /// Keyword search with the chunks read (tests and tools; the service fuses addresses first).
    pub fn search_keywords(&self, query: &str, limit: usize) -> Result<Vec<(f32, Chunk)>, IndexError> {
        let snapshot = self.snapshot();
        let hits = self.keyword_hits(&snapshot, query, limit)?;
        hits.into_iter().map(|(score, address)| Ok((score, self.chunk(&snapshot, address)?))).collect()
    }

    /// Vector search with the chunks read.
    pub fn search_vector(&self, query: &[f32], limit: usize) -> Result<Vec<(f32, Chunk)>, IndexError> {
        let snapshot = self.snapshot();
        let hits = self.vector_hits(&snapshot, query, limit);
        hits.into_iter().map(|(score, address)| Ok((score, self.chunk(&snapshot, address)?))).collect()
    }

    fn chunk_at(&self, searcher: &Searcher, address: DocAddress) -> Result<Chunk, IndexError> {
        let document: TantivyDocument = searcher.doc(address)?;
        Ok(self.chunk_of(&document))
    }

    fn chunk_of(&self, document: &TantivyDocument) -> Chunk {
        let fields = self.fields;
        let text = |field: Field| document.get_first(field).and_then(|value| value.as_str()).unwrap_or("").to_owned();
        Chunk {
            id: text(fields.id),
            title: text(fields.title),
            filename: text(fields.filename),
            path_or_url: text(fields.path_or_url),
            source_type: text(fields.source_type),
            language: text(fields.language),
            author: text(fields.author),
            date: text(fields.date),
            content: text(fields.content),
            process_source: text(fields.process_source),
            embedding_model_name: text(fields.embedding_model_name),
            file_size: document.get_first(fields.file_size).and_then(|value| value.as_u64()).unwrap_or(0),
            create_time: text(fields.create_time),
            languages: serde_json::from_str(&text(fields.languages)).unwrap_or_default(),
        }
    }

    /// Counts and files, as the info route shows them. `chunks_per_file` > 0 includes that many chunks.
    pub fn stats_and_files(&self, chunks_per_file: usize) -> Result<(IndexStats, Vec<IndexedFile>), IndexError> {
        let view = self.current_view();
        let searcher = &view.searcher;
        let mut first_address: HashMap<String, (DocAddress, usize)> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut process_sources: HashMap<String, usize> = HashMap::new();
        let mut models: HashMap<String, usize> = HashMap::new();
        let mut text = String::new();
        for (segment_ord, segment) in searcher.segment_readers().iter().enumerate() {
            let fast = segment.fast_fields();
            let paths = fast.str("path_or_url")?;
            let sources = fast.str("process_source")?;
            let model_column = fast.str("embedding_model_name")?;
            for doc_id in segment.doc_ids_alive() {
                if let Some(paths) = &paths {
                    for ord in paths.term_ords(doc_id) {
                        text.clear();
                        paths.ord_to_str(ord, &mut text)?;
                        match first_address.get_mut(&text) {
                            Some((_, count)) => *count += 1,
                            None => {
                                order.push(text.clone());
                                first_address.insert(text.clone(), (DocAddress::new(segment_ord as u32, doc_id), 1));
                            }
                        }
                    }
                }
                for (column, counts) in [(&sources, &mut process_sources), (&model_column, &mut models)] {
                    if let Some(column) = column {
                        for ord in column.term_ords(doc_id) {
                            text.clear();
                            column.ord_to_str(ord, &mut text)?;
                            *counts.entry(text.clone()).or_default() += 1;
                        }
                    }
                }
            }
        }
        let most_common = |counts: &HashMap<String, usize>| {
            counts
                .iter()
                .max_by(|left, right| left.1.cmp(right.1).then_with(|| right.0.cmp(left.0)))
                .map(|(value, _)| value.clone())
                .unwrap_or_else(|| "Unknown".to_owned())
        };
        let mut files = Vec::with_capacity(order.len());
        for path in &order {
            let (address, chunk_count) = first_address[path];
            let first = self.chunk_at(searcher, address)?;
            let chunks =
                if chunks_per_file > 0 { self.chunks_of_path(searcher, path, chunks_per_file)? } else { Vec::new() };
            files.push(IndexedFile {
                path_or_url: path.clone(),
                filename: first.filename,
                file_size: first.file_size,
                create_time: first.create_time,
                chunk_count,
                chunks,
            });
        }
        let meta = self.meta();
        let stats = IndexStats {
            doc_count: files.len(),
            chunk_count: searcher.num_docs(),
            store_size_bytes: folder_size(&self.dir),
            process_source: most_common(&process_sources),
            embedding_model: if models.is_empty() { meta.embedding_model.clone() } else { most_common(&models) },
            meta,
        };
        Ok((stats, files))
    }

    fn chunks_of_path(&self, searcher: &Searcher, path: &str, limit: usize) -> Result<Vec<Chunk>, IndexError> {
        let query = TermQuery::new(Term::from_field_text(self.fields.path_or_url, path), IndexRecordOption::Basic);
        let mut addresses: Vec<DocAddress> =
            searcher.search(&query, &tantivy::collector::DocSetCollector)?.into_iter().collect();
        addresses.sort();
        let mut chunks = Vec::new();
        for address in addresses.into_iter().take(limit) {
            chunks.push(self.chunk_at(searcher, address)?);
        }
        Ok(chunks)
    }

    /// Chunk ids present in the index (used to check what a commit left behind).
    pub fn chunk_ids(&self) -> Result<HashSet<String>, IndexError> {
        let view = self.current_view();
        let mut ids = HashSet::new();
        for segment in view.searcher.segment_readers() {
            let store = segment.get_store_reader(64)?;
            for document in store.iter::<TantivyDocument>(segment.alive_bitset()) {
                let document = document?;
                if let Some(id) = document.get_first(self.fields.id).and_then(|value| value.as_str()) {
                    ids.insert(id.to_owned());
                }
            }
        }
        Ok(ids)
    }

    pub fn vector_count(&self) -> usize {
        read(&self.vectors).len()
    }

    /// Whether semantic search currently walks a graph (large index) rather than scanning.
    pub fn uses_graph(&self) -> bool {
        read(&self.graph).is_some()
    }

    /// Sets how many vectors an index needs before it gets a graph (`usize::MAX`: always exact).
    pub fn set_ann_min_vectors(&self, minimum: usize) {
        self.ann_min_vectors.store(minimum, Ordering::SeqCst);
        self.maintain_graph();
    }

    /// Blocks until a graph being built in the background is ready (benchmarks, tests).
    pub fn wait_for_graph(&self) {
        while self.graph_building.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Drops the graph of an index that became small, and for one that is large and has none (or whose
    /// graph holds too many deleted vectors) loads the saved graph or builds one, in the background.
    /// Searches stay exact meanwhile; vectors added since the save or during the build are inserted before
    /// the graph is switched on. A graph with many unsaved insertions is saved again.
    fn maintain_graph(&self) {
        let live = read(&self.vectors).len();
        let minimum = self.ann_min_vectors.load(Ordering::SeqCst);
        if live < minimum {
            write(&self.graph).take();
            return;
        }
        // A graph holding more than a third dead vectors is rebuilt; a healthy one is kept.
        let (healthy, unsaved, inserted) = read(&self.graph)
            .as_ref()
            .map_or((false, 0, 0), |graph| (graph.inserted() <= live + live / 3, graph.unsaved(), graph.inserted()));
        let needs_save = healthy && unsaved > 2000.max(inserted / 10);
        if healthy && !needs_save {
            return;
        }
        if self.graph_building.swap(true, Ordering::SeqCst) {
            return;
        }
        let vectors = self.vectors.clone();
        let graph_slot = self.graph.clone();
        let building = self.graph_building.clone();
        let dir = self.dir.clone();
        let dimension = lock(&self.meta).embedding_dim;
        let job = move || {
            if needs_save {
                save_graph(&graph_slot, &dir, dimension);
            } else {
                let loaded = read(&graph_slot).is_none() && load_graph(&vectors, &graph_slot, &dir, dimension);
                if !loaded {
                    build_graph(&vectors, &graph_slot, &dir);
                    save_graph(&graph_slot, &dir, dimension);
                }
            }
            building.store(false, Ordering::SeqCst);
        };
        if let Err(error) = std::thread::Builder::new().name("nexent-ann".into()).spawn(job) {
            tracing::error!(%error, "cannot start the vector graph thread; search stays exact");
            self.graph_building.store(false, Ordering::SeqCst);
        }
    }
}

/// Switches on the saved graph with the vectors added since it was saved; false when there is no usable one.
fn load_graph(
    vectors: &RwLock<VectorMatrix>,
    graph_slot: &RwLock<Option<AnnGraph>>,
    dir: &Path,
    dimension: usize,
) -> bool {
    let started = std::time::Instant::now();
    let mut graph = match AnnGraph::load(dir, dimension) {
        Ok(Some(graph)) => graph,
        Ok(None) => return false,
        Err(error) => {
            tracing::warn!(%error, index = %dir.display(), "rebuilding the vector graph");
            return false;
        }
    };
    // The matrix stays read-locked until the graph is switched on, so no commit falls in between.
    let matrix = read(vectors);
    let newer: Vec<(u64, Vec<f32>)> = matrix
        .live_rows()
        .into_iter()
        .filter(|(vec_id, _)| graph.max_vec_id().is_none_or(|max| *vec_id > max))
        .collect();
    let mut slot = write(graph_slot);
    for (vec_id, vector) in &newer {
        graph.insert(*vec_id, vector);
    }
    tracing::info!(index = %dir.display(), vectors = graph.inserted(), added = newer.len(), seconds = started.elapsed().as_secs_f64(), "vector graph loaded");
    *slot = Some(graph);
    true
}

/// Builds a graph from a snapshot on every core and switches it on. Vectors added meanwhile are few and
/// inserted one by one, unless there are many (an index being filled), in which case the build starts over.
fn build_graph(vectors: &RwLock<VectorMatrix>, graph_slot: &RwLock<Option<AnnGraph>>, dir: &Path) {
    let started = std::time::Instant::now();
    loop {
        let snapshot = read(vectors).live_rows();
        let known: HashSet<u64> = snapshot.iter().map(|(vec_id, _)| *vec_id).collect();
        let mut graph = AnnGraph::build(&snapshot);
        let matrix = read(vectors);
        let missing: Vec<(u64, Vec<f32>)> =
            matrix.live_rows().into_iter().filter(|(vec_id, _)| !known.contains(vec_id)).collect();
        if missing.len() > snapshot.len() / 10 {
            continue;
        }
        let mut slot = write(graph_slot);
        for (vec_id, vector) in &missing {
            graph.insert(*vec_id, vector);
        }
        *slot = Some(graph);
        tracing::info!(index = %dir.display(), vectors = snapshot.len(), seconds = started.elapsed().as_secs_f64(), "vector graph built");
        return;
    }
}

/// Saves the current graph beside the index (searches go on; insertions wait for the save).
fn save_graph(graph_slot: &RwLock<Option<AnnGraph>>, dir: &Path, dimension: usize) {
    let saved = read(graph_slot).as_ref().map(|graph| graph.save(dir, dimension));
    match saved {
        Some(Ok(covered)) => {
            if let Some(graph) = write(graph_slot).as_mut() {
                graph.mark_saved(covered);
            }
        }
        Some(Err(error)) => tracing::warn!(%error, index = %dir.display(), "the vector graph stays unsaved"),
        None => {}
    }
}

fn build_view(reader: &IndexReader) -> Result<SearchView, IndexError> {
    let searcher = reader.searcher();
    let mut address_of = HashMap::new();
    for (segment_ord, segment) in searcher.segment_readers().iter().enumerate() {
        let column = segment.fast_fields().u64("vec_id")?;
        for doc_id in segment.doc_ids_alive() {
            if let Some(vec_id) = column.first(doc_id) {
                address_of.insert(vec_id, DocAddress::new(segment_ord as u32, doc_id));
            }
        }
    }
    Ok(SearchView { searcher, address_of })
}

/// Discards everything since the last commit, so the index is as it was and a failed change is not
/// committed later by the next one. A writer that cannot roll back is dropped (the next change opens a
/// new one at the last commit) rather than kept with the failed change queued in it.
fn roll_back(slot: &mut Option<IndexWriter>) {
    if let Some(writer) = slot.as_mut()
        && let Err(error) = writer.rollback()
    {
        tracing::error!(%error, "rollback failed; reopening the writer");
        *slot = None;
    }
}

fn write_meta(dir: &Path, meta: &IndexMeta) -> Result<(), IndexError> {
    let text = serde_json::to_string_pretty(meta).map_err(|error| IndexError::Meta(error.to_string()))?;
    crate::config_sync::write_atomically(&dir.join(META_FILE), &text)?;
    Ok(())
}

fn folder_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(metadata) if metadata.is_dir() => folder_size(&entry.path()),
            Ok(metadata) => metadata.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(id: &str, path: &str, content: &str) -> Chunk {
        Chunk {
            id: id.into(),
            title: path.into(),
            filename: path.into(),
            path_or_url: path.into(),
            content: content.into(),
            file_size: 10,
            ..Chunk::default()
        }
    }

    fn axis(dimension: usize, hot: usize) -> Vec<f32> {
        let mut vector = vec![0.0; dimension];
        vector[hot] = 1.0;
        vector
    }

    /// Pseudo-random unit vectors (xorshift).
    fn unit_vectors(count: usize, dimension: usize) -> Vec<Vec<f32>> {
        let mut state = 88172645463325252u64;
        (0..count)
            .map(|_| {
                let mut vector: Vec<f32> = (0..dimension)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        (state % 2000) as f32 / 1000.0 - 1.0
                    })
                    .collect();
                crate::knowledge::embedder::normalise(&mut vector);
                vector
            })
            .collect()
    }

    #[test]
    fn the_vector_graph_is_saved_and_loaded_at_reopen_with_newer_vectors() -> Result<(), IndexError> {
        let dir = tempfile::tempdir()?;
        let vectors = unit_vectors(700, 8);
        let pairs = |range: std::ops::Range<usize>| -> Vec<(Chunk, Vec<f32>)> {
            range.map(|n| (chunk(&format!("c_{n}"), &format!("{n}.txt"), "text"), vectors[n].clone())).collect()
        };
        let record = dir.path().join("ann/graph.json");
        {
            let index = KnowledgeIndex::create(dir.path(), "kb", "model", 8)?;
            index.add_chunks(&pairs(0..500))?;
            index.set_ann_min_vectors(100);
            index.wait_for_graph();
            assert!(index.uses_graph());
        }
        let saved = std::fs::read_to_string(&record)?;
        assert!(saved.contains("\"max_vec_id\":499"), "{saved}");
        {
            let index = KnowledgeIndex::open(dir.path())?;
            index.set_ann_min_vectors(100);
            index.add_chunks(&pairs(500..700))?;
            index.wait_for_graph();
            assert!(index.uses_graph());
            assert_eq!(std::fs::read_to_string(&record)?, saved, "loaded, not rebuilt");
            // A vector added after the save is found through the graph.
            let (_, found) = &index.search_vector(&vectors[650], 1)?[0];
            assert_eq!(found.id, "c_650");
        }
        // A damaged record means a rebuild, not a failure to open.
        std::fs::write(&record, "not json")?;
        let index = KnowledgeIndex::open(dir.path())?;
        index.set_ann_min_vectors(100);
        index.wait_for_graph();
        assert!(index.uses_graph());
        assert!(std::fs::read_to_string(&record)?.contains("\"max_vec_id\":699"));
        Ok(())
    }

    #[test]
    fn adds_replaces_deletes_and_reopens_with_its_vectors() -> Result<(), IndexError> {
        let dir = tempfile::tempdir()?;
        let index = KnowledgeIndex::create(dir.path(), "kb", "model", 4)?;
        index.add_chunks(&[
            (chunk("t_0", "a.txt", "the quick brown fox"), axis(4, 0)),
            (chunk("t_1", "a.txt", "jumps over the lazy dog"), axis(4, 1)),
            (chunk("u_0", "b.txt", "lorem ipsum dolor"), axis(4, 2)),
        ])?;
        assert_eq!(index.search_keywords("foxes", 5)?.first().map(|(_, chunk)| chunk.id.clone()), Some("t_0".into()));
        assert_eq!(index.search_vector(&axis(4, 2), 1)?[0].1.id, "u_0");

        // The same id again replaces the chunk (and its vector) instead of adding a second one.
        index.add_chunks(&[(chunk("t_0", "a.txt", "a new text about otters"), axis(4, 3))])?;
        assert_eq!(index.chunk_ids()?.len(), 3);
        assert_eq!(index.vector_count(), 3);
        assert!(index.search_keywords("fox", 5)?.is_empty());
        assert_eq!(index.search_vector(&axis(4, 3), 1)?[0].1.content, "a new text about otters");

        assert_eq!(index.delete_path("a.txt")?, 2);
        assert_eq!(index.delete_path("a.txt")?, 0);
        let (stats, files) = index.stats_and_files(5)?;
        assert_eq!((stats.doc_count, stats.chunk_count), (1, 1));
        assert_eq!(files[0].path_or_url, "b.txt");
        assert_eq!(files[0].chunks.len(), 1);
        drop(index);

        let reopened = KnowledgeIndex::open(dir.path())?;
        assert_eq!(reopened.vector_count(), 1);
        assert_eq!(reopened.search_vector(&axis(4, 2), 3)?.len(), 1);
        reopened.add_chunks(&[(chunk("v_0", "c.txt", "fresh"), axis(4, 0))])?;
        assert_eq!(reopened.chunk_ids()?, ["u_0".to_owned(), "v_0".to_owned()].into_iter().collect());
        Ok(())
    }

    /// After a commit, only the time of the change is left to save; when that fails (a full disk: no room
    /// for the new `index.json`; here a folder stands in its way) the add and the delete still succeed, as
    /// they did: before, the caller was told they failed.
    #[test]
    fn a_commit_that_is_done_is_reported_done_when_its_time_cannot_be_saved() -> Result<(), IndexError> {
        let dir = tempfile::tempdir()?;
        let index = KnowledgeIndex::create(dir.path(), "kb", "model", 2)?;
        std::fs::remove_file(dir.path().join(META_FILE))?;
        std::fs::create_dir_all(dir.path().join(META_FILE).join("in-the-way"))?;
        assert_eq!(index.add_chunks(&[(chunk("a_0", "a.txt", "the quick brown fox"), vec![1.0, 0.0])])?, 1);
        assert_eq!(index.search_keywords("fox", 3)?.len(), 1);
        assert_eq!(index.delete_path("a.txt")?, 1);
        assert!(index.search_keywords("fox", 3)?.is_empty());
        Ok(())
    }

    #[test]
    fn keyword_queries_with_operators_are_plain_text() -> Result<(), IndexError> {
        let dir = tempfile::tempdir()?;
        let index = KnowledgeIndex::create(dir.path(), "kb", "model", 2)?;
        index.add_chunks(&[(chunk("a", "a", "title: colon (parens) AND \"quotes\""), vec![1.0, 0.0])])?;
        for query in ["title:", "(parens", "\"quotes", "AND OR NOT", "*", "a:b:c"] {
            index.search_keywords(query, 3)?;
        }
        assert_eq!(index.search_keywords("parens\"", 3)?.len(), 1);
        Ok(())
    }

    #[test]
    fn a_chinese_question_matches_documents_sharing_any_of_its_words() -> Result<(), IndexError> {
        let dir = tempfile::tempdir()?;
        let index = KnowledgeIndex::create(dir.path(), "kb", "model", 2)?;
        index.add_chunks(&[
            (chunk("bike", "bike", "青禾电动自行车的锂电池保修三年。"), vec![1.0, 0.0]),
            (chunk("library", "library", "图书馆每周一闭馆。"), vec![0.0, 1.0]),
        ])?;
        // Written without spaces and not word for word in the document: still found by its words.
        let hits = index.search_keywords("电动自行车的电池能保修多久", 3)?;
        assert_eq!(hits.first().map(|(_, chunk)| chunk.id.as_str()), Some("bike"), "{hits:?}");
        assert_eq!(hits.len(), 1, "the library shares no word: {hits:?}");
        Ok(())
    }
}
