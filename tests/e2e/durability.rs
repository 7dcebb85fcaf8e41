//! Data survives a crash: conversations, messages, units, sources and opinions written before a SIGKILL
//! are all there after a restart.

use nexent_e2e::NexentServer;
use reqwest::Method;
use serde_json::json;

use crate::conversation::{agent_store, save_a_run};

#[tokio::test]
async fn everything_written_before_sigkill_is_there_after_restart() -> anyhow::Result<()> {
    let mut server = NexentServer::start()?;
    let mut ids = Vec::new();
    for title in ["first", "second", "third"] {
        let (_, created) = server.send_json(Method::PUT, "/api/conversation/create", &json!({"title": title})).await?;
        ids.push(created["data"]["conversation_id"].as_i64().expect("id"));
    }
    let store = agent_store(&server).await?;
    let (_, answer) = save_a_run(&store, ids[1]).await?;
    store.append_user_message(ids[1], "And its colour?", None).await?;
    let (status, _) = server
        .post_json("/api/conversation/message/update_opinion", &json!({"message_id": answer, "opinion": "Y"}))
        .await?;
    assert_eq!(status, 200);
    server.post_json("/api/conversation/rename", &json!({"conversation_id": ids[0], "name": "renamed"})).await?;
    server.send_json(Method::DELETE, &format!("/api/conversation/{}", ids[2]), &json!({})).await?;
    let (_, history_before) = server.get_json(&format!("/api/conversation/{}", ids[1])).await?;
    let (_, list_before) = server.get_json("/api/conversation/list").await?;
    drop(store);

    server.kill()?;
    server.restart()?;

    let (_, list_after) = server.get_json("/api/conversation/list").await?;
    assert_eq!(list_after, list_before);
    let titles: Vec<_> =
        list_after["data"].as_array().expect("list").iter().map(|c| c["conversation_title"].clone()).collect();
    assert_eq!(titles, [json!("second"), json!("renamed")]);
    let (status, history_after) = server.get_json(&format!("/api/conversation/{}", ids[1])).await?;
    assert_eq!(status, 200);
    assert_eq!(history_after, history_before);
    let messages = history_after["data"][0]["message"].as_array().expect("messages");
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[1]["opinion_flag"], "Y");
    assert_eq!(messages[2]["message"], "And its colour?");
    let (status, _) = server.get_json(&format!("/api/conversation/{}", ids[2])).await?;
    assert_eq!(status, 404, "still deleted");
    Ok(())
}
