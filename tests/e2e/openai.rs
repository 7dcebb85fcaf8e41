//! The OpenAI-compatible endpoints, driven by the official `openai` Python package (installed by
//! `scripts/setup-test.sh`) against the real server with SmolLM2-135M; and cancellation: a client that goes
//! away mid-stream frees the model.

use std::time::{Duration, Instant};

use futures::StreamExt;
use nexent_e2e::{NexentServer, ServerOptions, models_dir, test_python};
use serde_json::{Value, json};

fn smollm2() -> ServerOptions {
    let model = models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    ServerOptions::default().arg("--chat-model").arg(model.display().to_string()).arg("--llm-threads").arg("1")
}

#[tokio::test]
async fn the_official_openai_client_chats_streams_and_embeds() -> anyhow::Result<()> {
    let server = NexentServer::start_with(smollm2())?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/openai_client.py");
    let base = server.url("");
    let output =
        tokio::process::Command::new(test_python()).arg(script).arg(base.trim_end_matches('/')).output().await?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let seen: Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(
        seen["models"],
        json!(["SmolLM2-135M-Instruct.Q4_1", "all-MiniLM-L6-v2", "multilingual-e5-small"]),
        "{seen}"
    );
    let completion = &seen["completion"];
    assert_eq!(completion["object"], "chat.completion");
    assert!(completion["content"].as_str().unwrap_or("").contains("Paris"), "{completion}");
    assert!(completion["usage"]["prompt_tokens"].as_u64().unwrap_or(0) > 5, "{completion}");
    let stream = &seen["stream"];
    assert!(stream["chunks"].as_u64().unwrap_or(0) >= 2, "tokens arrive one by one: {stream}");
    assert_eq!(stream["content"], completion["content"], "greedy decoding gives the same answer both ways");
    assert!(matches!(stream["finish_reason"].as_str(), Some("stop" | "length")), "{stream}");
    let embeddings = &seen["embeddings"];
    assert_eq!((embeddings["count"].as_u64(), embeddings["dimension"].as_u64()), (Some(3), Some(384)));
    assert!(embeddings["similar"].as_f64() > embeddings["different"].as_f64(), "{embeddings}");
    assert_eq!(seen["empty_messages"]["status"], 400, "{seen}");
    Ok(())
}

#[tokio::test]
async fn a_client_that_goes_away_frees_the_model() -> anyhow::Result<()> {
    let server = NexentServer::start_with(smollm2())?;
    let long = json!({"messages": [{"role": "user", "content": "Write a very long story about the sea."}],
                      "max_tokens": 3000, "temperature": 0.8, "stream": true});
    let response = server.client.post(server.url("/v1/chat/completions")).json(&long).send().await?;
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut received = 0;
    while received < 3 {
        let chunk = body.next().await.expect("more chunks")?;
        received += String::from_utf8_lossy(&chunk).matches("data: ").count();
    }
    drop(body); // The client goes away with ~3000 tokens still to generate.

    // Had the generation gone on, this request would wait for it (tens of seconds on one thread).
    let started = Instant::now();
    let short = json!({"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4, "temperature": 0});
    let (status, answer) = server.post_json("/v1/chat/completions", &short).await?;
    let waited = started.elapsed();
    assert_eq!(status, 200, "{answer}");
    assert!(waited < Duration::from_secs(5), "the model was freed: the next answer took {waited:?}");

    // Bad requests get OpenAI's error shape.
    let (status, error) = server.post_json("/v1/chat/completions", &json!({"messages": "nope"})).await?;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
    // A grammar constrains the answer (llama.cpp's grammar sampler); a broken one is the client's mistake.
    let constrained = json!({"messages": [{"role": "user", "content": "Is the sea salty? Answer yes or no."}],
                             "max_tokens": 8, "grammar": "root ::= (\"yes\" | \"no\")"});
    let (status, answer) = server.post_json("/v1/chat/completions", &constrained).await?;
    assert_eq!(status, 200, "{answer}");
    let text = answer["choices"][0]["message"]["content"].as_str().unwrap_or("");
    assert!(text == "yes" || text == "no", "the grammar holds: {text:?}");
    let (status, error) = server
        .post_json(
            "/v1/chat/completions",
            &json!({"messages": [{"role": "user", "content": "x"}], "grammar": "root ::= ("}),
        )
        .await?;
    assert_eq!((status, error["error"]["type"].as_str()), (400, Some("invalid_request_error")), "{error}");
    let (status, error) = server.post_json("/v1/embeddings", &json!({"input": [1, 2, 3]})).await?;
    assert_eq!((status, error["error"]["type"].as_str()), (400, Some("invalid_request_error")), "{error}");
    Ok(())
}

#[tokio::test]
async fn a_full_queue_answers_busy_instead_of_waiting() -> anyhow::Result<()> {
    let server = NexentServer::start_with(smollm2())?;
    let long =
        json!({"messages": [{"role": "user", "content": "Tell a long tale."}], "max_tokens": 600, "stream": true});
    let requests = (0..14).map(|_| server.client.post(server.url("/v1/chat/completions")).json(&long).send());
    let responses = futures::future::join_all(requests).await;
    let mut busy = Vec::new();
    let mut accepted = 0;
    for response in responses {
        let response = response?;
        match response.status().as_u16() {
            200 => accepted += 1, // dropped unread at the end of the test: the generations stop
            503 => busy.push(response.json::<Value>().await?),
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(accepted >= 1, "one runs and some wait");
    assert!(!busy.is_empty(), "the queue is bounded: {accepted} accepted");
    assert_eq!(busy[0]["error"]["code"], "server_busy", "{}", busy[0]);
    assert!(busy[0]["error"]["message"].as_str().unwrap_or("").contains("busy"));
    Ok(())
}

#[tokio::test]
async fn generate_title_names_the_conversation_with_the_default_qwen_model() -> anyhow::Result<()> {
    // The default model (Qwen2.5-Coder-0.5B from the models folder) loads without any flag.
    let server = NexentServer::start_with(ServerOptions::default().arg("--llm-threads").arg("1"))?;
    let (_, created) = server.send_json(reqwest::Method::PUT, "/api/conversation/create", &json!({})).await?;
    let id = created["data"]["conversation_id"].as_i64().expect("id");
    let history = json!([
        {"role": "user", "content": "How do I remove duplicate items from a Python list?"},
        {"role": "assistant", "content": "Convert it to a set and back: list(set(items)), or use dict.fromkeys to keep the order."}
    ]);
    let (status, answer) = server
        .post_json("/api/conversation/generate_title", &json!({"conversation_id": id, "history": history}))
        .await?;
    assert_eq!(status, 200, "{answer}");
    let title = answer["data"].as_str().expect("title").to_owned();
    assert!(!title.is_empty() && title.chars().count() <= 100 && !title.contains('\n'), "{title:?}");
    let lowered = title.to_lowercase();
    assert!(["python", "list", "duplicate", "dedup"].iter().any(|word| lowered.contains(word)), "on topic: {title:?}");
    let (_, listed) = server.get_json("/api/conversation/list").await?;
    assert_eq!(listed["data"][0]["conversation_title"], title, "the conversation is renamed");
    let (status, _) = server
        .post_json("/api/conversation/generate_title", &json!({"conversation_id": 999_999, "history": history}))
        .await?;
    assert_eq!(status, 404);
    Ok(())
}

#[tokio::test]
async fn tool_calls_from_the_default_qwen_model_follow_the_tools_schemas() -> anyhow::Result<()> {
    let server = NexentServer::start_with(ServerOptions::default().arg("--llm-threads").arg("1"))?;
    let tools = json!([
        {"type": "function", "function": {"name": "get_weather", "description": "Current weather of a city",
         "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}},
        {"type": "function", "function": {"name": "knowledge_base_search", "description": "Search the user's documents",
         "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}
    ]);
    let cases = [
        ("What's the weather in Oslo right now?", "get_weather", "city", "oslo"),
        ("Search my documents for the Zorblax warranty period.", "knowledge_base_search", "query", "zorblax"),
    ];
    for (question, tool, argument, expected) in cases {
        let request = json!({"messages": [{"role": "user", "content": question}], "tools": tools, "temperature": 0});
        let (status, answer) = server.post_json("/v1/chat/completions", &request).await?;
        assert_eq!(status, 200, "{answer}");
        let choice = &answer["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls", "{answer}");
        let call = &choice["message"]["tool_calls"][0]["function"];
        assert_eq!(call["name"], tool, "{answer}");
        // The grammar guarantees JSON arguments with the required parameter.
        let arguments: Value = serde_json::from_str(call["arguments"].as_str().unwrap_or(""))?;
        let value = arguments[argument].as_str().unwrap_or("").to_lowercase();
        assert!(value.contains(expected), "{arguments}");
    }
    Ok(())
}
