//! Elasticsearch App (nexent-api.md §1.5, §3.5) on our embedded engine: knowledge bases (indices),
//! their documents, and accurate / semantic / hybrid search. Bare JSON objects, as Nexent.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use nexent_core::clock::format_local_datetime;
use nexent_core::knowledge::chunk::{chunk_from_result, now_iso};
use nexent_core::knowledge::{
    Chunk, Fusion, IndexStats, IndexedFile, KnowledgeError, SearchHit, SearchMode, SearchRequest,
};

use crate::AppState;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, parse_json_body};

/// Chunks shown per file when `include_chunks=true`.
const CHUNKS_PER_FILE: usize = 100;

impl From<KnowledgeError> for ApiError {
    fn from(error: KnowledgeError) -> Self {
        use nexent_core::knowledge::EmbedError;
        match error {
            KnowledgeError::IndexNotFound(_) => ApiError::NotFound(error.to_string()),
            KnowledgeError::InvalidName(_)
            | KnowledgeError::EmptyQuery
            | KnowledgeError::NoIndices
            | KnowledgeError::InvalidTopK(_)
            | KnowledgeError::InvalidWeight(_)
            | KnowledgeError::DimensionMismatch { .. }
            | KnowledgeError::InvalidDimension(_)
            | KnowledgeError::UnknownEmbeddingModel { .. }
            | KnowledgeError::EmptyDocument { .. } => ApiError::BadRequest(error.to_string()),
            KnowledgeError::Embedding(EmbedError::Unavailable(_) | EmbedError::Busy)
            | KnowledgeError::EmbeddingModelNotLoaded { .. }
            | KnowledgeError::Quarantined { .. }
            | KnowledgeError::NotOpened(_) => ApiError::ServiceUnavailable(error.to_string()),
            KnowledgeError::LowDisk(_) => ApiError::InsufficientStorage(error.to_string()),
            // A full or read-only disk under the index or the database is said as such; the rest is ours.
            other => crate::error::storage_error(other),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct CreateIndexQuery {
    /// Dimension of the index's vectors; defaults to the embedding model's.
    pub embedding_dim: Option<i64>,
    /// The embedding model the base is built with: one of the server's (`GET /api/indices/embedding_models`);
    /// an unknown name is a 400. Without it: the body's `embeddingModel` or Config Sync's embedding
    /// model when the server has it, else the server's default.
    pub embedding_model: Option<String>,
}

/// The model a new base gets when the request names none the server must honour: Nexent's client sends
/// its configured embedding model in the body (`{name, description, embeddingModel}`), which may be a
/// remote model this server does not run, so a name the server lacks falls through, to Config Sync's
/// embedding role, then to the server's default.
fn preferred_embedding_model(state: &AppState, body: &[u8]) -> Option<String> {
    let embedders = state.services.knowledge.embedders();
    let from_body = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|body| body.get("embeddingModel").and_then(Value::as_str).map(str::to_owned));
    let configured = state.services.config_sync.model(nexent_core::config_sync::ModelRole::Embedding).model_name;
    [from_body, Some(configured)].into_iter().flatten().find(|name| embedders.get(name.trim()).is_some())
}

#[utoipa::path(post, path = "/api/indices/{index_name}", tag = "knowledge",
    params(("index_name" = String, Path), CreateIndexQuery),
    request_body(content = Option<String>, description = r#"optional JSON {"name", "description", "embeddingModel"} as Nexent's client sends it"#),
    responses((status = 200, description = r#"{"status":"success","success":true,"message","embedding_dim"} (idempotent)"#),
              (status = 400, description = "invalid name or dimension")))]
pub async fn create_index(
    State(state): State<AppState>,
    ApiPath(index_name): ApiPath<String>,
    ApiQuery(query): ApiQuery<CreateIndexQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let model = query.embedding_model.or_else(|| preferred_embedding_model(&state, &body));
    let knowledge = &state.services.knowledge;
    let outcome = knowledge.create_index(&index_name, query.embedding_dim, model.as_deref()).await?;
    let message = if outcome.created {
        format!("Index {index_name} created successfully")
    } else {
        format!("Index {index_name} already exists")
    };
    Ok(Json(json!({
        "status": "success",
        "success": true,
        "message": message,
        "embedding_dim": outcome.embedding_dim,
        "embedding_model": outcome.embedding_model,
        "created": outcome.created,
    })))
}

#[utoipa::path(delete, path = "/api/indices/{index_name}", tag = "knowledge",
    params(("index_name" = String, Path)),
    responses((status = 200, description = r#"{"status":"success","message"}"#), (status = 404, description = "no such index")))]
pub async fn delete_index(
    State(state): State<AppState>,
    ApiPath(index_name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    state.services.knowledge.delete_index(&index_name).await?;
    Ok(Json(json!({ "status": "success", "message": format!("Index {index_name} deleted successfully") })))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListIndicesQuery {
    /// Elasticsearch-style pattern (`*` wildcards, comma-separated).
    #[serde(default = "match_everything")]
    pub pattern: String,
    #[serde(default)]
    pub include_stats: bool,
}

fn match_everything() -> String {
    "*".to_owned()
}

#[utoipa::path(get, path = "/api/indices", tag = "knowledge", params(ListIndicesQuery),
    responses((status = 200, description = r#"{"indices":[...],"count":n} (+ "indices_info" with stats)"#)))]
pub async fn list_indices(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListIndicesQuery>,
) -> Result<Json<Value>, ApiError> {
    let knowledge = &state.services.knowledge;
    let names = knowledge.list_indices(&query.pattern).await?;
    // Ours, beside Nexent's fields: bases set aside because they could not be opened.
    let quarantined: Vec<Value> = knowledge
        .quarantined()
        .await
        .into_iter()
        .filter(|record| nexent_core::knowledge::names::matches_pattern(&record.name, &query.pattern))
        .map(|record| {
            json!({ "name": record.name, "reason": record.reason, "moved_to": record.moved_to,
                    "quarantined_at": record.quarantined_ms })
        })
        .collect();
    let mut body = json!({ "indices": names, "count": names.len(), "quarantined": quarantined });
    if query.include_stats {
        let mut infos = Vec::with_capacity(names.len());
        for name in &names {
            // An index deleted between listing and reading is simply left out.
            if let Ok((stats, _)) = knowledge.stats_and_files(name, 0).await {
                infos.push(json!({ "name": name, "stats": {
                    "base_info": base_info_json(&stats),
                    "search_performance": search_performance_json(&stats),
                    // The seed document's summary keys.
                    "docs": stats.doc_count,
                    "size": human_size(stats.store_size_bytes),
                }}));
            }
        }
        body["indices_info"] = Value::Array(infos);
    }
    Ok(Json(body))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct IndexInfoQuery {
    #[serde(default = "crate::error::default_true")]
    pub include_files: bool,
    #[serde(default)]
    pub include_chunks: bool,
}

#[utoipa::path(get, path = "/api/indices/{index_name}/info", tag = "knowledge",
    params(("index_name" = String, Path), IndexInfoQuery),
    responses((status = 200, description = "{base_info, search_performance, fields, files}"), (status = 404, description = "no such index")))]
pub async fn index_info(
    State(state): State<AppState>,
    ApiPath(index_name): ApiPath<String>,
    ApiQuery(query): ApiQuery<IndexInfoQuery>,
) -> Result<Json<Value>, ApiError> {
    let chunks_per_file = if query.include_chunks { CHUNKS_PER_FILE } else { 0 };
    let (stats, files) = state.services.knowledge.stats_and_files(&index_name, chunks_per_file).await?;
    let files_json = if query.include_files {
        // Files still being ingested (or whose ingestion failed) come first, with their live status;
        // a file being re-ingested shows its task's status.
        let tasks = state.services.ingest.unfinished_for_index(&index_name).await?;
        let mut latest_task: std::collections::HashMap<&str, &nexent_core::ingest::Task> =
            std::collections::HashMap::new();
        for task in &tasks {
            latest_task.entry(task.path_or_url()).or_insert(task);
        }
        let indexed: std::collections::HashSet<&str> = files.iter().map(|file| file.path_or_url.as_str()).collect();
        let mut entries: Vec<Value> = tasks
            .iter()
            .filter(|task| !indexed.contains(task.path_or_url()))
            .filter(|task| latest_task.get(task.path_or_url()).is_some_and(|latest| latest.task_id == task.task_id))
            .map(|task| {
                let mut entry = crate::apps::data_process::task_file_json(task);
                entry["chunks"] = json!([]);
                entry["chunks_count"] = json!(0);
                entry["chunk_count"] = json!(0);
                entry
            })
            .collect();
        for file in &files {
            let mut entry = file_json(file, query.include_chunks);
            if let Some(task) = latest_task.get(file.path_or_url.as_str()).filter(|task| task.status.is_active()) {
                entry["status"] = json!(task.status.as_str());
            }
            entries.push(entry);
        }
        Some(Value::Array(entries))
    } else {
        None
    };
    Ok(Json(json!({
        "base_info": base_info_json(&stats),
        "search_performance": search_performance_json(&stats),
        "fields": nexent_core::knowledge::index::PUBLIC_FIELDS,
        "files": files_json,
    })))
}

fn base_info_json(stats: &IndexStats) -> Value {
    json!({
        "doc_count": stats.doc_count,
        "chunk_count": stats.chunk_count,
        "store_size": human_size(stats.store_size_bytes),
        "store_size_bytes": stats.store_size_bytes,
        "process_source": stats.process_source,
        "embedding_model": stats.embedding_model,
        "embedding_dim": stats.meta.embedding_dim,
        "creation_date": format_local_datetime(stats.meta.created_ms),
        "update_date": format_local_datetime(stats.meta.updated_ms),
        // The seed document's names for the first and third.
        "docs": stats.doc_count,
        "size": human_size(stats.store_size_bytes),
    })
}

fn search_performance_json(stats: &IndexStats) -> Value {
    json!({
        "total_search_count": stats.meta.total_search_count,
        "hit_count": stats.meta.hit_count,
        // The seed document's names: `hits`, and `query_time` as Elasticsearch counts it (total ms).
        "hits": stats.meta.hit_count,
        "query_time": stats.meta.total_search_micros as f64 / 1000.0,
    })
}

fn file_json(file: &IndexedFile, include_chunks: bool) -> Value {
    let mut item = json!({
        "path_or_url": file.path_or_url,
        "filename": file.filename,
        "file": file.filename,
        "file_size": file.file_size,
        "create_time": file.create_time,
        "status": "COMPLETED",
        "chunk_count": file.chunk_count,
        "chunks_count": file.chunk_count,
    });
    // Always a list, as the seed document shows it; filled only when asked for.
    item["chunks"] = json!([]);
    if include_chunks {
        item["chunks"] = file
            .chunks
            .iter()
            .map(|chunk| json!({ "id": chunk.id, "title": chunk.title, "content": chunk.content, "create_time": chunk.create_time }))
            .collect();
    }
    item
}

/// Elasticsearch's human size, as Nexent shows it: `"%.2f B|KB|MB|GB|TB"`.
fn human_size(bytes: u64) -> String {
    let mut size = bytes as f64;
    for unit in ["B", "KB", "MB", "GB"] {
        if size < 1024.0 {
            return format!("{size:.2} {unit}");
        }
        size /= 1024.0;
    }
    format!("{size:.2} TB")
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct IndexDocumentsQuery {
    /// Recorded on each chunk; defaults to the embedding model's name.
    pub embedding_model_name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct IndexingRequest {
    #[serde(default)]
    pub task_id: Option<String>,
    /// Ignored in favour of the path (Nexent let the body override it; a mismatch is refused).
    #[serde(default)]
    pub index_name: Option<String>,
    /// Data Process results: `{text, metadata, source, source_type}`.
    #[schema(value_type = Vec<Object>)]
    pub results: Vec<Value>,
    #[serde(default, deserialize_with = "crate::wire::optional_integer")]
    pub embedding_dim: Option<i64>,
}

#[utoipa::path(post, path = "/api/indices/{index_name}/documents", tag = "knowledge",
    params(("index_name" = String, Path), IndexDocumentsQuery),
    request_body = IndexingRequest,
    responses((status = 200, description = "{success, message, total_indexed, total_submitted}"),
              (status = 400, description = "bad documents or a dimension mismatch"),
              (status = 503, description = "the embedding model is not available")))]
pub async fn index_documents(
    State(state): State<AppState>,
    ApiPath(index_name): ApiPath<String>,
    ApiQuery(query): ApiQuery<IndexDocumentsQuery>,
    ApiJson(request): ApiJson<IndexingRequest>,
) -> Result<Json<Value>, ApiError> {
    if let Some(body_name) = request.index_name.as_deref().filter(|name| !name.is_empty() && *name != index_name) {
        return Err(ApiError::BadRequest(format!(
            "index_name in the body ({body_name}) differs from the one in the path ({index_name})"
        )));
    }
    let knowledge = &state.services.knowledge;
    let created = knowledge.create_index(&index_name, request.embedding_dim, None).await?;
    if let Some(dimension) = request.embedding_dim
        && dimension as usize != created.embedding_dim
    {
        return Err(KnowledgeError::DimensionMismatch {
            index: index_name,
            expected: created.embedding_dim,
            actual: dimension as usize,
        }
        .into());
    }
    let task_id = request.task_id.unwrap_or_else(nexent_core::ingest::new_task_id);
    let model_name = query.embedding_model_name.unwrap_or(created.embedding_model);
    let now = now_iso();
    let chunks: Vec<Chunk> = request
        .results
        .iter()
        .enumerate()
        .map(|(position, result)| chunk_from_result(&task_id, position, result, &model_name, &now))
        .collect();
    let submitted = chunks.len();
    let indexed = knowledge.add_chunks(&index_name, chunks).await?;
    Ok(Json(json!({
        "success": true,
        "message": format!("Successfully indexed {indexed} documents"),
        "total_indexed": indexed,
        "total_submitted": submitted,
    })))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DeleteDocumentsQuery {
    /// The file whose chunks are deleted (also accepted in a JSON body).
    pub path_or_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DeleteDocumentsBody {
    path_or_url: Option<String>,
}

#[utoipa::path(delete, path = "/api/indices/{index_name}/documents", tag = "knowledge",
    params(("index_name" = String, Path), DeleteDocumentsQuery),
    request_body(content = Option<String>, description = r#"optional JSON {"path_or_url": "..."} when the query has none"#),
    responses((status = 200, description = r#"{"status":"success","deleted_count":n}"#), (status = 404, description = "no such index"),
              (status = 422, description = "no path_or_url")))]
pub async fn delete_documents(
    State(state): State<AppState>,
    ApiPath(index_name): ApiPath<String>,
    ApiQuery(query): ApiQuery<DeleteDocumentsQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let path_or_url = match query.path_or_url {
        Some(path) => path,
        None => parse_json_body::<DeleteDocumentsBody>(&body)?
            .path_or_url
            .ok_or_else(|| ApiError::validation("path_or_url", "Field required: path_or_url"))?,
    };
    let deleted = state.services.knowledge.delete_path(&index_name, &path_or_url).await?;
    Ok(Json(json!({ "status": "success", "deleted_count": deleted })))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SearchBody {
    pub index_names: Vec<String>,
    pub query: String,
    #[serde(default = "default_top_k", deserialize_with = "crate::wire::integer")]
    pub top_k: i64,
    /// Hybrid only: weight of the keyword list, in [0, 1].
    #[serde(default = "default_weight")]
    pub weight_accurate: f64,
    /// Hybrid only: `weighted` (Nexent's max-normalised sum, default), `minmax` or `rrf`.
    #[serde(default)]
    pub fusion: Option<String>,
    /// Hybrid with `rrf` only: the rank constant (default 60).
    #[serde(default)]
    pub rrf_k: Option<f32>,
}

fn default_top_k() -> i64 {
    5
}

fn default_weight() -> f64 {
    0.3
}

async fn run_search(state: &AppState, body: SearchBody, mode: SearchMode) -> Result<Json<Value>, ApiError> {
    let outcome = state
        .services
        .knowledge
        .search(SearchRequest { index_names: body.index_names, query: body.query, top_k: body.top_k, mode })
        .await?;
    let results: Vec<Value> = outcome.hits.iter().map(hit_json).collect();
    Ok(Json(json!({
        "results": results,
        "total": results.len(),
        "query_time_ms": outcome.query_time_ms,
        "embedding_time_ms": outcome.embedding_time_ms,
    })))
}

fn hit_json(hit: &SearchHit) -> Value {
    let chunk = &hit.chunk;
    let mut item = json!({
        "id": chunk.id,
        "title": chunk.title,
        "filename": chunk.filename,
        "path_or_url": chunk.path_or_url,
        "source_type": chunk.source_type,
        "language": chunk.language,
        "author": chunk.author,
        "date": chunk.date,
        "content": chunk.content,
        "process_source": chunk.process_source,
        "file_size": chunk.file_size,
        "create_time": chunk.create_time,
        "languages": chunk.languages,
        "embedding_model_name": chunk.embedding_model_name,
        "score": hit.score,
        "index": hit.index,
    });
    if let (Some(accurate), Some(semantic)) = (hit.accurate, hit.semantic) {
        item["score_details"] = json!({ "accurate": accurate, "semantic": semantic });
    }
    item
}

#[utoipa::path(post, path = "/api/indices/search/accurate", tag = "knowledge", request_body = SearchBody,
    responses((status = 200, description = "{results, total, query_time_ms}"), (status = 400, description = "empty query, no index, bad top_k"),
              (status = 404, description = "unknown index")))]
pub async fn search_accurate(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SearchBody>,
) -> Result<Json<Value>, ApiError> {
    run_search(&state, body, SearchMode::Accurate).await
}

#[utoipa::path(post, path = "/api/indices/search/semantic", tag = "knowledge", request_body = SearchBody,
    responses((status = 200, description = "{results, total, query_time_ms}"), (status = 400, description = "empty query, no index, bad top_k"),
              (status = 404, description = "unknown index")))]
pub async fn search_semantic(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SearchBody>,
) -> Result<Json<Value>, ApiError> {
    run_search(&state, body, SearchMode::Semantic).await
}

#[utoipa::path(post, path = "/api/indices/search/hybrid", tag = "knowledge", request_body = SearchBody,
    responses((status = 200, description = "{results (with score_details {accurate, semantic}), total, query_time_ms}"),
              (status = 400, description = "empty query, no index, bad top_k or weight"), (status = 404, description = "unknown index")))]
pub async fn search_hybrid(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SearchBody>,
) -> Result<Json<Value>, ApiError> {
    let fusion = match body.fusion.as_deref() {
        None | Some("weighted") | Some("max") => Fusion::WeightedMax,
        Some("minmax") => Fusion::WeightedMinMax,
        Some("rrf") => Fusion::ReciprocalRank { k: body.rrf_k.unwrap_or(60.0).max(0.0) },
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "fusion must be \"weighted\", \"minmax\" or \"rrf\", not {other:?}"
            )));
        }
    };
    if !(0.0..=1.0).contains(&body.weight_accurate) {
        return Err(ApiError::validation(
            "weight_accurate",
            format!("weight_accurate must be between 0 and 1, not {}", body.weight_accurate),
        ));
    }
    let mode = SearchMode::Hybrid { weight_accurate: body.weight_accurate as f32, fusion };
    run_search(&state, body, mode).await
}

#[utoipa::path(get, path = "/api/indices/health", tag = "knowledge",
    responses((status = 200, description = r#"{"status":"healthy","elasticsearch":"connected","indices_count":n}"#)))]
pub async fn knowledge_health(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let knowledge = &state.services.knowledge;
    Ok(Json(json!({
        "status": "healthy",
        "elasticsearch": "connected",
        "indices_count": knowledge.list_indices("*").await?.len(),
        "embedding_model": knowledge.embedder().model_name(),
        "store": knowledge.engine(),
    })))
}
