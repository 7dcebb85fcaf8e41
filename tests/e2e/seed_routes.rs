//! The seed document's trailing-slash routes, read literally: the id as a query parameter on
//! `/api/indices/`, `/api/conversation/`, `/api/tasks/` and `/api/file/storage/` (issue 16, item 5).

use nexent_e2e::NexentServer;
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::json;

#[tokio::test]
async fn ids_in_the_query_on_the_seeds_trailing_slash_paths() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    // Knowledge bases: create and delete with `index_name` (and `embedding_dim`) as query parameters.
    let (status, created) =
        server.send_json(Method::POST, "/api/indices/?index_name=seed_kb&embedding_dim=384", &json!({})).await?;
    assert_eq!(status, 200, "{created}");
    assert_eq!((created["success"].as_bool(), created["embedding_dim"].as_i64()), (Some(true), Some(384)));
    let (_, listed) = server.get_json("/api/indices").await?;
    assert!(listed.to_string().contains("seed_kb"), "{listed}");
    let (status, deleted) = server.send_json(Method::DELETE, "/api/indices/?index_name=seed_kb", &json!({})).await?;
    assert_eq!(status, 200, "{deleted}");

    // Conversations.
    let (_, conversation) = server.send_json(Method::PUT, "/api/conversation/create", &json!({})).await?;
    let id = conversation["data"]["conversation_id"].as_i64().expect("id");
    let (status, history) = server.get_json(&format!("/api/conversation/?conversation_id={id}")).await?;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["data"][0]["conversation_id"], id.to_string());
    let (status, _) =
        server.send_json(Method::DELETE, &format!("/api/conversation/?conversation_id={id}"), &json!({})).await?;
    assert_eq!(status, 200);

    // Stored files, whose names carry a `/`.
    let response = server
        .client
        .post(server.url("/api/file/storage"))
        .multipart(Form::new().part("files", Part::bytes(b"seed".to_vec()).file_name("seed.txt")))
        .send()
        .await?;
    let (_, uploaded) = nexent_e2e::read_json(response).await?;
    let object_name = uploaded["results"][0]["object_name"].as_str().expect("object name").to_owned();
    let (status, url) = server.get_json(&format!("/api/file/storage/?object_name={object_name}")).await?;
    assert_eq!((status, url["success"].as_bool()), (200, Some(true)), "{url}");
    let (status, _) =
        server.send_json(Method::DELETE, &format!("/api/file/storage/?object_name={object_name}"), &json!({})).await?;
    assert_eq!(status, 200);

    // Tasks: an unknown id is the task's own 404; a missing parameter says which one.
    let (status, _) = server.get_json("/api/tasks/?task_id=no-such-task").await?;
    assert_eq!(status, 404);
    for (path, key) in [
        ("/api/tasks/", "task_id"),
        ("/api/conversation/", "conversation_id"),
        ("/api/indices/", "index_name"),
        ("/api/file/storage/", "object_name"),
    ] {
        let (status, body) = server.get_json(path).await?;
        assert_eq!(status, 404, "{path}");
        assert!(body["message"].as_str().is_some_and(|message| message.contains(key)), "{path}: {body}");
    }
    Ok(())
}
