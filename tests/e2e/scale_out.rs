//! Several nodes as one deployment: two `nexent serve` processes, each with its own data dir, on one
//! PostgreSQL database and one S3 bucket. Runs only in the shared-engines run (`make test-shared`, part
//! of `make test`), which starts those engines; in the embedded run each node would have its own SQLite.

use nexent_e2e::{NexentServer, ServerOptions, SharedEngines};
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::json;

fn deployment_name() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |time| time.as_nanos());
    format!("twonodes{}x{nanos}", std::process::id())
}

#[tokio::test]
#[ignore = "needs PostgreSQL and S3: `make test-shared` (part of `make test`) runs it"]
async fn two_nodes_share_conversations_files_signed_urls_and_settings() -> anyhow::Result<()> {
    anyhow::ensure!(SharedEngines::enabled(), "run through scripts/test-shared.sh");
    let name = deployment_name();
    let mut node_a = NexentServer::start_with(ServerOptions::default().deployment(&name))?;
    let node_b = NexentServer::start_with(ServerOptions::default().deployment(&name))?;

    // A conversation written through A is read, renamed and listed through B.
    let (status, created) =
        node_a.send_json(Method::PUT, "/api/conversation/create", &json!({"title": "from node A"})).await?;
    assert_eq!(status, 200, "{created}");
    let conversation_id = created["data"]["conversation_id"].as_i64().expect("id");
    let (_, listed) = node_b.get_json("/api/conversation/list").await?;
    let titles: Vec<&str> = listed["data"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|item| item["conversation_title"].as_str())
        .collect();
    assert_eq!(titles, ["from node A"], "{listed}");
    let (status, renamed) = node_b
        .post_json("/api/conversation/rename", &json!({"conversation_id": conversation_id, "name": "renamed on B"}))
        .await?;
    assert_eq!(status, 200, "{renamed}");
    let (_, history) = node_a.get_json(&format!("/api/conversation/{conversation_id}")).await?;
    assert_eq!(history["code"], 0, "{history}");

    // A file uploaded through A is listed by B, and the URL A signed is valid on B (one signing secret).
    let bytes: Vec<u8> = (0..50_000u32).map(|i| (i % 241) as u8).collect();
    let form = Form::new().part("files", Part::bytes(bytes.clone()).file_name("shared.bin"));
    let response = node_a.client.post(node_a.url("/api/file/storage")).multipart(form).send().await?;
    let (status, uploaded) = nexent_e2e::read_json(response).await?;
    assert_eq!(status, 200, "{uploaded}");
    let object_name = uploaded["results"][0]["object_name"].as_str().expect("name").to_owned();
    let url_from_a = uploaded["results"][0]["url"].as_str().expect("url").to_owned();
    let (_, files_on_b) = node_b.get_json("/api/file/storage").await?;
    assert!(files_on_b.to_string().contains(&object_name), "{files_on_b}");
    let on_b = url_from_a.replace(&node_a.base_url, &node_b.base_url);
    assert_ne!(on_b, url_from_a);
    let downloaded = reqwest::get(&on_b).await?;
    assert_eq!(downloaded.status(), 200, "a URL node A signed opens on node B");
    assert_eq!(downloaded.bytes().await?.to_vec(), bytes);

    // Settings saved through A (the selected knowledge bases, the chat model) reach B within a refresh.
    let (status, saved) = node_a
        .post_json(
            "/api/config/save_config",
            &json!({"app": {"appName": "Team Assistant"},
                    "models": {"llm": {"modelName": "team-model", "displayName": "Team model"}},
                    "data": {"selectedKbNames": ["team notes"]}}),
        )
        .await?;
    assert_eq!(status, 200, "{saved}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (_, loaded) = node_b.get_json("/api/config/load_config").await?;
        let config = &loaded["config"];
        if config["app"]["name"] == "Team Assistant" {
            assert_eq!(config["models"]["llm"]["modelName"], "team-model", "{loaded}");
            assert!(loaded.to_string().contains("team notes"), "{loaded}");
            break;
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "node B never saw A's settings: {loaded}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // Node A dies; B keeps serving everything A wrote.
    node_a.kill()?;
    let (_, listed) = node_b.get_json("/api/conversation/list").await?;
    assert!(listed.to_string().contains("renamed on B"), "{listed}");
    let (status, deleted) =
        node_b.send_json(Method::DELETE, &format!("/api/file/storage/{object_name}"), &json!({})).await?;
    assert_eq!((status, deleted["success"].as_bool()), (200, Some(true)), "{deleted}");
    assert_eq!(reqwest::get(&on_b).await?.status(), 404, "deleted for the whole deployment");
    Ok(())
}

/// A word no other document holds, spelled with letters only and ending in a way the English stemmer
/// leaves alone (the analyser keeps it whole and distinct).
fn code_word(n: usize) -> String {
    let letters: String = format!("{n:03}").bytes().map(|digit| (b'k' + (digit - b'0')) as char).collect();
    format!("quor{letters}vex")
}

#[tokio::test]
#[ignore = "needs PostgreSQL and S3: `make test-shared` (part of `make test`) runs it"]
async fn a_node_killed_mid_ingestion_leaves_its_work_to_the_other_and_every_document_is_searchable()
-> anyhow::Result<()> {
    anyhow::ensure!(SharedEngines::enabled(), "run through scripts/test-shared.sh");
    const DOCUMENTS: usize = 50;
    let name = deployment_name();
    let mut node_a = NexentServer::start_with(ServerOptions::default().deployment(&name))?;
    let node_b = NexentServer::start_with(ServerOptions::default().deployment(&name))?;
    let (_, health) = node_b.get_json("/api/indices/health").await?;
    assert_eq!(health["store"], "postgres", "the nodes share one knowledge store: {health}");

    let (status, created) =
        node_a.send_json(Method::PUT, "/api/conversation/create", &json!({"title": "before the crash"})).await?;
    assert_eq!(status, 200, "{created}");

    // B is paused while A takes the uploads, so A alone starts on them and dies holding some.
    node_b.pause();
    let mut task_ids = Vec::with_capacity(DOCUMENTS);
    for n in 0..DOCUMENTS {
        let text = format!(
            "Ledger page {n}. The harbour office filed entry {} under the code word {}. Crates of tin: {}.\n",
            n * 11,
            code_word(n),
            n * 7
        );
        let (status, body) =
            nexent_e2e::upload_to_kb(&node_a, "shared-ledger", &format!("page{n}.txt"), text.as_bytes()).await?;
        assert_eq!(status, 201, "upload {n} through A: {body}");
        task_ids.push(body["process_tasks"]["task_id"].as_str().expect("task id").to_owned());
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let completed_before_kill = loop {
        let (_, listed) = node_a.get_json("/api/tasks").await?;
        let done = listed["tasks"]
            .as_array()
            .map_or(0, |tasks| tasks.iter().filter(|task| task["status"] == "completed").count());
        if done > 0 {
            break done;
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "A indexed nothing: {listed}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    node_a.kill()?;
    node_b.resume();
    assert!(completed_before_kill < DOCUMENTS, "A was killed mid-ingestion ({completed_before_kill} done)");

    // B takes back what A held once A's leases expire, and does everything still waiting.
    for task_id in &task_ids {
        let task = nexent_e2e::wait_for_task(&node_b, task_id).await?;
        assert_eq!(task["status"], "completed", "{task}");
    }
    let (_, info) = node_b.get_json("/api/indices/shared-ledger/info").await?;
    assert_eq!(info["base_info"]["doc_count"], DOCUMENTS, "{}", info["base_info"]);
    assert_eq!(info["base_info"]["chunk_count"], DOCUMENTS, "each document indexed once: {}", info["base_info"]);
    for n in 0..DOCUMENTS {
        let (status, found) = node_b
            .post_json(
                "/api/indices/search/accurate",
                &json!({"index_names": ["shared-ledger"], "query": code_word(n), "top_k": 3}),
            )
            .await?;
        assert_eq!(status, 200, "{found}");
        assert_eq!(found["results"].as_array().map(Vec::len), Some(1), "one document holds {}: {found}", code_word(n));
        assert_eq!(found["results"][0]["filename"], format!("page{n}.txt"), "{found}");
    }
    let (_, listed) = node_b.get_json("/api/conversation/list").await?;
    assert!(listed.to_string().contains("before the crash"), "{listed}");
    Ok(())
}

#[tokio::test]
#[ignore = "needs PostgreSQL and S3: `make test-shared` (part of `make test`) runs it"]
async fn a_stop_request_through_one_node_stops_the_run_streaming_from_the_other() -> anyhow::Result<()> {
    use futures::StreamExt;
    anyhow::ensure!(SharedEngines::enabled(), "run through scripts/test-engines.sh");
    let name = deployment_name();
    let node_a = NexentServer::start_with(ServerOptions::default().deployment(&name).arg("--llm-threads").arg("1"))?;
    let node_b = NexentServer::start_with(ServerOptions::default().deployment(&name))?;
    let (_, created) = node_a.send_json(Method::PUT, "/api/conversation/create", &json!({})).await?;
    let conversation_id = created["data"]["conversation_id"].as_i64().expect("conversation id");

    let (status, body) = node_b.get_json(&format!("/api/agent/stop/{conversation_id}")).await?;
    assert_eq!(status, 404, "nothing runs yet: {body}");

    let response = node_a
        .client
        .post(node_a.url("/api/agent/run"))
        .json(&json!({"query": "Write a very long story of at least 600 words about a garden robot.",
                      "conversation_id": conversation_id, "history": []}))
        .timeout(std::time::Duration::from_secs(300))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let mut parser = nexent_e2e::AgentStreamParser::default();
    let mut body = response.bytes_stream();
    while parser.messages.len() < 8 {
        parser.feed(&body.next().await.expect("the run goes on")?);
    }

    let (status, stopped) = node_b.get_json(&format!("/api/agent/stop/{conversation_id}")).await?;
    assert_eq!((status, stopped["status"].as_str()), (200, Some("success")), "{stopped}");
    assert!(stopped["message"].as_str().unwrap_or_default().contains("stopped by the node"), "{stopped}");
    while let Some(chunk) = tokio::time::timeout(std::time::Duration::from_secs(30), body.next()).await? {
        parser.feed(&chunk?);
    }
    let (last_kind, last_content) = parser.messages.last().cloned().expect("messages");
    assert_eq!(last_kind, "error", "{:?}", parser.messages);
    assert!(last_content.contains("stopped by the user"), "{last_content}");
    let (status, body) = node_b.get_json(&format!("/api/agent/stop/{conversation_id}")).await?;
    assert_eq!(status, 404, "nothing left to stop: {body}");
    Ok(())
}
