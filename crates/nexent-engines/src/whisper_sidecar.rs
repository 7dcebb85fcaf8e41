//! Speech-to-text through whisper.cpp in the `nexent-stt` helper process.
//!
//! whisper.cpp's ggml cannot be linked beside llama.cpp's, so the helper (built by this workspace, shipped
//! next to `nexent`, a Tauri sidecar in the desktop bundle) does the work. It is started on first use,
//! takes one utterance at a time over its stdin and answers on its stdout (protocol in
//! `crates/nexent-stt/src/main.rs`), is restarted when it dies, and ends with the server (kill on drop,
//! and PR_SET_PDEATHSIG for a server that is killed). Waiting callers are bounded: past [`MAX_WAITING`]
//! a caller is told the engine is busy instead of queueing without end.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use nexent_core::voice::{STT_SAMPLE_RATE, TranscribeRequest, Transcriber, Transcript, VoiceError};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{Mutex, Semaphore};

/// Marks a reply line of the helper (anything else it might print is not a reply).
const REPLY_PREFIX: &str = "NEXENT-STT ";
/// Callers allowed to wait for the helper at once.
pub const MAX_WAITING: usize = 16;
/// Loading tiny.en takes well under a second; a helper that has said nothing after this is stuck.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// whisper.cpp's encoder frames per second of audio (1500 for its 30-second window).
const ENCODER_FRAMES_PER_SECOND: usize = 50;

#[derive(Debug, Clone)]
pub struct WhisperSidecarConfig {
    /// The `nexent-stt` executable.
    pub helper: PathBuf,
    /// A whisper.cpp ggml model file.
    pub model: PathBuf,
    /// The name clients ask for (`tiny.en`).
    pub model_name: String,
    pub threads: usize,
}

impl WhisperSidecarConfig {
    /// `ggml-tiny.en.bin` → `tiny.en`.
    pub fn model_name_of(model: &std::path::Path) -> String {
        let stem = model.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        stem.trim_start_matches("ggml-").trim_end_matches(".bin").to_owned()
    }
}

#[derive(Clone)]
pub struct WhisperSidecar {
    inner: Arc<Inner>,
}

struct Inner {
    config: WhisperSidecarConfig,
    multilingual: bool,
    helper: Mutex<Option<Helper>>,
    waiting: Semaphore,
}

struct Helper {
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pid: Option<u32>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Reply {
    Ready {
        #[allow(dead_code)]
        ready: bool,
        multilingual: bool,
    },
    Text {
        text: String,
        elapsed_ms: u64,
    },
    Error {
        error: String,
    },
}

/// Why a request to the helper failed: the helper may be fine (it said no) or gone (restart it).
enum HelperFailure {
    Refused(String),
    Gone(String),
}

impl WhisperSidecar {
    /// Checks the files; the helper itself starts on first use (or on [`Transcriber::prepare`]).
    pub fn new(config: WhisperSidecarConfig) -> Result<Self, VoiceError> {
        for (what, path) in [("speech-to-text helper", &config.helper), ("whisper model", &config.model)] {
            if !path.is_file() {
                return Err(VoiceError::Unavailable(format!("the {what} {} is missing", path.display())));
            }
        }
        // English-only whisper models are named `*.en`.
        let multilingual = !config.model_name.ends_with(".en");
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                multilingual,
                helper: Mutex::new(None),
                waiting: Semaphore::new(MAX_WAITING),
            }),
        })
    }

    /// The helper's process id while it runs (tests kill it to see it come back).
    pub async fn helper_pid(&self) -> Option<u32> {
        self.inner.helper.lock().await.as_ref().and_then(|helper| helper.pid)
    }
}

impl Inner {
    async fn start(&self) -> Result<Helper, String> {
        let mut command = Command::new(&self.config.helper);
        command
            .arg("--model")
            .arg(&self.config.model)
            .arg("--threads")
            .arg(self.config.threads.max(1).to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        nexent_core::process::die_with_parent(&mut command);
        let mut child =
            command.spawn().map_err(|error| format!("cannot start {}: {error}", self.config.helper.display()))?;
        let pid = child.id();
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("the helper's pipes are missing".into());
        };
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::warn!(target: "nexent_stt", "{line}");
                }
            });
        }
        let mut helper = Helper { _child: child, stdin, stdout: BufReader::new(stdout), pid };
        match tokio::time::timeout(START_TIMEOUT, read_reply(&mut helper.stdout)).await {
            Ok(Ok(Reply::Ready { multilingual, .. })) => {
                tracing::info!(model = %self.config.model_name, multilingual, pid, "speech-to-text helper started");
                Ok(helper)
            }
            Ok(Ok(Reply::Error { error })) => Err(error),
            Ok(Ok(Reply::Text { .. })) => Err("the helper answered before it was asked".into()),
            Ok(Err(error)) => Err(format!("the helper stopped while loading {}: {error}", self.config.model.display())),
            Err(_) => Err(format!("the helper did not load {} within {START_TIMEOUT:?}", self.config.model.display())),
        }
    }

    async fn ensure_started<'a>(&self, slot: &'a mut Option<Helper>) -> Result<&'a mut Helper, VoiceError> {
        if slot.is_none() {
            *slot = Some(self.start().await.map_err(VoiceError::Unavailable)?);
        }
        slot.as_mut().ok_or_else(|| VoiceError::Unavailable("the helper is not running".into()))
    }

    async fn transcribe(&self, request: TranscribeRequest) -> Result<Transcript, VoiceError> {
        let _permit = self.waiting.try_acquire().map_err(|_| VoiceError::Busy("speech-to-text"))?;
        let mut slot = self.helper.lock().await;
        let seconds = request.samples.len() as f64 / f64::from(STT_SAMPLE_RATE);
        // A generous bound: whisper runs at a small fraction of real time; a helper this late is stuck.
        let deadline = Duration::from_secs_f64(30.0 + seconds * 3.0);
        let header = serde_json::json!({
            "language": request.language,
            "audio_ctx": audio_ctx(request.samples.len()),
            "initial_prompt": initial_prompt(request.language.as_deref(), request.previous_text.as_deref()),
        });
        let header = serde_json::to_vec(&header).map_err(|error| VoiceError::Failed(error.to_string()))?;
        // A helper that died since the last request is restarted once, transparently.
        for attempt in 0..2 {
            let helper = self.ensure_started(&mut slot).await?;
            let started = Instant::now();
            let outcome = match tokio::time::timeout(deadline, exchange(helper, &header, &request.samples)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(HelperFailure::Gone(format!("no answer within {deadline:?}"))),
            };
            match outcome {
                Ok((text, elapsed_ms)) => {
                    tracing::debug!(
                        seconds,
                        elapsed_ms,
                        round_trip_ms = started.elapsed().as_millis() as u64,
                        "transcribed"
                    );
                    return Ok(Transcript { text });
                }
                Err(HelperFailure::Refused(error)) => return Err(VoiceError::Failed(error)),
                Err(HelperFailure::Gone(error)) => {
                    tracing::warn!(%error, attempt, "the speech-to-text helper stopped; restarting it");
                    *slot = None;
                    if attempt == 1 {
                        return Err(VoiceError::Failed(format!("the speech-to-text helper stopped: {error}")));
                    }
                }
            }
        }
        Err(VoiceError::Failed("the speech-to-text helper stopped".into()))
    }
}

/// Encoder frames for `samples` of audio: its own length and a margin, not the whole 30-second window
/// (the encoder's cost is proportional, and short utterances are the rule). Measured on tiny.en: a window
/// shorter than the audio drops its end and the decoder repeats itself; one under about 384 frames makes
/// it stumble (slow temperature fallbacks) even on a 3-second sentence.
fn audio_ctx(samples: usize) -> usize {
    let frames = samples.div_ceil(STT_SAMPLE_RATE as usize / ENCODER_FRAMES_PER_SECOND);
    (frames + 128).clamp(384, 1500)
}

async fn exchange(helper: &mut Helper, header: &[u8], samples: &[i16]) -> Result<(String, u64), HelperFailure> {
    let gone = |error: std::io::Error| HelperFailure::Gone(error.to_string());
    let mut message = Vec::with_capacity(8 + header.len() + samples.len() * 2);
    message.extend_from_slice(&(header.len() as u32).to_le_bytes());
    message.extend_from_slice(header);
    message.extend_from_slice(&(samples.len() as u32).to_le_bytes());
    message.extend(samples.iter().flat_map(|sample| sample.to_le_bytes()));
    helper.stdin.write_all(&message).await.map_err(gone)?;
    helper.stdin.flush().await.map_err(gone)?;
    match read_reply(&mut helper.stdout).await.map_err(gone)? {
        Reply::Text { text, elapsed_ms } => Ok((text, elapsed_ms)),
        Reply::Error { error } => Err(HelperFailure::Refused(error)),
        Reply::Ready { .. } => Err(HelperFailure::Gone("the helper restarted by itself".into())),
    }
}

async fn read_reply(stdout: &mut BufReader<ChildStdout>) -> std::io::Result<Reply> {
    let mut line = String::new();
    loop {
        line.clear();
        if stdout.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the helper closed its output"));
        }
        // Stray output from whisper.cpp may share the line; the reply starts at the marker.
        if let Some(at) = line.find(REPLY_PREFIX) {
            return serde_json::from_str(line[at + REPLY_PREFIX.len()..].trim())
                .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidData, error));
        }
    }
}

impl Transcriber for WhisperSidecar {
    fn model_name(&self) -> &str {
        &self.inner.config.model_name
    }

    fn multilingual(&self) -> bool {
        self.inner.multilingual
    }

    fn prepare(&self) -> BoxFuture<'static, Result<(), VoiceError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let mut slot = inner.helper.lock().await;
            inner.ensure_started(&mut slot).await.map(|_| ())
        })
    }

    fn transcribe(&self, request: TranscribeRequest) -> BoxFuture<'static, Result<Transcript, VoiceError>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.transcribe(request).await })
    }
}

/// What whisper is told came before the audio: the previous text when there is one. Whisper writes
/// Chinese in traditional or simplified characters as its training data happened to; with no previous
/// text, a Chinese request gets a sentence in simplified characters (what mainland readers expect), which
/// keeps it to them.
fn initial_prompt(language: Option<&str>, previous_text: Option<&str>) -> Option<String> {
    if let Some(previous) = previous_text.filter(|text| !text.trim().is_empty()) {
        return Some(previous.to_owned());
    }
    let chinese = language.is_some_and(|language| {
        let language = language.trim().to_ascii_lowercase();
        language == "zh" || language.starts_with("zh-") || language == "cmn" || language == "chinese"
    });
    chinese.then(|| "以下是普通话的句子，使用简体中文。".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_without_earlier_text_is_prompted_in_simplified_characters() {
        assert_eq!(initial_prompt(Some("en"), None), None);
        assert_eq!(initial_prompt(None, None), None, "a detected language cannot be known before");
        assert!(initial_prompt(Some("zh"), None).is_some_and(|prompt| prompt.contains("简体")));
        assert!(initial_prompt(Some("zh-CN"), Some("  ")).is_some());
        assert_eq!(initial_prompt(Some("zh"), Some("前文")), Some("前文".to_owned()), "earlier text wins");
    }

    #[test]
    fn the_encoder_window_follows_the_audio_length() {
        assert_eq!(audio_ctx(16_000), 384);
        assert_eq!(audio_ctx(11 * 16_000), 550 + 128);
        assert_eq!(audio_ctx(40 * 16_000), 1500);
    }

    #[test]
    fn model_names_come_from_ggml_file_names() {
        assert_eq!(WhisperSidecarConfig::model_name_of(std::path::Path::new("/m/ggml-tiny.en.bin")), "tiny.en");
        assert_eq!(WhisperSidecarConfig::model_name_of(std::path::Path::new("ggml-base.bin")), "base");
    }
}
