//! The web UI (`ui/`, built by Vite into `ui/dist`) at `/`: the same screens the desktop window shows.
//!
//! Release builds embed the files in the binary; debug builds read them from `ui/dist` at run time (so a
//! UI rebuild needs no Rust rebuild). A checkout whose UI was never built still compiles and serves a page
//! that says how to build it, with a link to the API reference.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use rust_embed::Embed;

#[derive(Embed)]
#[folder = "../../ui/dist"]
#[allow_missing = true]
struct Assets;

const NOT_BUILT: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Nexent Local</title></head>\
<body><main><h1>Nexent Local</h1><p>The web UI has not been built in this checkout: run <code>make run</code> \
(or <code>npm ci &amp;&amp; npm run build</code> in <code>ui/</code>). The API is up: see the \
<a href=\"/api/docs\">API reference</a>.</p></main></body></html>";

fn file(path: &str) -> Option<Response> {
    let asset = Assets::get(path)?;
    let mime = asset.metadata.mimetype();
    // Vite names assets by content hash, so they can be cached for good; the page itself never is.
    let cache = if path.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
    let mut response = asset.data.into_owned().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(mime).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Some(response)
}

/// `GET /`: the UI's page.
pub async fn index() -> Response {
    file("index.html").unwrap_or_else(|| Html(NOT_BUILT).into_response())
}

/// `GET /assets/{*path}`: the UI's scripts, styles and images.
pub async fn asset(Path(path): Path<String>) -> Response {
    file(&format!("assets/{path}")).unwrap_or_else(|| (StatusCode::NOT_FOUND, "no such asset").into_response())
}
