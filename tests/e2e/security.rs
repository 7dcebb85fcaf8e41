//! Local means safe: foreign Host names and origins are refused, CORS answers only our own origins, and
//! a non-loopback bind needs a token (which then guards every API request).

use std::process::Command;

use nexent_e2e::{NexentServer, ServerOptions, nexent_binary};

#[tokio::test]
async fn a_foreign_host_header_is_403() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let response =
        server.client.get(server.url("/api/conversation/list")).header("host", "evil.example").send().await?;
    let (status, body) = nexent_e2e::read_json(response).await?;
    assert_eq!(status, 403);
    assert_eq!(body["message"], "Host not allowed");
    let response = server
        .client
        .get(server.url("/api/conversation/list"))
        .header("host", format!("localhost:{}", server.port))
        .send()
        .await?;
    assert_eq!(response.status(), 200, "localhost is ours");
    Ok(())
}

#[tokio::test]
async fn cors_answers_only_our_own_origin() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let preflight = |origin: String| {
        server
            .client
            .request(reqwest::Method::OPTIONS, server.url("/api/conversation/create"))
            .header("origin", origin)
            .header("access-control-request-method", "PUT")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let foreign = preflight("http://evil.example".to_owned()).await?;
    assert!(foreign.headers().get("access-control-allow-origin").is_none());
    assert_eq!(foreign.status(), 403);

    let own_origin = format!("http://127.0.0.1:{}", server.port);
    let own = preflight(own_origin.clone()).await?;
    assert!(own.status().is_success());
    assert_eq!(
        own.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()),
        Some(own_origin.as_str())
    );

    // A foreign page's simple POST (no preflight) must not act either.
    let response = server
        .client
        .put(server.url("/api/conversation/create"))
        .header("origin", "http://evil.example")
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await?;
    assert_eq!(response.status(), 403);
    let (_, list) = server.get_json("/api/conversation/list").await?;
    assert_eq!(list["data"], serde_json::json!([]), "nothing was created");
    Ok(())
}

#[test]
fn binding_all_interfaces_without_a_token_refuses_to_start() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let output = Command::new(nexent_binary()?)
        .args(["serve", "--host", "0.0.0.0", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .env_remove("NEXENT_API_TOKEN")
        .output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("API token"), "{stderr}");
    Ok(())
}

#[test]
fn a_bad_database_url_stops_the_start_with_a_message_and_no_password() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for (url, expected) in [
        ("mysql://nexent:hunter2@127.0.0.1/nexent", "unsupported database URL"),
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        ("postgres://nexent:hunter2@127.0.0.1:1/nexent?connect_timeout=2", "cannot open the database"),
        ("not a url at all", "unsupported database URL"),
    ] {
        let output = Command::new(nexent_binary()?)
            .args(["serve", "--port", "0", "--database-url", url, "--data-dir"])
            .arg(dir.path())
            .env_remove("NEXENT_API_TOKEN")
            .output()?;
        assert!(!output.status.success(), "{url}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{url}: {stderr}");
        assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert!(!dir.path().join("nexent.db").exists(), "no embedded database was made instead");
    Ok(())
}

#[test]
fn a_bad_knowledge_store_setting_stops_the_start_with_a_message() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for (store, expected) in [
        ("elastic", "unknown knowledge store \"elastic\": use tantivy or postgres"),
        ("tantivy; DROP TABLE x", "unknown knowledge store"),
        // The PostgreSQL store needs a PostgreSQL database; the embedded SQLite one is refused plainly.
        ("postgres", "the PostgreSQL knowledge store needs a PostgreSQL database"),
    ] {
        let output = Command::new(nexent_binary()?)
            .args(["serve", "--port", "0", "--knowledge-store", store, "--data-dir"])
            .arg(dir.path())
            .env_remove("NEXENT_API_TOKEN")
            .env_remove("DATABASE_URL")
            .output()?;
        assert!(!output.status.success(), "{store}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{store}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    Ok(())
}

#[tokio::test]
async fn a_configured_token_is_required_on_every_api_request() -> anyhow::Result<()> {
    let token = "test-token-0123456789abcdef";
    let server = NexentServer::start_with(ServerOptions::default().env("NEXENT_API_TOKEN", token))?;
    let (status, body) = server.get_json("/api/conversation/list").await?;
    assert_eq!(status, 401, "{body}");
    let response =
        server.client.get(server.url("/api/conversation/list")).bearer_auth("wrong-token-0123456789").send().await?;
    assert_eq!(response.status(), 401);
    let response = server.client.get(server.url("/api/conversation/list")).bearer_auth(token).send().await?;
    assert_eq!(response.status(), 200);
    Ok(())
}
