//! The knowledge store on PostgreSQL, for several nodes sharing one deployment: every node reads and writes
//! the same bases, so a document uploaded through one node is searchable through all of them.
//!
//! Layout: `knowledge_index` lists the bases (model, dimension, dates, counters, and the two figures BM25
//! needs: chunk count and total length). Each base has two tables named by its id, so deleting a base is
//! dropping them and each vector column has the base's dimension:
//! - `knowledge_chunk_<id>`: one row per chunk with Nexent's fields, its analysed length and its vector
//!   (pgvector, with an HNSW index on cosine distance);
//! - `knowledge_posting_<id>`: (term, chunk, term frequency, chunk length), the inverted index.
//!
//! Keyword search is BM25 computed in SQL from those statistics, with Tantivy's formula and constants
//! (k1 = 1.2, b = 0.75, idf = ln(1 + (N - df + 0.5) / (df + 0.5))) over the same analyser's terms, so the
//! two stores rank alike. PostgreSQL's own `ts_rank_cd` is not BM25 (no idf, no length normalisation of
//! that kind) and would change hybrid search's quality. One difference remains: a query's terms are a
//! bag, where Tantivy reads a run of CJK text without spaces as a phrase.
//!
//! Consistency: a write locks its base's `knowledge_index` row, so writers to one base (on any node)
//! take turns and the counters stay exact; each write is one transaction. The schema is created at
//! start-up under an advisory lock, so nodes may start at once.

use std::collections::HashMap;

use async_trait::async_trait;
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::analyzer::analyse;
use super::chunk::Chunk;
use super::index::{IndexMeta, IndexStats, IndexedFile};
use super::store::{KnowledgeStore, ListHit, ListQuery, Ranker, ResultLists};
use super::{CreateOutcome, KnowledgeError, SearchHit};
use crate::clock::now_millis;
use crate::db::{Database, Dialect};

/// Any number will do as long as no other code of ours takes the same advisory lock.
const SCHEMA_LOCK: i64 = 0x6e65_7865_6e74_4b53;
/// pgvector's HNSW index takes vectors of at most this many dimensions; larger ones are scanned exactly.
const HNSW_MAX_DIMENSIONS: usize = 2000;
/// Rows per INSERT statement when writing chunks and postings.
const WRITE_BATCH: usize = 256;
/// BM25's constants, as Tantivy (and Lucene) use them.
const BM25_K1: f64 = 1.2;
const BM25_B: f64 = 0.75;

pub struct PostgresStore {
    db: Database,
}

/// Columns of a chunk row as they map onto [`Chunk`].
const CHUNK_COLUMNS: &str = "row_id, chunk_id, title, filename, path_or_url, source_type, language, author, \
     date_text, content, process_source, embedding_model_name, file_size, create_time, languages";

impl PostgresStore {
    /// Creates the schema when missing (the `vector` extension included) on a PostgreSQL database.
    pub async fn open(db: Database) -> Result<Self, KnowledgeError> {
        if db.dialect() != Dialect::Postgres {
            return Err(KnowledgeError::Store("the PostgreSQL knowledge store needs a PostgreSQL database".into()));
        }
        let mut transaction = db.pool().begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SCHEMA_LOCK).execute(&mut *transaction).await?;
        sqlx::query("CREATE EXTENSION IF NOT EXISTS vector").execute(&mut *transaction).await.map_err(|error| {
            KnowledgeError::Store(format!(
                "the database lacks the pgvector extension, which the PostgreSQL knowledge store needs \
                 (install it, or keep the knowledge bases in Tantivy with --knowledge-store tantivy): {error}"
            ))
        })?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS knowledge_index (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                embedding_model TEXT NOT NULL,
                embedding_dim BIGINT NOT NULL,
                created_ms BIGINT NOT NULL,
                updated_ms BIGINT NOT NULL,
                search_count BIGINT NOT NULL DEFAULT 0,
                hit_count BIGINT NOT NULL DEFAULT 0,
                search_micros BIGINT NOT NULL DEFAULT 0,
                chunk_count BIGINT NOT NULL DEFAULT 0,
                total_length BIGINT NOT NULL DEFAULT 0
            )",
        )
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(Self { db })
    }

    /// The ids of `names`, in order, in one query (a search's hot path).
    async fn ids_of(&self, names: &[String]) -> Result<Vec<i64>, KnowledgeError> {
        let rows = sqlx::query(
            "SELECT id, name FROM knowledge_index WHERE name IN (SELECT json_array_elements_text($1::json))",
        )
        .bind(json!(names).to_string())
        .fetch_all(self.db.pool())
        .await?;
        let found: HashMap<String, i64> = rows.iter().map(|row| (row.get("name"), row.get("id"))).collect();
        names
            .iter()
            .map(|name| found.get(name).copied().ok_or_else(|| KnowledgeError::IndexNotFound(name.clone())))
            .collect()
    }

    /// The keyword list of one base: BM25 over the postings of the query's terms, in one statement (one
    /// snapshot of the statistics and the postings). The postings are read term by term from the primary
    /// key, which carries tf and length (an index-only scan); `OFFSET 0` keeps the planner from turning
    /// that into a hash join over every posting of the base, which it prefers because it cannot tell how
    /// few terms the JSON holds (measured: 540 ms against 21 ms per query at 100k chunks).
    async fn keyword_list(&self, id: i64, text: &str, depth: usize) -> Result<Vec<(u64, f32)>, KnowledgeError> {
        let mut repeats: HashMap<String, u32> = HashMap::new();
        for term in analyse(text) {
            *repeats.entry(term).or_default() += 1;
        }
        if repeats.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "WITH query AS (SELECT key AS term, value::float8 AS repeats FROM json_each_text($1::json)),
             stats AS (SELECT GREATEST(chunk_count, 1)::float8 AS n,
                              GREATEST(total_length::float8 / GREATEST(chunk_count, 1), 1) AS average_length
                       FROM knowledge_index WHERE id = $2),
             weights AS (SELECT query.term, query.repeats * ln(1 + (stats.n - df.df + 0.5) / (df.df + 0.5)) AS weight
                         FROM query CROSS JOIN stats
                         CROSS JOIN LATERAL (SELECT count(*)::float8 AS df FROM {postings} p WHERE p.term = query.term) df
                         WHERE df.df > 0)
             SELECT p.row_id,
                    SUM(weights.weight * p.tf * {k1_plus_one}
                        / (p.tf + {k1} * ({one_minus_b} + {b} * p.length / stats.average_length)))::float8 AS score
             FROM weights
             CROSS JOIN LATERAL (SELECT row_id, tf, length FROM {postings} p WHERE p.term = weights.term OFFSET 0) p
             CROSS JOIN stats
             GROUP BY p.row_id ORDER BY score DESC, p.row_id LIMIT $3",
            postings = postings_table(id),
            k1 = BM25_K1,
            k1_plus_one = BM25_K1 + 1.0,
            b = BM25_B,
            one_minus_b = 1.0 - BM25_B,
        );
        let rows = statement(&sql)
            .bind(
                Value::from(
                    repeats.into_iter().map(|(term, count)| (term, json!(count))).collect::<serde_json::Map<_, _>>(),
                )
                .to_string(),
            )
            .bind(id)
            .bind(depth as i64)
            .fetch_all(self.db.pool())
            .await?;
        Ok(rows.iter().map(|row| (row.get::<i64, _>("row_id") as u64, row.get::<f64, _>("score") as f32)).collect())
    }

    /// The vector list of one base: nearest by cosine distance through the HNSW index.
    async fn vector_list(&self, id: i64, vector: &[f32], depth: usize) -> Result<Vec<(u64, f32)>, KnowledgeError> {
        let mut transaction = self.db.pool().begin().await?;
        // The graph walk keeps this many candidates; more than the depth so the cut is not the graph's.
        let candidates = (depth * 2).clamp(40, 1000);
        sqlx::query(
            "SELECT set_config('hnsw.ef_search', $1, true), set_config('hnsw.iterative_scan', 'strict_order', true)",
        )
        .bind(candidates.to_string())
        .execute(&mut *transaction)
        .await?;
        let sql = format!(
            "SELECT row_id, (1 - (embedding <=> $1::vector))::float8 AS similarity FROM {chunks}
             ORDER BY embedding <=> $1::vector LIMIT $2",
            chunks = chunks_table(id)
        );
        let rows = statement(&sql).bind(vector_literal(vector)).bind(depth as i64).fetch_all(&mut *transaction).await?;
        transaction.commit().await?;
        Ok(rows
            .iter()
            .map(|row| (row.get::<i64, _>("row_id") as u64, row.get::<f64, _>("similarity") as f32))
            .collect())
    }

    /// Adds one list's run to a base's counters; a lost update of a counter is not worth failing a search.
    fn record_search(&self, id: i64, hits: usize, started: std::time::Instant) {
        let pool = self.db.pool().clone();
        let micros = i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX);
        tokio::spawn(async move {
            let result = sqlx::query(
                "UPDATE knowledge_index SET search_count = search_count + 1, hit_count = hit_count + $1,
                 search_micros = search_micros + $2 WHERE id = $3",
            )
            .bind(i64::from(hits > 0))
            .bind(micros)
            .bind(id)
            .execute(&pool)
            .await;
            if let Err(error) = result {
                tracing::debug!(%error, "cannot count a search");
            }
        });
    }
}

/// A statement whose text names a base's tables. Those names are built from the base's integer id only,
/// and every value a client sends is a bound parameter, so the text cannot carry an injection.
fn statement<'a>(sql: &str) -> sqlx::query::Query<'a, sqlx::Any, sqlx::any::AnyArguments> {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
}

/// Locks a base's row for the rest of `transaction` (writers to one base take turns, on every node) and
/// returns its id.
async fn lock_base(transaction: &mut sqlx::Transaction<'_, sqlx::Any>, name: &str) -> Result<i64, KnowledgeError> {
    Ok(sqlx::query("SELECT id FROM knowledge_index WHERE name = $1 FOR UPDATE")
        .bind(name)
        .fetch_optional(&mut **transaction)
        .await?
        .ok_or_else(|| KnowledgeError::IndexNotFound(name.to_owned()))?
        .get("id"))
}

fn chunks_table(id: i64) -> String {
    format!("knowledge_chunk_{id}")
}

fn postings_table(id: i64) -> String {
    format!("knowledge_posting_{id}")
}

/// PostgreSQL's text cannot hold NUL (Tantivy's can): a NUL in a field or an id is dropped on the way in,
/// the same way for a write and a later delete, so a document with one is stored rather than refused.
fn pg_text(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') { std::borrow::Cow::Owned(text.replace('\0', "")) } else { std::borrow::Cow::Borrowed(text) }
}

/// pgvector's text form, `[0.1,0.2,...]` (Rust prints the shortest text that reads back to the same f32).
fn vector_literal(vector: &[f32]) -> String {
    let mut text = String::with_capacity(vector.len() * 10 + 2);
    text.push('[');
    for (position, value) in vector.iter().enumerate() {
        if position > 0 {
            text.push(',');
        }
        // pgvector refuses NaN and infinities; an embedder never yields them, and 0 is the safe reading.
        let value = if value.is_finite() { *value } else { 0.0 };
        text.push_str(&value.to_string());
    }
    text.push(']');
    text
}

/// Term frequencies and the length (terms counted) of a chunk's searchable text, which is Tantivy's
/// `search_text`: the title, then the content.
fn postings_of(chunk: &Chunk) -> (HashMap<String, i64>, i64) {
    let terms = analyse(&format!("{}\n{}", chunk.title, chunk.content));
    let length = terms.len() as i64;
    let mut frequencies: HashMap<String, i64> = HashMap::new();
    for term in terms {
        *frequencies.entry(term).or_default() += 1;
    }
    (frequencies, length)
}

fn chunk_of(row: &AnyRow) -> Chunk {
    let text = |column: &str| row.try_get::<String, _>(column).unwrap_or_default();
    Chunk {
        id: text("chunk_id"),
        title: text("title"),
        filename: text("filename"),
        path_or_url: text("path_or_url"),
        source_type: text("source_type"),
        language: text("language"),
        author: text("author"),
        date: text("date_text"),
        content: text("content"),
        process_source: text("process_source"),
        embedding_model_name: text("embedding_model_name"),
        file_size: row.try_get::<i64, _>("file_size").unwrap_or(0).max(0) as u64,
        create_time: text("create_time"),
        languages: serde_json::from_str(&text("languages")).unwrap_or_default(),
    }
}

fn meta_of(row: &AnyRow) -> IndexMeta {
    let count = |column: &str| row.get::<i64, _>(column).max(0) as u64;
    IndexMeta {
        name: row.get("name"),
        embedding_model: row.get("embedding_model"),
        embedding_dim: row.get::<i64, _>("embedding_dim").max(0) as usize,
        created_ms: row.get("created_ms"),
        updated_ms: row.get("updated_ms"),
        total_search_count: count("search_count"),
        hit_count: count("hit_count"),
        total_search_micros: count("search_micros"),
    }
}

/// A table dropped by a concurrent deletion reads as the base being gone.
fn missing_base(error: KnowledgeError, name: &str) -> KnowledgeError {
    match &error {
        KnowledgeError::Database(sqlx::Error::Database(database)) if database.code().as_deref() == Some("42P01") => {
            KnowledgeError::IndexNotFound(name.to_owned())
        }
        _ => error,
    }
}

const META_COLUMNS: &str = "name, embedding_model, embedding_dim, created_ms, updated_ms, search_count, hit_count, \
     search_micros";

#[async_trait]
impl KnowledgeStore for PostgresStore {
    fn engine(&self) -> &'static str {
        "postgres"
    }

    async fn names(&self) -> Result<Vec<String>, KnowledgeError> {
        let rows = sqlx::query("SELECT name FROM knowledge_index ORDER BY name COLLATE \"C\"")
            .fetch_all(self.db.pool())
            .await?;
        Ok(rows.iter().map(|row| row.get("name")).collect())
    }

    async fn meta(&self, name: &str) -> Result<Option<IndexMeta>, KnowledgeError> {
        let row = statement(&format!("SELECT {META_COLUMNS} FROM knowledge_index WHERE name = $1"))
            .bind(name)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(row.as_ref().map(meta_of))
    }

    async fn create(
        &self,
        name: &str,
        embedding_model: &str,
        embedding_dim: usize,
    ) -> Result<CreateOutcome, KnowledgeError> {
        let now = now_millis();
        let mut transaction = self.db.pool().begin().await?;
        // A concurrent creation of the same name waits here for the first one's commit, then does nothing.
        let inserted = sqlx::query(
            "INSERT INTO knowledge_index (name, embedding_model, embedding_dim, created_ms, updated_ms)
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(name)
        .bind(embedding_model)
        .bind(embedding_dim as i64)
        .bind(now)
        .fetch_optional(&mut *transaction)
        .await?;
        let Some(row) = inserted else {
            transaction.rollback().await?;
            let existing = self.meta(name).await?.ok_or_else(|| KnowledgeError::IndexNotFound(name.to_owned()))?;
            return Ok(CreateOutcome::existing(&existing));
        };
        let id: i64 = row.get("id");
        let (chunks, postings) = (chunks_table(id), postings_table(id));
        let mut statements = vec![
            format!(
                "CREATE TABLE {chunks} (
                    row_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    chunk_id TEXT NOT NULL UNIQUE,
                    title TEXT NOT NULL, filename TEXT NOT NULL, path_or_url TEXT NOT NULL,
                    source_type TEXT NOT NULL, language TEXT NOT NULL, author TEXT NOT NULL,
                    date_text TEXT NOT NULL, content TEXT NOT NULL, process_source TEXT NOT NULL,
                    embedding_model_name TEXT NOT NULL, file_size BIGINT NOT NULL, create_time TEXT NOT NULL,
                    languages TEXT NOT NULL, length BIGINT NOT NULL,
                    embedding vector({embedding_dim}) NOT NULL
                )"
            ),
            format!("CREATE INDEX {chunks}_path ON {chunks} (path_or_url)"),
            format!(
                "CREATE TABLE {postings} (term TEXT NOT NULL, row_id BIGINT NOT NULL, tf BIGINT NOT NULL,
                 length BIGINT NOT NULL, PRIMARY KEY (term, row_id) INCLUDE (tf, length))"
            ),
            format!("CREATE INDEX {postings}_row ON {postings} (row_id)"),
        ];
        if embedding_dim <= HNSW_MAX_DIMENSIONS {
            statements.push(format!("CREATE INDEX {chunks}_hnsw ON {chunks} USING hnsw (embedding vector_cosine_ops)"));
        }
        for sql in statements {
            statement(&sql).execute(&mut *transaction).await?;
        }
        transaction.commit().await?;
        Ok(CreateOutcome::created(embedding_model, embedding_dim))
    }

    async fn delete(&self, name: &str) -> Result<(), KnowledgeError> {
        let mut transaction = self.db.pool().begin().await?;
        let row = sqlx::query("DELETE FROM knowledge_index WHERE name = $1 RETURNING id")
            .bind(name)
            .fetch_optional(&mut *transaction)
            .await?
            .ok_or_else(|| KnowledgeError::IndexNotFound(name.to_owned()))?;
        let id: i64 = row.get("id");
        statement(&format!("DROP TABLE IF EXISTS {}, {}", postings_table(id), chunks_table(id)))
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn stats_and_files(
        &self,
        name: &str,
        chunks_per_file: usize,
    ) -> Result<(IndexStats, Vec<IndexedFile>), KnowledgeError> {
        let result: Result<_, KnowledgeError> = async {
            let mut transaction = self.db.pool().begin().await?;
            // One snapshot for every figure below.
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(&mut *transaction).await?;
            let row = statement(&format!("SELECT id, chunk_count, {META_COLUMNS} FROM knowledge_index WHERE name = $1"))
                .bind(name)
                .fetch_optional(&mut *transaction)
                .await?
                .ok_or_else(|| KnowledgeError::IndexNotFound(name.to_owned()))?;
            let meta = meta_of(&row);
            let id: i64 = row.get("id");
            let chunk_count = row.get::<i64, _>("chunk_count").max(0) as u64;
            let (chunks, postings) = (chunks_table(id), postings_table(id));
            let file_rows = statement(&format!(
                "SELECT c.path_or_url, c.filename, c.file_size, c.create_time, f.chunks
                 FROM (SELECT path_or_url, min(row_id) AS first_row, count(*)::bigint AS chunks
                       FROM {chunks} GROUP BY path_or_url) f
                 JOIN {chunks} c ON c.row_id = f.first_row ORDER BY f.first_row"
            ))
            .fetch_all(&mut *transaction)
            .await?;
            let mut chunks_by_path: HashMap<String, Vec<Chunk>> = HashMap::new();
            if chunks_per_file > 0 {
                let rows = statement(&format!(
                    "SELECT {CHUNK_COLUMNS} FROM (SELECT *, row_number() OVER (PARTITION BY path_or_url ORDER BY row_id) AS rank
                     FROM {chunks}) ranked WHERE rank <= $1 ORDER BY row_id"
                ))
                .bind(chunks_per_file as i64)
                .fetch_all(&mut *transaction)
                .await?;
                for row in &rows {
                    let chunk = chunk_of(row);
                    chunks_by_path.entry(chunk.path_or_url.clone()).or_default().push(chunk);
                }
            }
            let most_common = |column: &'static str| {
                format!("SELECT {column} AS value FROM {chunks} GROUP BY {column} ORDER BY count(*) DESC, {column} COLLATE \"C\" LIMIT 1")
            };
            let process_source = statement(&most_common("process_source")).fetch_optional(&mut *transaction).await?;
            let model = statement(&most_common("embedding_model_name")).fetch_optional(&mut *transaction).await?;
            let size = statement(&format!(
                "SELECT (pg_total_relation_size('{chunks}') + pg_total_relation_size('{postings}'))::bigint AS size"
            ))
            .fetch_one(&mut *transaction)
            .await?;
            transaction.commit().await?;
            let files: Vec<IndexedFile> = file_rows
                .iter()
                .map(|row| {
                    let path_or_url: String = row.get("path_or_url");
                    IndexedFile {
                        chunks: chunks_by_path.remove(&path_or_url).unwrap_or_default(),
                        filename: row.get("filename"),
                        file_size: row.get::<i64, _>("file_size").max(0) as u64,
                        create_time: row.get("create_time"),
                        chunk_count: row.get::<i64, _>("chunks").max(0) as usize,
                        path_or_url,
                    }
                })
                .collect();
            let stats = IndexStats {
                doc_count: files.len(),
                chunk_count,
                store_size_bytes: size.get::<i64, _>("size").max(0) as u64,
                process_source: process_source.map_or_else(|| "Unknown".to_owned(), |row| row.get("value")),
                embedding_model: model.map_or_else(|| meta.embedding_model.clone(), |row| row.get("value")),
                meta,
            };
            Ok((stats, files))
        }
        .await;
        result.map_err(|error| missing_base(error, name))
    }

    async fn write(
        &self,
        name: &str,
        replace_path: Option<&str>,
        chunks: Vec<(Chunk, Vec<f32>)>,
    ) -> Result<usize, KnowledgeError> {
        // Within one write, the last chunk with an id wins (as a later Tantivy delete-then-add would).
        let mut last_of_id: HashMap<&str, usize> = HashMap::new();
        for (position, (chunk, _)) in chunks.iter().enumerate() {
            last_of_id.insert(chunk.id.as_str(), position);
        }
        let kept: Vec<&(Chunk, Vec<f32>)> = chunks
            .iter()
            .enumerate()
            .filter(|(position, (chunk, _))| last_of_id[chunk.id.as_str()] == *position)
            .map(|(_, pair)| pair)
            .collect();

        let mut transaction = self.db.pool().begin().await?;
        let id = lock_base(&mut transaction, name).await?;
        let (chunk_table, posting_table) = (chunks_table(id), postings_table(id));

        // What goes: the replaced file's chunks (none when no path is given: `= NULL` matches nothing), and
        // chunks whose ids are written again.
        let ids: Vec<std::borrow::Cow<'_, str>> = kept.iter().map(|(chunk, _)| pg_text(&chunk.id)).collect();
        let removed = statement(&format!(
            "DELETE FROM {chunk_table} WHERE path_or_url = $1
                OR chunk_id IN (SELECT json_array_elements_text($2::json))
             RETURNING row_id, length"
        ))
        .bind(replace_path.map(|path| pg_text(path).into_owned()))
        .bind(json!(ids).to_string())
        .fetch_all(&mut *transaction)
        .await?;
        let removed_ids: Vec<i64> = removed.iter().map(|row| row.get("row_id")).collect();
        let removed_length: i64 = removed.iter().map(|row| row.get::<i64, _>("length")).sum();
        for batch in removed_ids.chunks(WRITE_BATCH * 16) {
            statement(&format!(
                "DELETE FROM {posting_table} WHERE row_id IN (SELECT value::bigint FROM json_array_elements_text($1::json))"
            ))
            .bind(json!(batch.iter().map(|id| id.to_string()).collect::<Vec<_>>()).to_string())
            .execute(&mut *transaction)
            .await?;
        }

        let mut added_length = 0i64;
        for batch in kept.chunks(WRITE_BATCH) {
            let mut records = Vec::with_capacity(batch.len());
            let mut postings_by_id = HashMap::with_capacity(batch.len());
            for (chunk, vector) in batch {
                let (frequencies, length) = postings_of(chunk);
                added_length += length;
                let languages = serde_json::to_string(&chunk.languages).unwrap_or_else(|_| "[]".into());
                records.push(json!({
                    "chunk_id": pg_text(&chunk.id), "title": pg_text(&chunk.title),
                    "filename": pg_text(&chunk.filename), "path_or_url": pg_text(&chunk.path_or_url),
                    "source_type": pg_text(&chunk.source_type), "language": pg_text(&chunk.language),
                    "author": pg_text(&chunk.author), "date_text": pg_text(&chunk.date),
                    "content": pg_text(&chunk.content), "process_source": pg_text(&chunk.process_source),
                    "embedding_model_name": pg_text(&chunk.embedding_model_name),
                    "file_size": chunk.file_size.min(i64::MAX as u64), "create_time": pg_text(&chunk.create_time),
                    "languages": pg_text(&languages), "length": length, "embedding": vector_literal(vector),
                }));
                postings_by_id.insert(pg_text(&chunk.id).into_owned(), (frequencies, length));
            }
            let inserted = statement(&format!(
                "INSERT INTO {chunk_table} (chunk_id, title, filename, path_or_url, source_type, language, author,
                     date_text, content, process_source, embedding_model_name, file_size, create_time, languages,
                     length, embedding)
                 SELECT chunk_id, title, filename, path_or_url, source_type, language, author, date_text, content,
                        process_source, embedding_model_name, file_size, create_time, languages, length,
                        embedding::vector
                 FROM json_to_recordset($1::json) AS x(chunk_id text, title text, filename text, path_or_url text,
                     source_type text, language text, author text, date_text text, content text,
                     process_source text, embedding_model_name text, file_size bigint, create_time text,
                     languages text, length bigint, embedding text)
                 RETURNING row_id, chunk_id"
            ))
            .bind(Value::Array(records).to_string())
            .fetch_all(&mut *transaction)
            .await?;
            let mut postings = Vec::new();
            for row in &inserted {
                let row_id: i64 = row.get("row_id");
                let chunk_id: String = row.get("chunk_id");
                if let Some((frequencies, length)) = postings_by_id.get(chunk_id.as_str()) {
                    for (term, frequency) in frequencies {
                        postings.push(json!({"term": term, "row_id": row_id, "tf": frequency, "length": length}));
                    }
                }
            }
            for postings in postings.chunks(WRITE_BATCH * 32) {
                statement(&format!(
                    "INSERT INTO {posting_table} (term, row_id, tf, length)
                     SELECT term, row_id, tf, length
                     FROM json_to_recordset($1::json) AS x(term text, row_id bigint, tf bigint, length bigint)"
                ))
                .bind(Value::Array(postings.to_vec()).to_string())
                .execute(&mut *transaction)
                .await?;
            }
        }
        sqlx::query(
            "UPDATE knowledge_index SET chunk_count = chunk_count + $1, total_length = total_length + $2,
             updated_ms = $3 WHERE id = $4",
        )
        .bind(kept.len() as i64 - removed_ids.len() as i64)
        .bind(added_length - removed_length)
        .bind(now_millis())
        .bind(id)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await.map_err(|error| missing_base(error.into(), name))?;
        Ok(chunks.len())
    }

    async fn delete_path(&self, name: &str, path_or_url: &str) -> Result<usize, KnowledgeError> {
        let mut transaction = self.db.pool().begin().await?;
        let id = lock_base(&mut transaction, name).await?;
        let removed =
            statement(&format!("DELETE FROM {} WHERE path_or_url = $1 RETURNING row_id, length", chunks_table(id)))
                .bind(pg_text(path_or_url).into_owned())
                .fetch_all(&mut *transaction)
                .await?;
        if removed.is_empty() {
            return Ok(0);
        }
        let removed_ids: Vec<String> = removed.iter().map(|row| row.get::<i64, _>("row_id").to_string()).collect();
        statement(&format!(
            "DELETE FROM {} WHERE row_id IN (SELECT value::bigint FROM json_array_elements_text($1::json))",
            postings_table(id)
        ))
        .bind(json!(removed_ids).to_string())
        .execute(&mut *transaction)
        .await?;
        let removed_length: i64 = removed.iter().map(|row| row.get::<i64, _>("length")).sum();
        sqlx::query(
            "UPDATE knowledge_index SET chunk_count = chunk_count - $1, total_length = total_length - $2,
             updated_ms = $3 WHERE id = $4",
        )
        .bind(removed.len() as i64)
        .bind(removed_length)
        .bind(now_millis())
        .bind(id)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(removed.len())
    }

    async fn search(&self, names: &[String], query: ListQuery, rank: Ranker) -> Result<Vec<SearchHit>, KnowledgeError> {
        let ids = self.ids_of(names).await?;
        let mut lists = ResultLists::default();
        for (position, (&id, name)) in ids.iter().zip(names).enumerate() {
            let keyword = async {
                if !query.keywords {
                    return Ok(Vec::new());
                }
                let started = std::time::Instant::now();
                let hits = self.keyword_list(id, &query.text, query.depth).await?;
                self.record_search(id, hits.len(), started);
                Ok::<_, KnowledgeError>(hits)
            };
            let vector = async {
                let Some(vector) = query.vector_for(position) else { return Ok(Vec::new()) };
                let started = std::time::Instant::now();
                let hits = self.vector_list(id, vector, query.depth).await?;
                self.record_search(id, hits.len(), started);
                Ok::<_, KnowledgeError>(hits)
            };
            // The two lists run on two connections at once.
            let (keyword, vector) = tokio::join!(keyword, vector);
            let keyword = keyword.map_err(|error| missing_base(error, name))?;
            let vector = vector.map_err(|error| missing_base(error, name))?;
            lists.keyword.extend(keyword.into_iter().map(|(key, score)| ListHit { position, key, score }));
            lists.vector.extend(vector.into_iter().map(|(key, score)| ListHit { position, key, score }));
        }
        let ranked = rank(lists);
        // The chunks of the ranking, read per base in one statement each.
        let mut hits = Vec::with_capacity(ranked.len());
        let mut chunks: HashMap<(usize, u64), Chunk> = HashMap::new();
        for (position, (&id, name)) in ids.iter().zip(names).enumerate() {
            let keys: Vec<String> =
                ranked.iter().filter(|hit| hit.position == position).map(|hit| hit.key.to_string()).collect();
            if keys.is_empty() {
                continue;
            }
            let rows = statement(&format!(
                "SELECT {CHUNK_COLUMNS} FROM {} WHERE row_id IN (SELECT value::bigint FROM json_array_elements_text($1::json))",
                chunks_table(id)
            ))
            .bind(json!(keys).to_string())
            .fetch_all(self.db.pool())
            .await
            .map_err(|error| missing_base(error.into(), name))?;
            for row in &rows {
                chunks.insert((position, row.get::<i64, _>("row_id") as u64), chunk_of(row));
            }
        }
        for hit in ranked {
            // A chunk deleted since its list was computed is left out, as Tantivy leaves out a changed vector.
            if let Some(chunk) = chunks.remove(&(hit.position, hit.key)) {
                hits.push(SearchHit {
                    index: names[hit.position].clone(),
                    chunk,
                    score: hit.score,
                    accurate: hit.details.map(|(accurate, _)| accurate),
                    semantic: hit.details.map(|(_, semantic)| semantic),
                });
            }
        }
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_dropped_from_text_and_nothing_else_changes() {
        assert_eq!(pg_text("a\0b\0"), "ab");
        assert!(matches!(pg_text("plain"), std::borrow::Cow::Borrowed("plain")));
    }

    #[test]
    fn vectors_are_written_in_pgvector_text_form() {
        assert_eq!(vector_literal(&[0.5, -1.0, 0.1]), "[0.5,-1,0.1]");
        assert_eq!(vector_literal(&[f32::NAN, f32::INFINITY]), "[0,0]");
        assert_eq!(vector_literal(&[]), "[]");
    }

    #[test]
    fn postings_count_terms_of_title_and_content_as_tantivy_does() {
        let chunk =
            Chunk { title: "Running tests".into(), content: "The tests run quickly".into(), ..Chunk::default() };
        let (frequencies, length) = postings_of(&chunk);
        assert_eq!(frequencies["test"], 2);
        assert_eq!(frequencies["run"], 2);
        assert_eq!(length, 5, "{frequencies:?}");
    }
}
