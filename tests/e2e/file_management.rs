//! File Management: streaming uploads into object storage, listing, signed expiring URLs that really
//! download (and stop working), names with '/', refused names, size limits, deletion.

use nexent_e2e::{NexentServer, ServerOptions};
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

async fn upload(server: &NexentServer, files: &[(&str, Vec<u8>)], folder: Option<&str>) -> anyhow::Result<Value> {
    let mut form = Form::new();
    for (name, bytes) in files {
        form = form.part("files", Part::bytes(bytes.clone()).file_name((*name).to_owned()));
    }
    if let Some(folder) = folder {
        form = form.text("folder", folder.to_owned());
    }
    let response = server.client.post(server.url("/api/file/storage")).multipart(form).send().await?;
    let (status, body) = nexent_e2e::read_json(response).await?;
    assert_eq!(status, 200, "{body}");
    Ok(body)
}

#[tokio::test]
async fn upload_list_url_download_delete_round_trip() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let pdf_like: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let body =
        upload(&server, &[("notes.txt", b"hello storage".to_vec()), ("Scan 1.PDF", pdf_like.clone())], None).await?;
    assert_eq!((body["success_count"].as_u64(), body["failed_count"].as_u64()), (Some(2), Some(0)), "{body}");
    assert_eq!(body["message"], "Processed 2 files");
    let second = &body["results"][1];
    let object_name = second["object_name"].as_str().expect("name").to_owned();
    assert!(object_name.starts_with("attachments/") && object_name.ends_with(".pdf"), "{object_name}");
    assert_eq!((second["file_name"].as_str(), second["file_size"].as_u64()), (Some("Scan 1.PDF"), Some(200_000)));
    assert_eq!(second["content_type"], "application/pdf");

    // The URL downloads the exact bytes, with no token or session: the signature is the permission.
    let url = second["url"].as_str().expect("url").to_owned();
    let downloaded = reqwest::get(&url).await?;
    assert_eq!(downloaded.status(), 200);
    assert_eq!(downloaded.bytes().await?.to_vec(), pdf_like);

    let (status, listed) = server.get_json("/api/file/storage?prefix=attachments/").await?;
    assert_eq!(status, 200);
    assert_eq!(listed["total"], 2, "{listed}");
    assert!(listed["files"][0]["url"].is_string() && listed["files"][0]["key"].is_string());
    let (_, without_urls) = server.get_json("/api/file/storage?include_urls=false&limit=1").await?;
    assert_eq!(without_urls["total"], 1);
    assert!(without_urls["files"][0].get("url").is_none());

    // GET /api/file/storage/{object_name} with a '/' in the name (Nexent's route could not do this).
    let (status, answer) = server.get_json(&format!("/api/file/storage/{object_name}?expires=120")).await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!((answer["success"].as_bool(), answer["expires_in"].as_i64()), (Some(true), Some(120)));
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?
        .get(server.url(&format!("/api/file/storage/{object_name}?download=true")))
        .send()
        .await?;
    assert_eq!(redirect.status(), 307);

    let (status, batch) = server
        .post_json(
            "/api/file/storage/batch-urls?expires=60",
            &json!({"object_names": [object_name, "attachments/missing.txt"]}),
        )
        .await?;
    assert_eq!(status, 200, "{batch}");
    assert_eq!((batch["success_count"].as_u64(), batch["failed_count"].as_u64()), (Some(1), Some(1)));
    assert_eq!(batch["urls"], batch["results"]);
    let (status, _) = server.post_json("/api/file/storage/batch-urls", &json!({})).await?;
    assert_eq!(status, 400);

    let (status, deleted) =
        server.send_json(Method::DELETE, &format!("/api/file/storage/{object_name}"), &json!({})).await?;
    assert_eq!((status, deleted["success"].as_bool()), (200, Some(true)));
    let (status, _) = server.get_json(&format!("/api/file/storage/{object_name}")).await?;
    assert_eq!(status, 404);
    assert_eq!(reqwest::get(&url).await?.status(), 404, "the URL of a deleted file finds nothing");
    Ok(())
}

#[tokio::test]
async fn signed_urls_refuse_tampering_and_expire() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let body = upload(&server, &[("a.txt", b"secret bytes".to_vec())], Some("docs/inner")).await?;
    let object_name = body["results"][0]["object_name"].as_str().expect("name").to_owned();
    assert!(object_name.starts_with("docs/inner/"), "{object_name}");
    let (_, answer) = server.get_json(&format!("/api/file/storage/{object_name}?expires=1")).await?;
    let url = answer["url"].as_str().expect("url").to_owned();
    assert_eq!(reqwest::get(&url).await?.status(), 200);

    let position = url.find("signature=").expect("signature") + "signature=".len() + 5;
    let mut tampered = url.clone().into_bytes();
    tampered[position] = if tampered[position] == b'a' { b'b' } else { b'a' };
    let tampered = String::from_utf8(tampered)?;
    assert_eq!(reqwest::get(&tampered).await?.status(), 403);
    let other_name = url.replace("/a", "/b");
    assert_ne!(reqwest::get(&other_name).await?.status(), 200);
    let unsigned = url.split('?').next().expect("path").to_owned();
    assert_eq!(reqwest::get(&unsigned).await?.status(), 403);

    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let expired = reqwest::get(&url).await?;
    assert_eq!(expired.status(), 403, "a one-second URL is dead two seconds later");
    Ok(())
}

#[tokio::test]
async fn bad_names_and_oversized_files_are_refused_without_leftovers() -> anyhow::Result<()> {
    let server = NexentServer::start_with(ServerOptions::default().arg("--max-upload-bytes").arg("100000"))?;
    for name in ["../etc/passwd", "a/../../b", "a%5Cb", "a%00b"] {
        let (status, answer) = server.get_json(&format!("/api/file/storage/{name}")).await?;
        assert!((400..500).contains(&status), "{name}: {status} {answer}");
        let (status, _) = server.send_json(Method::DELETE, &format!("/api/file/storage/{name}"), &json!({})).await?;
        assert!((400..500).contains(&status), "delete {name}: {status}");
    }
    let body = upload(&server, &[("big.bin", vec![7u8; 150_000]), ("small.txt", b"ok".to_vec())], None).await?;
    assert_eq!((body["success_count"].as_u64(), body["failed_count"].as_u64()), (Some(1), Some(1)), "{body}");
    assert_eq!(body["results"][0]["success"], false);
    assert!(body["results"][0]["error"].as_str().unwrap_or("").contains("larger"), "{body}");
    let (_, listed) = server.get_json("/api/file/storage").await?;
    assert_eq!(listed["total"], 1, "the refused upload left nothing behind: {listed}");
    let response = server
        .client
        .post(server.url("/api/file/storage"))
        .multipart(
            Form::new().part("files", Part::bytes(b"x".to_vec()).file_name("x.txt")).text("folder", "../outside"),
        )
        .send()
        .await?;
    assert_eq!(response.status(), 400);
    let (status, body) = server.get_json("/api/file/storage/attachments/x.txt?expires=0").await?;
    assert!((400..500).contains(&status), "{body}");
    Ok(())
}

/// The `data:` payloads of an SSE body, in order.
fn sse_messages(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap_or_else(|error| panic!("{data}: {error}")))
        .collect()
}

#[tokio::test]
async fn preprocess_streams_each_files_real_text() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let docx = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/formats/garden.docx"))?;
    let form = Form::new()
        .text("query", "What did the gardener plant?")
        .part("files", Part::bytes(docx).file_name("garden.docx"))
        .part("files", Part::bytes(b"\x89PNG\r\n".to_vec()).file_name("photo.png"))
        .part("files", Part::bytes(b"not a pdf".to_vec()).file_name("broken.pdf"));
    let response = server.client.post(server.url("/api/file/preprocess")).multipart(form).send().await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let messages = sse_messages(&response.text().await?);
    let types: Vec<&str> = messages.iter().map(|message| message["type"].as_str().unwrap_or("")).collect();
    assert_eq!(types, ["progress", "file_processed", "progress", "error", "progress", "error", "complete"]);
    assert_eq!(messages[0]["message"], "Parsing file 1/3: garden.docx");
    assert_eq!(messages[2]["progress"], 33);
    let description = messages[1]["description"].as_str().unwrap_or("");
    assert!(
        description.starts_with("File garden.docx content: ") && description.contains("zelkovaria"),
        "{description}"
    );
    assert!(messages[3]["message"].as_str().unwrap_or("").contains("vision model"), "{}", messages[3]);
    assert!(messages[5]["message"].as_str().unwrap_or("").starts_with("Error parsing file broken.pdf: "));
    assert_eq!(
        messages[6],
        json!({"type": "complete", "progress": 100, "final_query": "What did the gardener plant?"})
    );

    let missing_query = Form::new().part("files", Part::bytes(b"x".to_vec()).file_name("a.txt"));
    let response = server.client.post(server.url("/api/file/preprocess")).multipart(missing_query).send().await?;
    let (status, body) = nexent_e2e::read_json(response).await?;
    assert_eq!(status, 422, "{body}");
    Ok(())
}
