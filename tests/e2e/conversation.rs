//! Conversation Management over HTTP, with messages appended the way the agent will append them (core's
//! store, on the same database file, while the server runs).

use nexent_core::conversation::{ConversationStore, StreamUnit};
use nexent_e2e::NexentServer;
use reqwest::Method;
use serde_json::{Value, json};

async fn create(server: &NexentServer, body: Value) -> anyhow::Result<i64> {
    let (status, created) = server.send_json(Method::PUT, "/api/conversation/create", &body).await?;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["code"], 0);
    assert_eq!(created["message"], "success");
    Ok(created["data"]["conversation_id"].as_i64().expect("integer id"))
}

/// The agent's view of the database: the same store the server uses, on the same file.
pub async fn agent_store(server: &NexentServer) -> anyhow::Result<ConversationStore> {
    Ok(ConversationStore::new(server.open_database().await?))
}

pub const SEARCH_RESULTS: &str = r#"[{"title":"Manual.pdf","text":"The Zorblax 9000 weighs 12 kg.","source_type":"file","url":"/docs/Manual.pdf","filename":"Manual.pdf","published_date":"2025-03-04T10:00:00","score":0.91,"score_details":{"accurate":0.8,"semantic":0.95},"cite_index":0,"search_type":"knowledge_base_search","tool_sign":"a"}]"#;

pub async fn save_a_run(store: &ConversationStore, conversation_id: i64) -> anyhow::Result<(i64, i64)> {
    let question = store
        .append_user_message(
            conversation_id,
            "How heavy is the Zorblax 9000?",
            Some(&json!([{"object_name":"attachments/x.pdf","name":"x.pdf"}])),
        )
        .await?;
    let answer = store
        .append_assistant_message(
            conversation_id,
            [
                StreamUnit::new("agent_new_run", "How heavy is the Zorblax 9000?"),
                StreamUnit::new("step_count", "\n**Step 1** \n"),
                StreamUnit::new("model_output_thinking", "Let me "),
                StreamUnit::new("model_output_thinking", "search."),
                StreamUnit::new("search_content", SEARCH_RESULTS),
                StreamUnit::new("picture_web", r#"{"images_url":["https://img.example/z.png"]}"#),
                StreamUnit::new("final_answer", "\nIt weighs 12 kg [[a0]]."),
            ],
        )
        .await?;
    Ok((question, answer))
}

#[tokio::test]
async fn create_list_rename_delete_round_trip() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let untitled = create(&server, json!({})).await?;
    let titled = create(&server, json!({"title": "Trip planning"})).await?;

    let (status, list) = server.get_json("/api/conversation/list").await?;
    assert_eq!(status, 200);
    let items = list["data"].as_array().expect("list");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["conversation_id"], titled, "newest first");
    assert_eq!(items[1]["conversation_title"], "新对话", "default title");
    assert!(items[0]["create_time"].as_i64().expect("ms") > 1_600_000_000_000);

    let (status, renamed) =
        server.post_json("/api/conversation/rename", &json!({"conversation_id": untitled, "name": "Renamed"})).await?;
    assert_eq!((status, renamed["data"].clone()), (200, json!(true)));
    let (_, history) = server.get_json(&format!("/api/conversation/{untitled}")).await?;
    assert_eq!(history["data"][0]["conversation_title"], "Renamed");

    let (status, deleted) =
        server.send_json(Method::DELETE, &format!("/api/conversation/{titled}"), &json!({})).await?;
    assert_eq!((status, deleted["data"].clone()), (200, json!(true)));
    let (_, list) = server.get_json("/api/conversation/list").await?;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
    Ok(())
}

#[tokio::test]
async fn unknown_and_deleted_conversations_are_404_with_a_message() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let (status, body) = server.get_json("/api/conversation/999").await?;
    assert_eq!(status, 404);
    assert_eq!(body["message"], "Conversation 999 does not exist or has been deleted");

    let id = create(&server, json!({})).await?;
    let (status, _) = server.send_json(Method::DELETE, &format!("/api/conversation/{id}"), &json!({})).await?;
    assert_eq!(status, 200);
    let (status, body) = server.send_json(Method::DELETE, &format!("/api/conversation/{id}"), &json!({})).await?;
    assert_eq!(status, 404, "deleting twice: {body}");
    let (status, body) =
        server.post_json("/api/conversation/rename", &json!({"conversation_id": id, "name": "x"})).await?;
    assert_eq!(status, 404, "renaming a deleted conversation: {body}");
    assert!(body["message"].as_str().is_some_and(|message| message.contains("does not exist")));
    let (status, _) = server.get_json(&format!("/api/conversation/{id}")).await?;
    assert_eq!(status, 404);
    Ok(())
}

#[tokio::test]
async fn history_returns_units_answer_and_sources_of_a_saved_run() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let id = create(&server, json!({})).await?;
    let store = agent_store(&server).await?;
    let (question, answer) = save_a_run(&store, id).await?;

    let (status, history) = server.get_json(&format!("/api/conversation/{id}")).await?;
    assert_eq!(status, 200);
    // Nexent's shape: a one-element list, the id as a string.
    let data = &history["data"][0];
    assert_eq!(history["data"].as_array().map(Vec::len), Some(1), "{history}");
    assert_eq!(data["conversation_id"], id.to_string());
    let messages = data["message"].as_array().expect("messages");
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[0]["message"], "How heavy is the Zorblax 9000?");
    assert_eq!(messages[0]["message_id"], question);
    assert_eq!(messages[0]["minio_files"][0]["name"], "x.pdf");
    let assistant = &messages[1];
    assert_eq!(assistant["message_id"], answer);
    let types: Vec<&str> = assistant["message"]
        .as_array()
        .expect("units")
        .iter()
        .map(|unit| unit["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(types, ["agent_new_run", "step_count", "model_output_thinking", "final_answer"]);
    assert_eq!(assistant["message"][2]["content"], "Let me search.", "consecutive units merged");
    assert_eq!(assistant["message"][3]["content"], "\nIt weighs 12 kg [[a0]].");
    assert_eq!(assistant["picture"], json!(["https://img.example/z.png"]));
    let search = &assistant["search"][0];
    assert_eq!(search["title"], "Manual.pdf");
    assert_eq!(search["filename"], "Manual.pdf");
    assert_eq!(search["published_date"], "2025-03-04");
    assert_eq!(search["cite_index"], 0);
    assert_eq!(search["tool_sign"], "a");
    assert_eq!(search["score_details"]["accurate"], 0.8, "both scores kept");
    assert_eq!(search["score_details"]["semantic"], 0.95);
    Ok(())
}

#[tokio::test]
async fn sources_by_message_by_conversation_and_by_type() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let id = create(&server, json!({})).await?;
    let store = agent_store(&server).await?;
    let (_, answer) = save_a_run(&store, id).await?;

    let (status, body) = server.post_json("/api/conversation/sources", &json!({})).await?;
    assert_eq!(status, 200);
    assert_eq!(body["code"], 400);
    assert_eq!(body["message"], "Must provide conversation_id or message_id parameter");

    let (_, body) = server.post_json("/api/conversation/sources", &json!({"conversation_id": 424242})).await?;
    assert_eq!(body["code"], 404);

    let (_, by_conversation) = server.post_json("/api/conversation/sources", &json!({"conversation_id": id})).await?;
    assert_eq!(by_conversation["code"], 0);
    assert_eq!(by_conversation["data"]["searches"][0]["message_id"], answer);
    assert_eq!(by_conversation["data"]["images"], json!(["https://img.example/z.png"]));

    let (_, by_message) = server
        .post_json("/api/conversation/sources", &json!({"message_id": answer, "conversation_id": 424242}))
        .await?;
    assert_eq!(by_message["code"], 0, "message id wins: {by_message}");
    assert!(by_message["data"]["searches"][0].get("message_id").is_none());
    assert_eq!(by_message["data"]["searches"][0]["score"], 0.91);

    let (_, images_only) =
        server.post_json("/api/conversation/sources", &json!({"conversation_id": id, "type": "image"})).await?;
    assert_eq!(images_only["data"]["searches"], json!([]));
    assert_eq!(images_only["data"]["images"].as_array().map(Vec::len), Some(1));
    let (_, searches_only) =
        server.post_json("/api/conversation/sources", &json!({"conversation_id": id, "type": "search"})).await?;
    assert_eq!(searches_only["data"]["images"], json!([]));
    let (_, other) =
        server.post_json("/api/conversation/sources", &json!({"conversation_id": id, "type": "video"})).await?;
    assert_eq!(other["data"], json!({"searches": [], "images": []}));
    Ok(())
}

#[tokio::test]
async fn opinions_accept_y_n_and_null_only() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let id = create(&server, json!({})).await?;
    let store = agent_store(&server).await?;
    let (_, answer) = save_a_run(&store, id).await?;

    for opinion in [json!("Y"), json!("N"), Value::Null] {
        let (status, body) = server
            .post_json("/api/conversation/message/update_opinion", &json!({"message_id": answer, "opinion": opinion}))
            .await?;
        assert_eq!((status, body["data"].clone()), (200, json!(true)), "{opinion}");
        let (_, history) = server.get_json(&format!("/api/conversation/{id}")).await?;
        assert_eq!(history["data"][0]["message"][1]["opinion_flag"], opinion);
    }
    let (status, body) = server
        .post_json("/api/conversation/message/update_opinion", &json!({"message_id": answer, "opinion": "maybe"}))
        .await?;
    assert_eq!(status, 422, "{body}");
    assert!(body["message"].as_str().is_some_and(|message| message.contains("opinion")));
    let (status, body) = server
        .post_json("/api/conversation/message/update_opinion", &json!({"message_id": 987654, "opinion": "Y"}))
        .await?;
    assert_eq!(status, 404);
    assert_eq!(body["message"], "Message does not exist or has been deleted");
    Ok(())
}

/// Appends from many writers at once (several agents, or several nodes on one PostgreSQL database) each
/// get their own message index, with none skipped or repeated.
#[tokio::test]
async fn concurrent_appends_get_distinct_consecutive_indices() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let conversation_id = create(&server, json!({"title": "busy"})).await?;
    // Two stores, as two processes would have.
    let stores = [agent_store(&server).await?, agent_store(&server).await?];
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..24 {
        let store = stores[writer % 2].clone();
        writers.spawn(
            async move { store.append_user_message(conversation_id, &format!("question {writer}"), None).await },
        );
    }
    while let Some(appended) = writers.join_next().await {
        appended??;
    }
    let history = stores[0].history(conversation_id).await?;
    let mut indices: Vec<i64> = history.messages.iter().map(|message| message.message_index).collect();
    indices.sort_unstable();
    assert_eq!(indices, (0..24).collect::<Vec<i64>>());
    let error =
        stores[1].append_user_message(conversation_id + 1000, "nowhere", None).await.expect_err("no such conversation");
    assert!(error.to_string().contains("does not exist"), "{error}");
    Ok(())
}
