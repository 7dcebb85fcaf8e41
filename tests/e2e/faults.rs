//! Faults a user's machine produces, one at a time through the real server (the soak in `bench/` throws
//! them all at once): a knowledge base whose index file is damaged, a disk nearly full, a chat model file
//! cut short.

use std::path::{Path, PathBuf};

use nexent_e2e::{NexentServer, ServerOptions, corrupt_largest_segment_file, models_dir, upload_to_kb, wait_for_task};
use reqwest::Method;
use serde_json::json;

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() { found.extend(walk(&path)) } else { found.push(path) }
    }
    found
}

async fn ingest(server: &NexentServer, base: &str, name: &str, text: &str) -> anyhow::Result<()> {
    let (status, body) = upload_to_kb(server, base, name, text.as_bytes()).await?;
    anyhow::ensure!(status == 201, "{body}");
    let task = wait_for_task(server, body["process_tasks"]["task_id"].as_str().unwrap_or_default()).await?;
    anyhow::ensure!(task["status"] == "completed", "{task}");
    Ok(())
}

#[tokio::test]
async fn a_damaged_base_is_set_aside_keeps_its_name_and_the_others_keep_working() -> anyhow::Result<()> {
    let mut server = NexentServer::start()?;
    ingest(&server, "ledger", "ledger.txt", "The lighthouse keeper logs the weather at dawn.").await?;
    ingest(&server, "garden", "garden.txt", "Plant the tulip bulbs in late autumn.").await?;
    server.kill()?;
    let damaged = corrupt_largest_segment_file(&server.data_dir().join("indices").join("ledger"))?;
    server.restart()?;

    // Reported with its reason; the other base is listed and searches.
    let (status, listed) = server.get_json("/api/indices").await?;
    assert_eq!(status, 200);
    assert_eq!(listed["indices"], json!(["garden"]), "{listed}");
    let record = &listed["quarantined"][0];
    assert_eq!(record["name"], "ledger", "{listed}");
    let file_name = damaged.file_name().unwrap_or_default().to_string_lossy().into_owned();
    assert!(record["reason"].as_str().unwrap_or("").contains(&file_name), "{record}");
    let moved_to = PathBuf::from(record["moved_to"].as_str().unwrap_or_default());
    assert!(moved_to.starts_with(server.data_dir().join("quarantine")), "{record}");
    assert!(moved_to.join("reason.txt").is_file() && moved_to.join("tantivy").is_dir(), "nothing is deleted");
    let (status, found) = server
        .post_json("/api/indices/search/hybrid", &json!({"index_names": ["garden"], "query": "tulip", "top_k": 3}))
        .await?;
    assert_eq!(status, 200, "{found}");

    // Its name stays taken: searching, reading and uploading to it say why, and no empty base replaces it.
    let search = json!({"index_names": ["ledger"], "query": "lighthouse", "top_k": 3});
    let (status, refused) = server.post_json("/api/indices/search/hybrid", &search).await?;
    assert_eq!(status, 503, "{refused}");
    assert!(refused["message"].as_str().unwrap_or("").contains("set aside"), "{refused}");
    let (status, info) = server.get_json("/api/indices/ledger/info").await?;
    assert_eq!(status, 503, "{info}");
    let (status, upload) = upload_to_kb(&server, "ledger", "more.txt", b"Another log entry.").await?;
    if status == 201 {
        let task = wait_for_task(&server, upload["process_tasks"]["task_id"].as_str().unwrap_or_default()).await?;
        assert_eq!(task["status"], "failed", "{task}");
        assert!(task["error"].as_str().unwrap_or("").contains("set aside"), "{task}");
    } else {
        assert_eq!(status, 503, "{upload}");
    }
    let (_, listed) = server.get_json("/api/indices").await?;
    assert_eq!(listed["indices"], json!(["garden"]), "{listed}");
    let (status, _) = server.post_json("/api/indices/ledger", &json!({})).await?;
    assert_eq!(status, 503);

    // Deleting it lets it go: the copy is removed and the name is free.
    let (status, deleted) = server.send_json(Method::DELETE, "/api/indices/ledger", &json!({})).await?;
    assert_eq!(status, 200, "{deleted}");
    assert!(!moved_to.exists());
    let (_, listed) = server.get_json("/api/indices").await?;
    assert_eq!(listed["quarantined"], json!([]), "{listed}");
    ingest(&server, "ledger", "ledger.txt", "The lighthouse keeper logs the weather at dawn.").await?;
    Ok(())
}

#[tokio::test]
async fn below_the_disk_reserve_uploads_and_new_bases_get_507_and_nothing_is_kept() -> anyhow::Result<()> {
    // A reserve larger than any disk: every heavy write would eat into it.
    let server =
        NexentServer::start_with(ServerOptions::default().arg("--disk-reserve-bytes").arg((1u64 << 60).to_string()))?;
    let (status, refused) = upload_to_kb(&server, "notes", "notes.txt", b"The heron sings at dusk.").await?;
    assert_eq!(status, 507, "{refused}");
    let message = refused["message"].as_str().unwrap_or("");
    assert!(message.contains("MiB free") && message.contains("reserve"), "{refused}");
    let (status, refused) = server.post_json("/api/indices/notes", &json!({})).await?;
    assert_eq!(status, 507, "{refused}");
    let stored: Vec<_> = walk(&server.data_dir().join("objects"));
    assert!(stored.is_empty(), "nothing stored: {stored:?}");
    let (_, tasks) = server.get_json("/api/tasks").await?;
    assert_eq!(tasks["tasks"], json!([]), "no task was queued: {tasks}");
    // Small writes that keep the product usable still go through.
    let (status, _) =
        server.send_json(Method::PUT, "/api/conversation/create", &json!({"title": "still works"})).await?;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test]
async fn a_chat_model_file_cut_short_is_a_503_naming_it_and_what_to_fetch() -> anyhow::Result<()> {
    let models = tempfile::tempdir()?;
    let copy = models.path().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let intact = std::fs::read(models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf"))?;
    std::fs::write(&copy, &intact[..intact.len() / 3])?;
    // The models folder holds only the damaged file: it is the chat model the server picks.
    let server = NexentServer::start_with(ServerOptions::default().with_models_dir(models.path()))?;
    let request = json!({"model": "local", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4});
    let (status, refused) = server.post_json("/v1/chat/completions", &request).await?;
    assert_eq!(status, 503, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("SmolLM2-135M-Instruct.Q4_1.gguf"), "{refused}");
    assert!(message.contains("nexent models fetch smollm2-135m"), "{refused}");
    // The rest of the server works.
    let (status, _) = server.get_json("/api/conversation/list").await?;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test]
async fn a_base_deleted_while_its_files_wait_stays_deleted_and_their_tasks_say_why() -> anyhow::Result<()> {
    // One worker, busy with a long document first, so the second base's file is still waiting.
    let server = NexentServer::start_with(ServerOptions::default().arg("--ingest-workers").arg("1"))?;
    let long: String =
        (0..3000).map(|n| format!("Entry {n}: the tide table lists high water at the harbour. ")).collect();
    let (status, busy) = upload_to_kb(&server, "archive", "tides.txt", long.as_bytes()).await?;
    assert_eq!(status, 201, "{busy}");
    let (status, queued) = upload_to_kb(&server, "scratch", "note.txt", b"A note that is no longer wanted.").await?;
    assert_eq!(status, 201, "{queued}");
    let (status, _) = server.send_json(Method::DELETE, "/api/indices/scratch", &json!({})).await?;
    assert_eq!(status, 200);
    let task = wait_for_task(&server, queued["process_tasks"]["task_id"].as_str().unwrap_or_default()).await?;
    assert_eq!(task["status"], "failed", "{task}");
    assert!(task["error"].as_str().unwrap_or("").contains("was deleted"), "{task}");
    let busy = wait_for_task(&server, busy["process_tasks"]["task_id"].as_str().unwrap_or_default()).await?;
    assert_eq!(busy["status"], "completed", "{busy}");
    let (_, listed) = server.get_json("/api/indices").await?;
    assert_eq!(listed["indices"], json!(["archive"]), "the deleted base does not come back: {listed}");
    Ok(())
}
