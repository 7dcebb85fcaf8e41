//! Every supported document format, from files written by the libraries users' files come from
//! (tests/fixtures/formats/make_fixtures.py), goes through upload → parse → chunk → embed → index and is found by
//! a word that only it contains; hostile files fail with a reason while memory stays bounded.

use nexent_e2e::{NexentServer, peak_rss_kib, upload_to_kb, wait_for_task};
use serde_json::json;

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/formats").join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

#[tokio::test]
async fn every_supported_format_is_ingested_and_found() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let documents: Vec<(String, Vec<u8>, &str)> = [
        ("report.pdf", "quorbinite"),
        ("garden.docx", "zelkovaria"),
        ("review.pptx", "frumbleberry"),
        ("inventory.xlsx", "glimmerwort"),
        ("parts.xls", "snorkelvane"),
        ("birds.ods", "brambleflux"),
        ("choir.odt", "vantablossom"),
        ("meeting.eml", "plinkerton"),
        ("dragon.epub", "drovenstone"),
        ("bakery.rtf", "wobbletart"),
    ]
    .into_iter()
    .map(|(name, word)| (name.to_owned(), fixture(name), word))
    .chain([
        ("notes.txt".to_owned(), b"Sailors tie the gribbleknot twice.".to_vec(), "gribbleknot"),
        ("guide.md".to_owned(), b"# Tea\n\nThe mossvane kettle sings.\n".to_vec(), "mossvane"),
        ("page.htm".to_owned(), b"<h1>Rail</h1><p>The trundlewick line closes.</p>".to_vec(), "trundlewick"),
        ("table.csv".to_owned(), b"city,bird\nOrlen,pipplecrest\n".to_vec(), "pipplecrest"),
        ("data.xml".to_owned(), b"<a><b>The quillabast gauge</b></a>".to_vec(), "quillabast"),
        ("code.rs".to_owned(), b"// The yorwhistle cache is flushed hourly.\nfn main() {}\n".to_vec(), "yorwhistle"),
    ])
    .collect();
    let mut tasks = Vec::new();
    for (name, bytes, _) in &documents {
        let (status, answer) = upload_to_kb(&server, "every-format", name, bytes).await?;
        assert_eq!(status, 201, "{name}: {answer}");
        tasks.push((name, answer["process_tasks"]["task_id"].as_str().expect("task id").to_owned()));
    }
    for (name, task_id) in &tasks {
        let task = wait_for_task(&server, task_id).await?;
        assert_eq!(task["status"], "completed", "{name}: {task}");
    }
    for (name, _, word) in &documents {
        let (status, found) = server
            .post_json(
                "/api/indices/search/accurate",
                &json!({"index_names": ["every-format"], "query": word, "top_k": 3}),
            )
            .await?;
        assert_eq!(status, 200, "{found}");
        let results = found["results"].as_array().expect("results");
        assert_eq!(results.len(), 1, "{word} is in {name} only: {found}");
        assert_eq!(results[0]["filename"].as_str(), Some(name.as_str()), "{word}: {found}");
        assert!(results[0]["content"].as_str().unwrap_or("").to_lowercase().contains(word), "{found}");
    }
    let (_, info) = server.get_json("/api/indices/every-format/info").await?;
    assert_eq!(info["base_info"]["doc_count"], documents.len());
    Ok(())
}

#[tokio::test]
async fn hostile_files_fail_with_reasons_and_memory_stays_bounded() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    for (name, fixture_name, reason) in [
        ("truncated.pdf", "bad-truncated.pdf", "damaged"),
        ("scanned.pdf", "bad-scanned.pdf", "no text layer"),
        ("photo.docx", "bad-really-a-png.docx", "not a DOCX"),
        ("bomb.docx", "bad-zip-bomb.docx", "zip bomb"),
    ] {
        let (status, answer) = upload_to_kb(&server, "hostile", name, &fixture(fixture_name)).await?;
        assert_eq!(status, 201, "{name}: {answer}");
        let task = wait_for_task(&server, answer["process_tasks"]["task_id"].as_str().expect("id")).await?;
        assert_eq!(task["status"], "failed", "{name}: {task}");
        assert!(task["error"].as_str().unwrap_or("").contains(reason), "{name}: {task}");
    }
    // 200 MB on one line is over the default 100 MB per file: refused while streaming, nothing kept.
    let (status, answer) = upload_to_kb(&server, "hostile", "line.txt", &vec![b'a'; 200 << 20]).await?;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["errors"][0].as_str().unwrap_or("").contains("larger"), "{answer}");
    let (status, answer) = upload_to_kb(&server, "hostile", "tool.exe", b"MZ").await?;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = server.get_json("/api/file/storage/..%2F..%2Fetc%2Fpasswd").await?;
    assert!((400..500).contains(&status), "{status} {answer}");

    let peak_mib = peak_rss_kib(server.pid().expect("pid")).expect("peak RSS") / 1024;
    println!("peak RSS of the server after the hostile files: {peak_mib} MiB");
    assert!(peak_mib < 1024, "the server's memory stayed bounded: peak {peak_mib} MiB");
    let (status, _) = server.get_json("/api/health").await?;
    assert_eq!(status, 200, "the server keeps serving");
    let (_, listed) = server.get_json("/api/file/storage").await?;
    assert_eq!(listed["total"], 4, "the refused upload left no object behind: {listed}");
    Ok(())
}
