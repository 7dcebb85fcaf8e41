//! Data Process App (nexent-api.md §1.4) on the main port: submit ingestion tasks and follow them.
//! Answers carry both Nexent's and the seed document's keys (`id`/`task_id`, `result`/`results`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use nexent_core::ingest::{IngestError, Task, TaskRequest, TaskStatus};

use crate::AppState;
use crate::error::{ApiError, ApiJson, ApiPath};

impl From<IngestError> for ApiError {
    fn from(error: IngestError) -> Self {
        match error {
            IngestError::InvalidRequest(_) => ApiError::BadRequest(error.to_string()),
            IngestError::NotFound(_) => ApiError::NotFound(error.to_string()),
            IngestError::Database(cause) => crate::error::storage_error(cause),
            IngestError::Knowledge(cause) => cause.into(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TaskBody {
    /// A stored object name, a URL, or the text itself (local folders are read by watching them).
    pub source: String,
    #[serde(default = "default_source_type")]
    pub source_type: String,
    #[serde(default)]
    pub chunking_strategy: Option<String>,
    #[serde(default)]
    pub index_name: Option<String>,
    /// Shown as the document's file name.
    #[serde(default)]
    pub file_name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub additional_params: Value,
}

fn default_source_type() -> String {
    "file".to_owned()
}

impl TaskBody {
    fn into_request(self) -> Result<TaskRequest, ApiError> {
        let index_name = self
            .index_name
            .filter(|name| !name.trim().is_empty())
            .ok_or_else(|| ApiError::BadRequest("index_name is required".into()))?;
        Ok(TaskRequest {
            source: self.source,
            source_type: self.source_type,
            index_name,
            chunking_strategy: self.chunking_strategy,
            file_name: self.file_name,
        })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct BatchTaskBody {
    pub sources: Vec<TaskBody>,
}

fn seconds(millis: i64) -> f64 {
    millis as f64 / 1000.0
}

fn task_json(task: &Task) -> Value {
    json!({
        "id": task.task_id,
        "task_id": task.task_id,
        "status": task.status.as_str().to_ascii_lowercase(),
        "created_at": seconds(task.created_at_ms),
        "updated_at": seconds(task.updated_at_ms),
        "error": task.error,
        "index_name": task.index_name,
        "source": task.source,
        "source_type": task.source_type,
        "file_name": task.file_name,
        "chunk_count": task.chunk_count,
    })
}

#[utoipa::path(post, path = "/api/tasks", tag = "data_process", request_body = TaskBody,
    responses((status = 201, description = r#"{"task_id"}"#), (status = 400, description = "invalid task")))]
pub async fn create_task(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<TaskBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let task_id = state.services.ingest.submit(body.into_request()?).await?;
    Ok((StatusCode::CREATED, Json(json!({ "task_id": task_id, "id": task_id }))))
}

#[utoipa::path(post, path = "/api/tasks/batch", tag = "data_process", request_body = BatchTaskBody,
    responses((status = 201, description = r#"{"task_ids": [...]}"#), (status = 400, description = "an invalid task (none is created)")))]
pub async fn create_tasks(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<BatchTaskBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let requests = body.sources.into_iter().map(TaskBody::into_request).collect::<Result<Vec<_>, _>>()?;
    let task_ids = state.services.ingest.submit_batch(requests).await?;
    Ok((StatusCode::CREATED, Json(json!({ "task_ids": task_ids }))))
}

#[utoipa::path(get, path = "/api/tasks", tag = "data_process",
    responses((status = 200, description = r#"{"tasks": [...]}"#)))]
pub async fn list_tasks(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let tasks = state.services.ingest.list().await?;
    Ok(Json(json!({ "tasks": tasks.iter().map(task_json).collect::<Vec<_>>() })))
}

#[utoipa::path(get, path = "/api/tasks/{task_id}", tag = "data_process", params(("task_id" = String, Path)),
    responses((status = 200, description = "{id, task_id, status, created_at, updated_at, error}"), (status = 404, description = "unknown task")))]
pub async fn get_task(
    State(state): State<AppState>,
    ApiPath(task_id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(task_json(&state.services.ingest.get(&task_id).await?)))
}

#[utoipa::path(get, path = "/api/tasks/{task_id}/details", tag = "data_process", params(("task_id" = String, Path)),
    responses((status = 200, description = "the task with its chunks (`result` and `results`) once indexed"), (status = 404, description = "unknown task")))]
pub async fn task_details(
    State(state): State<AppState>,
    ApiPath(task_id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let task = state.services.ingest.get(&task_id).await?;
    let mut body = task_json(&task);
    if let Some(preview) = task.result_preview.as_ref().filter(|_| task.status == TaskStatus::Completed) {
        body["result"] = preview.clone();
        body["results"] = preview.clone();
    }
    Ok(Json(body))
}

/// The file entry of an unfinished task, as the index info and this route show it.
pub fn task_file_json(task: &Task) -> Value {
    json!({
        "path_or_url": task.path_or_url(),
        "file": task.file_name,
        "filename": task.file_name,
        "file_size": task.file_size.map(|bytes| bytes / 1024),
        "create_time": nexent_core::clock::format_local_datetime(task.created_at_ms),
        "status": task.status.as_str(),
        "error": task.error,
        "task_id": task.task_id,
    })
}

#[utoipa::path(get, path = "/api/tasks/indices/{index_name}/tasks", tag = "data_process", params(("index_name" = String, Path)),
    responses((status = 200, description = r#"{"index_name", "files": [{path_or_url, file, file_size, create_time, status}]}"#)))]
pub async fn index_tasks(
    State(state): State<AppState>,
    ApiPath(index_name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let tasks = state.services.ingest.unfinished_for_index(&index_name).await?;
    Ok(Json(json!({ "index_name": index_name, "files": tasks.iter().map(task_file_json).collect::<Vec<_>>() })))
}
