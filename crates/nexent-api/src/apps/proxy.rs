//! Proxy App (nexent-api.md §8): `GET /api/proxy/image?url=` returns an image as base64 so the page can
//! show search-result images without loading foreign URLs itself. Always HTTP 200 with `success`, as
//! Nexent; the fetch goes through core's SSRF-safe fetcher.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use crate::AppState;
use crate::error::{ApiError, ApiQuery, parse_json_body};

#[derive(Debug, Deserialize, IntoParams)]
pub struct ProxyImageQuery {
    /// The image URL (http, https or a `data:image/...;base64,` URI). May also come in a JSON body.
    pub url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ProxyImageBody {
    url: Option<String>,
}

#[utoipa::path(get, path = "/api/proxy/image", tag = "proxy", params(ProxyImageQuery),
    request_body(content = Option<String>, description = r#"optional JSON {"url": "..."} when the query has none"#),
    responses((status = 200, description = r#"{"success":true,"base64","content_type"} or {"success":false,"error"}"#),
              (status = 422, description = "no url given")))]
pub async fn proxy_image(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ProxyImageQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let url = match query.url {
        Some(url) => url,
        None => parse_json_body::<ProxyImageBody>(&body)?
            .url
            .ok_or_else(|| ApiError::validation("url", "Field required: url"))?,
    };
    Ok(Json(match state.services.image_proxy.load(&url).await {
        Ok(image) => json!({ "success": true, "base64": image.base64(), "content_type": image.content_type }),
        Err(error) => {
            tracing::info!(error = %error, "image proxy refused a URL");
            json!({ "success": false, "error": error.to_string() })
        }
    }))
}
