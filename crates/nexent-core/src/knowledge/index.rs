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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use tantivy::collector::TopDocs;
use tantivy::query::{QueryParser, TermQuery};
use tantivy::schema::{
    BytesOptions, FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
    Value,
};
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term};

use super::analyzer::{MIXED_ANALYZER, mixed_analyzer};
use super::chunk::Chunk;
use super::vectors::{VectorMatrix, vector_from_bytes, vector_to_bytes};
use crate::clock::now_millis;

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
}

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
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
    let text = TextOptions::default().set_stored().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(MIXED_ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    builder.add_text_field("id", STRING | STORED);
    builder.add_text_field("title", text.clone());
    builder.add_text_field("filename", STRING | STORED | FAST);
    builder.add_text_field("path_or_url", STRING | STORED | FAST);
    builder.add_text_field("source_type", STRING | STORED);
    builder.add_text_field("language", STRING | STORED);
    builder.add_text_field("author", STRING | STORED);
    builder.add_text_field("date", STRING | STORED);
    builder.add_text_field("content", text);
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
    vectors: RwLock<VectorMatrix>,
    meta: Mutex<IndexMeta>,
    next_vec_id: AtomicU64,
    search_count: AtomicU64,
    hit_count: AtomicU64,
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

    /// Whether `dir` holds a complete index (its metadata was written).
    pub fn exists(dir: &Path) -> bool {
        dir.join(META_FILE).is_file()
    }

    fn from_parts(dir: &Path, index: Index, meta: IndexMeta) -> Result<Self, IndexError> {
        index.tokenizers().register(MIXED_ANALYZER, mixed_analyzer());
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
        Ok(Self {
            dir: dir.to_path_buf(),
            index,
            reader,
            fields,
            writer: Mutex::new(None),
            view: RwLock::new(Arc::new(view)),
            vectors: RwLock::new(vectors),
            search_count: AtomicU64::new(meta.total_search_count),
            hit_count: AtomicU64::new(meta.hit_count),
            meta: Mutex::new(meta),
            next_vec_id: AtomicU64::new(next_vec_id),
        })
    }

    pub fn meta(&self) -> IndexMeta {
        let mut meta = lock(&self.meta).clone();
        meta.total_search_count = self.search_count.load(Ordering::Relaxed);
        meta.hit_count = self.hit_count.load(Ordering::Relaxed);
        meta
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn current_view(&self) -> Arc<SearchView> {
        self.view.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Adds chunks with their vectors in one commit, replacing chunks with the same ids.
    /// Returns how many were indexed. On any error nothing is changed.
    pub fn add_chunks(&self, chunks: &[(Chunk, Vec<f32>)]) -> Result<usize, IndexError> {
        let mut writer_slot = lock(&self.writer);
        let writer = self.writer_in(&mut writer_slot)?;
        let view = self.current_view();
        let mut replaced = Vec::new();
        let mut added = Vec::with_capacity(chunks.len());
        let first_vec_id = self.next_vec_id.load(Ordering::SeqCst);
        let attempt = (|| -> Result<(), IndexError> {
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
            // Discards everything since the last commit; the index is as it was.
            if let Err(rollback_error) = writer.rollback() {
                tracing::error!(error = %rollback_error, "rollback failed; reopening the writer");
                *writer_slot = None;
            }
            return Err(error);
        }
        self.next_vec_id.store(first_vec_id + chunks.len() as u64, Ordering::SeqCst);
        self.refresh_view()?;
        {
            let mut vectors = self.vectors.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            for vec_id in replaced {
                vectors.remove(vec_id);
            }
            for (vec_id, vector) in added {
                vectors.insert(vec_id, vector);
            }
        }
        self.touch()?;
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
            let _ = writer.rollback();
            return Err(error.into());
        }
        self.refresh_view()?;
        {
            let mut vectors = self.vectors.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            for vec_id in &removed {
                vectors.remove(*vec_id);
            }
        }
        self.touch()?;
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
        *self.view.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(view);
        Ok(())
    }

    fn touch(&self) -> Result<(), IndexError> {
        let mut meta = lock(&self.meta);
        meta.updated_ms = now_millis();
        meta.total_search_count = self.search_count.load(Ordering::Relaxed);
        meta.hit_count = self.hit_count.load(Ordering::Relaxed);
        write_meta(&self.dir, &meta)?;
        Ok(())
    }

    /// Persists the search counters (called on shutdown and periodically by the service).
    pub fn flush_counters(&self) -> Result<(), IndexError> {
        let mut meta = lock(&self.meta);
        meta.total_search_count = self.search_count.load(Ordering::Relaxed);
        meta.hit_count = self.hit_count.load(Ordering::Relaxed);
        write_meta(&self.dir, &meta)?;
        Ok(())
    }

    fn record_search(&self, hits: usize) {
        self.search_count.fetch_add(1, Ordering::Relaxed);
        if hits > 0 {
            self.hit_count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// BM25 over title and content; the query is plain text (operators are not interpreted).
    pub fn search_keywords(&self, query: &str, limit: usize) -> Result<Vec<(f32, Chunk)>, IndexError> {
        let view = self.current_view();
        let mut parser = QueryParser::for_index(&self.index, vec![self.fields.title, self.fields.content]);
        parser.set_field_boost(self.fields.title, 1.0);
        let plain: String =
            query.chars().map(|character| if character.is_alphanumeric() { character } else { ' ' }).collect();
        let (parsed, _ignored) = parser.parse_query_lenient(&plain);
        let top = view.searcher.search(&parsed, &TopDocs::with_limit(limit.max(1)).order_by_score())?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            hits.push((score, self.chunk_at(&view.searcher, address)?));
        }
        self.record_search(hits.len());
        Ok(hits)
    }

    /// Cosine similarity over the stored vectors (exact).
    pub fn search_vector(&self, query: &[f32], limit: usize) -> Result<Vec<(f32, Chunk)>, IndexError> {
        let view = self.current_view();
        let nearest = self.vectors.read().unwrap_or_else(|poisoned| poisoned.into_inner()).search(query, limit);
        let mut hits = Vec::with_capacity(nearest.len());
        for hit in nearest {
            // A vector whose chunk is not in this view was changed by a concurrent commit: skip it.
            if let Some(address) = view.address_of.get(&hit.vec_id) {
                hits.push((hit.similarity, self.chunk_at(&view.searcher, *address)?));
            }
        }
        self.record_search(hits.len());
        Ok(hits)
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
        self.vectors.read().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
