//! The chat-model seam: what the agent, title generation and the OpenAI-compatible endpoints ask of a
//! language model, whatever runs it (llama.cpp in process, or a remote OpenAI-compatible server).
//!
//! A request is a list of role-tagged messages with sampling settings, stop sequences and optional tool
//! definitions; the answer is a stream of [`ChatEvent`]s: text as it is generated, then one `Finished`.
//! Dropping the stream cancels the generation: engines stop at their next token.

use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// A call the model asked for: a function name and its arguments as JSON text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
    /// Calls an assistant message made (history sent back to the model).
    pub tool_calls: Vec<ToolCall>,
    /// For a `tool` message: which call it answers.
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self { role, content: content.into(), tool_calls: Vec::new(), tool_call_id: None }
    }
}

/// A function the model may call, described by a JSON Schema of its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDefinition {
    pub name: String,
    pub description: String,
    pub parameters: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    pub tools: Vec<ToolDefinition>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub stop: Vec<String>,
    /// A GBNF grammar the output must follow (local engines; remote ones ignore it).
    pub grammar: Option<String>,
    pub tool_choice: ToolChoice,
}

/// Whether the model must call one of the tools (OpenAI's `tool_choice`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides.
    #[default]
    Auto,
    /// The answer is a tool call.
    Required,
    /// The tools are described (the prompt stays the same as in steps that may call them, so an engine
    /// can reuse its cache) but the answer is text.
    None,
}

impl ChatRequest {
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        Self {
            messages,
            tools: Vec::new(),
            max_tokens: None,
            temperature: None,
            top_p: None,
            stop: Vec::new(),
            grammar: None,
            tool_choice: ToolChoice::Auto,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its answer (or hit a stop sequence).
    Stop,
    /// `max_tokens` (or the context) ran out.
    Length,
    ToolCalls,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Tokens guessed ahead (speculative decoding) that the model then wrote: the answer's own tokens,
    /// counted again here (OpenAI's `completion_tokens_details.accepted_prediction_tokens`).
    pub accepted_prediction_tokens: u32,
    /// Tokens guessed ahead that the model did not write (checked, then dropped).
    pub rejected_prediction_tokens: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    /// Generated text, in order; joined, the pieces are the answer.
    Text(String),
    ToolCalls(Vec<ToolCall>),
    Finished {
        reason: FinishReason,
        usage: Usage,
    },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChatError {
    /// The engine's queue is full: try again later (HTTP 503).
    #[error("the model is busy with other requests; try again shortly")]
    Busy,
    /// No model can answer (not configured, file missing, server down), with what to do.
    #[error("{0}")]
    Unavailable(String),
    /// The request cannot be served as it is (too long for the context, a bad grammar).
    #[error("{0}")]
    Invalid(String),
    #[error("the model failed: {0}")]
    Failed(String),
}

pub type ChatStream = BoxStream<'static, Result<ChatEvent, ChatError>>;

/// How fast a model reads its prompt: what a caller sizing a prompt for a quick answer needs to know.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PromptSpeed {
    /// Not bound by this machine (a remote server), or not known to be.
    Unbounded,
    /// A local engine that has not read a prompt long enough to time yet: assume a slow machine.
    Unmeasured,
    /// Prompt tokens read per second, as measured on the recent prompts of this process.
    TokensPerSecond(f64),
}

/// A prompt rate measured as prompts are read: a moving average, so a machine that becomes busier (or
/// idle) is followed within a few prompts. Shared between an engine's thread and its callers.
#[derive(Debug, Default)]
pub struct PromptRate {
    /// f64 bits of tokens per second; 0 until the first measurement.
    bits: std::sync::atomic::AtomicU64,
}

impl PromptRate {
    /// Reads shorter than this are not timed: a few tokens' time is mostly fixed overhead.
    pub const MIN_TIMED_TOKENS: usize = 32;

    /// Records that `tokens` prompt tokens took `elapsed`.
    pub fn record(&self, tokens: usize, elapsed: std::time::Duration) {
        let seconds = elapsed.as_secs_f64();
        if tokens < Self::MIN_TIMED_TOKENS || seconds <= 0.0 {
            return;
        }
        let sample = tokens as f64 / seconds;
        let previous = f64::from_bits(self.bits.load(std::sync::atomic::Ordering::Relaxed));
        let rate = if previous > 0.0 { 0.5 * previous + 0.5 * sample } else { sample };
        self.bits.store(rate.to_bits(), std::sync::atomic::Ordering::Relaxed);
    }

    pub fn speed(&self) -> PromptSpeed {
        match f64::from_bits(self.bits.load(std::sync::atomic::Ordering::Relaxed)) {
            rate if rate > 0.0 => PromptSpeed::TokensPerSecond(rate),
            _ => PromptSpeed::Unmeasured,
        }
    }
}

/// A language model that chats. Implementations queue work on their own threads, never on the runtime.
pub trait ChatModel: Send + Sync {
    fn model_name(&self) -> &str;
    /// Starts generating; the stream yields text as it comes and ends after `Finished` (or an error).
    fn chat(&self, request: ChatRequest) -> Result<ChatStream, ChatError>;
    /// Called before the process exits: a model still loading is waited for, since exiting while a native
    /// engine loads runs its static destructors under the loading thread (a crash on a quick SIGTERM).
    fn finish_loading(&self) {}
    /// How fast this model reads prompts (see [`PromptSpeed`]).
    fn prompt_speed(&self) -> PromptSpeed {
        PromptSpeed::Unbounded
    }
}

pub type SharedChatModel = std::sync::Arc<dyn ChatModel>;

/// The chat seam when no model could be loaded: every request gets the reason (and what to do about it).
pub struct UnavailableChat {
    pub model_name: String,
    pub reason: String,
}

impl ChatModel for UnavailableChat {
    fn model_name(&self) -> &str {
        &self.model_name
    }

    fn chat(&self, _request: ChatRequest) -> Result<ChatStream, ChatError> {
        Err(ChatError::Unavailable(self.reason.clone()))
    }
}

/// A chat model that loads on a thread of its own, so start-up does not wait for it. Requests made while it
/// loads wait for it; if loading fails they get the reason.
pub struct DeferredChat {
    model_name: String,
    ready: tokio::sync::watch::Receiver<Option<SharedChatModel>>,
    /// Requests waiting for the model; bounded like an engine's queue.
    waiting: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    loader: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Requests that may wait for a model still loading; more are told it is busy.
const MAX_WAITING: usize = 8;

struct WaitingSlot(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for WaitingSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl DeferredChat {
    /// Runs `load` on a new thread; `model_name` names the model until then.
    pub fn spawn(model_name: String, load: impl FnOnce() -> SharedChatModel + Send + 'static) -> Self {
        let (sender, ready) = tokio::sync::watch::channel(None);
        let loader = std::thread::Builder::new().name("nexent-llm-load".into()).spawn(move || {
            let _ = sender.send(Some(load()));
        });
        let (ready, loader) = match loader {
            Ok(handle) => (ready, Some(handle)),
            Err(error) => {
                let reason = format!("cannot start loading the chat model: {error}");
                let failed: SharedChatModel =
                    std::sync::Arc::new(UnavailableChat { model_name: model_name.clone(), reason });
                (tokio::sync::watch::channel(Some(failed)).1, None)
            }
        };
        Self { model_name, ready, waiting: Default::default(), loader: std::sync::Mutex::new(loader) }
    }
}

impl ChatModel for DeferredChat {
    fn model_name(&self) -> &str {
        &self.model_name
    }

    fn finish_loading(&self) {
        if let Some(handle) = crate::sync::lock(&self.loader).take() {
            let _ = handle.join();
        }
    }

    fn prompt_speed(&self) -> PromptSpeed {
        match self.ready.borrow().as_ref() {
            Some(model) => model.prompt_speed(),
            None => PromptSpeed::Unmeasured,
        }
    }

    fn chat(&self, request: ChatRequest) -> Result<ChatStream, ChatError> {
        if let Some(model) = self.ready.borrow().clone() {
            return model.chat(request);
        }
        use futures::StreamExt;
        use std::sync::atomic::Ordering;
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(ChatError::Busy);
        }
        let mut ready = self.ready.clone();
        // Given back when the wait ends, or when a caller that went away drops it.
        let slot = WaitingSlot(self.waiting.clone());
        let started = async move {
            let loaded = ready.wait_for(Option::is_some).await.map(|model| model.clone());
            drop(slot);
            let model = loaded
                .map_err(|_| ChatError::Unavailable("the chat model failed to load".into()))?
                .ok_or_else(|| ChatError::Unavailable("the chat model failed to load".into()))?;
            model.chat(request)
        };
        Ok(Box::pin(futures::stream::once(started).flat_map(|started| match started {
            Ok(stream) => stream,
            Err(error) => Box::pin(futures::stream::once(async move { Err(error) })),
        })))
    }
}

/// The answer of a whole stream, for callers that need no streaming.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatAnswer {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    pub reason: FinishReason,
    pub usage: Usage,
}

pub async fn collect(mut stream: ChatStream) -> Result<ChatAnswer, ChatError> {
    use futures::StreamExt;
    let mut answer =
        ChatAnswer { text: String::new(), tool_calls: Vec::new(), reason: FinishReason::Stop, usage: Usage::default() };
    while let Some(event) = stream.next().await {
        match event? {
            ChatEvent::Text(text) => answer.text.push_str(&text),
            ChatEvent::ToolCalls(calls) => answer.tool_calls.extend(calls),
            ChatEvent::Finished { reason, usage } => {
                answer.reason = reason;
                answer.usage = usage;
            }
        }
    }
    Ok(answer)
}

/// Where the first stop sequence begins in `text`, if one occurs.
pub fn find_stop(text: &str, stops: &[String]) -> Option<usize> {
    stops.iter().filter(|stop| !stop.is_empty()).filter_map(|stop| text.find(stop.as_str())).min()
}

/// How many bytes at the end of `text` could be the start of a stop sequence, and so must be held back
/// from the client until the next token decides.
pub fn held_back(text: &str, stops: &[String]) -> usize {
    stops
        .iter()
        .flat_map(|stop| {
            (1..stop.len())
                .rev()
                .filter(move |&length| stop.is_char_boundary(length))
                .map(move |length| &stop[..length])
        })
        .filter(|prefix| text.ends_with(prefix))
        .map(str::len)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_rate_is_timed_on_long_reads_and_follows_the_recent_ones() {
        use std::time::Duration;
        let rate = PromptRate::default();
        assert_eq!(rate.speed(), PromptSpeed::Unmeasured);
        rate.record(5, Duration::from_millis(1));
        assert_eq!(rate.speed(), PromptSpeed::Unmeasured, "a few tokens are mostly overhead");
        rate.record(200, Duration::from_secs(0));
        assert_eq!(rate.speed(), PromptSpeed::Unmeasured, "no time, no rate");
        rate.record(200, Duration::from_secs(1));
        assert_eq!(rate.speed(), PromptSpeed::TokensPerSecond(200.0));
        rate.record(100, Duration::from_secs(1));
        assert_eq!(rate.speed(), PromptSpeed::TokensPerSecond(150.0), "halfway to a busier machine's rate");
    }

    #[test]
    fn stop_sequences_are_found_and_their_prefixes_held_back() {
        let stops = vec!["<|im_end|>".to_owned(), "\nUser:".to_owned()];
        assert_eq!(find_stop("Paris.<|im_end|>junk", &stops), Some(6));
        assert_eq!(find_stop("Paris.", &stops), None);
        assert_eq!(held_back("Paris.<|im", &stops), 4);
        assert_eq!(held_back("Paris.\nUse", &stops), 4);
        assert_eq!(held_back("Paris.", &stops), 0);
        assert_eq!(held_back("é<", &["<é>".to_owned()]), 1);
    }

    struct Echo;

    impl ChatModel for Echo {
        fn model_name(&self) -> &str {
            "echo"
        }

        fn chat(&self, request: ChatRequest) -> Result<ChatStream, ChatError> {
            let text = request.messages.last().map(|message| message.content.clone()).unwrap_or_default();
            Ok(Box::pin(futures::stream::iter([
                Ok(ChatEvent::Text(text)),
                Ok(ChatEvent::Finished { reason: FinishReason::Stop, usage: Usage::default() }),
            ])))
        }
    }

    #[tokio::test]
    async fn a_deferred_model_answers_once_loaded() {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let deferred = DeferredChat::spawn("echo".into(), move || {
            let _ = wait.recv();
            std::sync::Arc::new(Echo)
        });
        let stream = deferred.chat(ChatRequest::new(vec![ChatMessage::new(Role::User, "hi")])).expect("queued");
        release.send(()).expect("release");
        assert_eq!(collect(stream).await.expect("answer").text, "hi");
        let failing = DeferredChat::spawn("x".into(), || {
            std::sync::Arc::new(UnavailableChat { model_name: "x".into(), reason: "no file".into() })
        });
        let error = collect(
            failing
                .chat(ChatRequest::new(Vec::new()))
                .unwrap_or_else(|e| Box::pin(futures::stream::once(async move { Err(e) }))),
        )
        .await;
        assert_eq!(error, Err(ChatError::Unavailable("no file".into())));
    }

    #[tokio::test]
    async fn collect_joins_text_and_keeps_the_finish() {
        let events = vec![
            Ok(ChatEvent::Text("Hel".into())),
            Ok(ChatEvent::Text("lo".into())),
            Ok(ChatEvent::Finished {
                reason: FinishReason::Length,
                usage: Usage { prompt_tokens: 3, completion_tokens: 2, ..Usage::default() },
            }),
        ];
        let answer = collect(Box::pin(futures::stream::iter(events))).await.expect("answer");
        assert_eq!(
            (answer.text.as_str(), answer.reason, answer.usage.completion_tokens),
            ("Hello", FinishReason::Length, 2)
        );
    }
}
