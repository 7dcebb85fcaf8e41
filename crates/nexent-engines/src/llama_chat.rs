//! Local chat on llama.cpp (`llama-cpp-2`, built from the crate's vendored source; nothing is downloaded).
//!
//! One engine thread owns the model and one context; requests wait in a bounded queue (full → `Busy`, HTTP
//! 503). For each request the engine renders the chat template from the GGUF file's metadata, decodes the
//! prompt in batches, then samples token by token and sends text as it comes. It stops at an end-of-generation
//! token, a stop sequence, `max_tokens`, the end of the context, or as soon as the caller drops the stream
//! (the next send fails), so a client that goes away frees the model within a token.
//!
//! Tool calls follow the Qwen2.5 / Hermes convention that small instruction models are trained on: the tools
//! are described in the system message, the model answers `<tool_call>{"name", "arguments"}</tool_call>`,
//! and results go back as `<tool_response>` user turns. Calls are parsed leniently ([`parse_tool_calls`]).
//!
//! Threads, per phase (bench/results/llm.md, "Under load"): llama.cpp spins its workers, so generation
//! with as many threads as cores halves when anything else runs (38 → 12 tok/s on 2 cores) while one
//! thread fewer keeps its speed; it gets one thread fewer than the cores, at least one. Reading the prompt
//! is large matrix work that all cores speed up when idle (77 → 148 tok/s) and lose little when busy
//! (75 → 69), so it gets every core.
//!
//! One load per model file: loading a file that is already loaded in this process (the chat model, a
//! health check of another name for the same file) shares that engine, and loads of one file wait for
//! each other, so concurrent callers never map several copies. The engine goes when its last user does.
//!
//! Grammars (a client's, the tools') run through [`guarded_grammar`], never through llama.cpp's own
//! sample call: no grammar can end the process, and a dead end ends the answer.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use nexent_core::chat::{
    ChatError, ChatEvent, ChatMessage, ChatModel, ChatRequest, ChatStream, FinishReason, PromptRate, PromptSpeed, Role,
    ToolCall, ToolChoice, Usage, find_stop, held_back,
};
use tokio::sync::mpsc;

pub mod cpu_kernels;
pub mod guarded_grammar;
pub mod speculative;
mod tool_grammar;

use guarded_grammar::GuardedGrammar;
use speculative::{DraftModel, Guesser, SpeculationConfig};
pub use tool_grammar::tool_call_grammar;

const QUEUE_DEPTH: usize = 8;
const PROMPT_BATCH: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum LlamaChatError {
    #[error("missing model file {0}")]
    MissingFile(PathBuf),
    #[error("cannot start llama.cpp: {0}")]
    Backend(String),
    #[error("cannot load {path}: {reason}")]
    Model { path: PathBuf, reason: String },
}

#[derive(Debug, Clone)]
pub struct LlamaChatConfig {
    pub model_path: PathBuf,
    pub model_name: String,
    /// Threads generating tokens.
    pub threads: usize,
    /// Threads reading the prompt (llama.cpp's `n_threads_batch`).
    pub batch_threads: usize,
    /// Tokens of context (prompt and answer together).
    pub context_tokens: u32,
    /// Guessing tokens ahead ([`speculative`]).
    pub speculation: SpeculationConfig,
}

impl LlamaChatConfig {
    /// A GGUF file with the default context (4096 tokens) and thread count.
    pub fn new(model_path: &Path) -> Self {
        let model_name = model_path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
        Self {
            model_path: model_path.to_path_buf(),
            model_name,
            threads: default_threads(),
            batch_threads: default_batch_threads(),
            context_tokens: 4096,
            speculation: SpeculationConfig::default(),
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|cores| cores.get()).unwrap_or(1)
}

/// Generation: one thread fewer than the cores, at least one (see the module doc).
pub fn default_threads() -> usize {
    cores().saturating_sub(1).max(1)
}

/// Prompt reading: every core (see the module doc).
pub fn default_batch_threads() -> usize {
    cores()
}

/// llama.cpp, once per process: its CPU kernels for this CPU ([`cpu_kernels`]), then its backend.
pub fn backend() -> Result<&'static LlamaBackend, LlamaChatError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            // llama.cpp's own logging goes to `tracing` (at its levels), not to stderr.
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            let variant = cpu_kernels::load()?;
            tracing::info!(cpu_kernels = %variant, "llama.cpp uses the CPU kernels built for {variant}");
            LlamaBackend::init().map_err(|error| error.to_string())
        })
        .as_ref()
        .map_err(|error| LlamaChatError::Backend(error.clone()))
}

struct Job {
    request: ChatRequest,
    events: mpsc::Sender<Result<ChatEvent, ChatError>>,
}

pub struct LlamaChat {
    model_name: String,
    engine: Arc<LoadedEngine>,
}

/// A model loaded on its engine thread; shared by every `LlamaChat` of the same file.
struct LoadedEngine {
    jobs: SyncSender<Job>,
    /// For checking a client's grammar before its request is queued (the engine thread has its own handle).
    model: Arc<LlamaModel>,
    /// Timed on the engine thread as prompts are read.
    prompt_rate: Arc<PromptRate>,
}

/// The engine of each model file (by canonical path) that is loaded, or being loaded under the slot's lock.
type LoadSlots = Mutex<HashMap<PathBuf, Arc<Mutex<Weak<LoadedEngine>>>>>;

fn load_slots() -> &'static LoadSlots {
    static SLOTS: OnceLock<LoadSlots> = OnceLock::new();
    SLOTS.get_or_init(Default::default)
}

/// Stack of the engine thread: llama.cpp's grammar code recurses per rule reference and nesting level.
const ENGINE_STACK_BYTES: usize = 16 * 1024 * 1024;

impl LlamaChat {
    /// Loads the model on its engine thread and returns once it can answer. When the same file is already
    /// loaded in this process, that engine is shared (its context size and threads stay as they are), and
    /// loads of one file wait for each other, so concurrent callers never load it twice.
    pub fn load(config: LlamaChatConfig) -> Result<Self, LlamaChatError> {
        if !config.model_path.is_file() {
            return Err(LlamaChatError::MissingFile(config.model_path));
        }
        let key = config.model_path.canonicalize().unwrap_or_else(|_| config.model_path.clone());
        let slot = {
            let mut slots = nexent_core::sync::lock(load_slots());
            // Forget files whose engine is gone and that nobody is loading.
            slots.retain(|_, slot| {
                Arc::strong_count(slot) > 1
                    || match slot.try_lock() {
                        Ok(engine) => engine.strong_count() > 0,
                        Err(_) => true,
                    }
            });
            slots.entry(key).or_default().clone()
        };
        // Held while loading: a second caller for this file waits here, then shares what was loaded.
        let mut loaded = nexent_core::sync::lock(&slot);
        if let Some(engine) = loaded.upgrade() {
            tracing::info!(model = %config.model_name, file = %config.model_path.display(), "chat model already loaded; shared");
            return Ok(Self { model_name: config.model_name, engine });
        }
        let engine = Arc::new(start_engine(&config)?);
        *loaded = Arc::downgrade(&engine);
        tracing::info!(
            model = %config.model_name,
            generation_threads = config.threads,
            prompt_threads = config.batch_threads,
            context = config.context_tokens,
            "chat model loaded"
        );
        Ok(Self { model_name: config.model_name, engine })
    }
}

fn start_engine(config: &LlamaChatConfig) -> Result<LoadedEngine, LlamaChatError> {
    let backend = backend()?;
    let (ready, started) = std::sync::mpsc::channel::<Result<Arc<LlamaModel>, LlamaChatError>>();
    let (jobs, receiver) = sync_channel::<Job>(QUEUE_DEPTH);
    let engine_config = config.clone();
    let prompt_rate = Arc::new(PromptRate::default());
    let timed = prompt_rate.clone();
    std::thread::Builder::new()
        .name("nexent-llm".into())
        .stack_size(ENGINE_STACK_BYTES)
        .spawn(move || run_engine(backend, engine_config, receiver, ready, timed))
        .map_err(|error| LlamaChatError::Backend(format!("cannot start the engine thread: {error}")))?;
    let model =
        started.recv().map_err(|_| LlamaChatError::Backend("the engine thread stopped while loading".into()))??;
    Ok(LoadedEngine { jobs, model, prompt_rate })
}

impl ChatModel for LlamaChat {
    fn model_name(&self) -> &str {
        &self.model_name
    }

    fn prompt_speed(&self) -> PromptSpeed {
        self.engine.prompt_rate.speed()
    }

    fn chat(&self, request: ChatRequest) -> Result<ChatStream, ChatError> {
        if let Some(grammar) = &request.grammar {
            // Refused here, before anything is queued or streamed, so the client gets a plain 400. Parsing is
            // quick: the size and nesting are bounded before llama.cpp sees the text.
            GuardedGrammar::new(&self.engine.model, grammar, "root").map_err(invalid_grammar)?;
        }
        let (events, receiver) = mpsc::channel(64);
        match self.engine.jobs.try_send(Job { request, events }) {
            Ok(()) => Ok(Box::pin(futures::stream::unfold(receiver, |mut receiver| async move {
                receiver.recv().await.map(|event| (event, receiver))
            }))),
            Err(TrySendError::Full(_)) => Err(ChatError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(ChatError::Unavailable("the chat engine stopped".into())),
        }
    }
}

/// How model files are loaded: read into memory, not mapped. A mapped file that is truncated or replaced in
/// place while the server runs (a re-download, a full disk, a user's copy) makes the next token's read a
/// SIGBUS that kills the whole process; read into memory, the running model is unaffected and the damage
/// is found by the checks at the next load. The memory used is the same: every weight is read per token.
pub(crate) fn model_params() -> LlamaModelParams {
    LlamaModelParams::default().with_use_mmap(false)
}

fn run_engine(
    backend: &'static LlamaBackend,
    config: LlamaChatConfig,
    jobs: Receiver<Job>,
    ready: std::sync::mpsc::Sender<Result<Arc<LlamaModel>, LlamaChatError>>,
    prompt_rate: Arc<PromptRate>,
) {
    let failed = |reason: String| LlamaChatError::Model { path: config.model_path.clone(), reason };
    let model = match LlamaModel::load_from_file(backend, &config.model_path, &model_params()) {
        Ok(model) => Arc::new(model),
        Err(error) => {
            // llama.cpp logs its reason and returns null; say what it means for a file that passed our checks.
            let reason = match error.to_string() {
                text if text.contains("null result") => {
                    "llama.cpp could not read it (a damaged, incomplete or unsupported GGUF file)".to_owned()
                }
                text => text,
            };
            let _ = ready.send(Err(failed(reason)));
            return;
        }
    };
    let template = model.chat_template(None).or_else(|_| LlamaChatTemplate::new("chatml").map_err(|e| e.to_string()));
    let template = match template {
        Ok(template) => template,
        Err(error) => {
            let _ = ready.send(Err(failed(format!("no usable chat template: {error:?}"))));
            return;
        }
    };
    let threads = i32::try_from(config.threads.max(1)).unwrap_or(1);
    let batch_threads = i32::try_from(config.batch_threads.max(1)).unwrap_or(1);
    let context_tokens = config.context_tokens.min(model.n_ctx_train().max(512));
    // The draft model's context (if any) is made the same way.
    let params = || {
        LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(context_tokens))
            .with_n_batch(PROMPT_BATCH as u32)
            .with_n_threads(threads)
            .with_n_threads_batch(batch_threads)
    };
    let mut context = match model.new_context(backend, params()) {
        Ok(context) => context,
        Err(error) => {
            let _ = ready.send(Err(failed(format!("cannot create a context: {error}"))));
            return;
        }
    };
    // A draft model that cannot be used leaves the chat model answering alone, with a warning.
    let draft_path = config.speculation.draft_model.as_deref().filter(|_| config.speculation.draft_tokens > 0);
    let draft_model = draft_path.and_then(|path| match speculative::load_draft_model(backend, path, &model) {
        Ok(draft) => Some(draft),
        Err(reason) => {
            tracing::warn!(%reason, "the draft model is not used");
            None
        }
    });
    let draft = draft_model.as_ref().and_then(|draft| match draft.new_context(backend, params()) {
        Ok(context) => {
            tracing::info!(file = ?draft_path, "the draft model guesses ahead for the chat model");
            Some(DraftModel::new(draft, context))
        }
        Err(error) => {
            tracing::warn!(%error, "the draft model is not used: no context for it");
            None
        }
    });
    let mut guesser = Guesser::new(config.speculation.clone(), draft, &model);
    let _ = ready.send(Ok(model.clone()));
    let engine = Engine { model: &model, template: &template, prompt_rate: &prompt_rate };
    let mut cache = KvTokens::default();
    while let Ok(job) = jobs.recv() {
        if job.events.is_closed() {
            continue;
        }
        let outcome = engine.generate(&mut context, &mut cache, &mut guesser, &job.request, &job.events);
        if let Err(error) = outcome {
            let _ = deliver(&job.events, Err(error));
        }
    }
}

struct Engine<'m> {
    model: &'m LlamaModel,
    template: &'m LlamaChatTemplate,
    prompt_rate: &'m PromptRate,
}

impl Engine<'_> {
    fn prompt(&self, request: &ChatRequest) -> Result<String, ChatError> {
        let messages = render_messages(request);
        let chat: Vec<LlamaChatMessage> = messages
            .into_iter()
            .map(|(role, content)| LlamaChatMessage::new(role.to_owned(), content))
            .collect::<Result<_, _>>()
            .map_err(|_| ChatError::Invalid("a message contains a NUL character".into()))?;
        self.model
            .apply_chat_template(self.template, &chat, true)
            .map_err(|error| ChatError::Failed(format!("cannot apply the chat template: {error}")))
    }

    fn sampler(&self, request: &ChatRequest) -> Result<TokenPicker, ChatError> {
        let grammar = match &request.grammar {
            Some(grammar) => Some(GuardedGrammar::new(self.model, grammar, "root").map_err(invalid_grammar)?),
            None => None,
        };
        let mut chain = Vec::new();
        let temperature = request.temperature.unwrap_or(0.7);
        if temperature <= 0.0 {
            chain.push(LlamaSampler::greedy());
        } else {
            chain.push(LlamaSampler::top_k(40));
            chain.push(LlamaSampler::top_p(request.top_p.unwrap_or(0.95).clamp(0.01, 1.0), 1));
            chain.push(LlamaSampler::temp(temperature));
            chain.push(LlamaSampler::dist(rand_seed()));
        }
        Ok(TokenPicker { grammar, chain: LlamaSampler::chain_simple(chain) })
    }

    fn generate(
        &self,
        context: &mut LlamaContext<'_>,
        cache: &mut KvTokens,
        guesser: &mut Guesser<'_>,
        request: &ChatRequest,
        events: &mpsc::Sender<Result<ChatEvent, ChatError>>,
    ) -> Result<(), ChatError> {
        let prompt = self.prompt(request)?;
        let tokens = self.model.vocab().tokenize(prompt.as_bytes(), false, true);
        let window = context.n_ctx() as usize;
        if tokens.len() + 1 >= window {
            return Err(ChatError::Invalid(format!(
                "the conversation has {} tokens, more than the model's context of {window}",
                tokens.len()
            )));
        }
        let room = window - tokens.len();
        let max_tokens = request.max_tokens.map_or(room, |max| (max as usize).min(room));
        let mut sampler = self.sampler(request)?;
        // The KV cache still holds the previous request: keep the prefix this prompt shares with it (an
        // agent's next step, a chat's next turn) and decode only the rest. At least one token is decoded,
        // for the logits of the first answer token.
        let reused = cache.reuse(context, &tokens);

        let mut batch = LlamaBatch::new(PROMPT_BATCH, 1);
        let last = tokens.len() - 1;
        let reading = std::time::Instant::now();
        for (start, piece) in
            tokens[reused..].chunks(PROMPT_BATCH).enumerate().map(|(n, piece)| (reused + n * PROMPT_BATCH, piece))
        {
            if events.is_closed() {
                return Ok(());
            }
            batch.clear();
            for (offset, token) in piece.iter().enumerate() {
                let position = start + offset;
                batch
                    .add(*token, position as i32, &[0], position == last)
                    .map_err(|error| ChatError::Failed(error.to_string()))?;
            }
            let decoded = context.decode(&mut batch);
            if decoded.is_err() {
                cache.forget(context);
            }
            decoded.map_err(|error| ChatError::Failed(format!("prompt: {error}")))?;
            cache.tokens.extend_from_slice(piece);
        }
        self.prompt_rate.record(tokens.len() - reused, reading.elapsed());

        let vocab = self.model.vocab();
        // With tools, a call the model starts is finished under a grammar of the tools' schemas.
        let mut calls = ToolCallGuard::new(self.model, request);
        let parses_calls = !request.tools.is_empty() && request.tool_choice != ToolChoice::None;
        let mut position = tokens.len();
        let mut logits_index = batch.n_tokens() - 1;
        let mut pending_bytes: Vec<u8> = Vec::new();
        let mut answer = String::new();
        let mut sent = 0usize;
        let mut generated = 0usize;
        // The guessed tokens the last batch checked, and how many of them the answer has taken so far.
        let mut checking = Checking::default();
        let reason = loop {
            if generated >= max_tokens {
                break FinishReason::Length;
            }
            let Some(token) = calls.sample(&mut sampler, context, logits_index, &answer) else {
                // The grammar allows no next token (a caller's grammar at a dead end): the answer ends here,
                // as when the model stops.
                break FinishReason::Stop;
            };
            generated += 1;
            if vocab.is_eog(token) {
                break FinishReason::Stop;
            }
            pending_bytes.extend(vocab.token_to_piece(token, false, None));
            // Tokens can end inside a character: send only complete UTF-8.
            let valid = match std::str::from_utf8(&pending_bytes) {
                Ok(text) => text.len(),
                Err(error) => error.valid_up_to(),
            };
            answer.push_str(std::str::from_utf8(&pending_bytes[..valid]).unwrap_or_default());
            pending_bytes.drain(..valid);
            calls.observe(&answer);
            if calls.refuse_calls
                && let Some(at) = answer.find("<tool_call>")
            {
                // Tools are only described here: a call the model starts anyway ends the answer.
                answer.truncate(at);
                if !send_text(events, &answer, &mut sent) {
                    return Ok(());
                }
                break FinishReason::Stop;
            }
            if let Some(stop) = find_stop(&answer, &request.stop) {
                answer.truncate(stop);
                if !calls.active() && !send_text(events, &answer, &mut sent) {
                    return Ok(());
                }
                break FinishReason::Stop;
            }
            let safe = answer.len() - held_back(&answer, &request.stop);
            let visible = if request.tools.is_empty() {
                safe
            } else if calls.active() {
                sent
            } else {
                safe.min(tool_call_start(&answer))
            };
            if visible > sent && !send_text(events, &answer[..visible], &mut sent) {
                return Ok(()); // The caller went away.
            }
            if events.is_closed() {
                return Ok(());
            }
            if let Some(next_logits) = checking.take(token) {
                // A right guess: its keys and values are in the cache and its logits are in the last batch.
                position += 1;
                logits_index = next_logits;
                continue;
            }
            // The guesses from here on (if any) were wrong: the cache forgets them.
            checking.finish();
            if cache.tokens.len() > position {
                let dropped = u32::try_from(position)
                    .ok()
                    .and_then(|from| context.clear_kv_cache_seq(Some(0), Some(from), None).ok())
                    .unwrap_or(false);
                if !dropped {
                    cache.forget(context);
                    return Err(ChatError::Failed("generation: the cache cannot drop a wrong guess".into()));
                }
                cache.tokens.truncate(position);
            }
            // The token is recorded before it is decoded, so the guesser reads the conversation in place (a
            // failed decode forgets the whole cache below).
            cache.tokens.push(token);
            let guesses = if guesser.enabled() {
                let room = (max_tokens - generated).min(window.saturating_sub(position + 2));
                guesser.guess(&cache.tokens, room)
            } else {
                Vec::new()
            };
            batch.clear();
            for (offset, fed) in std::iter::once(token).chain(guesses.iter().copied()).enumerate() {
                batch
                    .add(fed, (position + offset) as i32, &[0], true)
                    .map_err(|error| ChatError::Failed(error.to_string()))?;
            }
            position += 1;
            logits_index = 0;
            let decoded = context.decode(&mut batch);
            if decoded.is_err() {
                cache.forget(context);
            }
            decoded.map_err(|error| ChatError::Failed(format!("generation: {error}")))?;
            cache.tokens.extend_from_slice(&guesses);
            checking.start(guesses);
        };
        checking.finish();
        let grammar_engaged = calls.active();
        if calls.bare {
            // The call began as bare JSON (Qwen 0.5B's habit): tag it so one parser reads every form.
            answer = format!("<tool_call>{answer}</tool_call>");
        }
        let (_, calls) = if parses_calls { parse_tool_calls(&answer) } else { (String::new(), Vec::new()) };
        let mut reason = reason;
        if calls.is_empty() {
            // A call cut off by max_tokens or a stop sequence is no answer: its raw text is not sent.
            if !grammar_engaged && !send_text(events, &answer, &mut sent) {
                return Ok(());
            }
        } else {
            // The prose before the call was streamed as it came; the call itself goes as calls.
            reason = FinishReason::ToolCalls;
            if !deliver(events, Ok(ChatEvent::ToolCalls(calls))) {
                return Ok(());
            }
        }
        let usage = Usage {
            prompt_tokens: tokens.len() as u32,
            completion_tokens: generated as u32,
            accepted_prediction_tokens: checking.accepted as u32,
            rejected_prediction_tokens: checking.rejected as u32,
        };
        tracing::debug!(
            prompt = tokens.len(),
            reused,
            generated,
            accepted = checking.accepted,
            rejected = checking.rejected,
            "answered"
        );
        let _ = deliver(events, Ok(ChatEvent::Finished { reason, usage }));
        Ok(())
    }
}

/// Sends the part of `text` past `sent`; false when the caller has gone.
fn send_text(events: &mpsc::Sender<Result<ChatEvent, ChatError>>, text: &str, sent: &mut usize) -> bool {
    if text.len() <= *sent || !text.is_char_boundary(*sent) {
        return !events.is_closed();
    }
    let piece = text[*sent..].to_owned();
    *sent = text.len();
    deliver(events, Ok(ChatEvent::Text(piece)))
}

/// How long the engine waits for a caller that does not take what it generated.
const DELIVERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Sends one event; false when the caller went away or took nothing for [`DELIVERY_TIMEOUT`] (a client
/// that keeps its connection open but stops reading must not hold the one engine thread for everyone).
fn deliver(events: &mpsc::Sender<Result<ChatEvent, ChatError>>, event: Result<ChatEvent, ChatError>) -> bool {
    let deadline = std::time::Instant::now() + DELIVERY_TIMEOUT;
    let mut event = event;
    loop {
        match events.try_send(event) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
            Err(mpsc::error::TrySendError::Full(back)) => {
                if std::time::Instant::now() >= deadline {
                    tracing::warn!("a caller stopped reading the chat stream; the generation is abandoned");
                    return false;
                }
                event = back;
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    }
}

fn invalid_grammar(error: guarded_grammar::GrammarError) -> ChatError {
    ChatError::Invalid(format!("invalid grammar: {error}"))
}

/// How the next token is chosen: the sampling chain, under a grammar when there is one.
struct TokenPicker {
    grammar: Option<GuardedGrammar>,
    chain: LlamaSampler,
}

impl TokenPicker {
    /// `None` when the grammar allows no token.
    fn pick(&mut self, context: &LlamaContext<'_>, index: i32) -> Option<LlamaToken> {
        match self.grammar.as_mut() {
            Some(grammar) => grammar.sample(context, index, &mut self.chain),
            // No grammar: nothing in the chain (top-k, top-p, temperature, greedy or a draw) throws.
            None => Some(self.chain.sample(context, index)),
        }
    }

    fn greedy_under(grammar: GuardedGrammar) -> Self {
        Self { grammar: Some(grammar), chain: LlamaSampler::greedy() }
    }
}

/// The first token of an answer that may not call a tool: any text but a JSON object, a code fence or a tag.
const NO_CALL_START_GRAMMAR: &str = "root ::= [^{`<\\x00-\\x20] [^\\x00]*\n";

/// The guessed tokens a batch checked after the token it fed: batch index `i + 1` holds the logits after
/// `guesses[i]`. Counts what every batch of an answer accepted and rejected.
#[derive(Default)]
struct Checking {
    guesses: Vec<LlamaToken>,
    taken: usize,
    accepted: usize,
    rejected: usize,
}

impl Checking {
    fn start(&mut self, guesses: Vec<LlamaToken>) {
        self.guesses = guesses;
        self.taken = 0;
    }

    /// When `token` is the next guess: the batch index of the logits after it.
    fn take(&mut self, token: LlamaToken) -> Option<i32> {
        if self.guesses.get(self.taken) != Some(&token) {
            return None;
        }
        self.taken += 1;
        self.accepted += 1;
        i32::try_from(self.taken).ok()
    }

    /// The guesses not taken are rejected.
    fn finish(&mut self) {
        self.rejected += self.guesses.len() - self.taken;
        self.guesses.clear();
        self.taken = 0;
    }
}

/// The tokens whose keys and values the context holds, position by position.
#[derive(Default)]
struct KvTokens {
    tokens: Vec<LlamaToken>,
}

impl KvTokens {
    /// Drops what `prompt` does not share with the cache; returns how many of its tokens are already there.
    fn reuse(&mut self, context: &mut LlamaContext<'_>, prompt: &[LlamaToken]) -> usize {
        let shared = self.tokens.iter().zip(prompt).take_while(|(cached, wanted)| cached == wanted).count();
        let keep = shared.min(prompt.len().saturating_sub(1));
        match u32::try_from(keep).ok().map(|keep| context.clear_kv_cache_seq(Some(0), Some(keep), None)) {
            Some(Ok(true)) => {
                self.tokens.truncate(keep);
                keep
            }
            // The cache cannot drop a tail (or the position is absurd): start afresh.
            _ => {
                self.forget(context);
                0
            }
        }
    }

    fn forget(&mut self, context: &mut LlamaContext<'_>) {
        context.clear_kv_cache();
        self.tokens.clear();
    }
}

/// Watches generation for the start of a tool call and, from there, samples under the tools' grammar.
///
/// With `tool_choice` required the grammar holds from the first token. Otherwise two starts are recognised: `<tool_call>` (Qwen's trained form; the grammar takes over after the tag),
/// and a first non-blank token that opens a JSON object or code fence (Qwen 0.5B's bare form). In the
/// second case the token is not used: it is sampled again, under the grammar, from the same logits, so the
/// grammar sees the whole call. Without tools, or with a caller's own grammar, the guard does nothing.
struct ToolCallGuard<'m> {
    grammar: Option<String>,
    model: &'m LlamaModel,
    constrained: Option<TokenPicker>,
    /// The call began without its tag.
    bare: bool,
    /// Tools are described but may not be called: an answer may not open with a call.
    refuse_calls: bool,
}

impl<'m> ToolCallGuard<'m> {
    fn new(model: &'m LlamaModel, request: &ChatRequest) -> Self {
        let callable =
            !request.tools.is_empty() && request.grammar.is_none() && request.tool_choice != ToolChoice::None;
        let grammar = callable.then(|| tool_call_grammar(&request.tools));
        // With a caller's grammar the first token is the grammar's alone: sampling it again under another
        // grammar would leave the caller's grammar behind the text.
        let refuse_calls =
            !request.tools.is_empty() && request.tool_choice == ToolChoice::None && request.grammar.is_none();
        let mut guard = Self { grammar, model, constrained: None, bare: false, refuse_calls };
        if request.tool_choice == ToolChoice::Required {
            // The answer is a call from its first token.
            guard.bare = guard.constrain().is_some();
        }
        guard
    }

    fn active(&self) -> bool {
        self.constrained.is_some()
    }

    /// `None` when a grammar allows no token (the answer ends).
    fn sample(
        &mut self,
        free: &mut TokenPicker,
        context: &LlamaContext<'_>,
        index: i32,
        answer: &str,
    ) -> Option<LlamaToken> {
        if let Some(constrained) = self.constrained.as_mut() {
            return constrained.pick(context, index);
        }
        let token = free.pick(context, index)?;
        if !answer.trim().is_empty() || (self.grammar.is_none() && !self.refuse_calls) {
            return Some(token);
        }
        let piece = String::from_utf8_lossy(&self.model.vocab().token_to_piece(token, false, None)).into_owned();
        let opens = piece.trim_start();
        if !(opens.starts_with('{') || opens.starts_with('`') || opens.starts_with('<')) {
            return Some(token);
        }
        if self.refuse_calls {
            // Sampled once more from the same logits, with a grammar that lets the answer begin with
            // anything but a call. Only this token is sampled under it, so its state ends here.
            let again = GuardedGrammar::new(self.model, NO_CALL_START_GRAMMAR, "root")
                .ok()
                .and_then(|grammar| TokenPicker::greedy_under(grammar).pick(context, index));
            return again.or(Some(token));
        }
        if opens.starts_with('<') && !opens.starts_with("<tool_call>") {
            return Some(token);
        }
        self.bare = true;
        match self.constrain() {
            Some(constrained) => constrained.pick(context, index),
            None => {
                self.bare = false;
                Some(token)
            }
        }
    }

    /// After each token: a `<tool_call>` tag just written starts the grammar for what follows.
    fn observe(&mut self, answer: &str) {
        if self.refuse_calls {
            return;
        }
        if self.constrained.is_none() && self.grammar.is_some() && answer.trim_end().ends_with("<tool_call>") {
            self.constrain();
        }
    }

    fn constrain(&mut self) -> Option<&mut TokenPicker> {
        let grammar = self.grammar.take()?;
        match GuardedGrammar::new(self.model, &format!("{grammar}tagged ::= space root\n"), "tagged") {
            Ok(grammar) => {
                self.constrained = Some(TokenPicker::greedy_under(grammar));
                self.constrained.as_mut()
            }
            Err(error) => {
                tracing::warn!(%error, "the tools' grammar did not load; tool calls are parsed as written");
                None
            }
        }
    }
}

fn rand_seed() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|since| since.subsec_nanos()).unwrap_or(7)
}

/// Where a tool call starts (or may be starting) in `text`: text from there on is held back until the call
/// is complete and parsed.
fn tool_call_start(text: &str) -> usize {
    const TAG: &str = "<tool_call>";
    if let Some(at) = text.find(TAG) {
        return at;
    }
    (1..TAG.len()).rev().find(|&length| text.ends_with(&TAG[..length])).map_or(text.len(), |length| text.len() - length)
}

/// The chat as (role, content) turns for a template that knows system, user and assistant: tools are
/// described in the system turn, calls and results become tagged text (Qwen2.5's own format).
pub fn render_messages(request: &ChatRequest) -> Vec<(&'static str, String)> {
    let mut turns: Vec<(&'static str, String)> = Vec::new();
    let tools_text = (!request.tools.is_empty()).then(|| {
        let described: Vec<String> = request
            .tools
            .iter()
            .map(|tool| {
                serde_json::json!({"type": "function", "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters}})
                    .to_string()
            })
            .collect();
        format!(
            "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n\
             You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{}\n</tools>\n\n\
             For each function call, return a json object with function name and arguments within \
             <tool_call></tool_call> XML tags:\n<tool_call>\n{{\"name\": <function-name>, \"arguments\": <args-json-object>}}\n</tool_call>",
            described.join("\n")
        )
    });
    let mut messages = request.messages.iter().peekable();
    let system = match messages.peek() {
        Some(message) if message.role == Role::System => messages.next().map(|message| message.content.clone()),
        _ => None,
    };
    if system.is_some() || tools_text.is_some() {
        let base = system.unwrap_or_else(|| "You are a helpful assistant.".to_owned());
        turns.push(("system", format!("{base}{}", tools_text.unwrap_or_default())));
    }
    for message in messages {
        match message.role {
            Role::System => turns.push(("system", message.content.clone())),
            Role::User => turns.push(("user", message.content.clone())),
            Role::Assistant => {
                let mut content = message.content.clone();
                for call in &message.tool_calls {
                    let arguments: serde_json::Value = serde_json::from_str(&call.arguments)
                        .unwrap_or(serde_json::Value::String(call.arguments.clone()));
                    content.push_str(&format!(
                        "\n<tool_call>\n{}\n</tool_call>",
                        serde_json::json!({"name": call.name, "arguments": arguments})
                    ));
                }
                turns.push(("assistant", content.trim().to_owned()));
            }
            Role::Tool => {
                let response = format!("<tool_response>\n{}\n</tool_response>", message.content);
                // Consecutive results share one user turn, as Qwen's template renders them.
                match turns.last_mut() {
                    Some((role, content)) if *role == "user" && content.ends_with("</tool_response>") => {
                        content.push('\n');
                        content.push_str(&response);
                    }
                    _ => turns.push(("user", response)),
                }
            }
        }
    }
    turns
}

/// Splits generated text into its prose and its `<tool_call>` blocks. Lenient, because small models are:
/// a missing closing tag, code fences, single quotes or `"parameters"` instead of `"arguments"` are
/// accepted; a block that is no JSON object with a name stays in the text.
pub fn parse_tool_calls(text: &str) -> (String, Vec<ToolCall>) {
    let mut prose = String::new();
    let mut calls = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<tool_call>") {
        prose.push_str(&rest[..start]);
        let after = &rest[start + "<tool_call>".len()..];
        let (body, next) = match after.find("</tool_call>") {
            Some(end) => (&after[..end], &after[end + "</tool_call>".len()..]),
            None => (after, ""),
        };
        match parse_call(body, calls.len()) {
            Some(call) => calls.push(call),
            None => prose.push_str(&rest[start..rest.len() - next.len()]),
        }
        rest = next;
    }
    prose.push_str(rest);
    (prose.trim().to_owned(), calls)
}

fn parse_call(body: &str, index: usize) -> Option<ToolCall> {
    let trimmed = body.trim().trim_start_matches("```json").trim_start_matches("```").trim_end_matches("```").trim();
    let value: serde_json::Value =
        serde_json::from_str(trimmed).or_else(|_| serde_json::from_str(&trimmed.replace('\'', "\""))).ok()?;
    let name = value.get("name")?.as_str()?.to_owned();
    let arguments =
        value.get("arguments").or_else(|| value.get("parameters")).cloned().unwrap_or(serde_json::json!({}));
    let arguments = match arguments {
        serde_json::Value::String(text) => text,
        other => other.to_string(),
    };
    Some(ToolCall { id: format!("call_{index}"), name, arguments })
}

/// For tests and benchmarks: a plain user message.
pub fn user(text: &str) -> ChatMessage {
    ChatMessage::new(Role::User, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexent_core::chat::ToolDefinition;

    #[test]
    fn tool_calls_are_parsed_leniently() {
        let (prose, calls) = parse_tool_calls(
            "Let me look.\n<tool_call>\n{\"name\": \"search\", \"arguments\": {\"query\": \"tides\"}}\n</tool_call>",
        );
        assert_eq!(prose, "Let me look.");
        assert_eq!(
            calls,
            [ToolCall { id: "call_0".into(), name: "search".into(), arguments: "{\"query\":\"tides\"}".into() }]
        );
        let (_, calls) = parse_tool_calls("<tool_call>```json\n{'name': 'a', 'parameters': {'x': 1}}\n```");
        assert_eq!((calls[0].name.as_str(), calls[0].arguments.as_str()), ("a", "{\"x\":1}"));
        let (prose, calls) = parse_tool_calls("<tool_call>not json</tool_call> done");
        assert!(calls.is_empty());
        assert_eq!(prose, "<tool_call>not json</tool_call> done");
        assert_eq!(tool_call_start("text <tool_"), 5);
        assert_eq!(tool_call_start("plain"), 5);
    }

    #[test]
    fn tools_go_into_the_system_turn_and_results_into_user_turns() {
        let mut request = ChatRequest::new(vec![
            ChatMessage::new(Role::System, "Be brief."),
            user("Weather?"),
            ChatMessage {
                role: Role::Assistant,
                content: String::new(),
                tool_calls: vec![ToolCall {
                    id: "c".into(),
                    name: "weather".into(),
                    arguments: "{\"city\":\"Oslo\"}".into(),
                }],
                tool_call_id: None,
            },
            ChatMessage { tool_call_id: Some("c".into()), ..ChatMessage::new(Role::Tool, "rain") },
        ]);
        request.tools.push(ToolDefinition {
            name: "weather".into(),
            description: "Weather of a city".into(),
            parameters: serde_json::json!({"type": "object"}),
        });
        let turns = render_messages(&request);
        assert_eq!(turns.iter().map(|(role, _)| *role).collect::<Vec<_>>(), ["system", "user", "assistant", "user"]);
        assert!(turns[0].1.starts_with("Be brief.\n\n# Tools") && turns[0].1.contains("\"name\":\"weather\""));
        assert_eq!(turns[2].1, "<tool_call>\n{\"arguments\":{\"city\":\"Oslo\"},\"name\":\"weather\"}\n</tool_call>");
        assert_eq!(turns[3].1, "<tool_response>\nrain\n</tool_response>");
    }
}
