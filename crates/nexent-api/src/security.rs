//! Local-means-safe middleware: the Host check (DNS rebinding), the Origin and fetch-metadata checks and
//! CORS (only our own origins and configured ones, never `*`), who may call without a token, and the
//! headers that keep the UI out of other sites' frames.
//!
//! A browser page on another site can make the user's browser send requests to 127.0.0.1. The Host check
//! refuses requests whose name is not ours (a rebinding attack arrives with the attacker's name); the
//! Origin check refuses requests a foreign page sent, including WebSocket upgrades, which CORS alone does
//! not cover; requests a browser marks `Sec-Fetch-Site: cross-site` without an Origin (an `<img src>`, a
//! link) are refused too, so no GET with an effect can be triggered from another site.
//!
//! Other local users' processes reach loopback as easily as ours. Without a token, only connections whose
//! socket belongs to the server's own user get in ([`crate::peer`]); with a token, every call needs it.
//! Default deny: every path needs the token except the UI's static files and signed download URLs.

use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::peer::Peer;

/// What the middleware enforces; built once from the server's settings.
#[derive(Debug, Clone)]
pub struct SecurityPolicy {
    /// The server's port, which its own origins carry.
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
        // The name is what DNS rebinding forges (a page on the attacker's domain resolved to 127.0.0.1);
        // the port is not: a proxy in front of us (Nexent's own web client on :3000) forwards its own.
        let Some((name, _port)) = split_host_header(host_header) else { return false };
        self.allowed_hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(name))
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        if self.allowed_origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(origin)) {
            return true;
        }
        // No `tauri://` origins: the desktop window loads the UI from this server, so its page has our own
        // origin, and a plain `nexent serve` must not trust a name any local webview app can take.
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

/// A query parameter, percent-decoded as any URL library would encode it (`+` is a space).
fn url_query_value(query: &str, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes()).find(|(name, _)| name == key).map(|(_, value)| value.into_owned())
}

fn constant_time_equal(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    left.iter().zip(right).fold(0u8, |difference, (a, b)| difference | (a ^ b)) == 0
}

/// The only paths open without a token (default deny: every other path, known or not, needs it). The
/// UI's static files stay readable so the page can load and ask for the token; signed download URLs
/// carry their own proof (an HMAC with an expiry), so a browser can open them.
pub fn path_is_public(method: &Method, path: &str) -> bool {
    (method == Method::GET || method == Method::HEAD) && (is_ui_file(path) || path.starts_with("/api/file/download/"))
}

/// The UI's page and its assets (`ui.rs`).
fn is_ui_file(path: &str) -> bool {
    path == "/" || path == "/index.html" || path.starts_with("/assets/")
}

/// Browsers mark every request with where it came from; `cross-site` and `same-site` requests without an
/// allowed Origin (an `<img>`, a link, a form's GET) are another site's doing.
fn sent_by_another_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|site| site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site"))
}

const STRANGER_MESSAGE: &str = "This server answers only its own user's programs on this machine. To call it from \
another account or machine, start it with an API token (--api-token, NEXENT_API_TOKEN or api_token in \
config.toml) and send it as `Authorization: Bearer <token>`";

/// The UI's content security policy: its own scripts and styles only, no frames, no plug-ins; images
/// from data and blob URLs (pasted images, the proxy's answers); sockets to this server.
const UI_CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data: blob:; media-src 'self' data: blob:; connect-src 'self'; font-src 'self' data:; \
object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
/// Every other response: not to be framed by anyone.
const API_CONTENT_SECURITY_POLICY: &str = "frame-ancestors 'none'";

pub async fn enforce(State(policy): State<Arc<SecurityPolicy>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let mut response = check_and_run(&policy, request, next).await;
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // Swagger UI (/api/docs) runs inline scripts of its own; it gets the frame rule only.
    let policy_header = if is_ui_file(&path) { UI_CONTENT_SECURITY_POLICY } else { API_CONTENT_SECURITY_POLICY };
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(policy_header));
    response
}

async fn check_and_run(policy: &SecurityPolicy, request: Request, next: Next) -> Response {
    let headers = request.headers();
    // Two Host headers would let a proxy and we disagree about which one counts.
    if headers.get_all(header::HOST).iter().count() > 1 {
        return ApiError::BadRequest("More than one Host header".into()).into_response();
    }
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
            return ApiError::Forbidden(format!(
                "Origin not allowed: {origin}. To admit it, start Nexent Local with --allowed-origins {origin} \
                 (or NEXENT_ALLOWED_ORIGINS, or allowed_origins in config.toml)"
            ))
            .into_response();
        }
        if is_preflight {
            return preflight_response(origin, headers);
        }
    }

    let public = path_is_public(request.method(), request.uri().path());
    if origin.is_none() && sent_by_another_site(headers) && !public {
        tracing::warn!(path = request.uri().path(), "refused a request another site's page sent");
        return ApiError::Forbidden("Cross-site request refused: it carries no allowed Origin".into()).into_response();
    }

    if !public {
        if policy.api_token.is_some() {
            if !policy.token_matches(headers, request.uri().query()) {
                return ApiError::Unauthorized("Missing or invalid API token".into()).into_response();
            }
        } else {
            let peer = request.extensions().get::<ConnectInfo<Peer>>().map(|ConnectInfo(peer)| *peer);
            if !peer.is_some_and(|peer| peer.same_user) {
                tracing::warn!(peer = ?peer.map(|peer| peer.address), "refused a process of another user");
                return ApiError::Unauthorized(STRANGER_MESSAGE.into()).into_response();
            }
        }
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
    fn host_check_accepts_loopback_names_on_any_port() {
        let policy = SecurityPolicy::loopback(5010);
        for good in ["127.0.0.1:5010", "localhost:5010", "LOCALHOST", "[::1]:5010", "127.0.0.1", "localhost:3000"] {
            assert!(policy.host_allowed(good), "{good}");
        }
        for bad in ["evil.example", "evil.example:5010", "", "localhost.evil.example:5010", "[::1", "localhost:x"] {
            assert!(!policy.host_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn origin_check_accepts_own_and_configured_origins() {
        let mut policy = SecurityPolicy::loopback(5010);
        policy.allowed_origins.push("http://localhost:3000".into());
        assert!(policy.origin_allowed("http://127.0.0.1:5010"));
        assert!(policy.origin_allowed("http://localhost:3000"));
        assert!(!policy.origin_allowed("tauri://localhost"), "no webview app's origin by default");
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
        policy.api_token = Some("s3cr3t+/=&x".into());
        assert!(policy.token_matches(&HeaderMap::new(), Some("access_token=s3cr3t%2B%2F%3D%26x")), "percent-decoded");
        assert!(!policy.token_matches(&HeaderMap::new(), Some("access_token=s3cr3t+/=&x")));
    }

    #[test]
    fn only_static_files_and_signed_downloads_are_public() {
        for (method, path) in [
            (Method::GET, "/"),
            (Method::GET, "/assets/app.js"),
            (Method::HEAD, "/index.html"),
            (Method::GET, "/api/file/download/a/b.txt"),
        ] {
            assert!(path_is_public(&method, path), "{method} {path}");
        }
        for (method, path) in [
            (Method::POST, "/"),
            (Method::GET, "/api/health"),
            (Method::GET, "/open/router/v1/models"),
            (Method::POST, "/open/router/v1/chat/completions"),
            (Method::GET, "/mcp"),
            (Method::GET, "/anything"),
            (Method::DELETE, "/api/file/download/a/b.txt"),
            (Method::GET, "/v1/models"),
            (Method::GET, "/api/docs"),
        ] {
            assert!(!path_is_public(&method, path), "{method} {path}");
        }
    }

    #[test]
    fn fetch_metadata_marks_other_sites() {
        let mut headers = HeaderMap::new();
        assert!(!sent_by_another_site(&headers), "non-browser clients send none");
        for (value, foreign) in [("cross-site", true), ("same-site", true), ("same-origin", false), ("none", false)] {
            headers.insert("sec-fetch-site", HeaderValue::from_static(value));
            assert_eq!(sent_by_another_site(&headers), foreign, "{value}");
        }
    }
}
