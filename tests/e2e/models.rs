//! Model Management (§1.6) and the ModelEngine App (§1.7): records round-trip with Nexent's envelope, local
//! GGUF files and the local embedder are listed, health checks really call the models, and a second Nexent
//! Local serves as the ModelEngine hub of the first.

use nexent_e2e::{NexentServer, ServerOptions, models_dir};
use serde_json::{Value, json};

const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1";

fn with_smollm2() -> ServerOptions {
    let model = models_dir().join(format!("{SMOLLM2}.gguf"));
    ServerOptions::default().arg("--chat-model").arg(model.display().to_string()).arg("--llm-threads").arg("1")
}

fn record<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list["data"].as_array()?.iter().find(|record| record["model_name"] == name)
}

#[tokio::test]
async fn model_records_round_trip_and_health_checks_call_the_models() -> anyhow::Result<()> {
    let server = NexentServer::start_with(with_smollm2())?;
    let (status, listed) = server.get_json("/api/model/list").await?;
    assert_eq!((status, listed["code"].as_u64()), (200, Some(200)), "{listed}");
    let local = record(&listed, SMOLLM2).expect("the GGUF file is listed");
    assert_eq!((local["model_factory"].as_str(), local["model_type"].as_str()), (Some("local"), Some("llm")));
    assert_eq!(record(&listed, "all-MiniLM-L6-v2").expect("embedder")["model_type"], "embedding");

    let remote = json!({"model_name": "Pro/Qwen/Qwen2-7B", "model_type": "llm", "base_url": "http://127.0.0.1:9/v1",
                        "api_key": "sk-secret-1234567890", "display_name": "Remote Qwen"});
    let (_, created) = server.post_json("/api/model/create", &remote).await?;
    assert_eq!(created["code"], 200, "{created}");
    let (status, duplicate) = server
        .post_json(
            "/api/model/create",
            &json!({"model_name": "other", "model_type": "llm", "display_name": "Remote Qwen"}),
        )
        .await?;
    assert_eq!((status, duplicate["code"].as_u64()), (200, Some(409)), "{duplicate}");
    let (_, listed) = server.get_json("/api/model/list").await?;
    let stored = record(&listed, "Pro/Qwen/Qwen2-7B").expect("created");
    assert_eq!((stored["model_repo"].as_str(), stored["connect_status"].as_str()), (Some("Pro/Qwen"), Some("未检测")));
    assert!(!stored["api_key"].as_str().unwrap_or("").contains("secret-1234"), "keys leave masked: {stored}");

    let (_, updated) = server
        .post_json(
            "/api/model/update",
            &json!({"model_name": "Pro/Qwen/Qwen2-7B", "model_type": "llm", "max_tokens": 2048}),
        )
        .await?;
    assert_eq!(updated["data"], json!({"model_name": "Pro/Qwen/Qwen2-7B"}), "{updated}");
    let (_, missing) =
        server.post_json("/api/model/update", &json!({"model_name": "nope/none", "model_type": "llm"})).await?;
    assert_eq!(missing["code"], 404, "{missing}");

    let (_, healthy) = server.get_json(&format!("/api/model/healthcheck?model_name={SMOLLM2}")).await?;
    assert_eq!(healthy["data"]["connectivity"], true, "{healthy}");
    // Nexent's own status constants on the wire (its client colours only those).
    assert_eq!(healthy["data"]["connect_status"], "可用");
    let (_, status_now) = server.get_json(&format!("/api/model/get_connect_status?model_name={SMOLLM2}")).await?;
    assert_eq!(status_now["data"]["connect_status"], "可用", "the status is stored");
    let (_, embedder) = server.get_json("/api/model/healthcheck?model_name=all-MiniLM-L6-v2").await?;
    assert_eq!(embedder["data"]["connectivity"], true, "{embedder}");
    let (_, down) = server.get_json("/api/model/healthcheck?model_name=Pro/Qwen/Qwen2-7B").await?;
    assert_eq!(
        (down["data"]["connectivity"].as_bool(), down["data"]["connect_status"].as_str()),
        (Some(false), Some("不可用")),
        "{down}"
    );
    assert!(!down["data"]["desc"].as_str().unwrap_or("").is_empty(), "the reason is given: {down}");
    let (_, unknown) = server.get_json("/api/model/healthcheck?model_name=no-such-model").await?;
    assert_eq!(unknown["code"], 404, "{unknown}");

    let (_, set) = server
        .post_json(
            "/api/model/update_connect_status",
            &json!({"model_name": "Pro/Qwen/Qwen2-7B", "connect_status": "available"}),
        )
        .await?;
    assert_eq!(set["data"]["connect_status"], "可用", "English accepted on input");
    let (status, _) = server
        .post_json(
            "/api/model/update_connect_status",
            &json!({"model_name": "Pro/Qwen/Qwen2-7B", "connect_status": "maybe"}),
        )
        .await?;
    assert_eq!(status, 422);
    let (_, deleted) = server.post_json("/api/model/delete", &json!({"model_name": "Pro/Qwen/Qwen2-7B"})).await?;
    assert_eq!(deleted["code"], 200, "{deleted}");
    let (_, again) = server.post_json("/api/model/delete", &json!({"model_name": "Pro/Qwen/Qwen2-7B"})).await?;
    assert_eq!(again["code"], 404);
    let (status, refused) =
        server.post_json("/api/model/create", &json!({"model_name": "x", "model_type": "chat-ish"})).await?;
    assert_eq!((status, refused["code"].as_i64()), (200, Some(400)), "an unknown model_type: {refused}");
    // The seed's create example names no type: a chat model is meant, and an update keeps the type.
    let (_, created) = server.post_json("/api/model/create", &json!({"model_name": "x"})).await?;
    assert_eq!(created["code"], 200, "{created}");
    server.post_json("/api/model/update", &json!({"model_name": "x", "display_name": "Ex"})).await?;
    let (_, listed) = server.get_json("/api/model/list").await?;
    let record = listed["data"].as_array().and_then(|all| all.iter().find(|m| m["model_name"] == "x")).cloned();
    assert_eq!(record.map(|m| (m["model_type"].clone(), m["display_name"].clone())), Some((json!("llm"), json!("Ex"))));
    Ok(())
}

#[tokio::test]
async fn another_nexent_serves_as_the_model_engine_hub() -> anyhow::Result<()> {
    let hub = NexentServer::start_with(with_smollm2())?;
    let host = hub.url("").trim_end_matches('/').to_owned();
    // The hub is also this server's remote chat model, as Nexent's settings page would configure it.
    let server = NexentServer::start_with(
        ServerOptions::default()
            .env("MODEL_ENGINE_HOST", host.clone())
            .env("MODEL_ENGINE_APIKEY", "hub-key")
            .env("LLM_MODEL_URL", format!("{host}/v1"))
            .env("LLM_MODEL_NAME", SMOLLM2),
    )?;
    let question = json!({"messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 8, "temperature": 0});
    let (status, remote) = server.post_json("/v1/chat/completions", &question).await?;
    assert_eq!(status, 200, "{remote}");
    assert_eq!(remote["model"], SMOLLM2, "answered by the remote model: {remote}");
    assert!(!remote["choices"][0]["message"]["content"].as_str().unwrap_or("").is_empty(), "{remote}");
    let (_, direct) = hub.post_json("/v1/chat/completions", &question).await?;
    assert_eq!(
        remote["choices"][0]["message"]["content"], direct["choices"][0]["message"]["content"],
        "the same greedy answer"
    );
    let (_, all) = server.get_json("/api/me/model/list").await?;
    // The chat model and both local embedding models.
    assert_eq!((all["code"].as_u64(), all["data"].as_array().map(Vec::len)), (Some(200), Some(3)), "{all}");
    let (_, chat) = server.get_json("/api/me/model/list?type=chat").await?;
    assert_eq!(chat["data"][0]["id"], SMOLLM2, "{chat}");
    let (_, embed) = server.get_json("/api/me/model/list?type=embedding").await?;
    assert_eq!(embed["data"][0]["id"], "all-MiniLM-L6-v2", "our type names map to the hub's: {embed}");
    let response = server.client.get(server.url("/api/me/model/list")).json(&json!({"type": "chat"})).send().await?;
    let (_, from_body) = nexent_e2e::read_json(response).await?;
    assert_eq!(from_body["data"].as_array().map(Vec::len), Some(1), "a JSON body on GET works too: {from_body}");
    let (_, none) = server.get_json("/api/me/model/list?type=rerank").await?;
    assert_eq!(none["code"], 404);
    assert!(none["message"].as_str().unwrap_or("").contains("Available types"), "{none}");

    let (_, health) = server.get_json("/api/me/healthcheck").await?;
    assert_eq!(
        (health["code"].as_u64(), health["data"]["status"].as_str()),
        (Some(200), Some("Connected")),
        "{health}"
    );
    for model in [SMOLLM2, "all-MiniLM-L6-v2"] {
        let (_, checked) = server.get_json(&format!("/api/me/model/healthcheck?model_name={model}")).await?;
        assert_eq!(checked["data"]["connectivity"], true, "{model}: {checked}");
    }
    let (_, unknown) = server.get_json("/api/me/model/healthcheck?model_name=ghost").await?;
    assert_eq!(unknown["code"], 404);

    // A hub that hangs (stopped, its port still accepting) gives §1.7's timeout answer.
    hub.pause();
    let answer = server.get_json("/api/me/healthcheck?timeout=1").await;
    hub.resume();
    let (_, timed_out) = answer?;
    assert_eq!(
        (timed_out["code"].as_u64(), timed_out["data"]["status"].as_str()),
        (Some(408), Some("Disconnected")),
        "{timed_out}"
    );
    assert_eq!(timed_out["data"]["desc"], "Connection timeout");
    Ok(())
}

#[tokio::test]
async fn a_local_chat_model_chosen_in_the_settings_is_loaded_at_the_next_start() -> anyhow::Result<()> {
    let mut server = NexentServer::start_with(ServerOptions::default().arg("--llm-threads").arg("1"))?;
    let (_, listed) = server.get_json("/api/model/list").await?;
    let small = record(&listed, SMOLLM2).expect("the GGUF file is listed").clone();
    let (_, models) = server.get_json("/v1/models").await?;
    assert_ne!(models["data"][0]["id"], SMOLLM2, "another model is the default: {models}");

    // What the Models screen saves when SmolLM2 is chosen for chat.
    let (_, loaded) = server.get_json("/api/config/load_config").await?;
    let mut settings = loaded["config"].clone();
    settings["models"]["llm"] = json!({"modelName": SMOLLM2, "displayName": small["display_name"],
                                        "apiConfig": {"apiKey": "", "modelUrl": small["base_url"]}});
    let (status, saved) = server.post_json("/api/config/save_config", &settings).await?;
    assert_eq!(status, 200, "{saved}");
    server.restart()?;
    let (_, models) = server.get_json("/v1/models").await?;
    assert_eq!(models["data"][0]["id"], SMOLLM2, "{models}");
    let (status, answer) = server
        .post_json("/v1/chat/completions", &json!({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}))
        .await?;
    assert_eq!(status, 200, "the chosen model answers: {answer}");
    Ok(())
}
