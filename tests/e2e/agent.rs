//! The agent end to end on the real server with the default local model (Qwen2.5-Coder-0.5B): a knowledge
//! base of invented facts, `POST /api/agent/run` read byte by byte as Nexent's frontend reads it, the saved
//! run, stop, a client that goes away, a knowledge base deleted mid-run, and many runs at once.

use std::time::Duration;

use futures::StreamExt;
use nexent_e2e::{AgentStreamParser, NexentServer, ServerOptions, ingest_file, models_dir, select_knowledge_bases};
use serde_json::{Value, json};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/agent/corpus");

fn qwen() -> ServerOptions {
    ServerOptions::default().arg("--llm-threads").arg("1")
}

fn smollm2() -> ServerOptions {
    let model = models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    ServerOptions::default().arg("--chat-model").arg(model.display().to_string()).arg("--llm-threads").arg("1")
}

async fn corpus_server(options: ServerOptions, files: &[&str]) -> anyhow::Result<NexentServer> {
    let server = NexentServer::start_with(options)?;
    for file in files {
        ingest_file(&server, "facts", file, &std::fs::read(format!("{CORPUS}/{file}"))?).await?;
    }
    select_knowledge_bases(&server, &["facts"]).await?;
    Ok(server)
}

async fn new_conversation(server: &NexentServer) -> anyhow::Result<i64> {
    let (_, created) = server.send_json(reqwest::Method::PUT, "/api/conversation/create", &json!({})).await?;
    Ok(created["data"]["conversation_id"].as_i64().expect("conversation id"))
}

async fn run(server: &NexentServer, body: &Value) -> anyhow::Result<reqwest::Response> {
    Ok(server.client.post(server.url("/api/agent/run")).json(body).timeout(Duration::from_secs(300)).send().await?)
}

fn kinds(messages: &[(String, String)]) -> Vec<&str> {
    messages.iter().map(|(kind, _)| kind.as_str()).collect()
}

/// Types in order with consecutive repeats collapsed.
fn collapsed(messages: &[(String, String)]) -> Vec<&str> {
    let mut types = kinds(messages);
    types.dedup();
    types
}

async fn saved_assistant(server: &NexentServer, conversation_id: i64) -> anyhow::Result<Value> {
    for _ in 0..100 {
        let (status, history) = server.get_json(&format!("/api/conversation/{conversation_id}")).await?;
        assert_eq!(status, 200, "{history}");
        let messages = history["data"][0]["message"].as_array().cloned().unwrap_or_default();
        if let Some(assistant) = messages.iter().rev().find(|message| message["role"] == "assistant") {
            return Ok(assistant.clone());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the run of conversation {conversation_id} was not saved")
}

#[tokio::test]
async fn a_question_is_answered_from_the_documents_in_nexents_protocol_and_saved() -> anyhow::Result<()> {
    let server = corpus_server(qwen(), &["zorblax-x2.md", "velmora-ferry.md", "brisco-robot.md"]).await?;
    let conversation_id = new_conversation(&server).await?;
    let history =
        json!([{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi! How can I help?"}]);
    let response = run(
        &server,
        &json!({"query": "How long is the warranty of the Zorblax X2 kettle?",
                                         "conversation_id": conversation_id, "history": history}),
    )
    .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream; charset=utf-8");
    let messages = AgentStreamParser::read_all(response).await?;
    let types = collapsed(&messages);
    // Step 1 searches, step 2 answers.
    assert_eq!(
        types,
        [
            "agent_new_run",
            "step_count",
            "model_output_code",
            "parse",
            "tool",
            "card",
            "search_content",
            "execution_logs",
            "token_count",
            "step_count",
            "model_output_thinking",
            "token_count",
            "final_answer"
        ],
        "{messages:#?}"
    );
    let content = |kind: &str| messages.iter().find(|(k, _)| k == kind).map(|(_, c)| c.clone()).unwrap_or_default();
    assert_eq!(content("step_count"), "\n**Step 1** \n");
    assert!(content("parse").contains("knowledge_base_search"));
    let sources: Value = serde_json::from_str(&content("search_content"))?;
    let first = &sources[0];
    assert_eq!(
        (first["filename"].as_str(), first["tool_sign"].as_str(), first["cite_index"].as_i64()),
        (Some("zorblax-x2.md"), Some("a"), Some(0))
    );
    assert!(
        first["score_details"]["accurate"].is_number() && first["score_details"]["semantic"].is_number(),
        "{first}"
    );
    assert!(content("token_count").contains("Duration:"));
    let answer = content("final_answer");
    assert!(answer.starts_with('\n') && answer.contains('7'), "{answer:?}");
    assert!(answer.contains("[[a0]]"), "the answer cites its source: {answer:?}");

    // History reload returns the run's units and its sources, both scores kept.
    // The stream ends only once the answer is saved: reading the history now finds it (no waiting).
    let (_, history) = server.get_json(&format!("/api/conversation/{conversation_id}")).await?;
    let saved_now = history["data"][0]["message"].as_array().cloned().unwrap_or_default();
    assert!(saved_now.iter().any(|message| message["role"] == "assistant"), "saved before the stream ended: {history}");
    let assistant = saved_assistant(&server, conversation_id).await?;
    let units: Vec<&str> =
        assistant["message"].as_array().expect("units").iter().filter_map(|unit| unit["type"].as_str()).collect();
    assert!(
        units.starts_with(&[
            "agent_new_run",
            "step_count",
            "model_output_code",
            "parse",
            "tool",
            "card",
            "execution_logs",
            "token_count"
        ]),
        "{units:?}"
    );
    assert!(!units.contains(&"search_content"), "search results are sources, not units: {units:?}");
    assert_eq!(
        assistant["message"].as_array().and_then(|units| units.last()).map(|unit| unit["type"].clone()),
        Some(json!("final_answer"))
    );
    let search = assistant["search"].as_array().expect("sources with the message");
    assert_eq!(search[0]["title"].as_str().map(|title| title.contains("Zorblax")), Some(true), "{search:?}");
    let (_, all) = server.post_json("/api/conversation/sources", &json!({"conversation_id": conversation_id})).await?;
    let stored = &all["data"]["searches"][0];
    assert!(
        stored["score_details"]["accurate"].is_number() && stored["score_details"]["semantic"].is_number(),
        "{all}"
    );

    // Chinese step labels on request; bad requests are 4xx with a message.
    let messages = AgentStreamParser::read_all(
        run(
            &server,
            &json!({"query": "What is the name of the Velmora Island ferry?", "history": [], "language": "zh"}),
        )
        .await?,
    )
    .await?;
    assert!(messages.iter().any(|(kind, content)| kind == "step_count" && content.contains("步骤 1")), "{messages:?}");
    let (status, body) = nexent_e2e::read_json(run(&server, &json!({"query": "  "})).await?).await?;
    assert_eq!(status, 422, "{body}");
    let (status, body) =
        nexent_e2e::read_json(run(&server, &json!({"query": "hi", "conversation_id": 999_999})).await?).await?;
    assert_eq!(status, 404, "{body}");
    Ok(())
}

/// Reads the stream until `wanted` messages of `kind` arrived; returns what came and the rest of the body.
async fn read_until(
    response: reqwest::Response,
    kind: &str,
    wanted: usize,
) -> anyhow::Result<(Vec<(String, String)>, futures::stream::BoxStream<'static, reqwest::Result<Vec<u8>>>)> {
    let mut parser = AgentStreamParser::default();
    let mut body = response.bytes_stream().map(|chunk| chunk.map(|bytes| bytes.to_vec())).boxed();
    while parser.messages.iter().filter(|(k, _)| k == kind).count() < wanted {
        let chunk = body.next().await.expect("the run goes on")?;
        parser.feed(&chunk);
    }
    Ok((parser.messages, body))
}

const LONG_QUESTION: &str =
    "Describe the Brisco garden robot, then write a very long story of at least 600 words about it.";

#[tokio::test]
async fn stop_ends_the_stream_with_an_error_and_saves_what_was_produced() -> anyhow::Result<()> {
    let server = corpus_server(qwen(), &["brisco-robot.md"]).await?;
    let conversation_id = new_conversation(&server).await?;
    let response =
        run(&server, &json!({"query": LONG_QUESTION, "conversation_id": conversation_id, "history": []})).await?;
    let (mut messages, mut rest) = read_until(response, "model_output_thinking", 5).await?;
    let (status, stopped) = server.get_json(&format!("/api/agent/stop/{conversation_id}")).await?;
    assert_eq!((status, stopped["status"].as_str()), (200, Some("success")), "{stopped}");
    let mut parser = AgentStreamParser::default();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(30), rest.next()).await? {
        parser.feed(&chunk?);
    }
    messages.extend(parser.messages);
    let (last_kind, last_content) = messages.last().cloned().expect("messages");
    assert_eq!(last_kind, "error", "{messages:?}");
    assert!(last_content.contains("stopped by the user"), "{last_content}");
    assert!(!kinds(&messages).contains(&"final_answer"));
    let assistant = saved_assistant(&server, conversation_id).await?;
    let units = assistant["message"].as_array().cloned().unwrap_or_default();
    assert!(units.iter().any(|unit| unit["type"] == "model_output_thinking"), "the partial answer is saved: {units:?}");
    assert_eq!(units.last().map(|unit| unit["type"].clone()), Some(json!("error")));
    let (status, _) = server.get_json(&format!("/api/agent/stop/{conversation_id}")).await?;
    assert_eq!(status, 404, "nothing left to stop");
    Ok(())
}

#[tokio::test]
async fn a_client_that_goes_away_frees_the_model_and_the_partial_answer_is_saved() -> anyhow::Result<()> {
    let server = corpus_server(qwen(), &["brisco-robot.md"]).await?;
    let conversation_id = new_conversation(&server).await?;
    let response =
        run(&server, &json!({"query": LONG_QUESTION, "conversation_id": conversation_id, "history": []})).await?;
    let (_, rest) = read_until(response, "model_output_thinking", 5).await?;
    drop(rest); // The client goes away mid-answer.
    let assistant = saved_assistant(&server, conversation_id).await?;
    let units = assistant["message"].as_array().cloned().unwrap_or_default();
    let last = units.last().cloned().unwrap_or_default();
    assert_eq!(last["type"], "error", "{units:?}");
    assert!(last["content"].as_str().unwrap_or("").contains("client disconnected"), "{last}");
    let thinking: String = units
        .iter()
        .filter(|unit| unit["type"] == "model_output_thinking")
        .filter_map(|unit| unit["content"].as_str())
        .collect();
    assert!(!thinking.is_empty() && thinking.split_whitespace().count() < 400, "the model stopped early: {thinking:?}");
    // The model is free: a one-token request is answered at once rather than after a 600-word story.
    let started = std::time::Instant::now();
    let (status, _) = server
        .post_json("/v1/chat/completions", &json!({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}))
        .await?;
    assert_eq!(status, 200);
    println!("one-token request after the disconnect: {:?}", started.elapsed());
    Ok(())
}

#[tokio::test]
async fn a_knowledge_base_deleted_mid_run_is_an_error_step_not_a_crash() -> anyhow::Result<()> {
    // The model writes the search call (not the question searched directly), so the index can go while
    // the first step is still running.
    let server = corpus_server(qwen().env("AGENT_DIRECT_SEARCH", "false"), &["velmora-ferry.md"]).await?;
    let response =
        run(&server, &json!({"query": "How long does the ferry crossing to Velmora Island take?", "history": []}))
            .await?;
    let (mut messages, mut rest) = read_until(response, "step_count", 1).await?;
    // The model is still writing its search call: the index goes now.
    let deleted = server.client.delete(server.url("/api/indices/facts")).send().await?;
    assert_eq!(deleted.status(), 200);
    let mut parser = AgentStreamParser::default();
    while let Some(chunk) = rest.next().await {
        parser.feed(&chunk?);
    }
    messages.extend(parser.messages);
    let error = messages.iter().find(|(kind, _)| kind == "error").map(|(_, content)| content.clone());
    assert!(error.as_deref().is_some_and(|error| error.contains("no longer exists")), "{messages:?}");
    assert!(matches!(messages.last().map(|(kind, _)| kind.as_str()), Some("final_answer" | "error")), "{messages:?}");
    let (status, _) = server.get_json("/api/health").await?;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test]
async fn twenty_runs_at_once_complete_or_get_a_clear_503() -> anyhow::Result<()> {
    // Short steps keep the test short: the queue's behaviour, not the answers, is under test.
    let server = corpus_server(smollm2().env("AGENT_MAX_STEP_TOKENS", "48"), &["zorblax-x2.md"]).await?;
    let server = std::sync::Arc::new(server);
    let runs = (0..20).map(|index| {
        let server = server.clone();
        tokio::spawn(async move {
            let body = json!({"query": format!("Question {index}: how much does the Zorblax X2 cost?"), "history": []});
            let response = run(&server, &body).await?;
            let status = response.status().as_u16();
            if status == 200 {
                anyhow::Ok((status, AgentStreamParser::read_all(response).await?, Value::Null))
            } else {
                let (status, body) = nexent_e2e::read_json(response).await?;
                anyhow::Ok((status, Vec::new(), body))
            }
        })
    });
    let (mut answered, mut ended_with_error, mut refused) = (0, 0, 0);
    for outcome in futures::future::join_all(runs).await {
        let (status, messages, body) = outcome??;
        match status {
            200 => {
                // Every admitted run ends with a message saying how: its answer, or a clear error (the
                // engine's queue was full, or the 135M model's call did not fit its few tokens).
                let last = messages.last().cloned().unwrap_or_default();
                match last.0.as_str() {
                    "final_answer" => answered += 1,
                    "error" if last.1.contains("busy") || last.1.contains("ran out of room") => ended_with_error += 1,
                    _ => panic!("a run ended without an answer or a clear error: {messages:?}"),
                }
            }
            503 => {
                assert!(body["message"].as_str().unwrap_or("").contains("try again"), "{body}");
                refused += 1;
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    println!(
        "20 runs at once: {answered} answered, {ended_with_error} ended with an error step, {refused} refused with 503"
    );
    assert_eq!(answered + ended_with_error + refused, 20);
    assert!(answered + ended_with_error >= 8, "the agent's capacity (8 runs) is admitted");
    assert!(refused >= 1, "runs past capacity are refused, not queued without bound");
    let (status, _) = server.get_json("/api/health").await?;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test]
async fn an_attached_file_is_read_by_the_agent() -> anyhow::Result<()> {
    let server = NexentServer::start_with(qwen())?;
    let memo = b"Internal memo. The Orlen-7 pump was replaced on 3 June. Its new serial number is KX-44019.".to_vec();
    let form =
        reqwest::multipart::Form::new().part("files", reqwest::multipart::Part::bytes(memo).file_name("memo.txt"));
    let (status, stored) =
        nexent_e2e::read_json(server.client.post(server.url("/api/file/storage")).multipart(form).send().await?)
            .await?;
    assert_eq!(status, 200, "{stored}");
    let object_name = stored["results"][0]["object_name"].as_str().expect("object name").to_owned();
    let files = json!([{"object_name": object_name, "name": "memo.txt", "type": "txt", "size": 90}]);
    let messages =
        AgentStreamParser::read_all(run(&server, &json!({"query": "What is the new serial number of the Orlen-7 pump?", "history": [], "minio_files": files})).await?)
            .await?;
    let content = |kind: &str| messages.iter().filter(|(k, _)| k == kind).map(|(_, c)| c.as_str()).collect::<String>();
    assert!(content("parse").contains("read_attached_file"), "{messages:#?}");
    assert!(content("execution_logs").contains("KX-44019"), "{messages:#?}");
    assert!(content("final_answer").contains("KX-44019"), "{messages:#?}");
    Ok(())
}
