//! The soak: the real binary on loopback under an open-loop mix of what users do, while faults are
//! injected, with an oracle on the harness's side that checks after every restart and at the end that
//! nothing acknowledged was lost or doubled. `bench-soak` runs the long version and writes
//! `bench/results/soak.md`; `bench/tests/soak.rs` runs a short one in `make test`.
//!
//! Open loop: requests arrive at a rate that ramps up to the peak whatever the server's speed (each in
//! its own task, at most `max_in_flight` at once; an arrival over that is counted as shed by the client),
//! so overload shows as latency and 503s instead of being hidden by clients that wait their turn.
//!
//! Faults: SIGKILL and restart at random moments; the data dir on a size-limited tmpfs filled to the last
//! byte and then freed; the data dir remounted read-only for a while; the speech helper killed mid-use;
//! the chat model's file truncated or removed under the running server, then restarts on it damaged and
//! repaired; a segment file of one knowledge base's index corrupted while the server is down.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use nexent_e2e::{
    NexentServer, ServerOptions, corrupt_largest_segment_file, models_dir, peak_rss_kib, rss_kib, wav_pcm,
};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// What a soak does.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    pub duration: Duration,
    /// Arrivals per second at the peak (the rate ramps up to it over the first third, holds for the
    /// second and ramps down over the last).
    pub peak_rate: f64,
    /// Requests in flight at most; arrivals beyond are shed (counted).
    pub max_in_flight: usize,
    /// SIGKILL-and-restart faults, spread at random over the run.
    pub kills: usize,
    /// Disk-full episodes (needs root to mount the size-limited tmpfs; otherwise reported as skipped).
    pub disk_full_episodes: usize,
    /// Read-only episodes of the data dir (same need).
    pub read_only_episodes: usize,
    /// Episodes of the chat model's file damaged (truncated, then removed, in turn) under the server.
    pub model_file_episodes: usize,
    /// Episodes of a segment file of one base corrupted while the server is down.
    pub index_corruptions: usize,
    /// Most resident memory the server may use (sampled every two seconds), in MiB.
    pub memory_limit_mib: u64,
    /// Size of the tmpfs holding the data dir.
    pub data_dir_megabytes: u64,
    pub seed: u64,
    /// Test fixtures (documents of every format) to upload.
    pub fixtures: PathBuf,
}

impl SoakConfig {
    /// The short version for `make test`: a couple of minutes, every fault at least once.
    pub fn short(fixtures: PathBuf) -> Self {
        Self {
            duration: Duration::from_secs(120),
            peak_rate: 12.0,
            max_in_flight: 40,
            kills: 3,
            disk_full_episodes: 1,
            read_only_episodes: 1,
            model_file_episodes: 1,
            index_corruptions: 1,
            memory_limit_mib: 1536,
            data_dir_megabytes: 256,
            seed: 7,
            fixtures,
        }
    }
}

/// A small deterministic generator (xorshift64*), so a soak can be replayed by its seed.
#[derive(Debug, Clone)]
pub struct Random(u64);

impl Random {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound.max(1) as u64) as usize
    }
}

/// What clients do, with their share of arrivals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    CreateConversation,
    ListConversations,
    RenameConversation,
    DeleteConversation,
    Search,
    Upload,
    DeleteFile,
    AgentRun,
    OpenAiChat,
    OpenAiEmbeddings,
    Speak,
    Transcribe,
    /// Create a short-lived base with a document in it, or delete one.
    BaseChurn,
    /// Watch a folder, change or remove a file in one, or stop watching one.
    WatchChurn,
}

const MIX: [(Kind, u32); 14] = [
    (Kind::CreateConversation, 10),
    (Kind::ListConversations, 10),
    (Kind::RenameConversation, 4),
    (Kind::DeleteConversation, 3),
    (Kind::Search, 25),
    (Kind::Upload, 12),
    (Kind::DeleteFile, 3),
    (Kind::AgentRun, 6),
    (Kind::OpenAiChat, 4),
    (Kind::OpenAiEmbeddings, 8),
    (Kind::Speak, 3),
    (Kind::Transcribe, 2),
    (Kind::BaseChurn, 2),
    (Kind::WatchChurn, 3),
];

fn pick(random: &mut Random) -> Kind {
    let total: u32 = MIX.iter().map(|(_, weight)| weight).sum();
    let mut point = (random.next_u64() % u64::from(total)) as u32;
    for (kind, weight) in MIX {
        if point < weight {
            return kind;
        }
        point -= weight;
    }
    Kind::Search
}

/// The knowledge bases clients upload into and search (never deleted, so a search never races a delete).
const BASES: [&str; 3] = ["soak-a", "soak-b", "soak-c"];
/// The base the watched folders feed.
const WATCH_BASE: &str = "soak-watch";
/// The base whose index is corrupted on purpose (nothing else writes to it).
const FRAGILE_BASE: &str = "soak-fragile";
/// The chat model's file name (the soak runs on a copy of its own, which it damages).
const CHAT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ending {
    Status(u16),
    /// No answer: the server was down (killed, restarting) or the connection broke.
    Unreachable,
    /// Shed by the client: too many in flight.
    Shed,
}

#[derive(Debug, Default)]
struct KindStats {
    endings: BTreeMap<Ending, u64>,
    /// Latencies of answered requests during the peak third, in ms.
    peak_latencies: Vec<f64>,
}

/// What the server acknowledged, kept by the harness: the oracle's ground truth.
#[derive(Debug, Default)]
struct Acknowledged {
    /// Conversation id → title, for creates answered 200 and not since deleted with a 200.
    conversations: HashMap<i64, String>,
    /// Upload tasks answered 201: task id → (base, object path once known).
    tasks: HashMap<String, String>,
    /// Files deleted with a 200: (base, path).
    deleted_files: Vec<(String, String)>,
    /// Deletes sent but never answered (the server was killed under them, or was down): each may or may
    /// not have been applied, so the oracle accepts either. Conversation ids, and (base, path) of files.
    unanswered_conversation_deletes: std::collections::HashSet<i64>,
    unanswered_file_deletes: Vec<(String, String)>,
}

/// What the soak found, for the report and the test.
#[derive(Debug, Default)]
pub struct SoakReport {
    pub seed: u64,
    pub duration: Duration,
    pub peak_rate: f64,
    pub max_in_flight: usize,
    by_kind: BTreeMap<Kind, KindStats>,
    pub kills: usize,
    pub disk_full_episodes: usize,
    pub read_only_episodes: usize,
    pub helper_kills: usize,
    pub model_file_episodes: usize,
    pub index_corruptions: usize,
    /// What the chat answered in each model-file episode (running, restarted damaged, repaired).
    pub model_file_outcomes: Vec<String>,
    /// What the server said about the corrupted base after each restart.
    pub quarantine_outcomes: Vec<String>,
    pub skipped_faults: Vec<String>,
    /// Writes tried on purpose while the disk was full, by how they ended.
    pub disk_full_endings: BTreeMap<String, usize>,
    /// What each start on a read-only data dir did.
    pub read_only_outcomes: Vec<String>,
    pub invariant_checks: usize,
    /// Deletes whose answer never came (conversations and files), and how many of them had been applied.
    pub unanswered_deletes: usize,
    pub unanswered_deletes_applied: usize,
    pub violations: Vec<String>,
    pub lost: usize,
    pub duplicated: usize,
    pub peak_rss_kib: u64,
    /// Resident memory sampled every two seconds: the largest sample, and the limit it is held to.
    pub max_sampled_rss_kib: u64,
    pub memory_limit_mib: u64,
    pub tasks_completed: usize,
    pub tasks_failed: usize,
    pub failure_reasons: BTreeMap<String, usize>,
}

impl SoakReport {
    /// Statuses that are neither success nor what overload and a full disk may answer.
    pub fn unexpected_statuses(&self) -> Vec<String> {
        let mut found = Vec::new();
        for (kind, stats) in &self.by_kind {
            for (ending, count) in &stats.endings {
                if let Ending::Status(status) = ending
                    && !(200..300).contains(status)
                    && !matches!(status, 503 | 507)
                    // Clients pick from what was acknowledged, so two may race for one conversation or file:
                    // the second delete (or a rename after a delete) rightly finds nothing.
                    && !(matches!(
                        kind,
                        Kind::DeleteFile
                            | Kind::DeleteConversation
                            | Kind::RenameConversation
                            | Kind::BaseChurn
                            | Kind::WatchChurn
                    ) && *status == 404)
                {
                    found.push(format!("{kind:?}: {count} × {status}"));
                }
            }
        }
        found
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "Duration {:.0} s, seed {}, open-loop arrivals ramping to {:.0}/s, at most {} in flight.\n\n",
            self.duration.as_secs_f64(),
            self.seed,
            self.peak_rate,
            self.max_in_flight
        ));
        out.push_str("| kind | requests | 2xx | 503 | 507 | other statuses | unreachable (restarts) | shed | p50 ms (peak) | p99 ms (peak) |\n|---|---|---|---|---|---|---|---|---|---|\n");
        let mut total = 0u64;
        let mut refused = 0u64;
        for (kind, stats) in &self.by_kind {
            let count = |wanted: &dyn Fn(&Ending) -> bool| -> u64 {
                stats.endings.iter().filter(|(ending, _)| wanted(ending)).map(|(_, count)| count).sum()
            };
            let requests = count(&|_| true);
            let ok = count(&|ending| matches!(ending, Ending::Status(200..=299)));
            let busy = count(&|ending| *ending == Ending::Status(503));
            let full = count(&|ending| *ending == Ending::Status(507));
            let other: Vec<String> = stats
                .endings
                .iter()
                .filter_map(|(ending, count)| match ending {
                    Ending::Status(status) if !(200..300).contains(status) && !matches!(status, 503 | 507) => {
                        Some(format!("{count}×{status}"))
                    }
                    _ => None,
                })
                .collect();
            let unreachable = count(&|ending| *ending == Ending::Unreachable);
            let shed = count(&|ending| *ending == Ending::Shed);
            total += requests;
            refused += busy;
            let mut latencies = stats.peak_latencies.clone();
            latencies.sort_by(f64::total_cmp);
            out.push_str(&format!(
                "| {kind:?} | {requests} | {ok} | {busy} | {full} | {} | {unreachable} | {shed} | {:.0} | {:.0} |\n",
                if other.is_empty() { "0".to_owned() } else { other.join(", ") },
                crate::percentile(&latencies, 0.5),
                crate::percentile(&latencies, 0.99),
            ));
        }
        out.push_str(&format!(
            "\n{total} requests; 503 (busy) {:.2}% of them.\n\n",
            if total == 0 { 0.0 } else { 100.0 * refused as f64 / total as f64 }
        ));
        out.push_str(&format!(
            "Faults: {} SIGKILLs with restart, {} disk-full episodes, {} read-only episodes, {} speech-helper kills, {} chat-model file episodes, {} index corruptions.{}\n\n",
            self.kills,
            self.disk_full_episodes,
            self.read_only_episodes,
            self.helper_kills,
            self.model_file_episodes,
            self.index_corruptions,
            if self.skipped_faults.is_empty() {
                String::new()
            } else {
                format!(" Skipped: {}.", self.skipped_faults.join("; "))
            }
        ));
        if !self.disk_full_endings.is_empty() {
            let endings: Vec<String> =
                self.disk_full_endings.iter().map(|(ending, count)| format!("{count} × {ending}")).collect();
            out.push_str(&format!("Writes tried while the disk was full: {}.\n\n", endings.join(", ")));
        }
        for outcome in &self.read_only_outcomes {
            out.push_str(&format!("On a read-only data dir the server {outcome}.\n\n"));
        }
        for outcome in &self.model_file_outcomes {
            out.push_str(&format!("Chat model file {outcome}.\n\n"));
        }
        for outcome in &self.quarantine_outcomes {
            out.push_str(&format!("Corrupted index: {outcome}.\n\n"));
        }
        out.push_str(&format!(
            "Invariant checks: {} run; {} lost, {} duplicated; upload tasks: {} completed, {} failed.\n\n",
            self.invariant_checks, self.lost, self.duplicated, self.tasks_completed, self.tasks_failed
        ));
        if self.unanswered_deletes > 0 {
            out.push_str(&format!(
                "Deletes sent but never answered (the server was killed under them): {}; {} of them had been \
                 applied, which the oracle allows (either outcome is correct without an answer).\n\n",
                self.unanswered_deletes, self.unanswered_deletes_applied
            ));
        }
        if !self.failure_reasons.is_empty() {
            out.push_str("Reasons of failed tasks:\n\n");
            for (reason, count) in &self.failure_reasons {
                out.push_str(&format!("- {count} × {reason}\n"));
            }
            out.push('\n');
        }
        out.push_str(&format!(
            "Peak RSS of the server: {:.0} MiB (VmHWM); largest sample every 2 s: {:.0} MiB, held to {} MiB.\n\n",
            self.peak_rss_kib.max(self.max_sampled_rss_kib) as f64 / 1024.0,
            self.max_sampled_rss_kib as f64 / 1024.0,
            self.memory_limit_mib
        ));
        let unexpected = self.unexpected_statuses();
        if self.violations.is_empty() && unexpected.is_empty() {
            out.push_str("Every invariant held.\n");
        } else {
            out.push_str("Violations:\n\n");
            for violation in self.violations.iter().chain(&unexpected) {
                out.push_str(&format!("- {violation}\n"));
            }
        }
        out
    }
}

/// The server under test: its current URL changes with every restart.
struct Node {
    server: Mutex<NexentServer>,
    base: RwLock<String>,
    data_dir: PathBuf,
}

impl Node {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", read_lock(&self.base))
    }

    fn pid(&self) -> Option<u32> {
        lock(&self.server).pid()
    }

    /// SIGKILL, then start again on the same data dir.
    fn kill_and_restart(&self) -> anyhow::Result<()> {
        self.kill_change_restart(|| Ok(()))
    }

    /// SIGKILL, `change` while the server is down, then start again on the same data dir.
    fn kill_change_restart(&self, change: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
        let mut server = lock(&self.server);
        server.kill()?;
        change()?;
        server.restart()?;
        *self.base.write().unwrap_or_else(std::sync::PoisonError::into_inner) = server.base_url.clone();
        Ok(())
    }

    /// SIGKILL, then a start on the data dir made read-only (a tmpfs cannot be remounted read-only while
    /// a process writes to it), then read-write again and a normal start. What the read-only start did.
    fn restart_read_only(&self, limited: &LimitedDir) -> anyhow::Result<String> {
        let mut server = lock(&self.server);
        server.kill()?;
        limited.remount("ro")?;
        let outcome = match server.restart() {
            Ok(()) => {
                let answered = status_of(&server.url("/api/conversation/list"));
                server.kill()?;
                format!("started and answered the conversation list with {answered}")
            }
            Err(error) => format!("refused to start: {error:#}"),
        };
        limited.remount("rw")?;
        server.restart()?;
        *self.base.write().unwrap_or_else(std::sync::PoisonError::into_inner) = server.base_url.clone();
        Ok(outcome)
    }
}

/// The status of a GET, from a blocking thread of the runtime.
fn status_of(url: &str) -> String {
    tokio::runtime::Handle::current().block_on(async {
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build();
        match client.map(|client| client.get(url).send()) {
            Ok(sending) => match sending.await {
                Ok(response) => response.status().to_string(),
                Err(error) => format!("no answer ({error})"),
            },
            Err(error) => format!("no client ({error})"),
        }
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The data dir on a tmpfs of `megabytes` (root only); None where it cannot be mounted.
struct LimitedDir {
    path: PathBuf,
    /// The folder holding the mount point; None for a second handle on the same mount (not unmounted).
    _holder: Option<tempfile::TempDir>,
}

impl LimitedDir {
    fn mount(megabytes: u64) -> anyhow::Result<Option<Self>> {
        let holder = tempfile::tempdir()?;
        let path = holder.path().join("data");
        std::fs::create_dir_all(&path)?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m,mode=0755"), "nexent-soak"])
            .arg(&path)
            .stderr(std::process::Stdio::null())
            .status();
        if !status.is_ok_and(|status| status.success()) {
            return Ok(None);
        }
        Ok(Some(Self { path, _holder: Some(holder) }))
    }

    fn remount(&self, option: &str) -> anyhow::Result<()> {
        let status = Command::new("mount").args(["-o", &format!("remount,{option}")]).arg(&self.path).status()?;
        anyhow::ensure!(status.success(), "mount -o remount,{option} failed");
        Ok(())
    }
}

impl Drop for LimitedDir {
    fn drop(&mut self) {
        if self._holder.is_some() {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// Fills the filesystem holding `dir` to the last byte; the file to delete to free it.
fn fill_disk(dir: &Path) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    let path = dir.join("soak-filler.bin");
    let mut file = std::fs::File::create(&path)?;
    let block = vec![0u8; 1 << 20];
    loop {
        match file.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::StorageFull => break,
            Err(error) => return Err(error.into()),
        }
    }
    // Then the last pages.
    let page = vec![0u8; 4096];
    while file.write(&page).is_ok_and(|written| written > 0) {}
    Ok(path)
}

/// The shared state of one soak.
struct Soak {
    node: Node,
    http: reqwest::Client,
    fixtures: Vec<(String, Vec<u8>)>,
    jfk_pcm: Vec<u8>,
    acknowledged: Mutex<Acknowledged>,
    stats: Mutex<BTreeMap<Kind, KindStats>>,
    in_flight: AtomicU64,
    peak_window: (Instant, Instant),
    uploads: AtomicU64,
    /// Short-lived bases created by `BaseChurn` and not yet deleted.
    churn_bases: Mutex<Vec<String>>,
    churn_counter: AtomicU64,
    /// Folders outside the data dir that `WatchChurn` watches: (watch id, folder).
    watch_root: PathBuf,
    watched: Mutex<Vec<(String, PathBuf)>>,
    /// The chat model the server runs on (a copy the soak damages), and the intact copy to repair it from.
    chat_model: PathBuf,
    chat_model_intact: PathBuf,
}

impl Soak {
    fn record(&self, kind: Kind, ending: Ending, started: Instant) {
        let now = Instant::now();
        let mut stats = lock(&self.stats);
        let entry = stats.entry(kind).or_default();
        if matches!(ending, Ending::Status(_)) && now >= self.peak_window.0 && now <= self.peak_window.1 {
            entry.peak_latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        *entry.endings.entry(ending).or_default() += 1;
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<(u16, Value), Ending> {
        let response = request.send().await.map_err(|_| Ending::Unreachable)?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|_| Ending::Unreachable)?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    /// One client action; records its ending.
    async fn act(self: Arc<Self>, kind: Kind, mut random: Random) {
        let started = Instant::now();
        let ending = match self.perform(kind, &mut random).await {
            Ok(status) => Ending::Status(status),
            Err(ending) => ending,
        };
        self.record(kind, ending, started);
    }

    async fn perform(&self, kind: Kind, random: &mut Random) -> Result<u16, Ending> {
        match kind {
            Kind::CreateConversation => {
                let title = format!("soak {}", random.next_u64() % 1_000_000);
                let (status, body) = self
                    .send(self.http.put(self.node.url("/api/conversation/create")).json(&json!({"title": title})))
                    .await?;
                if status == 200
                    && let Some(id) = body["data"]["conversation_id"].as_i64()
                {
                    lock(&self.acknowledged).conversations.insert(id, title);
                }
                Ok(status)
            }
            Kind::ListConversations => Ok(self.send(self.http.get(self.node.url("/api/conversation/list"))).await?.0),
            Kind::RenameConversation | Kind::DeleteConversation => {
                let Some(id) = self.some_conversation(random) else {
                    return Ok(self.send(self.http.get(self.node.url("/api/conversation/list"))).await?.0);
                };
                if kind == Kind::RenameConversation {
                    let title = format!("renamed {}", random.next_u64() % 1_000_000);
                    let (status, _) = self
                        .send(
                            self.http
                                .post(self.node.url("/api/conversation/rename"))
                                .json(&json!({"conversation_id": id, "name": title})),
                        )
                        .await?;
                    if status == 200 {
                        lock(&self.acknowledged).conversations.insert(id, title);
                    }
                    Ok(status)
                } else {
                    let sent = self.send(self.http.delete(self.node.url(&format!("/api/conversation/{id}")))).await;
                    if sent.is_err() {
                        lock(&self.acknowledged).unanswered_conversation_deletes.insert(id);
                    }
                    let (status, _) = sent?;
                    if status == 200 {
                        lock(&self.acknowledged).conversations.remove(&id);
                    }
                    Ok(status)
                }
            }
            Kind::Search => {
                let mode = ["accurate", "semantic", "hybrid"][random.below(3)];
                let base = BASES[random.below(BASES.len())];
                let query =
                    ["warranty", "garden bulbs", "ferry crossing", "inventory", "report results"][random.below(5)];
                let (status, _) = self
                    .send(
                        self.http
                            .post(self.node.url(&format!("/api/indices/search/{mode}")))
                            .json(&json!({"index_names": [base], "query": query, "top_k": 5})),
                    )
                    .await?;
                Ok(status)
            }
            Kind::Upload => {
                let (name, bytes) = &self.fixtures[random.below(self.fixtures.len())];
                let base = BASES[random.below(BASES.len())];
                // A name of its own per upload, so the oracle can tell each document from every other.
                let unique = format!("{}-{name}", self.uploads.fetch_add(1, Ordering::Relaxed));
                let form = reqwest::multipart::Form::new()
                    .part("file", reqwest::multipart::Part::bytes(bytes.clone()).file_name(unique))
                    .text("index_name", base.to_owned());
                let (status, body) =
                    self.send(self.http.post(self.node.url("/api/file/upload")).multipart(form)).await?;
                if status == 201
                    && let Some(task) = body["process_tasks"]["task_id"].as_str()
                {
                    lock(&self.acknowledged).tasks.insert(task.to_owned(), base.to_owned());
                }
                Ok(status)
            }
            Kind::DeleteFile => {
                let base = BASES[random.below(BASES.len())];
                let (status, info) =
                    self.send(self.http.get(self.node.url(&format!("/api/indices/{base}/info")))).await?;
                if status != 200 {
                    return Ok(status);
                }
                let files: Vec<String> = info["files"]
                    .as_array()
                    .map(|files| {
                        files
                            .iter()
                            .filter(|file| file["status"] == "COMPLETED")
                            .filter_map(|file| file["path_or_url"].as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                if files.is_empty() {
                    return Ok(status);
                }
                let path = files[random.below(files.len())].clone();
                let sent = self
                    .send(
                        self.http
                            .delete(self.node.url(&format!("/api/indices/{base}/documents")))
                            .query(&[("path_or_url", path.as_str())]),
                    )
                    .await;
                if sent.is_err() {
                    lock(&self.acknowledged).unanswered_file_deletes.push((base.to_owned(), path.clone()));
                }
                let (status, _) = sent?;
                if status == 200 {
                    lock(&self.acknowledged).deleted_files.push((base.to_owned(), path));
                }
                Ok(status)
            }
            Kind::AgentRun => self.agent_run(random).await,
            Kind::OpenAiChat => {
                let (status, _) = self
                    .send(self.http.post(self.node.url("/v1/chat/completions")).json(&json!({
                        "model": "local",
                        "messages": [{"role": "user", "content": "Say hello."}],
                        "max_tokens": 8,
                    })))
                    .await?;
                Ok(status)
            }
            Kind::OpenAiEmbeddings => {
                let (status, _) = self
                    .send(
                        self.http
                            .post(self.node.url("/v1/embeddings"))
                            .json(&json!({"input": ["a kettle", "a ferry crossing"]})),
                    )
                    .await?;
                Ok(status)
            }
            Kind::Speak => self.speak().await,
            Kind::Transcribe => self.transcribe().await,
            Kind::BaseChurn => self.base_churn(random).await,
            Kind::WatchChurn => self.watch_churn(random).await,
        }
    }

    /// Creates a short-lived base and uploads a document into it, or deletes one (with whatever its
    /// upload is doing).
    async fn base_churn(&self, random: &mut Random) -> Result<u16, Ending> {
        let existing: Vec<String> = lock(&self.churn_bases).clone();
        if existing.len() >= 2 || (!existing.is_empty() && random.below(2) == 0) {
            let name = existing[random.below(existing.len())].clone();
            let (status, _) = self.send(self.http.delete(self.node.url(&format!("/api/indices/{name}")))).await?;
            if status == 200 {
                lock(&self.churn_bases).retain(|base| *base != name);
            }
            return Ok(status);
        }
        let name = format!("churn-{}", self.churn_counter.fetch_add(1, Ordering::Relaxed));
        let (status, _) = self.send(self.http.post(self.node.url(&format!("/api/indices/{name}")))).await?;
        if status != 200 {
            return Ok(status);
        }
        lock(&self.churn_bases).push(name.clone());
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(b"The ferry crossing takes forty minutes in calm weather.".to_vec())
                    .file_name(format!("{name}.txt")),
            )
            .text("index_name", name.clone());
        let (status, body) = self.send(self.http.post(self.node.url("/api/file/upload")).multipart(form)).await?;
        if status == 201
            && let Some(task) = body["process_tasks"]["task_id"].as_str()
        {
            lock(&self.acknowledged).tasks.insert(task.to_owned(), name);
        }
        Ok(status)
    }

    /// Watches a new folder, writes or removes a file in a watched one (then asks for a sync), or stops
    /// watching one.
    async fn watch_churn(&self, random: &mut Random) -> Result<u16, Ending> {
        let watched: Vec<(String, PathBuf)> = lock(&self.watched).clone();
        let choice = if watched.is_empty() { 0 } else { random.below(if watched.len() >= 3 { 3 } else { 4 }) + 1 };
        let number = random.next_u64() % 1_000_000;
        match choice {
            // A new folder with two files.
            0 | 4 => {
                let folder = self.watch_root.join(format!("folder-{number}"));
                let written = std::fs::create_dir_all(&folder)
                    .and_then(|()| std::fs::write(folder.join("tides.txt"), "High tide at the harbour is at noon."))
                    .and_then(|()| std::fs::write(folder.join("bulbs.md"), "# Bulbs\n\nPlant garden bulbs in autumn."));
                if written.is_err() {
                    return Ok(0);
                }
                let (status, body) = self
                    .send(
                        self.http
                            .post(self.node.url("/api/watched_folders"))
                            .json(&json!({"path": folder.display().to_string(), "index_name": WATCH_BASE})),
                    )
                    .await?;
                let id = body["id"].as_str().or_else(|| body["folder"]["id"].as_str()).map(str::to_owned);
                if let (200..=299, Some(id)) = (status, id) {
                    lock(&self.watched).push((id, folder));
                }
                Ok(status)
            }
            // A file written (new or changed) or removed, then the folder synced.
            1 | 2 => {
                let (id, folder) = &watched[random.below(watched.len())];
                let file = folder.join(format!("note-{}.txt", number % 4));
                let _ = if choice == 1 {
                    std::fs::write(&file, format!("Inventory note {number}: the kettle shelf is restocked."))
                } else {
                    std::fs::remove_file(&file)
                };
                let (status, _) =
                    self.send(self.http.post(self.node.url(&format!("/api/watched_folders/{id}/sync")))).await?;
                Ok(status)
            }
            // Stop watching one.
            _ => {
                let (id, folder) = watched[random.below(watched.len())].clone();
                let (status, _) =
                    self.send(self.http.delete(self.node.url(&format!("/api/watched_folders/{id}")))).await?;
                if status == 200 {
                    lock(&self.watched).retain(|(known, _)| *known != id);
                    let _ = std::fs::remove_dir_all(folder);
                }
                Ok(status)
            }
        }
    }

    /// One OpenAI chat request: its status and body.
    async fn chat_once(&self) -> Result<(u16, Value), Ending> {
        self.send(self.http.post(self.node.url("/v1/chat/completions")).json(&json!({
            "model": "local",
            "messages": [{"role": "user", "content": "Say hello."}],
            "max_tokens": 4,
        })))
        .await
    }

    /// A chat that must answer: retried while the model is busy or loading (60 s at most).
    async fn chat_until_answered(&self) -> String {
        let mut last = String::new();
        for _ in 0..60 {
            match self.chat_once().await {
                Ok((200, _)) => return "200".into(),
                Ok((status, body)) => last = format!("{status} {}", body),
                Err(ending) => last = format!("{ending:?}"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        last
    }

    /// The fragile base with one document indexed (so its index has a segment to corrupt).
    async fn fill_fragile_base(&self) -> anyhow::Result<()> {
        self.http.post(self.node.url(&format!("/api/indices/{FRAGILE_BASE}"))).send().await?.error_for_status()?;
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(b"The lighthouse keeper logs the weather at dawn.".to_vec())
                    .file_name("logbook.txt"),
            )
            .text("index_name", FRAGILE_BASE);
        let body: Value = self
            .http
            .post(self.node.url("/api/file/upload"))
            .multipart(form)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let task = body["process_tasks"]["task_id"].as_str().unwrap_or_default().to_owned();
        for _ in 0..240 {
            let state = get_json(&self.http, &self.node.url(&format!("/api/tasks/{task}"))).await?;
            match state["status"].as_str() {
                Some("completed") => return Ok(()),
                Some("failed") => anyhow::bail!("the fragile base's document failed: {}", state["error"]),
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
        anyhow::bail!("the fragile base's document was not indexed in two minutes")
    }

    fn some_conversation(&self, random: &mut Random) -> Option<i64> {
        let acknowledged = lock(&self.acknowledged);
        let ids: Vec<i64> = acknowledged.conversations.keys().copied().collect();
        (!ids.is_empty()).then(|| ids[random.below(ids.len())])
    }

    /// Streams an agent run to the end, or stops it, or walks away from it mid-stream.
    async fn agent_run(&self, random: &mut Random) -> Result<u16, Ending> {
        let how = random.below(3);
        let response = self
            .http
            .post(self.node.url("/api/agent/run"))
            .json(&json!({"query": "How long is the warranty of the kettle?", "history": [],
                          "knowledge_bases": [BASES[random.below(BASES.len())]]}))
            .send()
            .await
            .map_err(|_| Ending::Unreachable)?;
        let status = response.status().as_u16();
        if status != 200 {
            return Ok(status);
        }
        let conversation: Option<i64> =
            response.headers().get("x-conversation-id").and_then(|value| value.to_str().ok()?.parse().ok());
        let mut stream = response.bytes_stream();
        match how {
            0 => {
                while let Some(chunk) = stream.next().await {
                    chunk.map_err(|_| Ending::Unreachable)?;
                }
            }
            1 => {
                let _ = stream.next().await;
                if let Some(id) = conversation {
                    let (stop, _) = self.send(self.http.get(self.node.url(&format!("/api/agent/stop/{id}")))).await?;
                    // The run may have finished between the first message and the stop.
                    if !matches!(stop, 200 | 404) {
                        return Ok(stop);
                    }
                }
                while let Some(chunk) = stream.next().await {
                    chunk.map_err(|_| Ending::Unreachable)?;
                }
            }
            _ => {
                let _ = stream.next().await;
            }
        }
        Ok(status)
    }

    async fn speak(&self) -> Result<u16, Ending> {
        let url = self.node.url("/api/voice/tts/ws").replacen("http://", "ws://", 1);
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.map_err(|error| match error {
            tokio_tungstenite::tungstenite::Error::Http(response) => Ending::Status(response.status().as_u16()),
            _ => Ending::Unreachable,
        })?;
        socket
            .send(Message::Text(json!({"text": "The kettle has a seven year warranty."}).to_string().into()))
            .await
            .map_err(|_| Ending::Unreachable)?;
        loop {
            match tokio::time::timeout(Duration::from_secs(120), socket.next()).await {
                Ok(Some(Ok(Message::Binary(_)))) => {}
                Ok(Some(Ok(Message::Text(text)))) => {
                    let message: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                    return Ok(if message["status"] == "completed" { 200 } else { 503 });
                }
                Ok(Some(Ok(_))) => {}
                _ => return Err(Ending::Unreachable),
            }
        }
    }

    async fn transcribe(&self) -> Result<u16, Ending> {
        let url = self.node.url("/api/voice/stt/ws").replacen("http://", "ws://", 1);
        let (socket, _) = tokio_tungstenite::connect_async(url).await.map_err(|error| match error {
            tokio_tungstenite::tungstenite::Error::Http(response) => Ending::Status(response.status().as_u16()),
            _ => Ending::Unreachable,
        })?;
        let (mut sender, mut receiver) = socket.split();
        let frames: Vec<Vec<u8>> = self.jfk_pcm.chunks(8192).map(<[u8]>::to_vec).collect();
        let writer = tokio::spawn(async move {
            for frame in frames {
                sender.send(Message::Binary(frame.into())).await?;
            }
            sender.send(Message::Binary(Vec::new().into())).await?;
            Ok::<_, tokio_tungstenite::tungstenite::Error>(sender)
        });
        let mut last = Value::Null;
        loop {
            match tokio::time::timeout(Duration::from_secs(180), receiver.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => last = serde_json::from_str(text.as_str()).unwrap_or_default(),
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) => break,
                Ok(Some(Ok(_))) => {}
                _ => return Err(Ending::Unreachable),
            }
        }
        let _ = writer.await;
        if last["is_final"] == true {
            Ok(200)
        } else if last["status"] == "error" || last.get("error").is_some() {
            Ok(503)
        } else {
            Err(Ending::Unreachable)
        }
    }

    /// The oracle: every acknowledged conversation is listed, every acknowledged upload task exists (and,
    /// when `settle`, ends COMPLETED or FAILED with a reason), no document is indexed twice, every base
    /// searches. Returns the checks run and appends what did not hold.
    async fn check(&self, settle: bool, report: &mut SoakReport) -> anyhow::Result<()> {
        let client = &self.http;
        // Conversations.
        let expected: HashMap<i64, String> = lock(&self.acknowledged).conversations.clone();
        let listed = get_json(client, &self.node.url("/api/conversation/list")).await?;
        let listed_ids: std::collections::HashSet<i64> = listed["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|conversation| conversation["conversation_id"].as_i64())
            .collect();
        let unanswered = lock(&self.acknowledged).unanswered_conversation_deletes.clone();
        report.unanswered_deletes = unanswered.len() + lock(&self.acknowledged).unanswered_file_deletes.len();
        for id in expected.keys() {
            report.invariant_checks += 1;
            if listed_ids.contains(id) {
                continue;
            }
            if unanswered.contains(id) {
                // Its delete was sent and never answered: it was applied before the kill.
                lock(&self.acknowledged).conversations.remove(id);
                report.unanswered_deletes_applied += 1;
            } else {
                report.lost += 1;
                report.violations.push(format!("conversation {id} was created (200) but is not listed"));
            }
        }
        // Upload tasks.
        let tasks: Vec<(String, String)> =
            lock(&self.acknowledged).tasks.iter().map(|(task, base)| (task.clone(), base.clone())).collect();
        let deadline = Instant::now() + Duration::from_secs(if settle { 600 } else { 0 });
        let mut completed: HashMap<String, (String, u64)> = HashMap::new();
        for (task_id, base) in &tasks {
            report.invariant_checks += 1;
            loop {
                let response = client.get(self.node.url(&format!("/api/tasks/{task_id}"))).send().await?;
                if response.status() == 404 {
                    report.lost += 1;
                    report.violations.push(format!("upload task {task_id} was acknowledged (201) but is gone"));
                    break;
                }
                let task: Value = response.json().await?;
                match task["status"].as_str() {
                    Some("completed") => {
                        let path = task["source"].as_str().unwrap_or_default().to_owned();
                        completed.insert(path, (base.clone(), task["chunk_count"].as_u64().unwrap_or(0)));
                        break;
                    }
                    Some("failed") => {
                        if task["error"].as_str().is_none_or(str::is_empty) {
                            report.violations.push(format!("task {task_id} failed without a reason"));
                        }
                        break;
                    }
                    _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(250)).await,
                    _ => {
                        if settle {
                            report.violations.push(format!("task {task_id} is still {} at the end", task["status"]));
                        }
                        break;
                    }
                }
            }
        }
        // Documents: each completed upload once, with the chunks its task made; each base searches.
        let deleted: Vec<(String, String)> = lock(&self.acknowledged).deleted_files.clone();
        let unanswered_files: Vec<(String, String)> = lock(&self.acknowledged).unanswered_file_deletes.clone();
        for base in BASES.into_iter().chain([WATCH_BASE]) {
            report.invariant_checks += 1;
            let response = client
                .post(self.node.url("/api/indices/search/hybrid"))
                .json(&json!({"index_names": [base], "query": "warranty", "top_k": 3}))
                .send()
                .await?;
            if !matches!(response.status().as_u16(), 200 | 404) {
                report.violations.push(format!("searching {base} answered {}", response.status()));
            }
            let info = get_json(client, &self.node.url(&format!("/api/indices/{base}/info"))).await.unwrap_or_default();
            let mut seen: HashMap<String, u64> = HashMap::new();
            for file in info["files"].as_array().into_iter().flatten() {
                if file["status"] != "COMPLETED" {
                    continue;
                }
                let path = file["path_or_url"].as_str().unwrap_or_default().to_owned();
                *seen.entry(path).or_default() += 1;
            }
            for (path, count) in &seen {
                report.invariant_checks += 1;
                if *count > 1 {
                    report.duplicated += 1;
                    report.violations.push(format!("{path} is listed {count} times in {base}"));
                }
            }
            for file in info["files"].as_array().into_iter().flatten() {
                let path = file["path_or_url"].as_str().unwrap_or_default();
                if let Some((_, chunks)) = completed.get(path)
                    && file["status"] == "COMPLETED"
                {
                    report.invariant_checks += 1;
                    let indexed = file["chunk_count"].as_u64().unwrap_or(0);
                    if indexed > *chunks {
                        report.duplicated += 1;
                        report.violations.push(format!("{path} has {indexed} chunks indexed, its task made {chunks}"));
                    }
                }
            }
            if settle {
                for (path, (task_base, _)) in &completed {
                    if task_base != base || deleted.iter().any(|(gone_base, gone)| gone_base == base && gone == path) {
                        continue;
                    }
                    report.invariant_checks += 1;
                    if seen.contains_key(path) {
                        continue;
                    }
                    if unanswered_files.iter().any(|(gone_base, gone)| gone_base == base && gone == path) {
                        report.unanswered_deletes_applied += 1;
                    } else {
                        report.lost += 1;
                        report
                            .violations
                            .push(format!("{path} was indexed (task completed) but {base} does not list it"));
                    }
                }
            }
        }
        Ok(())
    }
}

/// A GET the oracle relies on: retried while the server is busy (503) or starting.
async fn get_json(client: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    let mut last = String::new();
    for _ in 0..40 {
        match client.get(url).send().await {
            Ok(response) if response.status().is_success() => return Ok(response.json().await?),
            Ok(response) if response.status() == 503 => last = "503".into(),
            Ok(response) => anyhow::bail!("GET {url}: {}", response.status()),
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("GET {url}: {last}")
}

/// The rate at `elapsed` of `duration`: up over the first third, the peak over the second, down after.
fn rate_at(elapsed: Duration, duration: Duration, peak: f64) -> f64 {
    let fraction = elapsed.as_secs_f64() / duration.as_secs_f64().max(0.001);
    let shape = if fraction < 1.0 / 3.0 {
        fraction * 3.0
    } else if fraction < 2.0 / 3.0 {
        1.0
    } else {
        (1.0 - fraction) * 3.0
    };
    (peak * shape).max(peak * 0.05)
}

/// A task's failure reason with what differs between tasks of one kind (paths, the churned bases'
/// numbers) taken out, cut to 120 characters: a line of the report per kind of failure.
fn reason_kind(reason: &str) -> String {
    let words: Vec<String> = reason
        .split(' ')
        .map(|word| {
            if word.starts_with('/') {
                "<path>".to_owned()
            } else if let Some(number) = word.strip_prefix("churn-")
                && number.bytes().all(|byte| byte.is_ascii_digit())
            {
                "churn-<n>".to_owned()
            } else {
                word.to_owned()
            }
        })
        .collect();
    words.join(" ").chars().take(120).collect()
}

/// The speech helper processes (`nexent-stt`) under the server's process.
fn helper_pids(server_pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let parent = status.lines().find_map(|line| line.strip_prefix("PPid:")).map(str::trim);
            let name = status.lines().find_map(|line| line.strip_prefix("Name:")).map(str::trim);
            parent == Some(&server_pid.to_string()) && name == Some("nexent-stt")
        })
        .collect()
}

/// Runs one soak.
pub async fn run(config: SoakConfig) -> anyhow::Result<SoakReport> {
    let mut report = SoakReport {
        seed: config.seed,
        duration: config.duration,
        peak_rate: config.peak_rate,
        max_in_flight: config.max_in_flight,
        ..SoakReport::default()
    };
    let limited = LimitedDir::mount(config.data_dir_megabytes)?;
    let plain = tempfile::tempdir()?;
    let data_dir = match &limited {
        Some(dir) => dir.path.clone(),
        None => {
            report.skipped_faults.push("disk full and read-only (cannot mount a tmpfs: not root)".into());
            plain.path().to_path_buf()
        }
    };
    // The chat model is a copy of the soak's own, which the model-file faults damage and repair.
    let models_copy = tempfile::tempdir()?;
    let chat_model_intact = models_dir().join(CHAT_MODEL_FILE);
    let chat_model = models_copy.path().join(CHAT_MODEL_FILE);
    std::fs::copy(&chat_model_intact, &chat_model)?;
    let watch_root = tempfile::tempdir()?;
    let options = ServerOptions::default()
        .arg("--chat-model")
        .arg(chat_model.display().to_string())
        .arg("--llm-threads")
        .arg("1")
        // A reserve to scale with the small filesystem: the disk-full episodes fill past it to the last byte.
        .arg("--disk-reserve-bytes")
        .arg((16u64 << 20).to_string());
    let server = NexentServer::start_in(&data_dir, options)?;
    let base = server.base_url.clone();
    let mut fixtures = Vec::new();
    for entry in std::fs::read_dir(&config.fixtures)
        .with_context(|| format!("cannot read the fixtures in {}", config.fixtures.display()))?
    {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        if path.is_file() && !name.ends_with(".py") {
            fixtures.push((name, std::fs::read(&path)?));
        }
    }
    anyhow::ensure!(!fixtures.is_empty(), "no fixtures in {}", config.fixtures.display());
    let started = Instant::now();
    let third = config.duration / 3;
    let soak = Arc::new(Soak {
        node: Node { server: Mutex::new(server), base: RwLock::new(base), data_dir },
        http: reqwest::Client::builder().timeout(Duration::from_secs(300)).no_proxy().build()?,
        fixtures,
        jfk_pcm: wav_pcm(&std::fs::read(models_dir().join("jfk.wav"))?)?,
        acknowledged: Mutex::new(Acknowledged::default()),
        stats: Mutex::new(BTreeMap::new()),
        in_flight: AtomicU64::new(0),
        peak_window: (started + third, started + third * 2),
        uploads: AtomicU64::new(0),
        churn_bases: Mutex::new(Vec::new()),
        churn_counter: AtomicU64::new(0),
        watch_root: watch_root.path().to_path_buf(),
        watched: Mutex::new(Vec::new()),
        chat_model,
        chat_model_intact,
    });
    for base in BASES {
        soak.http.post(soak.node.url(&format!("/api/indices/{base}"))).send().await?.error_for_status()?;
    }
    soak.fill_fragile_base().await?;
    // Resident memory, sampled every two seconds whatever the server's restarts.
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let max_sampled = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (soak, sampling, max_sampled) = (soak.clone(), sampling.clone(), max_sampled.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                if let Some(rss) = soak.node.pid().and_then(rss_kib) {
                    max_sampled.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        })
    };

    // Fault schedule: the moments (fractions of the run) of each fault.
    let mut random = Random::new(config.seed);
    let mut faults: Vec<(Duration, &str)> = Vec::new();
    let at = |random: &mut Random| config.duration.mul_f64(0.05 + 0.85 * random.unit());
    for _ in 0..config.kills {
        faults.push((at(&mut random), "kill"));
    }
    if limited.is_some() {
        for _ in 0..config.disk_full_episodes {
            faults.push((at(&mut random), "disk-full"));
        }
        for _ in 0..config.read_only_episodes {
            faults.push((at(&mut random), "read-only"));
        }
    }
    faults.push((at(&mut random), "helper"));
    for episode in 0..config.model_file_episodes {
        faults.push((at(&mut random), if episode % 2 == 0 { "model-truncate" } else { "model-remove" }));
    }
    for _ in 0..config.index_corruptions {
        faults.push((at(&mut random), "index"));
    }
    faults.sort();

    let mut clients = tokio::task::JoinSet::new();
    let mut next_fault = 0;
    let mut peak_rss = 0u64;
    let mut arrival = Duration::ZERO;
    while arrival < config.duration {
        // Exponential gaps at the current rate: a Poisson arrival process.
        let rate = rate_at(arrival, config.duration, config.peak_rate);
        arrival += Duration::from_secs_f64(-(1.0 - random.unit()).ln() / rate);
        let due = started + arrival;
        while let Some((moment, fault)) = faults.get(next_fault).copied().filter(|(moment, _)| started + *moment <= due)
        {
            next_fault += 1;
            tokio::time::sleep_until(tokio::time::Instant::from_std(started + moment)).await;
            if let Some(pid) = soak.node.pid() {
                peak_rss = peak_rss.max(peak_rss_kib(pid).unwrap_or(0));
            }
            inject(&soak, fault, limited.as_ref(), &mut report).await?;
        }
        tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
        let kind = pick(&mut random);
        if soak.in_flight.load(Ordering::SeqCst) >= config.max_in_flight as u64 {
            soak.record(kind, Ending::Shed, Instant::now());
            continue;
        }
        soak.in_flight.fetch_add(1, Ordering::SeqCst);
        let (worker, seed) = (soak.clone(), random.next_u64());
        clients.spawn(async move {
            worker.clone().act(kind, Random::new(seed)).await;
            worker.in_flight.fetch_sub(1, Ordering::SeqCst);
        });
        while clients.try_join_next().is_some() {}
    }
    while clients.join_next().await.is_some() {}
    if let Some(pid) = soak.node.pid() {
        peak_rss = peak_rss.max(peak_rss_kib(pid).unwrap_or(0));
    }
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    report.max_sampled_rss_kib = max_sampled.load(Ordering::Relaxed);
    report.memory_limit_mib = config.memory_limit_mib;
    report.invariant_checks += 1;
    if peak_rss.max(report.max_sampled_rss_kib) > config.memory_limit_mib * 1024 {
        report.violations.push(format!(
            "the server's resident memory reached {} MiB, over the limit of {} MiB",
            peak_rss.max(report.max_sampled_rss_kib) / 1024,
            config.memory_limit_mib
        ));
    }
    soak.check(true, &mut report).await?;
    report.by_kind = std::mem::take(&mut *lock(&soak.stats));
    let tasks = get_json(&soak.http, &soak.node.url("/api/tasks")).await?;
    for task in tasks["tasks"].as_array().into_iter().flatten() {
        match task["status"].as_str() {
            Some("completed") => report.tasks_completed += 1,
            Some("failed") => {
                report.tasks_failed += 1;
                *report.failure_reasons.entry(reason_kind(task["error"].as_str().unwrap_or(""))).or_default() += 1;
            }
            _ => {}
        }
    }
    report.peak_rss_kib = peak_rss;
    report.duration = started.elapsed();
    Ok(report)
}

/// One fault, then (for a restart) the oracle's check.
async fn inject(
    soak: &Arc<Soak>,
    fault: &str,
    limited: Option<&LimitedDir>,
    report: &mut SoakReport,
) -> anyhow::Result<()> {
    match fault {
        "kill" => {
            let node = soak.clone();
            tokio::task::spawn_blocking(move || node.node.kill_and_restart()).await??;
            report.kills += 1;
            soak.check(false, report).await?;
        }
        "disk-full" => {
            let dir = soak.node.data_dir.clone();
            let filler = tokio::task::spawn_blocking(move || fill_disk(&dir)).await??;
            report.disk_full_episodes += 1;
            // While the disk is full, writes of each kind are tried on purpose: each must succeed (room
            // left in a file already allocated) or be refused clearly (507, 503), never a 500.
            for round in 0..4 {
                let kind = [Kind::CreateConversation, Kind::Upload][round % 2];
                let started = Instant::now();
                let ending = match soak.perform(kind, &mut Random::new(round as u64 + 11)).await {
                    Ok(status) => Ending::Status(status),
                    Err(ending) => ending,
                };
                *report.disk_full_endings.entry(format!("{kind:?} {ending:?}")).or_default() += 1;
                soak.record(kind, ending, started);
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            std::fs::remove_file(&filler)?;
            // Once there is room again, a write must succeed.
            let mut wrote = false;
            for _ in 0..40 {
                let response = soak
                    .http
                    .put(soak.node.url("/api/conversation/create"))
                    .json(&json!({"title": "after the disk was full"}))
                    .send()
                    .await;
                if let Ok(response) = response
                    && response.status() == 200
                {
                    let body: Value = response.json().await.unwrap_or_default();
                    if let Some(id) = body["data"]["conversation_id"].as_i64() {
                        lock(&soak.acknowledged).conversations.insert(id, "after the disk was full".into());
                    }
                    wrote = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            report.invariant_checks += 1;
            if !wrote {
                report.violations.push("no write succeeded within 10 s of freeing the disk".into());
            }
        }
        "read-only" => {
            let Some(limited) = limited else { return Ok(()) };
            let node = soak.clone();
            let path = limited.path.clone();
            let outcome =
                tokio::task::spawn_blocking(move || node.node.restart_read_only(&LimitedDir { path, _holder: None }))
                    .await??;
            report.read_only_episodes += 1;
            report.invariant_checks += 1;
            // Refusing to start with a message is fine; a panic (exit status 101, a wait status of 101 << 8)
            // or a signal is not.
            if outcome.contains("status: 101") || outcome.contains("(25856)") || outcome.contains("signal") {
                report.violations.push(format!("on a read-only data dir the server {outcome}"));
            }
            report.read_only_outcomes.push(outcome);
            soak.check(false, report).await?;
        }
        "model-truncate" | "model-remove" => {
            let truncate = fault == "model-truncate";
            let what = if truncate { "truncated to half" } else { "removed" };
            // Damaged under the running server: the model it loaded keeps answering (it was read into
            // memory; a mapped file cut short would have killed the process with SIGBUS).
            if truncate {
                let file = std::fs::OpenOptions::new().write(true).open(&soak.chat_model)?;
                file.set_len(file.metadata()?.len() / 2)?;
            } else {
                std::fs::remove_file(&soak.chat_model)?;
            }
            let running = soak.chat_until_answered().await;
            report.invariant_checks += 1;
            if running != "200" {
                report.violations.push(format!("with its model file {what}, the running chat answered {running}"));
            }
            // Restarted on the damaged file: a 503 that names the file, not a crash or a hang.
            let node = soak.clone();
            tokio::task::spawn_blocking(move || node.node.kill_and_restart()).await??;
            let damaged = match soak.chat_once().await {
                Ok((status, body)) => (status, body.to_string()),
                Err(ending) => (0, format!("{ending:?}")),
            };
            report.invariant_checks += 1;
            if damaged.0 != 503 || !damaged.1.contains(CHAT_MODEL_FILE) {
                report.violations.push(format!(
                    "restarted with the chat model file {what}, the chat answered {} {}",
                    damaged.0, damaged.1
                ));
            }
            // Repaired and restarted: it answers again.
            std::fs::copy(&soak.chat_model_intact, &soak.chat_model)?;
            let node = soak.clone();
            tokio::task::spawn_blocking(move || node.node.kill_and_restart()).await??;
            let repaired = soak.chat_until_answered().await;
            report.invariant_checks += 1;
            if repaired != "200" {
                report.violations.push(format!("with the chat model file restored, the chat answered {repaired}"));
            }
            let message: String = damaged.1.chars().take(300).collect();
            report.model_file_outcomes.push(format!(
                "{what}: the running server answered {running}; restarted on it, {} {message}; restored, {repaired}",
                damaged.0
            ));
            report.model_file_episodes += 1;
            soak.check(false, report).await?;
        }
        "index" => {
            let index_dir = soak.node.data_dir.join("indices").join(FRAGILE_BASE);
            let node = soak.clone();
            let corrupted = Arc::new(Mutex::new(String::new()));
            let name = corrupted.clone();
            tokio::task::spawn_blocking(move || {
                node.node.kill_change_restart(|| {
                    let changed = corrupt_largest_segment_file(&index_dir)?;
                    *lock(&name) = changed.file_name().unwrap_or_default().to_string_lossy().into_owned();
                    Ok(())
                })
            })
            .await??;
            report.index_corruptions += 1;
            // Reported as set aside, with a reason; searching it is a 503 that says so; the others work
            // (the check below); deleting it frees the name.
            let listed = get_json(&soak.http, &soak.node.url("/api/indices")).await?;
            let record = listed["quarantined"]
                .as_array()
                .and_then(|records| records.iter().find(|record| record["name"] == FRAGILE_BASE))
                .cloned();
            report.invariant_checks += 1;
            let reason = match &record {
                Some(record) => record["reason"].as_str().unwrap_or_default().to_owned(),
                None => {
                    report.violations.push(format!("the corrupted base {FRAGILE_BASE} is not reported: {listed}"));
                    String::new()
                }
            };
            let searched = soak
                .http
                .post(soak.node.url("/api/indices/search/hybrid"))
                .json(&json!({"index_names": [FRAGILE_BASE], "query": "lighthouse", "top_k": 3}))
                .send()
                .await?;
            let searched_status = searched.status().as_u16();
            let searched_body: Value = searched.json().await.unwrap_or_default();
            report.invariant_checks += 1;
            if searched_status != 503 {
                report
                    .violations
                    .push(format!("searching the corrupted base answered {searched_status} {searched_body}"));
            }
            let deleted =
                soak.http.delete(soak.node.url(&format!("/api/indices/{FRAGILE_BASE}"))).send().await?.status();
            report.invariant_checks += 1;
            if deleted != 200 {
                report.violations.push(format!("deleting the corrupted base answered {deleted}"));
            }
            report.quarantine_outcomes.push(format!(
                "{} changed; at the restart the base was set aside ({}); searching it answered {searched_status} \"{}\"; deleting it answered {}",
                lock(&corrupted),
                reason.chars().take(160).collect::<String>(),
                searched_body["message"].as_str().unwrap_or_default().chars().take(200).collect::<String>(),
                deleted.as_u16()
            ));
            soak.check(false, report).await?;
            // Ready for the next episode.
            soak.fill_fragile_base().await?;
        }
        "helper" => {
            // Start a transcription so the helper runs, then kill it under the server.
            let worker = soak.clone();
            let transcription = tokio::spawn(async move { worker.transcribe().await });
            let mut killed = false;
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Some(pid) = soak.node.pid() {
                    for helper in helper_pids(pid) {
                        killed |= Command::new("kill")
                            .args(["-KILL", &helper.to_string()])
                            .status()
                            .is_ok_and(|status| status.success());
                    }
                }
                if killed {
                    break;
                }
            }
            let _ = transcription.await;
            if killed {
                report.helper_kills += 1;
            } else {
                report.skipped_faults.push("speech helper kill (no helper process was seen)".into());
            }
            // The next transcription must work again.
            let ending = soak.transcribe().await;
            report.invariant_checks += 1;
            if ending != Ok(200) {
                report.violations.push(format!("a transcription after the helper was killed ended {ending:?}"));
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_ramps_up_holds_and_ramps_down() {
        let duration = Duration::from_secs(90);
        assert!((rate_at(Duration::from_secs(15), duration, 10.0) - 5.0).abs() < 1e-9);
        assert_eq!(rate_at(Duration::from_secs(45), duration, 10.0), 10.0);
        assert!((rate_at(Duration::from_secs(75), duration, 10.0) - 5.0).abs() < 1e-9);
        assert_eq!(rate_at(Duration::ZERO, duration, 10.0), 0.5, "never zero: arrivals go on");
    }

    #[test]
    fn failure_reasons_are_grouped_by_kind() {
        assert_eq!(
            reason_kind("/tmp/x/folder-1/a.txt is not a file of a watched folder"),
            "<path> is not a file of a watched folder"
        );
        assert_eq!(reason_kind("Index churn-161 not found"), "Index churn-<n> not found");
        assert_eq!(reason_kind("the PDF is damaged"), "the PDF is damaged");
    }

    #[test]
    fn the_mix_picks_every_kind_by_its_weight() {
        let mut random = Random::new(1);
        let mut counts: HashMap<Kind, u32> = HashMap::new();
        for _ in 0..100_000 {
            *counts.entry(pick(&mut random)).or_default() += 1;
        }
        assert_eq!(counts.len(), MIX.len());
        let total: u32 = MIX.iter().map(|(_, weight)| weight).sum();
        let search = f64::from(counts[&Kind::Search]) / 100_000.0;
        assert!((search - 25.0 / f64::from(total)).abs() < 0.01, "{search}");
    }

    #[test]
    fn only_busy_full_and_a_raced_delete_are_allowed_failures() {
        let mut report = SoakReport::default();
        let mut stats = KindStats::default();
        stats.endings.insert(Ending::Status(503), 3);
        stats.endings.insert(Ending::Status(507), 1);
        stats.endings.insert(Ending::Unreachable, 2);
        report.by_kind.insert(Kind::Upload, stats);
        assert!(report.unexpected_statuses().is_empty());
        let mut bad = KindStats::default();
        bad.endings.insert(Ending::Status(500), 1);
        report.by_kind.insert(Kind::Search, bad);
        assert_eq!(report.unexpected_statuses(), ["Search: 1 × 500"]);
        assert!(report.markdown().contains("Violations"));
    }
}
