//! Base App: health, and the answers for unknown routes, wrong methods and panics, all in Nexent's
//! JSON shape (with FastAPI's `detail` beside our `message`, so either kind of client reads them).

use std::any::Any;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::INTERNAL_ERROR_MESSAGE;

#[utoipa::path(get, path = "/api/health", tag = "base",
    responses((status = 200, description = r#"{"status":"healthy","version"}"#)))]
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "healthy", "version": env!("CARGO_PKG_VERSION") }))
}

pub async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({ "message": "Not Found", "detail": "Not Found" }))).into_response()
}

pub async fn method_not_allowed() -> Response {
    (StatusCode::METHOD_NOT_ALLOWED, Json(json!({ "message": "Method Not Allowed", "detail": "Method Not Allowed" })))
        .into_response()
}

/// Turns a handler panic into Nexent's 500, logging what panicked; the connection stays up.
pub fn panic_response(payload: Box<dyn Any + Send + 'static>) -> Response {
    let description = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|text| (*text).to_owned()))
        .unwrap_or_else(|| "unknown panic".to_owned());
    tracing::error!(panic = %description, "a request handler panicked");
    (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "message": INTERNAL_ERROR_MESSAGE }))).into_response()
}
