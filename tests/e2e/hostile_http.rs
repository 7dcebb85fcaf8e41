//! Local attackers over HTTP (issue 15, items 8-12 and the lower ones): other users' processes, pages on
//! other sites, tokens in odd spellings, trickling clients, forged URLs, a full quota. Each attack is sent
//! as the attacker would send it, and the server must refuse it clearly and keep answering.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use nexent_e2e::{NexentServer, ServerOptions};
use reqwest::multipart::{Form, Part};
use serde_json::json;

const TOKEN: &str = "hostile-test-token-0123456789";
/// A system account made by `scripts/setup-test.sh`: "another local user".
const OTHER_USER: &str = "nexent-other";

/// `curl` run as another account; its status code, or `None` when this machine cannot run as one.
fn curl_as_other_user(url: &str, extra: &[&str]) -> anyhow::Result<Option<String>> {
    let root = std::fs::metadata("/proc/self").map(|meta| std::os::unix::fs::MetadataExt::uid(&meta) == 0)?;
    let exists = Command::new("id").arg(OTHER_USER).output()?.status.success();
    anyhow::ensure!(
        !root || exists,
        "the account {OTHER_USER} is missing: run scripts/setup-test.sh (make test does) to create it"
    );
    if !root {
        return Ok(None);
    }
    let output = Command::new("runuser")
        .args(["-u", OTHER_USER, "--", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--noproxy", "*"])
        .args(extra)
        .arg(url)
        .output()?;
    Ok(Some(String::from_utf8_lossy(&output.stdout).trim().to_owned()))
}

#[tokio::test]
async fn another_users_process_is_refused_and_ours_is_not() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let url = server.url("/api/conversation/list");
    let Some(status) = curl_as_other_user(&url, &[])? else {
        eprintln!("not root: cannot run a process as another user here; the check needs root (CI runs as root)");
        return Ok(());
    };
    assert_eq!(status, "401", "another account's curl must be refused without a token");
    // The same user's scripts need no token.
    let (status, body) = server.get_json("/api/conversation/list").await?;
    assert_eq!(status, 200, "{body}");
    // The UI's static page stays public (it asks for the token), the API does not.
    assert_eq!(curl_as_other_user(&server.url("/"), &[])?.as_deref(), Some("200"));

    // With a token, another account gets in by showing it.
    let server = NexentServer::start_with(ServerOptions::default().env("NEXENT_API_TOKEN", TOKEN))?;
    let url = server.url("/api/conversation/list");
    assert_eq!(curl_as_other_user(&url, &[])?.as_deref(), Some("401"));
    let header = format!("Authorization: Bearer {TOKEN}");
    assert_eq!(curl_as_other_user(&url, &["-H", &header])?.as_deref(), Some("200"));
    Ok(())
}

#[tokio::test]
async fn the_data_dir_is_private_to_its_user() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir(&data)?;
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755))?;
    std::fs::write(data.join("config.toml"), "")?;
    std::fs::set_permissions(data.join("config.toml"), std::fs::Permissions::from_mode(0o644))?;
    let server = NexentServer::start_in(&data, ServerOptions::default())?;
    let (status, _) =
        server.send_json(reqwest::Method::PUT, "/api/conversation/create", &json!({"title": "x"})).await?;
    assert_eq!(status, 200);
    let mode =
        |name: &str| -> anyhow::Result<u32> { Ok(std::fs::metadata(data.join(name))?.permissions().mode() & 0o777) };
    assert_eq!(mode("")?, 0o700, "data dir");
    for file in ["nexent.db", "storage.secret", "config.toml"] {
        assert_eq!(mode(file)?, 0o600, "{file}");
    }
    for entry in std::fs::read_dir(&data)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        assert_eq!(meta.permissions().mode() & 0o077, 0, "{} is open to others", entry.path().display());
    }
    Ok(())
}

/// Every route the server has: the OpenAPI document's, plus those outside it (MCP, ModelEngine's
/// aliases, the file preflight, the UI, unknown paths).
async fn every_route(server: &NexentServer) -> anyhow::Result<Vec<(reqwest::Method, String)>> {
    let response = server.client.get(server.url("/api/openapi.json")).bearer_auth(TOKEN).send().await?;
    let (status, document) = nexent_e2e::read_json(response).await?;
    assert_eq!(status, 200);
    let mut routes = Vec::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        let concrete: String = path
            .split('/')
            .map(|segment| if segment.starts_with('{') { "x" } else { segment })
            .collect::<Vec<_>>()
            .join("/");
        for method in item.as_object().into_iter().flatten().map(|(method, _)| method) {
            routes.push((reqwest::Method::from_bytes(method.to_uppercase().as_bytes())?, concrete.clone()));
        }
    }
    assert!(routes.len() > 50, "the OpenAPI document lists the routes ({})", routes.len());
    for (method, path) in [
        ("GET", "/open/router/v1/models"),
        ("POST", "/open/router/v1/chat/completions"),
        ("POST", "/open/router/v1/embeddings"),
        ("POST", "/mcp"),
        ("GET", "/mcp"),
        ("OPTIONS", "/api/file/x"),
        ("GET", "/api/docs/"),
        ("GET", "/api/openapi.json"),
        ("GET", "/nothing/here"),
        ("POST", "/"),
        ("GET", "/conversation/list"),
    ] {
        routes.push((reqwest::Method::from_bytes(method.as_bytes())?, path.to_owned()));
    }
    Ok(routes)
}

#[tokio::test]
async fn every_route_needs_the_token_but_the_ui_and_signed_downloads() -> anyhow::Result<()> {
    let server = NexentServer::start_with(ServerOptions::default().env("NEXENT_API_TOKEN", TOKEN))?;
    let routes = every_route(&server).await?;
    for (method, path) in &routes {
        if path.starts_with("/api/file/download/") {
            continue; // signed: checked below
        }
        let response = server.client.request(method.clone(), server.url(path)).send().await?;
        assert_eq!(response.status(), 401, "{method} {path} answered without the token");
    }
    for path in ["/", "/index.html"] {
        let response = server.client.get(server.url(path)).send().await?;
        assert_eq!(response.status(), 200, "{path} is the UI");
    }
    // A download URL without a valid signature is refused by its own check, not the token's.
    let response = server.client.get(server.url("/api/file/download/a/b.txt?expires=1&signature=00")).send().await?;
    assert_eq!(response.status(), 403);
    println!("{} routes refused without the token", routes.len());
    Ok(())
}

#[tokio::test]
async fn requests_other_sites_make_a_browser_send_are_refused() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let own_origin = server.url("");
    for path in ["/api/model/healthcheck?model_name=x", "/api/agent/stop/123", "/api/conversation/list"] {
        for site in ["cross-site", "same-site"] {
            // An <img src> or a link: no Origin, marked by the browser as another site's.
            let response = server.client.get(server.url(path)).header("sec-fetch-site", site).send().await?;
            let (status, body) = nexent_e2e::read_json(response).await?;
            assert_eq!(status, 403, "{path} from a {site} page: {body}");
            assert!(body["message"].as_str().is_some_and(|message| message.contains("Cross-site")), "{body}");
        }
        // Our own page and plain clients keep working.
        let response = server.client.get(server.url(path)).header("sec-fetch-site", "same-origin").send().await?;
        assert_ne!(response.status(), 403, "{path} from our own page");
        let response = server
            .client
            .get(server.url(path))
            .header("sec-fetch-site", "cross-site")
            .header("origin", &own_origin)
            .send()
            .await?;
        assert_ne!(response.status(), 403, "{path} with an allowed Origin");
    }
    // A top-level navigation to the UI from a link elsewhere still opens it.
    let response = server.client.get(server.url("/")).header("sec-fetch-site", "cross-site").send().await?;
    assert_eq!(response.status(), 200);
    // Webview apps' origins are not ours.
    for origin in ["tauri://localhost", "http://tauri.localhost"] {
        let response = server
            .client
            .put(server.url("/api/conversation/create"))
            .header("origin", origin)
            .json(&json!({"title": "x"}))
            .send()
            .await?;
        assert_eq!(response.status(), 403, "{origin}");
    }
    Ok(())
}

#[tokio::test]
async fn no_page_may_frame_the_ui_and_the_ui_has_a_content_policy() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    for path in ["/", "/api/health", "/api/docs/"] {
        let response = server.client.get(server.url(path)).send().await?;
        let headers = response.headers();
        assert_eq!(headers.get("x-frame-options").map(|value| value.as_bytes()), Some(&b"DENY"[..]), "{path}");
        let policy = headers.get("content-security-policy").and_then(|value| value.to_str().ok()).unwrap_or("");
        assert!(policy.contains("frame-ancestors 'none'"), "{path}: {policy}");
    }
    let response = server.client.get(server.url("/")).send().await?;
    let policy = response.headers().get("content-security-policy").and_then(|value| value.to_str().ok()).unwrap_or("");
    assert!(policy.contains("script-src 'self'") && policy.contains("object-src 'none'"), "{policy}");
    Ok(())
}

#[tokio::test]
async fn odd_requests_get_clear_answers() -> anyhow::Result<()> {
    let token = "tok+en/with=odd&chars-0123456789";
    let server = NexentServer::start_with(ServerOptions::default().env("NEXENT_API_TOKEN", token))?;
    // The token in a query string, percent-encoded as every URL library writes it.
    let encoded: String = url_encode(token);
    let response =
        server.client.get(server.url(&format!("/api/conversation/list?access_token={encoded}"))).send().await?;
    assert_eq!(response.status(), 200, "a percent-encoded token");

    // Two Host headers: which one would a proxy have checked?
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET /api/health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nHost: evil.example\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n",
        port = server.port
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

    // JSON routes take JSON: a form or text body (what another site's page can send unasked) is 415.
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
        let response = server
            .client
            .put(server.url("/api/conversation/create"))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(r#"{"title":"x"}"#)
            .send()
            .await?;
        let (status, body) = nexent_e2e::read_json(response).await?;
        assert_eq!(status, 415, "{content_type}: {body}");
        assert!(body["message"].as_str().is_some_and(|message| message.contains("application/json")), "{body}");
    }
    let response = server
        .client
        .put(server.url("/api/conversation/create"))
        .bearer_auth(token)
        .body(r#"{"title":"x"}"#)
        .send()
        .await?;
    assert_eq!(response.status(), 200, "no Content-Type is read as JSON, as FastAPI does");

    // A signed URL good for ten years is refused even with a valid signature.
    let response = server
        .client
        .post(server.url("/api/file/storage"))
        .bearer_auth(token)
        .multipart(Form::new().part("files", Part::bytes(b"hello".to_vec()).file_name("a.txt")))
        .send()
        .await?;
    let (status, body) = nexent_e2e::read_json(response).await?;
    assert_eq!(status, 200, "{body}");
    let object_name = body["results"][0]["object_name"].as_str().unwrap_or_default().to_owned();
    assert!(!object_name.is_empty(), "{body}");
    let signer = nexent_core::storage::UrlSigner::open(server.data_dir())?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    for (expires, expected) in [(now + 600, 200), (now + 10 * 365 * 24 * 3600, 403)] {
        let signature = signer.sign(&object_name, expires);
        let path = format!("/api/file/download/{object_name}?expires={expires}&signature={signature}");
        let response = server.client.get(server.url(&path)).send().await?;
        assert_eq!(response.status(), expected, "expiry {expires}");
    }
    Ok(())
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn a_client_that_trickles_its_headers_is_cut_off() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let started = Instant::now();
    stream.write_all(format!("GET /api/health HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n", server.port).as_bytes())?;
    // Never finish the headers; the server must close the connection on its own.
    let mut buffer = Vec::new();
    let read = stream.read_to_end(&mut buffer);
    let waited = started.elapsed();
    assert!(read.is_ok(), "the server closed the connection instead of leaving it open: {read:?}");
    assert!(waited < Duration::from_secs(45), "closed after {waited:?}");
    println!("a trickling client was cut off after {:.1} s", waited.as_secs_f64());
    let (status, _) = server.get_json("/api/health").await?;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test]
async fn a_full_storage_quota_is_507_and_loses_nothing() -> anyhow::Result<()> {
    let server = NexentServer::start_with(ServerOptions::default().arg("--storage-quota-bytes").arg("1000"))?;
    let upload = |name: &'static str| {
        server
            .client
            .post(server.url("/api/file/storage"))
            .multipart(Form::new().part("files", Part::bytes(vec![b'a'; 600]).file_name(name)))
            .send()
    };
    let (status, body) = nexent_e2e::read_json(upload("first.txt").await?).await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = nexent_e2e::read_json(upload("second.txt").await?).await?;
    assert_eq!(status, 507, "{body}");
    assert!(body["message"].as_str().is_some_and(|message| message.contains("quota")), "{body}");
    let (status, listed) = server.get_json("/api/file/storage").await?;
    assert_eq!(status, 200);
    // Object names do not carry file names: one object of the first upload's size, nothing else.
    assert_eq!(listed["total"], 1, "half an upload was kept: {listed}");
    assert_eq!(listed["files"][0]["size"], 600, "{listed}");
    // Deleting frees the quota again.
    let key = listed["files"][0]["key"].as_str().unwrap_or_default().to_owned();
    let response = server.client.delete(server.url(&format!("/api/file/storage/{key}"))).send().await?;
    assert_eq!(response.status(), 200);
    let (status, body) = nexent_e2e::read_json(upload("second.txt").await?).await?;
    assert_eq!(status, 200, "{body}");
    Ok(())
}
