//! Watched folders (beyond Nexent): keep a local folder ingested into a knowledge base. The files are then
//! listed, searched and deleted like any other document of that knowledge base.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use nexent_core::clock::format_iso_utc;
use nexent_core::watch::{WatchError, WatchedFolder};

use crate::AppState;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};

impl From<WatchError> for ApiError {
    fn from(error: WatchError) -> Self {
        match error {
            WatchError::Invalid(_) => ApiError::BadRequest(error.to_string()),
            WatchError::NotFound(_) => ApiError::NotFound(error.to_string()),
            WatchError::Notify(cause) => ApiError::internal(cause),
            WatchError::Database(cause) => crate::error::storage_error(cause),
            WatchError::Ingest(cause) => cause.into(),
        }
    }
}

fn folder_json(folder: &WatchedFolder) -> Value {
    json!({
        "id": folder.id,
        "path": folder.path.to_string_lossy(),
        "index_name": folder.index_name,
        "chunking_strategy": folder.chunking_strategy,
        "created_at": format_iso_utc(folder.created_at_ms),
        "file_count": folder.file_count,
    })
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct WatchBody {
    /// An absolute path to a folder the server can read (outside its data dir).
    pub path: String,
    /// The knowledge base its files go into (created if missing).
    pub index_name: String,
    #[serde(default)]
    pub chunking_strategy: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct UnwatchQuery {
    /// Also remove the folder's files from the knowledge base (default: keep them).
    #[serde(default)]
    pub remove_documents: bool,
}

#[utoipa::path(get, path = "/api/watched_folders", tag = "watched_folders",
    responses((status = 200, description = r#"{"folders": [{"id","path","index_name","chunking_strategy","created_at","file_count"}]}"#)))]
pub async fn list_watched(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let folders = state.services.watcher.list().await?;
    Ok(Json(json!({ "folders": folders.iter().map(folder_json).collect::<Vec<_>>() })))
}

#[utoipa::path(post, path = "/api/watched_folders", tag = "watched_folders", request_body = WatchBody,
    responses((status = 201, description = "the watched folder (the same one again for a known path and index)"),
              (status = 400, description = "not an absolute readable folder, inside the data dir, or a bad index name")))]
pub async fn watch_folder(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<WatchBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let folder = state.services.watcher.add(&body.path, &body.index_name, body.chunking_strategy).await?;
    Ok((StatusCode::CREATED, Json(folder_json(&folder))))
}

#[utoipa::path(delete, path = "/api/watched_folders/{id}", tag = "watched_folders",
    params(("id" = String, Path), UnwatchQuery),
    responses((status = 200, description = r#"{"message","folder"}"#), (status = 404, description = "unknown id")))]
pub async fn unwatch_folder(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<UnwatchQuery>,
) -> Result<Json<Value>, ApiError> {
    let folder = state.services.watcher.remove(&id, query.remove_documents).await?;
    Ok(Json(json!({ "message": "Folder is no longer watched", "folder": folder_json(&folder) })))
}

#[utoipa::path(post, path = "/api/watched_folders/{id}/sync", tag = "watched_folders", params(("id" = String, Path)),
    responses((status = 200, description = "the folder compared with the disk now"), (status = 404, description = "unknown id")))]
pub async fn sync_folder(State(state): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<Json<Value>, ApiError> {
    let watcher = &state.services.watcher;
    let folder = watcher.get(&id).await?;
    watcher.reconcile(&folder).await?;
    Ok(Json(folder_json(&watcher.get(&id).await?)))
}
