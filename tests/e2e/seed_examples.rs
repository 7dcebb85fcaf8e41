//! Every request example of the seed API document, sent as written: its JSON bodies with each type
//! placeholder replaced by a value of that type (`"message_id": "string"` is sent as a string,
//! `"conversation_id": "number"` as a number), its "Request Body" of GET routes sent as a JSON body on
//! the GET, its trailing-slash routes with the id in the query. Each answer must be a 2xx carrying the
//! response fields the document shows (issue 16). Where the document and Nexent's real backend differ
//! and Nexent's own client depends on the real one, the real one is checked (GET
//! /api/conversation/{id} answers `data` as a one-element list; statuses are Nexent's `可用`...).
//! The TTS socket's `{"text"}` example is sent verbatim in `voice.rs`.

use std::time::Duration;

use nexent_e2e::{AgentStreamParser, NexentServer, ServerOptions, read_json, wait_for_task};
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

/// Sends `body` as JSON with `method` (no body for `Value::Null`) and requires a 2xx; returns the answer.
async fn send(server: &NexentServer, method: Method, path: &str, body: Value) -> anyhow::Result<Value> {
    let request = server.client.request(method.clone(), server.url(path));
    let request = if body.is_null() { request } else { request.json(&body) };
    let response = request.send().await?;
    let (status, answer) = read_json(response).await?;
    anyhow::ensure!((200..300).contains(&status), "{method} {path} {body}: {status} {answer}");
    Ok(answer)
}

/// Requires every key of `keys` on `value` (a path like `data.conversation_id` goes into objects).
#[track_caller]
fn assert_fields(value: &Value, keys: &[&str]) {
    for key in keys {
        let found = key.split('.').try_fold(value, |node, part| node.get(part));
        assert!(found.is_some(), "missing {key} in {value}");
    }
}

#[tokio::test]
async fn config_sync_examples() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let saved = send(
        &server,
        Method::POST,
        "/api/config/save_config",
        json!({
            "app": {
                "name": "Seed Assistant",
                "description": "Answers from the seed document",
                "icon": {"type": "custom", "avatarUri": "avatar://fox", "customUrl": "https://example.com/icon.png"}
            },
            "models": {
                "llm": {
                    "name": "Qwen/Qwen2.5-7B",
                    "displayName": "Qwen 7B",
                    "apiConfig": {"apiKey": "sk-seed-1234567890", "modelUrl": "http://localhost:8000/v1"}
                }
            },
            "data": {"selectedKbNames": ["seed_kb"], "selectedKbModels": ["all-MiniLM-L6-v2"], "selectedKbSources": ["local"]}
        }),
    )
    .await?;
    assert_eq!(
        (saved["message"].as_str(), saved["status"].as_str()),
        (Some("Configuration saved successfully"), Some("saved"))
    );

    let (status, loaded) = server.get_json("/api/config/load_config").await?;
    assert_eq!(status, 200);
    let config = &loaded["config"];
    assert_eq!(config["app"]["name"], "Seed Assistant");
    assert_eq!(config["app"]["description"], "Answers from the seed document");
    assert_eq!(
        config["app"]["icon"],
        json!({"type": "custom", "avatarUri": "avatar://fox", "customUrl": "https://example.com/icon.png"})
    );
    let llm = &config["models"]["llm"];
    assert_eq!((llm["name"].as_str(), llm["displayName"].as_str()), (Some("Qwen/Qwen2.5-7B"), Some("Qwen 7B")));
    assert_eq!(llm["apiConfig"]["modelUrl"], "http://localhost:8000/v1");
    let masked = llm["apiConfig"]["apiKey"].as_str().unwrap_or_default();
    assert!(!masked.is_empty() && !masked.contains("1234567890"), "keys leave the server masked: {masked}");
    assert_eq!(config["data"]["selectedKbNames"], json!(["seed_kb"]));
    assert_eq!(config["data"]["selectedKbModels"], json!(["all-MiniLM-L6-v2"]));
    assert_eq!(config["data"]["selectedKbSources"], json!(["local"]));

    let (_, selected) = server.get_json("/api/config/get_config/selected_knowledge_base").await?;
    assert_eq!(selected["kb_names"], json!(["seed_kb"]));
    let reloaded = send(&server, Method::POST, "/api/agent/reload_config", Value::Null).await?;
    assert_eq!(reloaded["status"], "success", "{reloaded}");
    Ok(())
}

#[tokio::test]
async fn conversation_and_agent_examples() -> anyhow::Result<()> {
    let server = NexentServer::start_with(ServerOptions::default().arg("--llm-threads").arg("1"))?;
    let created = send(&server, Method::PUT, "/api/conversation/create", json!({"title": "Seed chat"})).await?;
    assert_fields(
        &created,
        &["code", "message", "data.conversation_id", "data.conversation_title", "data.create_time", "data.update_time"],
    );
    assert_eq!((created["code"].as_i64(), created["message"].as_str()), (Some(0), Some("success")));
    assert_eq!(created["data"]["conversation_title"], "Seed chat");
    let id = created["data"]["conversation_id"].as_i64().expect("id");

    let (_, listed) = server.get_json("/api/conversation/list").await?;
    assert_fields(&listed["data"][0], &["conversation_id", "conversation_title", "create_time", "update_time"]);

    let renamed =
        send(&server, Method::POST, "/api/conversation/rename", json!({"conversation_id": id, "name": "Renamed"}))
            .await?;
    assert_eq!((renamed["code"].as_i64(), renamed["data"].as_bool()), (Some(0), Some(true)));

    // The agent example names no conversation: the answer streams and nothing is saved.
    let response = server
        .client
        .post(server.url("/api/agent/run"))
        .json(&json!({"query": "Say hello.", "history": [], "minio_files": []}))
        .timeout(Duration::from_secs(300))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let messages = AgentStreamParser::read_all(response).await?;
    assert!(messages.iter().any(|(kind, _)| kind == "final_answer"), "{messages:?}");
    // With the conversation, the run is saved and its history has the documented fields.
    let response = server
        .client
        .post(server.url("/api/agent/run"))
        .json(&json!({"query": "Say hello.", "conversation_id": id, "history": [], "minio_files": []}))
        .timeout(Duration::from_secs(300))
        .send()
        .await?;
    let messages = AgentStreamParser::read_all(response).await?;
    let answer: String =
        messages.iter().filter(|(kind, _)| kind == "final_answer").map(|(_, text)| text.as_str()).collect();

    let (status, history) = server.get_json(&format!("/api/conversation/{id}")).await?;
    assert_eq!(status, 200);
    assert_fields(&history, &["code", "message"]);
    let record = &history["data"][0];
    assert_fields(record, &["conversation_id", "create_time", "message"]);
    for message in record["message"].as_array().expect("messages") {
        assert_fields(message, &["role", "message", "message_id", "opinion_flag", "picture", "search"]);
    }
    let message_id = record["message"][1]["message_id"].as_i64().expect("assistant message id");

    // `message_id` is a string in the examples, `conversation_id` a number.
    let sources = send(
        &server,
        Method::POST,
        "/api/conversation/sources",
        json!({"conversation_id": id, "message_id": message_id.to_string(), "type": "all"}),
    )
    .await?;
    assert_eq!(sources["code"], 0, "{sources}");
    assert_fields(&sources, &["data.searches", "data.images"]);

    let titled = send(
        &server,
        Method::POST,
        "/api/conversation/generate_title",
        json!({"conversation_id": id, "history": [{"role": "user", "content": "Say hello."}, {"role": "assistant", "content": answer}]}),
    )
    .await?;
    assert!(titled["data"].as_str().is_some_and(|title| !title.trim().is_empty()), "{titled}");

    let opinion = send(
        &server,
        Method::POST,
        "/api/conversation/message/update_opinion",
        json!({"message_id": message_id.to_string(), "opinion": "Y"}),
    )
    .await?;
    assert_eq!((opinion["code"].as_i64(), opinion["data"].as_bool()), (Some(0), Some(true)));
    let (_, history) = server.get_json(&format!("/api/conversation/?conversation_id={id}")).await?;
    assert_eq!(history["data"][0]["message"][1]["opinion_flag"], "Y");

    let deleted = send(&server, Method::DELETE, &format!("/api/conversation/{id}"), Value::Null).await?;
    assert_eq!(
        (deleted["code"].as_i64(), deleted["message"].as_str(), deleted["data"].as_bool()),
        (Some(0), Some("success"), Some(true))
    );
    Ok(())
}

#[tokio::test]
async fn knowledge_and_data_process_examples() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    // `POST /api/indices/` with `index_name` and `embedding_dim`, as the document lists the parameters.
    let created =
        send(&server, Method::POST, "/api/indices/?index_name=seed_kb&embedding_dim=384", Value::Null).await?;
    assert_fields(&created, &["status", "message", "embedding_dim"]);
    assert_eq!((created["status"].as_str(), created["embedding_dim"].as_i64()), (Some("success"), Some(384)));
    send(&server, Method::POST, "/api/indices/seed_other", Value::Null).await?;

    // A stored file is a task's source.
    let form =
        Form::new().part("files", Part::bytes(b"Quinces ripen in late autumn.".to_vec()).file_name("quince.txt"));
    let (_, stored) =
        read_json(server.client.post(server.url("/api/file/storage")).multipart(form).send().await?).await?;
    let source = stored["results"][0]["object_name"].as_str().expect("object_name").to_owned();
    let task = send(
        &server,
        Method::POST,
        "/api/tasks",
        json!({"source": source, "source_type": "file", "chunking_strategy": "basic", "index_name": "seed_kb",
               "additional_params": {"key": "value"}}),
    )
    .await?;
    let task_id = task["task_id"].as_str().expect("task_id").to_owned();
    let batch = send(
        &server,
        Method::POST,
        "/api/tasks/batch",
        json!({"sources": [{"source": source, "source_type": "file", "chunking_strategy": "basic",
                            "index_name": "seed_other", "additional_params": {"key": "value"}}]}),
    )
    .await?;
    let batch_id = batch["task_ids"][0].as_str().expect("task_ids").to_owned();
    for id in [&task_id, &batch_id] {
        assert_eq!(wait_for_task(&server, id).await?["status"], "completed");
    }
    let (_, status) = server.get_json(&format!("/api/tasks/{task_id}")).await?;
    assert_fields(&status, &["id", "status", "created_at", "updated_at", "error"]);
    let (_, listed) = server.get_json("/api/tasks").await?;
    assert_fields(&listed["tasks"][0], &["id", "status", "created_at", "updated_at", "error"]);
    let (_, by_index) = server.get_json("/api/tasks/indices/seed_kb/tasks").await?;
    assert_fields(&by_index, &["index_name", "files"]);
    let (_, details) = server.get_json(&format!("/api/tasks/{task_id}/details")).await?;
    assert_fields(&details, &["id", "status", "created_at", "updated_at", "error", "results"]);
    let (_, details) = server.get_json(&format!("/api/tasks/?task_id={task_id}")).await?;
    assert_eq!(details["id"], task_id.as_str());

    // Documents given directly, in the example's shape.
    let indexed = send(
        &server,
        Method::POST,
        "/api/indices/seed_kb/documents",
        json!({"task_id": "seed-task", "results": [{
            "metadata": {"filename": "medlar.txt", "title": "Medlars", "languages": ["en"], "author": "Seed",
                         "date": "2025-05-07", "file_size": 42, "creation_date": "2025-05-07"},
            "source": "medlar.txt", "text": "Medlars are eaten bletted, after the first frost.", "source_type": "file"
        }]}),
    )
    .await?;
    assert_fields(&indexed, &["success", "message", "total_indexed", "total_submitted"]);
    assert_eq!((indexed["success"].as_bool(), indexed["total_indexed"].as_i64()), (Some(true), Some(1)));

    let (_, indices) = server.get_json("/api/indices?pattern=seed*&include_stats=true").await?;
    assert_fields(&indices, &["indices", "count", "indices_info"]);
    assert_eq!(indices["count"], 2, "{indices}");
    assert_fields(&indices["indices_info"][0], &["name", "stats.docs", "stats.size"]);

    for mode in ["accurate", "semantic"] {
        let found = send(
            &server,
            Method::POST,
            &format!("/api/indices/search/{mode}"),
            json!({"query": "when do medlars ripen", "index_names": ["seed_kb"], "top_k": 5}),
        )
        .await?;
        assert_fields(&found, &["results", "total", "query_time_ms"]);
        assert_fields(&found["results"][0], &["id", "title", "content", "score", "index"]);
    }
    let found = send(
        &server,
        Method::POST,
        "/api/indices/search/hybrid",
        json!({"query": "when do medlars ripen", "index_names": ["seed_kb"], "top_k": 5, "weight_accurate": 0.3}),
    )
    .await?;
    assert_fields(
        &found["results"][0],
        &["id", "title", "content", "score", "index", "score_details.accurate", "score_details.semantic"],
    );
    assert!(found["results"][0]["content"].as_str().is_some_and(|text| text.contains("Medlars")), "{found}");

    let (_, info) = server.get_json("/api/indices/seed_kb/info?include_files=true&include_chunks=true").await?;
    assert_fields(
        &info,
        &[
            "base_info.docs",
            "base_info.size",
            "search_performance.query_time",
            "search_performance.hits",
            "fields",
            "files",
        ],
    );
    assert!(info["search_performance"]["hits"].as_i64().is_some_and(|hits| hits >= 1), "{info}");
    let files = info["files"].as_array().expect("files");
    assert_eq!(files.len(), 2, "{info}");
    for file in files {
        assert_fields(file, &["path_or_url", "file", "file_size", "create_time", "status", "chunks", "chunks_count"]);
        assert_fields(&file["chunks"][0], &["id", "title", "content", "create_time"]);
    }

    // The document's DELETE takes `path_or_url` in a body.
    let deleted =
        send(&server, Method::DELETE, "/api/indices/seed_kb/documents", json!({"path_or_url": "medlar.txt"})).await?;
    assert_eq!(
        (deleted["status"].as_str(), deleted["deleted_count"].as_i64()),
        (Some("success"), Some(1)),
        "{deleted}"
    );

    let (_, health) = server.get_json("/api/indices/health").await?;
    assert_eq!((health["status"].as_str(), health["elasticsearch"].as_str()), (Some("healthy"), Some("connected")));
    assert_eq!(health["indices_count"], 2);

    let deleted = send(&server, Method::DELETE, "/api/indices/seed_other", Value::Null).await?;
    assert_fields(&deleted, &["status", "message"]);
    send(&server, Method::DELETE, "/api/indices/?index_name=seed_kb", Value::Null).await?;
    let (_, health) = server.get_json("/api/indices/health").await?;
    assert_eq!(health["indices_count"], 0);
    Ok(())
}

/// Sends a GET with the example's "Request Body" as a JSON body, as the document writes it.
async fn get_with_body(server: &NexentServer, path: &str, body: Value) -> anyhow::Result<Value> {
    send(server, Method::GET, path, body).await
}

#[tokio::test]
async fn model_management_examples() -> anyhow::Result<()> {
    let server = NexentServer::start_with(ServerOptions::default().arg("--llm-threads").arg("1"))?;
    // With no ModelEngine configured, the built-in engine is the one /api/me describes.
    let engines = get_with_body(&server, "/api/me/model/list", json!({"type": "chat", "timeout": 2})).await?;
    assert_eq!((engines["code"].as_i64(), engines["message"].as_str()), (Some(200), Some("Successfully retrieved")));
    let local_chat = engines["data"][0]["id"].as_str().expect("a chat model").to_owned();
    assert_eq!(engines["data"][0]["type"], "chat");
    let health = get_with_body(&server, "/api/me/healthcheck", json!({"timeout": 2})).await?;
    assert_eq!(health["code"], 200, "{health}");
    assert_eq!(
        health["data"],
        json!({"status": "Connected", "desc": "Connection successful", "connect_status": "可用"})
    );
    let checked = get_with_body(&server, "/api/me/model/healthcheck", json!({"model_name": local_chat})).await?;
    assert_eq!(checked["code"], 200, "{checked}");
    assert_fields(&checked, &["data.status", "data.desc", "data.connect_status"]);
    assert_eq!(
        (checked["data"]["status"].as_str(), checked["data"]["connect_status"].as_str()),
        (Some("Connected"), Some("可用"))
    );

    // The document's create and update bodies: name, display name and status only.
    let created = send(
        &server,
        Method::POST,
        "/api/model/create",
        json!({"model_name": "Qwen/Qwen2.5-7B", "display_name": "Seed Qwen", "connect_status": "not_detected"}),
    )
    .await?;
    assert_eq!(created["code"], 200, "{created}");
    let updated = send(
        &server,
        Method::POST,
        "/api/model/update",
        json!({"model_name": "Qwen/Qwen2.5-7B", "display_name": "Seed Qwen 7B", "connect_status": "AVAILABLE"}),
    )
    .await?;
    assert_eq!(
        (updated["code"].as_i64(), updated["data"]["model_name"].as_str()),
        (Some(200), Some("Qwen/Qwen2.5-7B"))
    );
    let (_, listed) = server.get_json("/api/model/list").await?;
    assert_eq!(listed["message"], "Successfully retrieved model list");
    let record = listed["data"]
        .as_array()
        .and_then(|all| all.iter().find(|model| model["model_name"] == "Qwen/Qwen2.5-7B"))
        .cloned()
        .expect("listed");
    assert_fields(&record, &["model_id", "model_name", "model_repo", "display_name", "connect_status"]);
    assert_eq!(
        (record["display_name"].as_str(), record["connect_status"].as_str()),
        (Some("Seed Qwen 7B"), Some("可用"))
    );

    let local = listed["data"]
        .as_array()
        .and_then(|all| all.iter().find(|model| model["model_type"] == "llm" && model["model_factory"] == "local"))
        .cloned()
        .expect("the local chat model");
    let local_name = local["model_name"].as_str().expect("model_name");
    let checked = get_with_body(&server, "/api/model/healthcheck", json!({"model_name": local_name})).await?;
    assert_eq!(checked["code"], 200, "{checked}");
    assert_fields(&checked, &["data.status", "data.desc", "data.connect_status"]);
    assert_eq!(checked["data"]["connect_status"], "可用", "{checked}");
    let status =
        get_with_body(&server, "/api/model/get_connect_status", json!({"model_name": "Qwen/Qwen2.5-7B"})).await?;
    assert_eq!(status["data"], json!({"model_name": "Qwen/Qwen2.5-7B", "connect_status": "可用"}));
    let set = send(
        &server,
        Method::POST,
        "/api/model/update_connect_status",
        json!({"model_name": "Qwen/Qwen2.5-7B", "connect_status": "unavailable"}),
    )
    .await?;
    assert_eq!(set["data"], json!({"model_name": "Qwen/Qwen2.5-7B", "connect_status": "不可用"}));
    let deleted = send(&server, Method::POST, "/api/model/delete", json!({"model_name": "Qwen/Qwen2.5-7B"})).await?;
    assert_eq!(
        (deleted["code"].as_i64(), deleted["data"]["model_name"].as_str()),
        (Some(200), Some("Qwen/Qwen2.5-7B"))
    );
    Ok(())
}

#[tokio::test]
async fn file_management_and_proxy_examples() -> anyhow::Result<()> {
    let server = NexentServer::start_with(ServerOptions::default().arg("--allow-private-fetch").arg("true"))?;
    send(&server, Method::POST, "/api/indices/seed_files", Value::Null).await?;
    let form = Form::new()
        .part("file", Part::bytes(b"Loquats flower in winter.".to_vec()).file_name("loquat.txt"))
        .text("chunking_strategy", "basic")
        .text("index_name", "seed_files");
    let (status, uploaded) =
        read_json(server.client.post(server.url("/api/file/upload")).multipart(form).send().await?).await?;
    assert_eq!(status, 201, "{uploaded}");
    assert_fields(&uploaded, &["message", "uploaded_files", "process_tasks.task_id"]);
    wait_for_task(&server, uploaded["process_tasks"]["task_id"].as_str().expect("task_id")).await?;

    let png = {
        let mut bytes = Vec::new();
        image::RgbImage::from_pixel(8, 8, image::Rgb([200, 80, 20]))
            .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)?;
        bytes
    };
    let form = Form::new()
        .part("files", Part::bytes(png.clone()).file_name("swatch.png").mime_str("image/png")?)
        .text("folder", "seed");
    let (_, stored) =
        read_json(server.client.post(server.url("/api/file/storage")).multipart(form).send().await?).await?;
    assert_fields(&stored, &["message", "success_count", "failed_count", "results"]);
    assert_fields(&stored["results"][0], &["success", "file_name", "url"]);
    let object_name = stored["results"][0]["object_name"].as_str().expect("object_name").to_owned();

    let listed =
        get_with_body(&server, "/api/file/storage", json!({"prefix": "seed/", "limit": 10, "include_urls": true}))
            .await?;
    assert_eq!(listed["total"], 1, "the body's prefix is applied: {listed}");
    assert_fields(&listed["files"][0], &["name", "size", "url"]);
    assert_eq!(listed["files"][0]["name"], object_name.as_str());

    let link =
        get_with_body(&server, &format!("/api/file/storage/{object_name}"), json!({"download": false, "expires": 60}))
            .await?;
    assert_fields(&link, &["success", "url", "expires"]);
    assert_eq!(link["expires"], 60);
    // `download: true` redirects to the file itself.
    let response = server
        .client
        .get(server.url(&format!("/api/file/storage/{object_name}")))
        .json(&json!({"download": true, "expires": 60}))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await?.as_ref(), png.as_slice());

    let urls = send(
        &server,
        Method::POST,
        "/api/file/storage/batch-urls",
        json!({"object_names": [object_name], "expires": 60}),
    )
    .await?;
    assert_fields(&urls["urls"][0], &["object_name", "success", "url"]);

    // The image proxy, given the stored image's own URL.
    let image_url = server.url(link["url"].as_str().expect("url").trim_start_matches(&server.base_url));
    let proxied = get_with_body(&server, "/api/proxy/image", json!({"url": image_url})).await?;
    assert_eq!(
        (proxied["success"].as_bool(), proxied["content_type"].as_str()),
        (Some(true), Some("image/png")),
        "{proxied}"
    );
    assert!(proxied["base64"].as_str().is_some_and(|data| !data.is_empty()));

    let form = Form::new()
        .text("query", "When do loquats flower?")
        .part("files", Part::bytes(b"Loquats flower in winter.".to_vec()).file_name("note.txt"));
    let response = server.client.post(server.url("/api/file/preprocess")).multipart(form).send().await?;
    assert_eq!(response.status(), 200);
    assert!(response.text().await?.contains("\"type\":\"complete\""));

    let deleted = send(&server, Method::DELETE, &format!("/api/file/storage/{object_name}"), Value::Null).await?;
    assert_fields(&deleted, &["success", "message"]);
    Ok(())
}

/// The leniency above has limits: values that are not what the field means are a 422 naming the field,
/// and the server answers on.
#[tokio::test]
async fn values_of_the_wrong_kind_are_a_422_naming_the_field() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let cases = [
        (
            Method::POST,
            "/api/conversation/message/update_opinion",
            json!({"message_id": "twelve", "opinion": "Y"}),
            "message_id",
        ),
        (
            Method::POST,
            "/api/conversation/message/update_opinion",
            json!({"message_id": 1.5, "opinion": "Y"}),
            "message_id",
        ),
        (Method::POST, "/api/conversation/rename", json!({"conversation_id": [1], "name": "x"}), "conversation_id"),
        (Method::POST, "/api/conversation/sources", json!({"conversation_id": "1e999"}), "conversation_id"),
        (
            Method::POST,
            "/api/indices/search/accurate",
            json!({"query": "q", "index_names": ["a"], "top_k": "many"}),
            "top_k",
        ),
        (Method::GET, "/api/file/storage", json!({"limit": -1}), "limit"),
        (Method::GET, "/api/file/storage", json!({"include_urls": "perhaps"}), "include_urls"),
        (Method::GET, "/api/file/storage/a/b.txt", json!({"expires": "soon"}), "expires"),
        (Method::POST, "/api/model/healthcheck", json!({}), "model_name"),
        (Method::POST, "/api/me/model/healthcheck", json!({"model_name": ""}), "model_name"),
        (
            Method::POST,
            "/api/model/update_connect_status",
            json!({"model_name": "m", "connect_status": "green"}),
            "connect_status",
        ),
    ];
    for (method, path, body, field) in cases {
        let response = server.client.request(method.clone(), server.url(path)).json(&body).send().await?;
        let (status, answer) = read_json(response).await?;
        assert_eq!(status, 422, "{method} {path} {body}: {answer}");
        assert!(answer.to_string().contains(field), "{method} {path}: the answer names {field}: {answer}");
    }
    let (status, _) = server.get_json("/api/conversation/list").await?;
    assert_eq!(status, 200);
    Ok(())
}
