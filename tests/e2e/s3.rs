//! File storage on an S3-compatible store, configured with Nexent's MinIO variables: the same routes, the
//! same signed URLs and the same ingestion, with the bytes in a bucket of a real S3 server (moto's, from
//! PyPI, installed by `scripts/setup-test.sh`) on loopback.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nexent_e2e::{NexentServer, ServerOptions, upload_to_kb, wait_for_task};
use reqwest::multipart::{Form, Part};
use serde_json::json;

struct S3Server {
    child: Child,
    endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_s3_server() -> anyhow::Result<S3Server> {
    let python = std::env::var("NEXENT_TEST_PYTHON").unwrap_or_else(|_| {
        format!("{}/.cache/nexent/test-venv/bin/python", std::env::var("HOME").unwrap_or_default())
    });
    anyhow::ensure!(
        std::path::Path::new(&python).exists(),
        "{python} is missing: run `bash scripts/setup-test.sh` (make test does)"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new(&python)
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let server = S3Server { child, endpoint: format!("http://127.0.0.1:{port}") };
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(&server.endpoint).await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "the S3 server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(server)
}

#[tokio::test]
async fn files_live_in_an_s3_bucket_when_configured() -> anyhow::Result<()> {
    let s3 = start_s3_server().await?;
    let bucket = format!("{}/nexent-files", s3.endpoint);
    assert!(reqwest::Client::new().put(&bucket).send().await?.status().is_success(), "bucket created");
    let server = NexentServer::start_with(
        ServerOptions::default()
            .env("MINIO_ENDPOINT", s3.endpoint.clone())
            .env("MINIO_ACCESS_KEY", "test-access-key")
            .env("MINIO_SECRET_KEY", "test-secret-key")
            .env("MINIO_DEFAULT_BUCKET", "nexent-files"),
    )?;

    let bytes = b"Stored in a bucket: the glorbfizzle report.".to_vec();
    let form = Form::new().part("files", Part::bytes(bytes.clone()).file_name("report.txt"));
    let response = server.client.post(server.url("/api/file/storage")).multipart(form).send().await?;
    let (status, body) = nexent_e2e::read_json(response).await?;
    assert_eq!(status, 200, "{body}");
    let object_name = body["results"][0]["object_name"].as_str().expect("object name").to_owned();
    let listing = reqwest::get(format!("{bucket}?list-type=2")).await?.text().await?;
    assert!(listing.contains(&object_name), "the object is in the bucket: {listing}");

    let (status, url) = server.get_json(&format!("/api/file/storage/{object_name}?expires=60")).await?;
    assert_eq!(status, 200, "{url}");
    let download = reqwest::get(url["url"].as_str().expect("url")).await?;
    assert_eq!(download.status(), 200);
    assert_eq!(download.bytes().await?.to_vec(), bytes, "the signed URL serves the bucket's bytes");

    let (status, answer) = upload_to_kb(&server, "bucket-kb", "notes.txt", b"The flumpwhistle is kept in S3.").await?;
    assert_eq!(status, 201, "{answer}");
    let task = wait_for_task(&server, answer["process_tasks"]["task_id"].as_str().expect("task")).await?;
    assert_eq!(task["status"], "completed", "{task}");
    let (_, found) = server
        .post_json(
            "/api/indices/search/accurate",
            &json!({"index_names": ["bucket-kb"], "query": "flumpwhistle", "top_k": 1}),
        )
        .await?;
    assert_eq!(found["results"][0]["filename"], "notes.txt", "{found}");

    let (status, _) =
        server.send_json(reqwest::Method::DELETE, &format!("/api/file/storage/{object_name}"), &json!({})).await?;
    assert_eq!(status, 200);
    let listing = reqwest::get(format!("{bucket}?list-type=2")).await?.text().await?;
    assert!(!listing.contains(&object_name), "deleted from the bucket: {listing}");
    Ok(())
}
