//! Local-means-safe middleware: the Host check (DNS rebinding), the Origin check and CORS (only our own
//! origins and configured ones, never `*`), and the optional bearer token.
//!
//! A browser page on another site can make the user's browser send requests to 127.0.0.1. The Host check
//! refuses requests whose name is not ours (a rebinding attack arrives with the attacker's name); the
//! Origin check refuses requests a foreign page sent, including WebSocket upgrades, which CORS alone does
//! not cover.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// What the middleware enforces; built once from the server's settings.
#[derive(Debug, Clone)]
pub struct SecurityPolicy {
    /// The server's port, which a Host header may carry.
    pub port: u16,
    /// Host names (without port) the server answers to; `*` turns the Host check off.
    pub allowed_hosts: Vec<String>,
    /// Extra origins allowed besides the server's own (`http://{allowed host}:{port}`).
    pub allowed_origins: Vec<String>,
    /// When set, every API request must carry `Authorization: Bearer <token>` (or `?access_token=`).
    pub api_token: Option<String>,
}

impl SecurityPolicy {
    /// The policy for a server bound to loopback on `port`, with no token.
    pub fn loopback(port: u16) -> Self {
        Self { port, allowed_hosts: default_allowed_hosts(), allowed_origins: Vec::new(), api_token: None }
    }

    fn host_allowed(&self, host_header: &str) -> bool {
        if self.allowed_hosts.iter().any(|allowed| allowed == "*") {
            return true;
        }
        let Some((name, port)) = split_host_header(host_header) else { return false };
        if port.is_some_and(|port| port != self.port) {
            return false;
        }
        self.allowed_hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(name))
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        if self.allowed_origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(origin)) {
            return true;
        }
        // The desktop shell's webview origins.
        if matches!(origin, "tauri://localhost" | "http://tauri.localhost" | "https://tauri.localhost") {
            return true;
        }
        let Some(rest) = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) else {
            return false;
        };
        let Some((name, port)) = split_host_header(rest) else { return false };
        port == Some(self.port)
            && self.allowed_hosts.iter().any(|allowed| allowed != "*" && allowed.eq_ignore_ascii_case(name))
    }

    fn token_matches(&self, headers: &HeaderMap, query: Option<&str>) -> bool {
        let Some(expected) = &self.api_token else { return true };
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
            .map(str::trim);
        let from_query = query.and_then(|query| url_query_value(query, "access_token"));
        [bearer.map(str::to_owned), from_query]
            .into_iter()
            .flatten()
            .any(|candidate| constant_time_equal(candidate.as_bytes(), expected.as_bytes()))
    }
}

/// Loopback names: what a browser or script on this machine puts in Host.
pub fn default_allowed_hosts() -> Vec<String> {
    ["127.0.0.1", "localhost", "[::1]"].iter().map(|name| (*name).to_owned()).collect()
}

/// Splits `name[:port]` (with `[v6]` literals kept bracketed, as Host carries them).
fn split_host_header(value: &str) -> Option<(&str, Option<u16>)> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.starts_with('[') {
        let end = value.find(']')?;
        let (name, rest) = value.split_at(end + 1);
        return match rest.strip_prefix(':') {
            Some(port) => Some((name, Some(port.parse().ok()?))),
            None if rest.is_empty() => Some((name, None)),
            None => None,
        };
    }
    match value.rsplit_once(':') {
        Some((name, port)) => Some((name, Some(port.parse().ok()?))),
        None => Some((value, None)),
    }
}

fn url_query_value(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == key).then(|| value.to_owned())
    })
}

fn constant_time_equal(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    left.iter().zip(right).fold(0u8, |difference, (a, b)| difference | (a ^ b)) == 0
}

/// Paths the token protects: the API, the OpenAI-compatible endpoints and MCP. The UI's static files
/// stay readable so the page can load and ask for the token.
fn path_needs_token(path: &str) -> bool {
    // Signed download URLs carry their own proof (an HMAC with an expiry), so a browser can open them.
    if path.starts_with("/api/file/download/") {
        return false;
    }
    path.starts_with("/api/") || path == "/api" || path.starts_with("/v1/") || path.starts_with("/mcp")
}

pub async fn enforce(State(policy): State<Arc<SecurityPolicy>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|authority| authority.to_string()));
    if !host.as_deref().is_some_and(|host| policy.host_allowed(host)) {
        tracing::warn!(host = host.as_deref().unwrap_or(""), "refused a request for a foreign host");
        return ApiError::Forbidden("Host not allowed".into()).into_response();
    }

    let origin = headers.get(header::ORIGIN).and_then(|value| value.to_str().ok()).map(str::to_owned);
    let is_preflight =
        request.method() == Method::OPTIONS && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if let Some(origin) = &origin {
        // `null` (sandboxed frames, file://) counts as foreign.
        if !policy.origin_allowed(origin) {
            tracing::warn!(%origin, "refused a cross-origin request");
            return ApiError::Forbidden("Origin not allowed".into()).into_response();
        }
        if is_preflight {
            return preflight_response(origin, headers);
        }
    }

    if path_needs_token(request.uri().path()) && !policy.token_matches(headers, request.uri().query()) {
        return ApiError::Unauthorized("Missing or invalid API token".into()).into_response();
    }

    let mut response = next.run(request).await;
    if let Some(origin) = origin
        && let Ok(value) = HeaderValue::from_str(&origin)
    {
        let response_headers = response.headers_mut();
        response_headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        response_headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

fn preflight_response(origin: &str, request_headers: &HeaderMap) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE, OPTIONS"),
    );
    let requested_headers = request_headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("authorization, content-type"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested_headers);
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_check_accepts_loopback_names_on_our_port_only() {
        let policy = SecurityPolicy::loopback(5010);
        for good in ["127.0.0.1:5010", "localhost:5010", "LOCALHOST", "[::1]:5010", "127.0.0.1"] {
            assert!(policy.host_allowed(good), "{good}");
        }
        for bad in ["evil.example", "evil.example:5010", "127.0.0.1:80", "", "localhost.evil.example:5010", "[::1"] {
            assert!(!policy.host_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn origin_check_accepts_own_and_configured_origins() {
        let mut policy = SecurityPolicy::loopback(5010);
        policy.allowed_origins.push("http://localhost:3000".into());
        assert!(policy.origin_allowed("http://127.0.0.1:5010"));
        assert!(policy.origin_allowed("http://localhost:3000"));
        assert!(policy.origin_allowed("tauri://localhost"));
        assert!(!policy.origin_allowed("http://evil.example"));
        assert!(!policy.origin_allowed("http://127.0.0.1:5011"));
        assert!(!policy.origin_allowed("null"));
    }

    #[test]
    fn token_is_compared_exactly() {
        let mut policy = SecurityPolicy::loopback(5010);
        policy.api_token = Some("secret".into());
        let mut headers = HeaderMap::new();
        assert!(!policy.token_matches(&headers, None));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer secret"));
        assert!(policy.token_matches(&headers, None));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer secreT"));
        assert!(!policy.token_matches(&headers, None));
        assert!(policy.token_matches(&HeaderMap::new(), Some("a=1&access_token=secret")));
    }
}
