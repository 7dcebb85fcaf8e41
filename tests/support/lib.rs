//! Test support: start the real `nexent` binary on a random loopback port with its own data dir, talk to
//! it over HTTP, stop it gently (SIGTERM) or brutally (SIGKILL), and start it again on the same data.
//!
//! The binary is found through `NEXENT_BIN`, or built once per test process with the same cargo that
//! runs the tests (a no-op when it is up to date), so `cargo test` alone works from a clean checkout.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The deployment a test run exercises: embedded (the default: SQLite and files in the data dir), or with
/// `NEXENT_TEST_DEPLOYMENT=shared` PostgreSQL and an S3 server started by `scripts/test-engines.sh`
/// (`NEXENT_TEST_POSTGRES_URL`, `NEXENT_TEST_PSQL`, `NEXENT_TEST_S3_ENDPOINT`). Each data dir gets its own
/// database and bucket, named after it, so a restart on the same data dir finds its data again and tests
/// running at once never see each other's.
pub struct SharedEngines {
    pub database_url: String,
    pub storage_env: Vec<(String, String)>,
}

impl SharedEngines {
    pub fn enabled() -> bool {
        std::env::var("NEXENT_TEST_DEPLOYMENT").is_ok_and(|deployment| deployment == "shared")
    }

    /// The deployment a server joins: the one its options name, else its data dir's own.
    pub fn for_server(data_dir: &Path, options: &ServerOptions) -> anyhow::Result<Option<Self>> {
        if options.embedded {
            return Ok(None);
        }
        match &options.deployment {
            Some(name) => Self::named(name),
            None => Self::for_data_dir(data_dir),
        }
    }

    pub fn for_data_dir(data_dir: &Path) -> anyhow::Result<Option<Self>> {
        // A stable name per data dir (SipHash with fixed keys), valid as a database and a bucket name.
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        data_dir.hash(&mut hasher);
        Self::named(&format!("nexent{:016x}", hasher.finish()))
    }

    /// The database and bucket `name` (lower-case letters and digits), made if missing.
    pub fn named(name: &str) -> anyhow::Result<Option<Self>> {
        if !Self::enabled() {
            return Ok(None);
        }
        anyhow::ensure!(
            name.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit()),
            "a deployment name is lower-case letters and digits: {name:?}"
        );
        let name = name.to_owned();
        let variable = |key: &str| {
            std::env::var(key).with_context(|| format!("{key} is not set: run the shared suites through `make test`"))
        };
        let admin_url = variable("NEXENT_TEST_POSTGRES_URL")?;
        let endpoint = variable("NEXENT_TEST_S3_ENDPOINT")?;
        let created = Command::new(variable("NEXENT_TEST_PSQL")?)
            .arg(&admin_url)
            .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
            .output()
            .context("cannot run psql")?;
        let stderr = String::from_utf8_lossy(&created.stderr);
        anyhow::ensure!(
            created.status.success() || stderr.contains("already exists"),
            "CREATE DATABASE {name}: {stderr}"
        );
        let bucket = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", &format!("{endpoint}/{name}")])
            .output()
            .context("cannot run curl")?;
        let code = String::from_utf8_lossy(&bucket.stdout).to_string();
        anyhow::ensure!(code == "200" || code == "409", "creating bucket {name}: HTTP {code}");
        let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(base, _)| base);
        Ok(Some(Self {
            database_url: format!("{base}/{name}"),
            storage_env: vec![
                ("MINIO_ENDPOINT".into(), endpoint),
                ("MINIO_ACCESS_KEY".into(), "nexent".into()),
                ("MINIO_SECRET_KEY".into(), "nexent-secret".into()),
                ("MINIO_REGION".into(), "us-east-1".into()),
                ("MINIO_DEFAULT_BUCKET".into(), name),
            ],
        }))
    }
}

/// Path of the `nexent` binary under test.
pub fn nexent_binary() -> anyhow::Result<PathBuf> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY.get_or_init(|| locate_or_build().map_err(|error| format!("{error:#}"))).clone().map_err(anyhow::Error::msg)
}

fn locate_or_build() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("NEXENT_BIN") {
        return Ok(PathBuf::from(path));
    }
    // target/<profile>/deps/<test binary> (a test) or target/<profile>/<binary> (a benchmark)
    // -> target/<profile>/nexent
    let test_exe = std::env::current_exe()?;
    let exe_dir = test_exe.parent().context("cannot find the target dir from the test executable")?;
    let profile_dir = if exe_dir.file_name().is_some_and(|name| name == "deps") {
        exe_dir.parent().context("cannot find the target dir from the test executable")?
    } else {
        exe_dir
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("workspace root")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut build = Command::new(cargo);
    build.current_dir(workspace).args(["build", "--quiet", "-p", "nexent-server", "--bin", "nexent"]);
    if profile_dir.file_name().is_some_and(|name| name == "release") {
        build.arg("--release");
    }
    if let Some(target_dir) = profile_dir.parent() {
        build.env("CARGO_TARGET_DIR", target_dir);
    }
    let status = build.status().context("cannot run cargo to build the nexent binary")?;
    if !status.success() {
        bail!("building the nexent binary failed ({status})");
    }
    // The speech-to-text helper lives beside it. A build of its own: whisper.cpp's portable CPU flags
    // (the Makefile's GGML_FLAGS) must not reach llama.cpp's build, whose own flags they would change.
    let mut helper = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    helper.current_dir(workspace).args(["build", "--quiet", "-p", "nexent-stt"]);
    for flag in ["GGML_NATIVE=OFF", "GGML_AVX=ON", "GGML_AVX2=ON", "GGML_FMA=ON", "GGML_F16C=ON", "GGML_BMI2=ON"] {
        if let Some((key, value)) = flag.split_once('=') {
            helper.env(key, value);
        }
    }
    if profile_dir.file_name().is_some_and(|name| name == "release") {
        helper.arg("--release");
    }
    if let Some(target_dir) = profile_dir.parent() {
        helper.env("CARGO_TARGET_DIR", target_dir);
    }
    let status = helper.status().context("cannot run cargo to build nexent-stt")?;
    if !status.success() {
        bail!("building nexent-stt failed ({status})");
    }
    let binary = profile_dir.join("nexent");
    if !binary.exists() {
        bail!("{} was not built", binary.display());
    }
    Ok(binary)
}

/// The model files fetched by `scripts/setup.sh` (`NEXENT_TEST_MODELS_DIR` overrides).
pub fn models_dir() -> PathBuf {
    std::env::var("NEXENT_TEST_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/files"))
}

/// How to start a server.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    pub extra_args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// `--models-dir` (default: [`models_dir`]).
    pub models_dir: Option<PathBuf>,
    /// In a shared-engines run: the database and bucket to use, so several nodes (each with its own data
    /// dir) are one deployment (default: named after the data dir).
    pub deployment: Option<String>,
    /// Embedded (SQLite and files in the data dir) even in a shared-engines run (benchmarks compare both).
    pub embedded: bool,
}

impl ServerOptions {
    pub fn arg(mut self, value: impl Into<String>) -> Self {
        self.extra_args.push(value.into());
        self
    }

    pub fn with_models_dir(mut self, dir: &Path) -> Self {
        self.models_dir = Some(dir.to_path_buf());
        self
    }

    /// Stays embedded even in a shared-engines run (see [`ServerOptions::embedded`]).
    pub fn embedded(mut self) -> Self {
        self.embedded = true;
        self
    }

    /// Joins the shared-engines deployment `name` (see [`ServerOptions::deployment`]).
    pub fn deployment(mut self, name: &str) -> Self {
        self.deployment = Some(name.to_owned());
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// A running `nexent serve` process with its data dir.
pub struct NexentServer {
    child: Option<Child>,
    pub base_url: String,
    pub port: u16,
    data_dir: PathBuf,
    _owned_dir: Option<tempfile::TempDir>,
    pub client: reqwest::Client,
    options: ServerOptions,
}

impl NexentServer {
    /// Starts a server on a fresh temporary data dir.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(ServerOptions::default())
    }

    pub fn start_with(options: ServerOptions) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let data_dir = dir.path().to_path_buf();
        let mut server = Self::spawn(&data_dir, &options, 0)?;
        server._owned_dir = Some(dir);
        Ok(server)
    }

    /// Starts a server on an existing data dir (which the caller keeps alive).
    pub fn start_in(data_dir: &Path, options: ServerOptions) -> anyhow::Result<Self> {
        Self::spawn(data_dir, &options, 0)
    }

    fn spawn(data_dir: &Path, options: &ServerOptions, port: u16) -> anyhow::Result<Self> {
        let mut command = Command::new(nexent_binary()?);
        command
            .arg("serve")
            .arg("--port")
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--models-dir")
            .arg(options.models_dir.clone().unwrap_or_else(models_dir))
            .args(&options.extra_args)
            .env_remove("NEXENT_API_TOKEN")
            .env_remove("NEXENT_HOST")
            .env_remove("NEXENT_PORT")
            .env("NEXENT_LOG", std::env::var("NEXENT_TEST_LOG").unwrap_or_else(|_| "warn".to_owned()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let deployment = SharedEngines::for_server(data_dir, options)?;
        if let Some(engines) = &deployment {
            command.arg("--database-url").arg(&engines.database_url);
            for (key, value) in &engines.storage_env {
                command.env(key, value);
            }
        }
        for (key, value) in &options.env {
            command.env(key, value);
        }
        let mut child = command.spawn().context("cannot start nexent")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                if let Some(url) = line.trim().strip_prefix("Nexent Local listening on ") {
                    let _ = sender.send(url.to_owned());
                }
                line.clear();
            }
        });
        let base_url = match receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                // Its output may end a moment before its exit status can be read.
                let mut status = None;
                for _ in 0..50 {
                    status = child.try_wait().ok().flatten();
                    if status.is_some() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                let _ = child.kill();
                bail!("nexent did not report its address (exit status: {status:?})");
            }
        };
        let port = base_url.rsplit(':').next().and_then(|port| port.parse().ok()).context("port in URL")?;
        let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).no_proxy().build()?;
        Ok(Self {
            child: Some(child),
            base_url,
            port,
            data_dir: data_dir.to_path_buf(),
            _owned_dir: None,
            client,
            options: options.clone(),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server's relational store, opened beside it (the agent's view of the same database): the data
    /// dir's `nexent.db`, or the PostgreSQL database of a shared-engines run.
    pub async fn open_database(&self) -> anyhow::Result<nexent_core::db::Database> {
        Ok(match SharedEngines::for_server(&self.data_dir, &self.options)? {
            Some(engines) => nexent_core::db::connect_database(&engines.database_url).await?,
            None => nexent_core::db::open_database(&self.data_dir.join("nexent.db")).await?,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGSTOP: the process stays, its port accepts connections, nothing answers (a hung server).
    pub fn pause(&self) {
        if let Some(pid) = self.pid() {
            send_signal(pid, libc::SIGSTOP);
        }
    }

    /// SIGCONT after [`NexentServer::pause`].
    pub fn resume(&self) {
        if let Some(pid) = self.pid() {
            send_signal(pid, libc::SIGCONT);
        }
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let mut child = self.child.take().context("not running")?;
        send_signal(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                child.kill()?;
                bail!("nexent did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the server again on the same data dir and options (after `kill` or `terminate`).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            self.terminate()?;
        }
        let owned = self._owned_dir.take();
        let mut next = Self::spawn(&self.data_dir, &self.options, 0)?;
        next._owned_dir = owned;
        *self = next;
        Ok(())
    }

    pub async fn get_json(&self, path: &str) -> anyhow::Result<(u16, serde_json::Value)> {
        let response = self.client.get(self.url(path)).send().await?;
        read_json(response).await
    }

    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let response = self.client.request(method, self.url(path)).json(body).send().await?;
        read_json(response).await
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<(u16, serde_json::Value)> {
        self.send_json(reqwest::Method::POST, path, body).await
    }
}

impl Drop for NexentServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Status and JSON body of a response (a non-JSON body is an error, so shapes are always checked).
pub async fn read_json(response: reqwest::Response) -> anyhow::Result<(u16, serde_json::Value)> {
    let status = response.status().as_u16();
    let text = response.text().await?;
    let json = serde_json::from_str(&text).with_context(|| format!("status {status}, body is not JSON: {text}"))?;
    Ok((status, json))
}

#[allow(unsafe_code)]
fn send_signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) on a child process id we own; no memory is shared.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// Flips bytes in the middle of the largest file of a knowledge base's Tantivy folder (a segment's store
/// or postings), as a failing disk would; the file changed.
pub fn corrupt_largest_segment_file(index_dir: &Path) -> anyhow::Result<PathBuf> {
    let largest = std::fs::read_dir(index_dir.join("tantivy"))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|extension| extension != "json" && extension != "lock"))
        .max_by_key(|path| std::fs::metadata(path).map(|metadata| metadata.len()).unwrap_or(0))
        .context("the base has no segment file")?;
    let mut bytes = std::fs::read(&largest)?;
    let (middle, end) = (bytes.len() / 2, bytes.len());
    for byte in &mut bytes[middle.saturating_sub(8)..(middle + 8).min(end)] {
        *byte ^= 0x5a;
    }
    std::fs::write(&largest, bytes)?;
    Ok(largest)
}

/// Resident set size of a process in KiB, from /proc (Linux).
pub fn rss_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmRSS:")
}

/// The most resident memory a process has had since it started, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmHWM:")
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| line.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// Polls a Data Process task until it is completed or failed (two minutes at most).
pub async fn wait_for_task(server: &NexentServer, task_id: &str) -> anyhow::Result<serde_json::Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (status, task) = server.get_json(&format!("/api/tasks/{task_id}")).await?;
        anyhow::ensure!(status == 200, "task {task_id}: {status} {task}");
        if matches!(task["status"].as_str(), Some("completed" | "failed")) {
            return Ok(task);
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "task {task_id} did not finish: {task}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Uploads one file into a knowledge base through `/api/file/upload`.
pub async fn upload_to_kb(
    server: &NexentServer,
    index: &str,
    name: &str,
    bytes: &[u8],
) -> anyhow::Result<(u16, serde_json::Value)> {
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(name.to_owned()))
        .text("index_name", index.to_owned());
    let response = server.client.post(server.url("/api/file/upload")).multipart(form).send().await?;
    read_json(response).await
}

/// The best hybrid hit for `query` in `index`.
pub async fn top_hit(server: &NexentServer, index: &str, query: &str) -> anyhow::Result<serde_json::Value> {
    let (status, found) = server
        .post_json(
            "/api/indices/search/hybrid",
            &serde_json::json!({"index_names": [index], "query": query, "top_k": 3}),
        )
        .await?;
    anyhow::ensure!(status == 200, "search {query}: {status} {found}");
    Ok(found["results"][0].clone())
}

/// Uploads one file into a knowledge base and waits until it is indexed (a failed task is an error).
pub async fn ingest_file(server: &NexentServer, index: &str, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let (status, body) = upload_to_kb(server, index, name, bytes).await?;
    anyhow::ensure!(status == 201, "upload {name}: {status} {body}");
    let task = wait_for_task(server, body["process_tasks"]["task_id"].as_str().unwrap_or_default()).await?;
    anyhow::ensure!(task["status"] == "completed", "{name} was not indexed: {task}");
    Ok(())
}

/// Saves a Config Sync configuration that selects `names` as the agent's knowledge bases.
pub async fn select_knowledge_bases(server: &NexentServer, names: &[&str]) -> anyhow::Result<()> {
    let config = serde_json::json!({
        "app": {"appName": "Nexent", "appDescription": "", "iconType": "preset", "customIconUrl": null, "avatarUri": null},
        "models": {},
        "data": {"selectedKbNames": names, "selectedKbModels": [], "selectedKbSources": []}
    });
    let (status, body) = server.post_json("/api/config/save_config", &config).await?;
    anyhow::ensure!(status == 200, "save_config: {status} {body}");
    Ok(())
}

/// The Python of the test virtual environment (`scripts/setup-test.sh`; `NEXENT_TEST_PYTHON` overrides).
pub fn test_python() -> String {
    std::env::var("NEXENT_TEST_PYTHON")
        .unwrap_or_else(|_| format!("{}/.cache/nexent/test-venv/bin/python", std::env::var("HOME").unwrap_or_default()))
}

/// Nexent's frontend parser for agent streams (chatStreamHandler): split on newlines, take `data:` lines,
/// trim, JSON-parse, drop messages whose type or content is empty. Checks every content is a string.
#[derive(Default)]
pub struct AgentStreamParser {
    buffer: Vec<u8>,
    pub messages: Vec<(String, String)>,
}

impl AgentStreamParser {
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
        while let Some(newline) = self.buffer.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=newline).collect();
            let line = String::from_utf8(line).expect("the stream is UTF-8 at line ends");
            let Some(data) = line.strip_prefix("data:") else {
                assert!(line.trim().is_empty(), "only data lines and blank lines: {line:?}");
                continue;
            };
            let message: serde_json::Value = serde_json::from_str(data.trim()).expect("each data line is JSON");
            let kind = message["type"].as_str().expect("type is a string").to_owned();
            let content =
                message["content"].as_str().unwrap_or_else(|| panic!("content is a string: {message}")).to_owned();
            if !kind.is_empty() && !content.is_empty() {
                self.messages.push((kind, content));
            }
        }
    }

    /// Reads a whole response body.
    pub async fn read_all(response: reqwest::Response) -> anyhow::Result<Vec<(String, String)>> {
        use futures::StreamExt;
        let mut parser = Self::default();
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            parser.feed(&chunk?);
        }
        Ok(parser.messages)
    }
}

/// Words of `text` for a word error rate: lower case, punctuation dropped (but not inside numbers such as
/// 3.5 or 9:30), `%` read as "percent", hyphens as spaces, small numbers as digits, "Dr" as "doctor".
pub fn normalized_words(text: &str) -> Vec<String> {
    let text = text.to_lowercase().replace('%', " percent").replace(['-', '\u{2014}'], " ");
    let mut words = Vec::new();
    for word in text.split_whitespace() {
        let characters: Vec<char> = word.chars().collect();
        let mut kept = String::new();
        for (index, &character) in characters.iter().enumerate() {
            let between = |test: fn(&char) -> bool| {
                index > 0 && test(&characters[index - 1]) && characters.get(index + 1).is_some_and(test)
            };
            let keep = character.is_alphanumeric()
                || (matches!(character, '.' | ':' | ',') && between(|c| c.is_ascii_digit()))
                || (character == '\'' && between(|c| c.is_alphabetic()));
            if keep {
                kept.push(character);
            }
        }
        if !kept.is_empty() {
            // Small numbers are written either way ("five", "5"): one spelling for both.
            let digits = NUMBER_WORDS.iter().position(|name| *name == kept).map(|value| match value {
                0..=20 => value.to_string(),
                tens => ((tens - 18) * 10).to_string(),
            });
            let word = digits.unwrap_or(kept);
            words.push(if word == "dr" { "doctor".to_owned() } else { word });
        }
    }
    words
}

const NUMBER_WORDS: [&str; 28] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "sixty",
    "seventy",
    "eighty",
    "ninety",
];

/// Word-level edit distance between two texts (after [`normalized_words`]) and the reference's length.
pub fn word_errors(reference: &str, hypothesis: &str) -> (usize, usize) {
    let reference = normalized_words(reference);
    (edit_distance(&reference, &normalized_words(hypothesis)), reference.len())
}

/// Insertions, deletions and substitutions that turn `reference` into `hypothesis` (Levenshtein).
fn edit_distance<T: PartialEq>(reference: &[T], hypothesis: &[T]) -> usize {
    let mut previous: Vec<usize> = (0..=hypothesis.len()).collect();
    for (row, expected) in reference.iter().enumerate() {
        let mut current = vec![row + 1; hypothesis.len() + 1];
        for (column, heard) in hypothesis.iter().enumerate() {
            let substitution = previous[column] + usize::from(expected != heard);
            current[column + 1] = substitution.min(previous[column + 1] + 1).min(current[column] + 1);
        }
        previous = current;
    }
    previous[hypothesis.len()]
}

/// Character errors (edits) of `hypothesis` against `reference` and the reference's length, counting
/// letters and digits only (Chinese is scored by characters, as it has no spaces between words).
pub fn character_errors(reference: &str, hypothesis: &str) -> (usize, usize) {
    let characters = |text: &str| -> Vec<char> {
        text.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
    };
    let reference = characters(reference);
    (edit_distance(&reference, &characters(hypothesis)), reference.len())
}

/// 16 kHz mono 16-bit samples of a WAV file's data chunk (the test audio is in that format).
pub fn wav_pcm(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(bytes.len() > 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WAVE", "not a WAV file");
    let mut offset = 12;
    while offset + 8 <= bytes.len() {
        let size =
            u32::from_le_bytes([bytes[offset + 4], bytes[offset + 5], bytes[offset + 6], bytes[offset + 7]]) as usize;
        if &bytes[offset..offset + 4] == b"data" {
            let end = (offset + 8 + size).min(bytes.len());
            return Ok(bytes[offset + 8..end].to_vec());
        }
        offset += 8 + size + (size & 1);
    }
    bail!("the WAV file has no data chunk")
}
