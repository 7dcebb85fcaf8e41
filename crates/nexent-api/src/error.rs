//! The one place where errors become HTTP responses, and the extractors whose rejections follow it.
//!
//! Every error body has Nexent's shape `{"message": "..."}` (validation errors add `detail`). Unexpected
//! errors are logged with their cause chain and answered with Nexent's generic 500 message, so internal
//! details never reach a client.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use nexent_core::conversation::ConversationError;

/// Nexent's answer to any unexpected failure.
pub const INTERNAL_ERROR_MESSAGE: &str = "Internal server error, please try again later.";

/// Bodies larger than this are refused before parsing (uploads have their own streaming routes).
pub const MAX_JSON_BODY_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Validation { message: String, detail: Value },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    ServiceUnavailable(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    InsufficientStorage(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn validation(location: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError::Validation { detail: json!([{ "loc": [location], "msg": message, "type": "value_error" }]), message }
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(error.into())
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl ApiError {
    fn body(&self) -> Value {
        match self {
            ApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "request failed");
                json!({ "message": INTERNAL_ERROR_MESSAGE })
            }
            ApiError::Validation { message, detail } => json!({ "message": message, "detail": detail }),
            other => json!({ "message": other.to_string() }),
        }
    }

    /// The error's response with more keys beside `message`, for routes whose clients read their own
    /// (Nexent's upload answers a failure with `{error, files}`).
    pub fn into_response_with(self, extra: Value) -> Response {
        let status = self.status();
        let mut body = self.body();
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
            body.extend(extra);
        }
        (status, Json(body)).into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        (status, Json(self.body())).into_response()
    }
}

impl From<nexent_core::chat::ChatError> for ApiError {
    fn from(error: nexent_core::chat::ChatError) -> Self {
        use nexent_core::chat::ChatError;
        match error {
            ChatError::Busy | ChatError::Unavailable(_) => ApiError::ServiceUnavailable(error.to_string()),
            ChatError::Invalid(_) => ApiError::BadRequest(error.to_string()),
            ChatError::Failed(_) => ApiError::internal(anyhow::anyhow!(error)),
        }
    }
}

impl From<nexent_core::agent::AgentError> for ApiError {
    fn from(error: nexent_core::agent::AgentError) -> Self {
        use nexent_core::agent::AgentError;
        match error {
            AgentError::EmptyQuery => ApiError::validation("query", error.to_string()),
            AgentError::Busy(_) => ApiError::ServiceUnavailable(error.to_string()),
            AgentError::Conversation(cause) => cause.into(),
            AgentError::Database(_) | AgentError::Knowledge(_) => ApiError::ServiceUnavailable(error.to_string()),
            AgentError::UnknownKnowledgeBase(_) => ApiError::NotFound(error.to_string()),
        }
    }
}

impl From<ConversationError> for ApiError {
    fn from(error: ConversationError) -> Self {
        match error {
            ConversationError::ConversationNotFound(_) | ConversationError::MessageNotFound(_) => {
                ApiError::NotFound(error.to_string())
            }
            ConversationError::Database(cause) => storage_error(cause),
        }
    }
}

/// Any failure below a route: the disk's fault (full, read-only) is said as such, with what to do;
/// anything else is ours (500).
pub fn storage_error<E: std::error::Error + Send + Sync + 'static>(cause: E) -> ApiError {
    use nexent_core::db::{StorageCondition, storage_condition_in};
    match storage_condition_in(&cause) {
        Some(StorageCondition::Full) => ApiError::InsufficientStorage(
            "The disk holding the data is full: nothing was saved; free some space and try again".into(),
        ),
        Some(StorageCondition::ReadOnly) => ApiError::ServiceUnavailable(
            "The data dir is read-only: nothing was saved; make it writable and try again".into(),
        ),
        None => ApiError::Internal(cause.into()),
    }
}

/// `#[serde(default = "crate::error::default_true")]`: for query flags that are on unless turned off.
pub fn default_true() -> bool {
    true
}

/// A JSON body, parsed whatever the Content-Type says (Nexent's clients are not always careful), with
/// an empty body read as `{}`. Malformed or mistyped bodies are 422 with a readable message.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        require_json_content_type(request.headers())?;
        let bytes = axum::body::Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(format!("Request body is larger than {MAX_JSON_BODY_BYTES} bytes"))
            } else {
                ApiError::validation("body", format!("Cannot read the request body: {rejection}"))
            }
        })?;
        parse_json_body(&bytes).map(ApiJson)
    }
}

/// A JSON body must say so (or say nothing, as FastAPI allows): a browser sends `text/plain`, form and
/// multipart bodies to another site without asking first, so refusing them closes that door for good.
fn require_json_content_type(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(axum::http::header::CONTENT_TYPE) else { return Ok(()) };
    let essence = value.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")) {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "The request body must be JSON (Content-Type: application/json), not {essence:?}"
        )))
    }
}

/// Parses a JSON request body (empty means `{}`) into `T`, or a 422 that says what is wrong and where.
pub fn parse_json_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|failure| {
        let path = failure.path().to_string();
        body_error(&path, &failure.into_inner())
    })?;
    deserializer.end().map_err(|error| body_error(".", &error))?;
    Ok(value)
}

/// A body that does not parse: the field's path leads the message (`message_id: expected a whole
/// number, ...`), and `loc` names it as FastAPI's does (`["body", "message_id"]`).
fn body_error(path: &str, error: &serde_json::Error) -> ApiError {
    let kind = if error.is_syntax() || error.is_eof() { "json_invalid" } else { "value_error" };
    let mut location = vec![Value::from("body")];
    let message = if path == "." {
        format!("Invalid request body: {error}")
    } else {
        location.extend(path.split('.').map(Value::from));
        format!("Invalid request body: {path}: {error}")
    };
    ApiError::Validation {
        detail: json!([{ "loc": location, "msg": error.to_string(), "type": kind,
                         "line": error.line(), "column": error.column() }]),
        message,
    }
}

/// Path parameters; a value of the wrong type (e.g. a non-integer id) is 422.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| ApiPath(value))
            .map_err(|rejection: PathRejection| {
                ApiError::validation("path", format!("Invalid path parameter: {}", rejection.body_text()))
            })
    }
}

/// Query parameters; missing or mistyped values are 422.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| ApiQuery(value))
            .map_err(|rejection: QueryRejection| {
                ApiError::validation("query", format!("Invalid query parameter: {}", rejection.body_text()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Sample {
        #[allow(dead_code)]
        id: i64,
    }

    #[test]
    fn empty_body_reads_as_an_empty_object() {
        let parsed: Result<Value, _> = parse_json_body(b"  ");
        assert_eq!(parsed.ok(), Some(json!({})));
    }

    #[test]
    fn malformed_and_mistyped_bodies_are_validation_errors() {
        for body in [&b"{not json"[..], br#"{"id":"x"}"#, b"{}"] {
            match parse_json_body::<Sample>(body) {
                Err(ApiError::Validation { message, .. }) => assert!(message.starts_with("Invalid request body")),
                other => panic!("expected a validation error, got {other:?}"),
            }
        }
    }
}

/// The error shape of the OpenAI-compatible endpoints (`/v1/...`), which OpenAI's clients parse:
/// `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug)]
pub struct OpenAiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    code: Option<&'static str>,
}

impl OpenAiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: message.into(), kind: "invalid_request_error", code: None }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        let message = message.into();
        Self { status: StatusCode::SERVICE_UNAVAILABLE, message, kind: "server_error", code: Some("model_unavailable") }
    }

    pub fn busy(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
            kind: "server_error",
            code: Some("server_busy"),
        }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "openai-compatible request failed");
        let message = INTERNAL_ERROR_MESSAGE.to_owned();
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, message, kind: "server_error", code: None }
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "message": self.message, "type": self.kind, "param": null, "code": self.code } });
        (self.status, Json(body)).into_response()
    }
}

impl From<nexent_core::chat::ChatError> for OpenAiError {
    fn from(error: nexent_core::chat::ChatError) -> Self {
        use nexent_core::chat::ChatError;
        match error {
            ChatError::Busy => OpenAiError::busy(error.to_string()),
            ChatError::Unavailable(reason) => OpenAiError::unavailable(reason),
            ChatError::Invalid(reason) => OpenAiError::invalid(reason),
            ChatError::Failed(reason) => OpenAiError::internal(reason),
        }
    }
}

/// A JSON body for the `/v1` routes: malformed or mistyped bodies are 400 in OpenAI's shape.
pub struct OpenAiJson<T>(pub T);

impl<S, T> FromRequest<S> for OpenAiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = OpenAiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        // The same reading and parsing as Nexent's routes; only the error's shape differs.
        ApiJson::from_request(request, state)
            .await
            .map(|ApiJson(value)| OpenAiJson(value))
            .map_err(|error| OpenAiError::invalid(error.to_string()))
    }
}

/// Parameters from the query string and from a JSON body alike (Nexent's clients send GET requests with
/// JSON bodies): body keys win over query keys. Values are read leniently with [`Params::text`] and
/// [`Params::number`], since the query gives strings where a body gives numbers.
pub struct Params(pub serde_json::Map<String, Value>);

impl Params {
    pub fn text(&self, key: &str) -> Option<String> {
        match self.0.get(key)? {
            Value::String(text) => Some(text.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    pub fn number(&self, key: &str) -> Result<Option<f64>, ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(number)) => Ok(number.as_f64()),
            Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
            Some(Value::String(text)) => text
                .trim()
                .parse::<f64>()
                .map(Some)
                .map_err(|_| ApiError::validation(key, format!("{key} must be a number, not {text:?}"))),
            Some(other) => Err(ApiError::validation(key, format!("{key} must be a number, not {other}"))),
        }
    }

    /// A whole number (`"12"`, `12` or `12.0`).
    pub fn integer(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.number(key)? {
            None => Ok(None),
            Some(value) if value.fract() == 0.0 && value.abs() < 9.0e15 => Ok(Some(value as i64)),
            Some(value) => Err(ApiError::validation(key, format!("{key} must be a whole number, not {value}"))),
        }
    }

    /// A boolean as FastAPI reads one: `true/false`, `1/0`, `yes/no`, `on/off`, any case.
    pub fn flag(&self, key: &str) -> Result<Option<bool>, ApiError> {
        let Some(text) = self.text(key) else { return Ok(None) };
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Some(true)),
            "false" | "0" | "no" | "off" => Ok(Some(false)),
            "" => Ok(None),
            _ => Err(ApiError::validation(key, format!("{key} must be true or false, not {text:?}"))),
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mut merged = serde_json::Map::new();
        if let Some(query) = request.uri().query() {
            for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
                merged.insert(key.into_owned(), Value::String(value.into_owned()));
            }
        }
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| ApiError::validation("body", format!("Cannot read the request body: {rejection}")))?;
        if !bytes.iter().all(u8::is_ascii_whitespace) {
            let body: serde_json::Map<String, Value> = parse_json_body(&bytes)?;
            merged.extend(body);
        }
        Ok(Params(merged))
    }
}
