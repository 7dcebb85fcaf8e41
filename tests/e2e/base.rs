//! Base App behaviour: JSON errors for unknown routes, wrong methods and bad input; the OpenAPI document
//! and the docs page; Nexent's prefix-less paths; graceful shutdown.

use nexent_e2e::NexentServer;
use serde_json::json;

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_json() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let (status, body) = server.get_json("/api/no/such/route").await?;
    assert_eq!(status, 404);
    assert_eq!(body["message"], "Not Found");
    let (status, body) = server.send_json(reqwest::Method::DELETE, "/api/conversation/list", &json!({})).await?;
    assert_eq!(status, 405);
    assert_eq!(body["message"], "Method Not Allowed");
    Ok(())
}

#[tokio::test]
async fn malformed_json_is_422_with_message_and_detail() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let response = server
        .client
        .post(server.url("/api/conversation/rename"))
        .header("content-type", "application/json")
        .body("{\"conversation_id\": 1, ")
        .send()
        .await?;
    let (status, body) = nexent_e2e::read_json(response).await?;
    assert_eq!(status, 422);
    assert!(body["message"].as_str().is_some_and(|message| message.starts_with("Invalid request body")));
    assert_eq!(body["detail"][0]["type"], "json_invalid");

    let (status, body) = server.post_json("/api/conversation/rename", &json!({"conversation_id": "seven"})).await?;
    assert_eq!(status, 422, "{body}");
    assert!(body["detail"].is_array());

    let (status, body) = server.get_json("/api/conversation/not-a-number").await?;
    assert_eq!(status, 422, "{body}");
    assert!(body["message"].as_str().is_some_and(|message| message.contains("path")));
    Ok(())
}

#[tokio::test]
async fn openapi_document_and_docs_page_are_served() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let (status, document) = server.get_json("/api/openapi.json").await?;
    assert_eq!(status, 200);
    let paths = document["paths"].as_object().expect("paths");
    for path in [
        "/api/conversation/create",
        "/api/conversation/list",
        "/api/conversation/rename",
        "/api/conversation/{conversation_id}",
        "/api/conversation/sources",
        "/api/conversation/message/update_opinion",
        "/api/config/save_config",
        "/api/config/load_config",
        "/api/config/get_config/selected_knowledge_base",
        "/api/agent/reload_config",
        "/api/proxy/image",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    let docs = server.client.get(server.url("/api/docs/")).send().await?;
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await?.to_lowercase().contains("swagger"));
    Ok(())
}

#[tokio::test]
async fn routes_answer_without_the_api_prefix_as_in_nexent() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let (status, body) = server.get_json("/conversation/list").await?;
    assert_eq!(status, 200);
    assert_eq!(body["code"], 0);
    Ok(())
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly() -> anyhow::Result<()> {
    let mut server = NexentServer::start()?;
    let (status, _) = server.get_json("/api/health").await?;
    assert_eq!(status, 200);
    let exit = server.terminate()?;
    assert!(exit.success(), "exit status {exit}");
    Ok(())
}
