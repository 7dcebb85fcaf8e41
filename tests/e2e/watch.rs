//! Watched folders: files added, changed and deleted in a folder show up in (and leave) its knowledge base
//! within seconds; a restart reconciles by content hash without re-ingesting unchanged files.

use std::path::Path;
use std::time::{Duration, Instant};

use nexent_e2e::NexentServer;
use reqwest::Method;
use serde_json::{Value, json};

/// How many documents an accurate search for `word` finds in `index`.
async fn hits(server: &NexentServer, index: &str, word: &str) -> anyhow::Result<Vec<Value>> {
    let (status, found) = server
        .post_json("/api/indices/search/accurate", &json!({"index_names": [index], "query": word, "top_k": 10}))
        .await?;
    anyhow::ensure!(status == 200, "{found}");
    Ok(found["results"].as_array().cloned().unwrap_or_default())
}

/// Waits (20 s at most) until `word` is found in exactly `expected` chunks.
async fn wait_for_hits(server: &NexentServer, index: &str, word: &str, expected: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = hits(server, index, word).await?;
        if found.len() == expected {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{word}: expected {expected} hits, have {found:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn tasks_for(server: &NexentServer, file_name: &str) -> anyhow::Result<usize> {
    let (_, listed) = server.get_json("/api/tasks").await?;
    Ok(listed["tasks"].as_array().map_or(0, |tasks| tasks.iter().filter(|task| task["file_name"] == file_name).count()))
}

fn write(folder: &Path, name: &str, text: &str) -> anyhow::Result<()> {
    // Written beside and renamed, as editors do, so the watcher never sees half a file.
    let temporary = folder.join(format!(".{name}.tmp"));
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, folder.join(name))?;
    Ok(())
}

#[tokio::test]
async fn a_watched_folder_follows_adds_changes_and_deletes() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let folder = tempfile::tempdir()?;
    write(folder.path(), "engine.txt", "The zorgleflip engine hums quietly in the basement.")?;
    std::fs::create_dir(folder.path().join(".git"))?;
    std::fs::write(folder.path().join(".git/notes.txt"), "hidden quibblesnatch")?;

    let path = folder.path().display().to_string();
    let (status, watched) =
        server.post_json("/api/watched_folders", &json!({"path": path, "index_name": "notes"})).await?;
    assert_eq!(status, 201, "{watched}");
    let (status, again) =
        server.post_json("/api/watched_folders", &json!({"path": path, "index_name": "notes"})).await?;
    assert_eq!((status, &again["id"]), (201, &watched["id"]), "watching twice is the same folder");
    wait_for_hits(&server, "notes", "zorgleflip", 1).await?;
    assert!(hits(&server, "notes", "quibblesnatch").await?.is_empty(), "hidden folders are skipped");

    write(folder.path(), "plan.md", "# Plan\n\nThe quintaphore launch is on Monday.\n")?;
    std::fs::create_dir(folder.path().join("sub"))?;
    write(&folder.path().join("sub"), "deep.txt", "A drizzlewhump lives in the sub folder.")?;
    wait_for_hits(&server, "notes", "quintaphore", 1).await?;
    wait_for_hits(&server, "notes", "drizzlewhump", 1).await?;

    write(folder.path(), "engine.txt", "The zorgleflip engine was replaced by a wibblestone turbine.")?;
    wait_for_hits(&server, "notes", "wibblestone", 1).await?;
    assert_eq!(hits(&server, "notes", "zorgleflip").await?.len(), 1, "the changed file replaced its old chunks");

    std::fs::remove_file(folder.path().join("plan.md"))?;
    wait_for_hits(&server, "notes", "quintaphore", 0).await?;
    std::fs::remove_dir_all(folder.path().join("sub"))?;
    wait_for_hits(&server, "notes", "drizzlewhump", 0).await?;

    let (_, listed) = server.get_json("/api/watched_folders").await?;
    assert_eq!(listed["folders"][0]["file_count"], 1, "{listed}");
    assert_eq!(listed["folders"][0]["index_name"], "notes");

    let data_dir = server.data_dir().display().to_string();
    for bad in [
        json!({"path": "relative/dir", "index_name": "notes"}),
        json!({"path": "/no/such/dir", "index_name": "notes"}),
        json!({"path": data_dir, "index_name": "notes"}),
        json!({"path": path, "index_name": "../x"}),
    ] {
        let (status, answer) = server.post_json("/api/watched_folders", &bad).await?;
        assert_eq!(status, 400, "{bad}: {answer}");
        assert!(answer["message"].is_string());
    }
    let id = watched["id"].as_str().expect("id");
    let (status, _) = server
        .send_json(Method::DELETE, &format!("/api/watched_folders/{id}?remove_documents=true"), &json!({}))
        .await?;
    assert_eq!(status, 200);
    wait_for_hits(&server, "notes", "wibblestone", 0).await?;
    let (status, _) = server.send_json(Method::DELETE, &format!("/api/watched_folders/{id}"), &json!({})).await?;
    assert_eq!(status, 404);
    Ok(())
}

#[tokio::test]
async fn a_restart_reconciles_by_content_hash() -> anyhow::Result<()> {
    let mut server = NexentServer::start()?;
    let folder = tempfile::tempdir()?;
    write(folder.path(), "same.txt", "The steady blorptangle never changes.")?;
    write(folder.path(), "edited.txt", "The first draft mentions frazzleberry.")?;
    write(folder.path(), "gone.txt", "Soon the vanishquark disappears.")?;
    let (status, watched) = server
        .post_json("/api/watched_folders", &json!({"path": folder.path().display().to_string(), "index_name": "docs"}))
        .await?;
    assert_eq!(status, 201, "{watched}");
    for word in ["blorptangle", "frazzleberry", "vanishquark"] {
        wait_for_hits(&server, "docs", word, 1).await?;
    }
    server.terminate()?;

    // While the server is down: one file rewritten with the same bytes (new time), one edited, one
    // deleted, one added.
    write(folder.path(), "same.txt", "The steady blorptangle never changes.")?;
    write(folder.path(), "edited.txt", "The second draft mentions grumbleweed instead.")?;
    std::fs::remove_file(folder.path().join("gone.txt"))?;
    write(folder.path(), "new.txt", "A fresh snickerdoodlex arrived.")?;
    server.restart()?;

    wait_for_hits(&server, "docs", "snickerdoodlex", 1).await?;
    wait_for_hits(&server, "docs", "grumbleweed", 1).await?;
    wait_for_hits(&server, "docs", "frazzleberry", 0).await?;
    wait_for_hits(&server, "docs", "vanishquark", 0).await?;
    assert_eq!(hits(&server, "docs", "blorptangle").await?.len(), 1);
    assert_eq!(tasks_for(&server, "same.txt").await?, 1, "an unchanged file is not ingested again");
    assert_eq!(tasks_for(&server, "edited.txt").await?, 2);
    Ok(())
}
