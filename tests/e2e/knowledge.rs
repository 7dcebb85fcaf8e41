//! The Elasticsearch App on our embedded engine, with the real MiniLM model: Nexent's own black-box
//! knowledge-base scenario (its test_elasticsearch_service.py), search modes, bad input, restarts.

use nexent_e2e::NexentServer;
use reqwest::Method;
use serde_json::{Value, json};

async fn index_two_documents(server: &NexentServer, index: &str) -> anyhow::Result<Value> {
    let body = json!({
        "task_id": "task-1",
        "index_name": index,
        "results": [
            {"text": "This is a test document about the Zorblax 9000 vacuum robot, which weighs 12 kilograms.",
             "source": "/docs/zorblax.txt", "source_type": "file",
             "metadata": {"title": "Zorblax manual", "filename": "zorblax.txt", "file_size": 2048, "languages": ["en"], "author": "Ada"}},
            {"text": "Another test document: the Quibble river flows north through the valley of Vex.",
             "source": "/docs/quibble.md", "source_type": "file",
             "metadata": {"filename": "quibble.md", "file_size": 4096}}
        ]
    });
    let (status, answer) = server.post_json(&format!("/api/indices/{index}/documents"), &body).await?;
    assert_eq!(status, 200, "{answer}");
    Ok(answer)
}

async fn search(server: &NexentServer, mode: &str, body: Value) -> anyhow::Result<(u16, Value)> {
    server.post_json(&format!("/api/indices/search/{mode}"), &body).await
}

#[tokio::test]
async fn nexents_black_box_scenario() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let (status, health) = server.get_json("/api/indices/health").await?;
    assert_eq!(status, 200);
    assert_eq!((health["status"].as_str(), health["elasticsearch"].as_str()), (Some("healthy"), Some("connected")));
    assert_eq!(health["indices_count"], 0);

    let index = "test_index_documents";
    let (status, created) = server.post_json(&format!("/api/indices/{index}"), &json!({"name": index})).await?;
    assert_eq!(status, 200, "{created}");
    assert_eq!((created["status"].as_str(), created["success"].as_bool()), (Some("success"), Some(true)));
    assert_eq!(created["embedding_dim"], 384);
    let (status, again) = server.post_json(&format!("/api/indices/{index}"), &json!({})).await?;
    assert_eq!((status, again["status"].as_str()), (200, Some("success")), "idempotent: {again}");

    let indexed = index_two_documents(&server, index).await?;
    assert_eq!(indexed["success"], true);
    assert_eq!(indexed["total_submitted"], 2);
    assert_eq!(indexed["total_indexed"], 2);

    let (status, info) = server.get_json(&format!("/api/indices/{index}/info")).await?;
    assert_eq!(status, 200);
    assert_eq!(info["base_info"]["doc_count"], 2);
    assert_eq!(info["base_info"]["chunk_count"], 2);
    assert_eq!(info["base_info"]["embedding_dim"], 384);
    assert_eq!(info["base_info"]["embedding_model"], "all-MiniLM-L6-v2");
    assert!(info["base_info"]["store_size"].as_str().is_some_and(|size| size.ends_with("KB") || size.ends_with("MB")));
    assert!(info["fields"].as_array().is_some_and(|fields| fields.contains(&json!("content"))));
    let files = info["files"].as_array().expect("files");
    let mut sizes: Vec<u64> = files.iter().map(|file| file["file_size"].as_u64().unwrap_or(0)).collect();
    sizes.sort();
    assert_eq!(sizes, [2048, 4096], "the file sizes given in the metadata");
    assert!(
        files.iter().all(|file| file["status"] == "COMPLETED"
            && file["path_or_url"].is_string()
            && file["filename"].is_string())
    );

    let (status, found) =
        search(&server, "accurate", json!({"index_names": [index], "query": "test document", "top_k": 2})).await?;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["total"], 2);
    let first = &found["results"][0];
    for key in ["id", "title", "content", "score", "path_or_url", "index"] {
        assert!(first.get(key).is_some(), "{key} missing from {first}");
    }
    assert!(first.get("embedding").is_none());
    assert!(found["query_time_ms"].as_f64().is_some_and(|ms| ms > 0.0));

    let (status, deleted) = server
        .client
        .delete(server.url(&format!("/api/indices/{index}/documents")))
        .query(&[("path_or_url", "/docs/zorblax.txt")])
        .send()
        .await
        .map(|response| (response.status().as_u16(), response))?;
    let deleted: Value = deleted.json().await?;
    assert_eq!(status, 200);
    assert_eq!((deleted["status"].as_str(), deleted["deleted_count"].as_u64()), (Some("success"), Some(1)));
    let (_, info) = server.get_json(&format!("/api/indices/{index}/info")).await?;
    assert_eq!(info["base_info"]["chunk_count"], 1);

    let (status, _) = server.send_json(Method::DELETE, &format!("/api/indices/{index}"), &json!({})).await?;
    assert_eq!(status, 200);
    assert!(!server.data_dir().join("indices").join(index).exists(), "its files are removed");

    let (status, missing) = server.get_json(&format!("/api/indices/{index}/info")).await?;
    assert_eq!(status, 404, "{missing}");
    let (status, empty) = search(&server, "accurate", json!({"index_names": ["anything"], "query": ""})).await?;
    assert!((400..500).contains(&status), "empty query: {empty}");
    let (status, _) = search(&server, "accurate", json!({"index_names": [], "query": "x"})).await?;
    assert!((400..500).contains(&status), "no index names");
    Ok(())
}

#[tokio::test]
async fn semantic_and_hybrid_search_find_meaning_not_just_words() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    index_two_documents(&server, "kb").await?;
    // No word of the question appears in the right document: only the vectors can find it.
    let question = json!({"index_names": ["kb"], "query": "How heavy is the cleaning machine?", "top_k": 2});
    let (status, semantic) = search(&server, "semantic", question.clone()).await?;
    assert_eq!(status, 200, "{semantic}");
    assert_eq!(semantic["results"][0]["path_or_url"], "/docs/zorblax.txt", "{semantic}");
    let score = semantic["results"][0]["score"].as_f64().expect("score");
    assert!(score > 0.5 && score <= 1.0, "(1 + cos) / 2 scale: {score}");

    let (status, hybrid) =
        search(&server, "hybrid", json!({"index_names": ["kb"], "query": "Quibble river", "top_k": 2})).await?;
    assert_eq!(status, 200, "{hybrid}");
    let top = &hybrid["results"][0];
    assert_eq!(top["path_or_url"], "/docs/quibble.md");
    assert_eq!(top["score_details"]["accurate"], 1.0, "normalised by the list's own max: {top}");
    assert!(top["score_details"]["semantic"].as_f64().is_some());
    let expected = 0.3 * top["score_details"]["accurate"].as_f64().unwrap_or(0.0)
        + 0.7 * top["score_details"]["semantic"].as_f64().unwrap_or(0.0);
    assert!((top["score"].as_f64().unwrap_or(0.0) - expected).abs() < 1e-4);

    let (status, rrf) = search(
        &server,
        "hybrid",
        json!({"index_names": ["kb"], "query": "Quibble river", "top_k": 2, "fusion": "rrf"}),
    )
    .await?;
    assert_eq!(status, 200, "{rrf}");
    assert_eq!(rrf["results"][0]["path_or_url"], "/docs/quibble.md");
    Ok(())
}

#[tokio::test]
async fn several_indices_are_searched_at_once() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    index_two_documents(&server, "first").await?;
    let body = json!({"task_id": "t2", "results": [{"text": "The Zorblax 9000 ships with a spare battery.", "source": "/other/battery.txt"}]});
    let (status, _) = server.post_json("/api/indices/second/documents", &body).await?;
    assert_eq!(status, 200);
    let (_, found) =
        search(&server, "hybrid", json!({"index_names": ["first", "second"], "query": "Zorblax", "top_k": 5})).await?;
    let indices: Vec<&str> =
        found["results"].as_array().expect("results").iter().filter_map(|hit| hit["index"].as_str()).collect();
    assert!(indices.contains(&"first") && indices.contains(&"second"), "{found}");

    let (_, listed) = server.get_json("/api/indices?include_stats=true").await?;
    assert_eq!(listed["count"], 2);
    assert_eq!(listed["indices"], json!(["first", "second"]));
    assert_eq!(listed["indices_info"][0]["stats"]["base_info"]["chunk_count"], 2);
    assert!(listed["indices_info"][0]["stats"]["search_performance"]["total_search_count"].as_u64().is_some());
    let (_, filtered) = server.get_json("/api/indices?pattern=sec*").await?;
    assert_eq!(filtered["indices"], json!(["second"]));
    Ok(())
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    index_two_documents(&server, "kb").await?;
    for (mode, body, expected) in [
        ("accurate", json!({"index_names": ["kb"], "query": "   "}), 400),
        ("accurate", json!({"index_names": ["nope"], "query": "x"}), 404),
        ("semantic", json!({"index_names": ["kb"], "query": "x", "top_k": 0}), 400),
        ("semantic", json!({"index_names": ["kb"], "query": "x", "top_k": 100000}), 400),
        ("hybrid", json!({"index_names": ["kb"], "query": "x", "weight_accurate": 1.5}), 422),
        ("hybrid", json!({"index_names": ["kb"], "query": "x", "fusion": "magic"}), 400),
        ("accurate", json!({"index_names": ["../etc"], "query": "x"}), 400),
        ("accurate", json!({"query": "x"}), 422),
    ] {
        let (status, answer) = search(&server, mode, body.clone()).await?;
        assert_eq!(status, expected, "{mode} {body}: {answer}");
        assert!(answer["message"].as_str().is_some_and(|message| !message.is_empty()), "{answer}");
    }
    for name in ["UPPER", "a%2Fb", "..", "-x"] {
        let (status, answer) = server.post_json(&format!("/api/indices/{name}"), &json!({})).await?;
        assert!((400..500).contains(&status), "{name}: {status} {answer}");
    }
    let (status, answer) = server.post_json("/api/indices/dims?embedding_dim=1024", &json!({})).await?;
    assert_eq!(status, 200, "{answer}");
    let body = json!({"task_id": "t", "results": [{"text": "hello", "source": "a"}]});
    let (status, answer) = server.post_json("/api/indices/dims/documents", &body).await?;
    assert_eq!(status, 400, "a 1024-dimensional index cannot take MiniLM's 384: {answer}");
    assert!(answer["message"].as_str().unwrap_or("").contains("dimension"), "{answer}");
    let (status, answer) = search(&server, "semantic", json!({"index_names": ["dims"], "query": "hello"})).await?;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = server.send_json(Method::DELETE, "/api/indices/kb/documents", &json!({})).await?;
    assert_eq!(status, 422, "no path_or_url: {answer}");
    let (status, answer) = server.send_json(Method::DELETE, "/api/indices/missing", &json!({})).await?;
    assert_eq!(status, 404, "{answer}");
    Ok(())
}

#[tokio::test]
async fn indexed_documents_survive_sigkill_and_restart() -> anyhow::Result<()> {
    let mut server = NexentServer::start()?;
    index_two_documents(&server, "kb").await?;
    let question = json!({"index_names": ["kb"], "query": "How heavy is the cleaning machine?", "top_k": 1});
    let (_, before) = search(&server, "semantic", question.clone()).await?;
    server.kill()?;
    server.restart()?;
    let (status, after) = search(&server, "semantic", question).await?;
    assert_eq!(status, 200);
    assert_eq!(after["results"][0]["id"], before["results"][0]["id"]);
    let (_, info) = server.get_json("/api/indices/kb/info").await?;
    assert_eq!(info["base_info"]["chunk_count"], 2);
    // Re-indexing the same task replaces its chunks instead of duplicating them.
    index_two_documents(&server, "kb").await?;
    let (_, info) = server.get_json("/api/indices/kb/info").await?;
    assert_eq!(info["base_info"]["chunk_count"], 2);
    Ok(())
}

#[tokio::test]
async fn sigkill_during_a_large_documents_post_keeps_exactly_the_last_commit() -> anyhow::Result<()> {
    let mut server = NexentServer::start()?;
    index_two_documents(&server, "kb").await?;
    // Embedding 1500 chunks takes seconds on this machine: the kill lands before that commit.
    let results: Vec<Value> = (0..1500)
        .map(|position| json!({"text": format!("Bulk chunk number {position} about the Vexian tides and their ninety-day cycle."), "source": format!("/bulk/{}.txt", position / 100)}))
        .collect();
    let client = server.client.clone();
    let url = server.url("/api/indices/kb/documents");
    let large =
        tokio::spawn(
            async move { client.post(url).json(&json!({"task_id": "bulk", "results": results})).send().await },
        );
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    server.kill()?;
    let outcome = large.await?;
    assert!(
        outcome.is_err() || !outcome.as_ref().is_ok_and(|response| response.status().is_success()),
        "the kill came too late to test anything"
    );

    server.restart()?;
    let (_, info) = server.get_json("/api/indices/kb/info?include_chunks=true").await?;
    assert_eq!(info["base_info"]["chunk_count"], 2, "only the committed request: {}", info["base_info"]);
    let mut ids: Vec<String> = info["files"]
        .as_array()
        .expect("files")
        .iter()
        .flat_map(|file| file["chunks"].as_array().cloned().unwrap_or_default())
        .filter_map(|chunk| chunk["id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    assert_eq!(ids, ["task-1_0", "task-1_1"]);
    let (status, found) =
        search(&server, "hybrid", json!({"index_names": ["kb"], "query": "Zorblax", "top_k": 3})).await?;
    assert_eq!(status, 200);
    assert_eq!(found["results"][0]["id"], "task-1_0");
    // The index still takes writes after the crash (no stale writer lock).
    let (status, _) = server
        .post_json(
            "/api/indices/kb/documents",
            &json!({"task_id": "after", "results": [{"text": "post-crash chunk", "source": "/after.txt"}]}),
        )
        .await?;
    assert_eq!(status, 200);
    Ok(())
}

/// NUL characters in a document's text, title and path (a binary-ish file read as text): indexed and found
/// on every store (PostgreSQL's text cannot hold NUL; its store drops it on the way in).
#[tokio::test]
async fn a_document_with_nul_characters_is_indexed_and_found() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let body = json!({
        "task_id": "nul-1",
        "index_name": "nuls",
        "results": [{"text": "The Pelorine\u{0} lighthouse\u{0} keeper counts 41 gulls.", "source": "/docs/nul\u{0}.txt",
                     "source_type": "file", "metadata": {"title": "Nul\u{0} notes", "filename": "nul\u{0}.txt"}}]
    });
    let (status, answer) = server.post_json("/api/indices/nuls/documents", &body).await?;
    assert_eq!(status, 200, "{answer}");
    for mode in ["accurate", "semantic", "hybrid"] {
        let (status, found) =
            search(&server, mode, json!({"index_names": ["nuls"], "query": "Pelorine lighthouse gulls", "top_k": 3}))
                .await?;
        assert_eq!(status, 200, "{found}");
        assert_eq!(found["results"].as_array().map(Vec::len), Some(1), "{mode}: {found}");
        assert!(found["results"][0]["content"].as_str().unwrap_or_default().contains("41 gulls"), "{found}");
    }
    let (status, info) = server.get_json("/api/indices/nuls/info").await?;
    assert_eq!((status, &info["base_info"]["chunk_count"]), (200, &json!(1)), "{info}");
    Ok(())
}
