//! Data Process on the main port: uploads become tasks that parse, chunk and index documents; statuses
//! are live in the index info; bad files fail with a reason; a crash loses and duplicates nothing.

use std::time::Duration;

use nexent_e2e::{NexentServer, top_hit, upload_to_kb, wait_for_task};
use serde_json::{Value, json};

#[tokio::test]
async fn every_text_format_is_ingested_and_found() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let documents: [(&str, &[u8], &str); 6] = [
        ("notes.txt", b"The lighthouse keeper Orla Vantz counts exactly 412 steps every morning.", "How many steps does Orla Vantz count?"),
        ("guide.md", b"# Brewing\n\n## Kettles\n\nThe Quenby kettle boils water in ninety seconds flat.\n", "How fast does the Quenby kettle boil?"),
        ("page.html", b"<html><body><h1>Trains</h1><p>The Marlow express departs from platform nine at dawn.</p><script>var ignored = 1;</script></body></html>", "Which platform does the Marlow express use?"),
        ("facts.json", br#"{"planet": {"name": "Tessaly", "moons": 7, "note": "Tessaly has seven moons named after rivers"}}"#, "How many moons does Tessaly have?"),
        ("table.tsv", b"city\tmascot\nBrindle\tthe copper heron\n", "What is the mascot of Brindle?"),
        ("script.py", b"def greet():\n    # The Zephyr protocol retries exactly five times before giving up.\n    return 'hi'\n", "How often does the Zephyr protocol retry?"),
    ];
    let mut task_ids = Vec::new();
    for (name, bytes, _) in &documents {
        let (status, answer) = upload_to_kb(&server, "formats", name, bytes).await?;
        assert_eq!(status, 201, "{name}: {answer}");
        assert_eq!(answer["uploaded_files"], json!([name]));
        task_ids.push(answer["process_tasks"]["task_id"].as_str().expect("task id").to_owned());
    }
    for task_id in &task_ids {
        let task = wait_for_task(&server, task_id).await?;
        assert_eq!(task["status"], "completed", "{task}");
        let (_, details) = server.get_json(&format!("/api/tasks/{task_id}/details")).await?;
        assert!(details["result"].as_array().is_some_and(|chunks| !chunks.is_empty()), "{details}");
        assert_eq!(details["id"], details["task_id"]);
    }
    for (name, _, question) in &documents {
        let hit = top_hit(&server, "formats", question).await?;
        assert_eq!(hit["filename"].as_str(), Some(*name), "{question} -> {hit}");
    }
    let (_, info) = server.get_json("/api/indices/formats/info").await?;
    assert_eq!(info["base_info"]["doc_count"], 6);
    assert!(info["files"].as_array().expect("files").iter().all(|file| file["status"] == "COMPLETED"));
    Ok(())
}

#[tokio::test]
async fn bad_files_fail_with_a_reason_and_the_server_keeps_serving() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let (status, answer) = upload_to_kb(&server, "kb", "virus.exe", b"MZ").await?;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"], "No valid files uploaded");
    assert!(answer["errors"][0].as_str().unwrap_or("").contains("not allowed"), "{answer}");

    for (name, bytes, reason) in [
        ("binary.txt", &[0xffu8, 0xfe, 0x00, 0x81][..], "UTF-8"),
        ("empty.md", b"   \n", "no text"),
        ("broken.json", b"{\"a\": ", "parse"),
        ("report.docx", b"PK\x03\x04 not really a docx", "not a DOCX"),
    ] {
        let (status, answer) = upload_to_kb(&server, "kb", name, bytes).await?;
        assert_eq!(status, 201, "{answer}");
        let task = wait_for_task(&server, answer["process_tasks"]["task_id"].as_str().expect("id")).await?;
        assert_eq!(task["status"], "failed", "{name}: {task}");
        assert!(task["error"].as_str().unwrap_or("").contains(reason), "{name}: {task}");
    }
    let (_, listed) = server.get_json("/api/tasks/indices/kb/tasks").await?;
    let files = listed["files"].as_array().expect("files");
    assert_eq!(files.len(), 4);
    assert!(files.iter().all(|file| file["status"] == "FAILED"), "{listed}");
    let (_, info) = server.get_json("/api/indices/kb/info").await?;
    assert!(
        info["files"]
            .as_array()
            .is_some_and(|files| files.iter().any(|file| file["status"] == "FAILED" && file["error"].is_string())),
        "{info}"
    );

    // A task may not read local files (a request names stored objects only), nor fetch private addresses.
    let (status, refused) = server
        .post_json(
            "/api/tasks",
            &json!({"source": "/etc/passwd", "source_type": "file", "index_name": "kb", "file_name": "x.txt"}),
        )
        .await?;
    assert_eq!(status, 400, "{refused}");
    let (status, created) = server
        .post_json("/api/tasks", &json!({"source": "http://127.0.0.1:1/x.txt", "source_type": "url", "index_name": "kb", "file_name": "x.txt"}))
        .await?;
    assert_eq!(status, 201, "{created}");
    let task = wait_for_task(&server, created["task_id"].as_str().expect("id")).await?;
    assert_eq!(task["status"], "failed", "{task}");
    for body in [
        json!({"source": "x", "source_type": "ftp", "index_name": "kb"}),
        json!({"source": "x", "index_name": "kb", "file_name": "x.exe"}),
        json!({"source": "x", "source_type": "text"}),
        json!({"source": "x", "source_type": "text", "index_name": "kb", "chunking_strategy": "magic"}),
    ] {
        let (status, answer) = server.post_json("/api/tasks", &body).await?;
        assert_eq!(status, 400, "{body}: {answer}");
    }
    let (status, _) = server.get_json("/api/tasks/no-such-task").await?;
    assert_eq!(status, 404);
    let (status, _) = server.get_json("/api/health").await?;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test]
async fn text_tasks_in_a_batch_and_chunking_strategies() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let long = "The Vellum archive stores maps of the northern coast. ".repeat(80);
    let (status, answer) = server
        .post_json(
            "/api/tasks/batch",
            &json!({"sources": [
                {"source": long, "source_type": "text", "index_name": "texts", "file_name": "archive.txt"},
                {"source": "# One\n\nfirst part\n\n# Two\n\nsecond part", "source_type": "text", "index_name": "texts", "file_name": "sections.md", "chunking_strategy": "by_title"}
            ]}),
        )
        .await?;
    assert_eq!(status, 201, "{answer}");
    let ids: Vec<String> =
        answer["task_ids"].as_array().expect("ids").iter().filter_map(|id| id.as_str().map(str::to_owned)).collect();
    assert_eq!(ids.len(), 2);
    let archive = wait_for_task(&server, &ids[0]).await?;
    assert_eq!(archive["status"], "completed", "{archive}");
    assert!(archive["chunk_count"].as_i64().unwrap_or(0) >= 3, "4400 characters make several chunks: {archive}");
    let sections = wait_for_task(&server, &ids[1]).await?;
    assert_eq!(sections["chunk_count"], 2, "by_title: one chunk per section: {sections}");
    let (_, all) = server.get_json("/api/tasks").await?;
    assert_eq!(all["tasks"].as_array().map(Vec::len), Some(2));

    // Two unnamed texts get names of their own: the second does not replace the first.
    for text in ["Alpha note about the Osprey valve.", "Beta note about the Kestrel pump."] {
        let (_, created) = server
            .post_json("/api/tasks", &json!({"source": text, "source_type": "text", "index_name": "unnamed"}))
            .await?;
        let task = wait_for_task(&server, created["task_id"].as_str().expect("id")).await?;
        assert_eq!(task["status"], "completed", "{task}");
    }
    let (_, info) = server.get_json("/api/indices/unnamed/info").await?;
    assert_eq!(info["base_info"]["chunk_count"], 2, "{}", info["base_info"]);
    Ok(())
}

#[tokio::test]
async fn sigkill_mid_ingestion_loses_and_duplicates_nothing() -> anyhow::Result<()> {
    let mut server = NexentServer::start()?;
    let sources: Vec<Value> = (0..200)
        .map(|n| json!({"source": format!("Document {n}: the Harbin ledger entry {n} records {} crates of tin.", n * 7), "source_type": "text", "index_name": "crash", "file_name": format!("doc{n}.txt")}))
        .collect();
    let (status, answer) = server.post_json("/api/tasks/batch", &json!({"sources": sources})).await?;
    assert_eq!(status, 201, "{answer}");
    let ids: Vec<String> =
        answer["task_ids"].as_array().expect("ids").iter().filter_map(|id| id.as_str().map(str::to_owned)).collect();
    // Kill once ingestion is under way: some tasks done, most still waiting or running.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, listed) = server.get_json("/api/tasks").await?;
        let done =
            listed["tasks"].as_array().map_or(0, |tasks| tasks.iter().filter(|t| t["status"] == "completed").count());
        if done > 0 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill()?;
    server.restart()?;
    for id in &ids {
        let task = wait_for_task(&server, id).await?;
        assert_eq!(task["status"], "completed", "{task}");
    }
    let (_, info) = server.get_json("/api/indices/crash/info").await?;
    assert_eq!(info["base_info"]["doc_count"], 200, "{}", info["base_info"]);
    assert_eq!(info["base_info"]["chunk_count"], 200, "each document indexed exactly once: {}", info["base_info"]);
    Ok(())
}

/// A task that reads a watched folder's file names its node (`home_node`): another node of a deployment
/// must leave it alone, since the path is on a machine it cannot see; the node itself takes it.
#[tokio::test]
async fn a_local_files_task_is_taken_only_by_its_home_node() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let database = server.open_database().await?;
    let own_node = std::fs::read_to_string(server.data_dir().join("node-id"))?.trim().to_owned();
    assert!(!own_node.is_empty());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    // A path in no watched folder: a node that takes the task fails it (it may read only watched folders).
    sqlx::query(
        "INSERT INTO ingest_task (task_id, source, source_type, index_name, file_name, status, created_at,
                                  updated_at, local_file, home_node)
         VALUES ('elsewhere-1', '/srv/elsewhere/notes.txt', 'file', 'homes', 'notes.txt', 'WAITING', $1, $1, 1,
                 'another-node')",
    )
    .bind(now)
    .execute(database.pool())
    .await?;
    // Workers poll at least every 2 s: after 5 s the task would have been taken.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (_, task) = server.get_json("/api/tasks/elsewhere-1").await?;
    assert_eq!(task["status"], "waiting", "another node's local file is left to it: {task}");

    sqlx::query("UPDATE ingest_task SET home_node = $1 WHERE task_id = 'elsewhere-1'")
        .bind(&own_node)
        .execute(database.pool())
        .await?;
    let task = wait_for_task(&server, "elsewhere-1").await?;
    assert_eq!(task["status"], "failed", "its home node takes it (and refuses a path outside its folders): {task}");
    database.close().await;
    Ok(())
}
