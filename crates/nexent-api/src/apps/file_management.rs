//! File Management App (nexent-api.md §1.9, §6): store files, list them, hand out signed expiring URLs
//! (which this server checks on `GET /api/file/download/{object_name}`), delete. Object names contain
//! `/` and work in every route (Nexent's own could not serve them).

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::multipart::Field;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use nexent_core::clock::{format_iso_utc, now_millis};
use nexent_core::storage::{DEFAULT_FOLDER, StorageError, StoredObject};

use crate::AppState;
use crate::error::{ApiError, ApiPath, ApiQuery, Params, parse_json_body};

/// Longest value of a plain (non-file) multipart field such as `folder` or `index_name`.
const MAX_TEXT_FIELD_BYTES: usize = 4096;

fn multipart_error(error: axum::extract::multipart::MultipartError) -> ApiError {
    ApiError::BadRequest(format!("Invalid multipart body: {error}"))
}

/// The next field of a multipart body.
async fn next_field(multipart: &mut Multipart) -> Result<Option<Field<'_>>, ApiError> {
    multipart.next_field().await.map_err(multipart_error)
}

/// A file field's original name and its bytes as a stream (never buffered whole).
fn file_field(field: Field<'_>) -> (String, BoxStream<'_, Result<Bytes, std::io::Error>>) {
    let file_name = field.file_name().unwrap_or("unnamed").to_owned();
    (file_name, field.map(|chunk| chunk.map_err(std::io::Error::other)).boxed())
}

/// A field's bytes, or `None` as soon as they pass `limit` (nothing more is buffered).
async fn read_bounded(field: &mut Field<'_>, limit: u64) -> Result<Option<Vec<u8>>, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if (bytes.len() + chunk.len()) as u64 > limit {
            return Ok(None);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Some(bytes))
}

/// Reads a small text field of a multipart body, refusing one that is too long before buffering it.
async fn small_text_field(mut field: Field<'_>) -> Result<String, ApiError> {
    let name = field.name().unwrap_or("field").to_owned();
    let bytes = read_bounded(&mut field, MAX_TEXT_FIELD_BYTES as u64)
        .await?
        .ok_or_else(|| ApiError::BadRequest(format!("The {name} field is longer than {MAX_TEXT_FIELD_BYTES} bytes")))?;
    String::from_utf8(bytes).map_err(|_| ApiError::BadRequest(format!("The {name} field is not UTF-8 text")))
}

/// Deletes objects stored by a request that then failed, so a failure leaves nothing behind.
async fn discard_objects(state: &AppState, objects: impl IntoIterator<Item = StoredObject>) {
    for object in objects {
        if let Err(error) = state.services.storage.delete(&object.object_name).await {
            tracing::warn!(%error, object = %object.object_name, "cannot remove an object of a failed upload");
        }
    }
}

/// Default lifetime of a signed URL, and the longest one may be (as S3 presigning).
const DEFAULT_EXPIRES_SECONDS: i64 = 3600;
const MAX_EXPIRES_SECONDS: i64 = nexent_core::storage::MAX_URL_LIFETIME_SECONDS;

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::InvalidName { .. } => ApiError::BadRequest(error.to_string()),
            StorageError::NotFound(_) => ApiError::NotFound(error.to_string()),
            StorageError::TooLarge { .. } => ApiError::PayloadTooLarge(error.to_string()),
            StorageError::QuotaExceeded { .. } | StorageError::LowDisk(_) => {
                ApiError::InsufficientStorage(error.to_string())
            }
            StorageError::BadSignature => ApiError::Forbidden(error.to_string()),
            other => crate::error::storage_error(other),
        }
    }
}

fn expiry_seconds(values: &[Option<i64>]) -> Result<i64, ApiError> {
    let seconds = values.iter().flatten().next().copied().unwrap_or(DEFAULT_EXPIRES_SECONDS);
    if !(1..=MAX_EXPIRES_SECONDS).contains(&seconds) {
        return Err(ApiError::validation(
            "expires",
            format!("expires must be between 1 and {MAX_EXPIRES_SECONDS} seconds, not {seconds}"),
        ));
    }
    Ok(seconds)
}

/// A signed download URL on the host the client used (the security layer only lets our own names in).
fn signed_url(state: &AppState, headers: &HeaderMap, object_name: &str, seconds: i64) -> String {
    let expires_at = now_millis() / 1000 + seconds;
    let signature = state.services.storage.signer().sign(object_name, expires_at);
    let host = headers.get(header::HOST).and_then(|value| value.to_str().ok()).unwrap_or("127.0.0.1");
    let encoded: Vec<String> = object_name.split('/').map(percent_encode_segment).collect();
    format!("http://{host}/api/file/download/{}?expires={expires_at}&signature={signature}", encoded.join("/"))
}

fn percent_encode_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn object_json(state: &AppState, headers: &HeaderMap, object: &StoredObject) -> Value {
    json!({
        "success": true,
        "object_name": object.object_name,
        "file_name": object.file_name,
        "file_size": object.size,
        "content_type": object.content_type,
        "upload_time": format_iso_utc(object.upload_time_ms),
        "url": signed_url(state, headers, &object.object_name, DEFAULT_EXPIRES_SECONDS),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct UploadQuery {
    /// Folder (object-name prefix) to store into; a `folder` form field works too. Default `attachments`.
    pub folder: Option<String>,
}

#[utoipa::path(post, path = "/api/file/storage", tag = "file", params(UploadQuery),
    request_body(content_type = "multipart/form-data", description = "`files` (repeated), optional `folder`"),
    responses((status = 200, description = "{message, success_count, failed_count, results: [...]}")))]
pub async fn upload_files(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<UploadQuery>,
    mut multipart: Multipart,
) -> Result<Json<Value>, ApiError> {
    let storage = &state.services.storage;
    let mut folder = query.folder.unwrap_or_else(|| DEFAULT_FOLDER.to_owned());
    let mut results: Vec<(Option<StoredObject>, Value)> = Vec::new();
    let outcome: Result<(), ApiError> = async {
        while let Some(field) = next_field(&mut multipart).await? {
            match field.name() {
                Some("folder") => {
                    let text = small_text_field(field).await?;
                    nexent_core::storage::validate_folder(&text)?;
                    folder = text;
                }
                Some("files" | "file") => {
                    let (file_name, body) = file_field(field);
                    match storage.upload(&folder, &file_name, body).await {
                        Ok(object) => results.push((Some(object.clone()), object_json(&state, &headers, &object))),
                        Err(
                            error @ (StorageError::TooLarge { .. }
                            | StorageError::InvalidName { .. }
                            | StorageError::Io(_)),
                        ) => {
                            results.push((
                                None,
                                json!({ "success": false, "file_name": file_name, "error": error.to_string() }),
                            ));
                        }
                        Err(other) => return Err(other.into()),
                    }
                }
                _ => {}
            }
        }
        // A `folder` field sent after the files applies to them too: move what was stored before it.
        let folder = nexent_core::storage::validate_folder(&folder)?;
        for (object, item) in results.iter_mut() {
            if let Some(stored) = object
                && !stored.object_name.starts_with(&format!("{folder}/"))
            {
                let moved = storage.move_to_folder(stored, &folder).await?;
                *item = object_json(&state, &headers, &moved);
                *stored = moved;
            }
        }
        Ok(())
    }
    .await;
    if let Err(error) = outcome {
        discard_objects(&state, results.into_iter().filter_map(|(object, _)| object)).await;
        return Err(error);
    }
    let success_count = results.iter().filter(|(object, _)| object.is_some()).count();
    let failed_count = results.len() - success_count;
    Ok(Json(json!({
        "message": format!("Processed {} files", results.len()),
        "success_count": success_count,
        "failed_count": failed_count,
        "results": results.into_iter().map(|(_, item)| item).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListFilesQuery {
    #[serde(default)]
    pub prefix: String,
    #[serde(default = "default_limit")]
    pub limit: usize,
    #[serde(default = "crate::error::default_true")]
    pub include_urls: bool,
}

fn default_limit() -> usize {
    100
}

#[utoipa::path(get, path = "/api/file/storage", tag = "file", params(ListFilesQuery),
    responses((status = 200, description = "{total, files: [{key, size, last_modified, content_type, url?}]}")))]
pub async fn list_files(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    // The query as Nexent's client sends it, or the JSON body the seed document shows for this GET.
    let prefix = params.text("prefix").unwrap_or_default();
    let limit = match params.integer("limit")? {
        None => default_limit(),
        Some(limit) if limit >= 0 => usize::try_from(limit).unwrap_or(usize::MAX),
        Some(limit) => return Err(ApiError::validation("limit", format!("limit must not be negative, not {limit}"))),
    };
    let include_urls = params.flag("include_urls")?.unwrap_or(true);
    let objects = state.services.storage.list(&prefix, limit.min(10_000)).await?;
    let files: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut item = json!({
                "key": object.object_name,
                "name": object.object_name,
                "size": object.size,
                "last_modified": format_iso_utc(object.upload_time_ms),
                "content_type": object.content_type,
            });
            if include_urls {
                item["url"] = json!(signed_url(&state, &headers, &object.object_name, DEFAULT_EXPIRES_SECONDS));
            }
            item
        })
        .collect();
    Ok(Json(json!({ "total": files.len(), "files": files })))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct FileUrlQuery {
    /// Redirect (307) to the signed URL instead of returning it.
    #[serde(default)]
    pub download: bool,
    /// Lifetime of the URL in seconds (default 3600).
    pub expires: Option<i64>,
    pub expires_in: Option<i64>,
}

#[utoipa::path(get, path = "/api/file/storage/{*object_name}", tag = "file",
    params(("object_name" = String, Path, description = "may contain '/'"), FileUrlQuery),
    responses((status = 200, description = "{success, object_name, expires_in, url}"), (status = 307, description = "download=true"),
              (status = 404, description = "no such file")))]
pub async fn file_url(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(object_name): ApiPath<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let seconds = expiry_seconds(&[params.integer("expires")?, params.integer("expires_in")?])?;
    state.services.storage.describe(&object_name).await?;
    let url = signed_url(&state, &headers, &object_name, seconds);
    if params.flag("download")?.unwrap_or(false) {
        return Ok(Redirect::temporary(&url).into_response());
    }
    Ok(Json(
        json!({ "success": true, "object_name": object_name, "expires_in": seconds, "expires": seconds, "url": url }),
    )
    .into_response())
}

#[utoipa::path(delete, path = "/api/file/storage/{*object_name}", tag = "file",
    params(("object_name" = String, Path, description = "may contain '/'")),
    responses((status = 200, description = "{success, message}"), (status = 400, description = "invalid name")))]
pub async fn delete_file(
    State(state): State<AppState>,
    ApiPath(object_name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    state.services.storage.delete(&object_name).await?;
    Ok(Json(json!({ "success": true, "message": format!("File {object_name} successfully deleted") })))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct BatchUrlsQuery {
    pub expires: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct BatchUrlsBody {
    object_names: Option<Vec<String>>,
    expires: Option<i64>,
    expires_in: Option<i64>,
}

#[utoipa::path(post, path = "/api/file/storage/batch-urls", tag = "file", params(BatchUrlsQuery),
    request_body(content = Object, description = r#"{"object_names": [...], "expires"?: seconds}"#),
    responses((status = 200, description = "{total, success_count, failed_count, results, urls}"),
              (status = 400, description = "no object_names array")))]
pub async fn batch_urls(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<BatchUrlsQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: BatchUrlsBody = parse_json_body(&body)?;
    let names =
        body.object_names.ok_or_else(|| ApiError::BadRequest("Request body must contain object_names array".into()))?;
    let seconds = expiry_seconds(&[query.expires, body.expires, body.expires_in])?;
    let mut results = Vec::with_capacity(names.len());
    let mut failed_count = 0;
    for name in &names {
        match state.services.storage.describe(name).await {
            Ok(_) => results.push(json!({ "object_name": name, "success": true, "url": signed_url(&state, &headers, name, seconds), "error": null })),
            Err(error @ (StorageError::NotFound(_) | StorageError::InvalidName { .. })) => {
                failed_count += 1;
                results.push(json!({ "object_name": name, "success": false, "url": null, "error": error.to_string() }));
            }
            Err(other) => return Err(other.into()),
        }
    }
    Ok(Json(json!({
        "total": results.len(),
        "success_count": results.len() - failed_count,
        "failed_count": failed_count,
        "expires_in": seconds,
        "results": results,
        "urls": results,
    })))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DownloadQuery {
    pub expires: Option<i64>,
    pub signature: Option<String>,
}

#[utoipa::path(get, path = "/api/file/download/{*object_name}", tag = "file",
    params(("object_name" = String, Path, description = "may contain '/'"), DownloadQuery),
    responses((status = 200, description = "the file's bytes"), (status = 403, description = "bad or expired signature"),
              (status = 404, description = "no such file")))]
pub async fn download_file(
    State(state): State<AppState>,
    ApiPath(object_name): ApiPath<String>,
    ApiQuery(query): ApiQuery<DownloadQuery>,
) -> Result<Response, ApiError> {
    let (Some(expires), Some(signature)) = (query.expires, query.signature) else {
        return Err(StorageError::BadSignature.into());
    };
    let storage = &state.services.storage;
    storage.signer().verify(&object_name, expires, &signature)?;
    let download = storage.download(&object_name).await?;
    // Only inert types open in the browser; anything that could run script (HTML, SVG, XML, ...) on
    // this origin is downloaded instead, and the sandbox policy forbids script either way.
    let inline = matches!(
        download.object.content_type.as_str(),
        "text/plain"
            | "text/markdown"
            | "text/csv"
            | "application/pdf"
            | "application/json"
            | "image/png"
            | "image/jpeg"
            | "image/gif"
            | "image/webp"
            | "image/bmp"
            | "audio/mpeg"
            | "audio/wav"
            | "video/mp4"
    );
    let disposition = format!(
        "{}; filename=\"{}\"; filename*=UTF-8''{}",
        if inline { "inline" } else { "attachment" },
        download.object.file_name.replace(['"', '\\', '\r', '\n'], "_"),
        percent_encode_segment(&download.object.file_name)
    );
    let body = Body::from_stream(download.body.map(|chunk| chunk.map_err(std::io::Error::other)));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, download.object.content_type.clone()),
            (header::CONTENT_LENGTH, download.object.size.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::HeaderName::from_static("x-content-type-options"), "nosniff".to_owned()),
            (header::CACHE_CONTROL, "private, max-age=0".to_owned()),
            (header::CONTENT_SECURITY_POLICY, "sandbox; default-src 'none'".to_owned()),
        ],
        body,
    )
        .into_response())
}

/// Nexent answered every OPTIONS under /api/file with this (its clients may probe it).
pub async fn file_options() -> Json<Value> {
    Json(json!({ "detail": "OK" }))
}

#[utoipa::path(post, path = "/api/file/upload", tag = "file",
    request_body(content_type = "multipart/form-data", description = "`file` (repeated), `index_name`, optional `chunking_strategy`"),
    responses((status = 201, description = r#"{"message","uploaded_files","process_tasks": {"task_id"} | {"task_ids"}}"#),
              (status = 400, description = r#"{"error":"No valid files uploaded","errors":[...]}"#)))]
pub async fn upload_to_knowledge_base(
    State(state): State<AppState>,
    mut multipart: Multipart,
) -> Result<Response, ApiError> {
    use nexent_core::ingest::{TaskRequest, parse};
    let storage = &state.services.storage;
    let mut index_name: Option<String> = None;
    let mut chunking_strategy: Option<String> = None;
    let mut stored: Vec<StoredObject> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let outcome: Result<(), ApiError> = async {
        while let Some(field) = next_field(&mut multipart).await? {
            match field.name() {
                Some("index_name") => index_name = Some(small_text_field(field).await?),
                Some("chunking_strategy") => chunking_strategy = Some(small_text_field(field).await?),
                Some("file" | "files") => {
                    let (file_name, body) = file_field(field);
                    if !parse::is_allowed(&file_name) {
                        errors.push(format!("File type not allowed: {file_name}"));
                        continue;
                    }
                    match storage.upload("knowledge", &file_name, body).await {
                        Ok(object) => stored.push(object),
                        // A full or read-only disk is no fault of this file: the whole request is refused.
                        Err(error)
                            if matches!(error, StorageError::LowDisk(_))
                                || nexent_core::db::storage_condition_in(&error).is_some() =>
                        {
                            return Err(error.into());
                        }
                        Err(error @ (StorageError::TooLarge { .. } | StorageError::Io(_))) => {
                            errors.push(error.to_string())
                        }
                        Err(other) => return Err(other.into()),
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
    .await;
    if let Err(error) = outcome {
        discard_objects(&state, stored).await;
        return Err(error);
    }
    let uploaded_names: Vec<String> = stored.iter().map(|object| object.file_name.clone()).collect();
    let Some(index_name) = index_name.filter(|name| !name.trim().is_empty()) else {
        discard_objects(&state, stored).await;
        return Err(ApiError::validation("index_name", "Field required: index_name"));
    };
    if stored.is_empty() {
        return Ok((
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "No valid files uploaded", "errors": errors, "message": "No valid files uploaded" })),
        )
            .into_response());
    }
    let requests: Vec<TaskRequest> = stored
        .iter()
        .map(|object| TaskRequest {
            source: object.object_name.clone(),
            source_type: "file".into(),
            index_name: index_name.clone(),
            chunking_strategy: chunking_strategy.clone(),
            file_name: Some(object.file_name.clone()),
        })
        .collect();
    let task_ids = match state.services.ingest.submit_batch(requests).await {
        Ok(ids) => ids,
        Err(error) => {
            let api_error: ApiError = error.into();
            discard_objects(&state, stored).await;
            // Nexent's client reads a failed upload's `error` and `files` (whatever the status).
            let error = match &api_error {
                ApiError::Internal(_) => crate::error::INTERNAL_ERROR_MESSAGE.to_owned(),
                other => other.to_string(),
            };
            return Ok(api_error.into_response_with(json!({ "error": error, "files": uploaded_names })));
        }
    };
    let process_tasks =
        if task_ids.len() == 1 { json!({ "task_id": task_ids[0] }) } else { json!({ "task_ids": task_ids }) };
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "message": "Files uploaded and processed successfully",
            "uploaded_files": uploaded_names,
            "process_tasks": process_tasks,
            "errors": errors,
        })),
    )
        .into_response())
}

/// Reads a file field into memory, refusing one larger than `limit` bytes before it is all buffered.
async fn bounded_file_field(mut field: Field<'_>, limit: u64) -> Result<(String, Vec<u8>), ApiError> {
    let file_name = field.file_name().unwrap_or("unnamed").to_owned();
    let bytes = read_bounded(&mut field, limit)
        .await?
        .ok_or_else(|| ApiError::PayloadTooLarge(format!("{file_name} is larger than {limit} bytes")))?;
    Ok((file_name, bytes))
}

/// Most files one `/api/file/preprocess` request may carry: they are all held in memory while described.
pub const MAX_PREPROCESS_FILES: usize = 10;
/// Most bytes all the files of one `/api/file/preprocess` request may hold together.
pub const MAX_PREPROCESS_TOTAL_BYTES: u64 = 128 << 20;

#[utoipa::path(post, path = "/api/file/preprocess", tag = "file",
    request_body(content_type = "multipart/form-data", description = "`query` (required), `files` (repeated, required)"),
    responses((status = 200, content_type = "text/event-stream",
               description = r#"SSE `data: {"type":"progress"|"file_processed"|"error"|"complete", ...}` (§6.5); a file's description is its extracted text"#),
              (status = 400, description = "more than 10 files"),
              (status = 413, description = "a file over the upload limit, or more than 128 MiB of files in all"),
              (status = 422, description = "`query` or `files` missing")))]
pub async fn preprocess_files(State(state): State<AppState>, mut multipart: Multipart) -> Result<Response, ApiError> {
    use nexent_core::ingest::preprocess::{VisionModel, preprocess};
    let limit = state.services.storage.max_upload_bytes;
    let (mut query, mut attachments, mut total) = (None, Vec::new(), 0u64);
    let read = read_preprocess_fields(&mut multipart, limit, &mut query, &mut attachments, &mut total).await;
    if let Err(error) = read {
        // A client that sends the whole body before it reads the answer (most do) would otherwise get a
        // broken pipe instead of the refusal.
        drain(&mut multipart).await;
        return Err(error);
    }
    let query = query.ok_or_else(|| ApiError::validation("query", "Field required: query"))?;
    if attachments.is_empty() {
        return Err(ApiError::validation("files", "Field required: files"));
    }
    let config = &state.services.config_sync;
    let vision = config.get("VLM_MODEL_URL").filter(|url| !url.trim().is_empty()).map(|url| VisionModel {
        url,
        model_name: config.get("VLM_MODEL_NAME").unwrap_or_default(),
        api_key: config.get("VLM_API_KEY"),
    });
    let (sender, receiver) = tokio::sync::mpsc::channel(8);
    tokio::spawn(preprocess(attachments, query, vision, sender));
    Ok(crate::sse::event_stream(receiver).into_response())
}

/// The fields of a preprocess request: the query and the files, within the count and size caps.
async fn read_preprocess_fields(
    multipart: &mut Multipart,
    limit: u64,
    query: &mut Option<String>,
    attachments: &mut Vec<nexent_core::ingest::preprocess::Attachment>,
    total: &mut u64,
) -> Result<(), ApiError> {
    use nexent_core::ingest::preprocess::Attachment;
    while let Some(field) = next_field(multipart).await? {
        match field.name() {
            Some("query") => *query = Some(small_text_field(field).await?),
            Some("files" | "file") => {
                // Refused before the file is read: the rest of the body is never buffered.
                if attachments.len() == MAX_PREPROCESS_FILES {
                    return Err(ApiError::BadRequest(format!(
                        "At most {MAX_PREPROCESS_FILES} files can be preprocessed in one request"
                    )));
                }
                let left = MAX_PREPROCESS_TOTAL_BYTES - *total;
                let (file_name, bytes) = if left < limit {
                    let mut field = field;
                    let file_name = field.file_name().unwrap_or("unnamed").to_owned();
                    let bytes = read_bounded(&mut field, left).await?.ok_or_else(|| {
                        ApiError::PayloadTooLarge(format!(
                            "The files of one preprocess request may hold {} MiB in all",
                            MAX_PREPROCESS_TOTAL_BYTES >> 20
                        ))
                    })?;
                    (file_name, bytes)
                } else {
                    bounded_file_field(field, limit).await?
                };
                *total += bytes.len() as u64;
                attachments.push(Attachment { file_name, bytes });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Reads and drops what is left of a refused request's body (at most [`MAX_DRAINED_BYTES`], for at most
/// [`DRAIN_TIME`]), so the client, still sending, reads the refusal instead of a reset connection.
async fn drain(multipart: &mut Multipart) {
    let mut drained = 0u64;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Ok(Some(mut field)) = multipart.next_field().await {
            while let Ok(Some(chunk)) = field.chunk().await {
                drained += chunk.len() as u64;
                if drained > MAX_DRAINED_BYTES {
                    return;
                }
            }
        }
    })
    .await;
}

const MAX_DRAINED_BYTES: u64 = 512 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(30);
