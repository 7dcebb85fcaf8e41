//! The agent: a question answered from the user's documents and tools, streamed step by step in Nexent's
//! protocol (nexent-api.md §2), and saved to the conversation (§2.4).
//!
//! - [`machine`]: the run as a pure state machine (events in, effects out), unit-tested from scripts.
//! - [`driver`]: performs the effects: the model stream, tool calls, messages to the client, stop.
//! - [`tools`]: knowledge-base search, attached files; [`mcp`]: tools of configured MCP servers.
//! - [`Agent`]: starts runs: saves the question, chooses the tools, drives the machine on a task of its
//!   own (so a run ends and is saved even when its client goes away), and keeps runs stoppable by
//!   conversation.

pub mod driver;
pub mod labels;
pub mod machine;
pub mod mcp;
pub mod shared_runs;
pub mod tools;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use labels::Language;
pub use machine::{AgentConfig, AgentMachine, AgentTask, HistoryTurn};
use tools::{AttachedFile, AttachedFileTool, KnowledgeSearchTool, ToolBox};

use crate::chat::{PromptSpeed, SharedChatModel};
use crate::config_sync::ConfigSync;
use crate::conversation::units::StreamUnit;
use crate::conversation::{ConversationError, ConversationStore};
use crate::db::Database;
use crate::knowledge::KnowledgeBase;
use crate::storage::FileStorage;
use shared_runs::SharedRuns;
pub use shared_runs::StopReach;

/// Config Sync keys the agent reads.
pub const LANGUAGE_KEY: &str = "AGENT_LANGUAGE";
/// `true`: with no knowledge base selected, search all of them (otherwise the agent has no search tool).
pub const SEARCH_ALL_KEY: &str = "SEARCH_ALL_KNOWLEDGE_BASES";
/// `false`: the model decides whether to search in the first step too (default: it must).
pub const SEARCH_FIRST_KEY: &str = "AGENT_SEARCH_FIRST";
/// `false` makes the model write even the first, standalone search (see `AgentConfig::direct_first_search`).
pub const DIRECT_SEARCH_KEY: &str = "AGENT_DIRECT_SEARCH";
/// Tokens one step may generate.
pub const MAX_STEP_TOKENS_KEY: &str = "AGENT_MAX_STEP_TOKENS";
/// Characters of one search's results the model reads (see `AgentConfig::max_observation_chars`): fewer
/// answer sooner on a slow machine, more ground the answer in more sources. Unset, the budget follows the
/// chat model's measured prompt speed ([`observation_budget`]).
pub const OBSERVATION_CHARS_KEY: &str = "AGENT_OBSERVATION_CHARS";
/// The range `AGENT_OBSERVATION_CHARS` is held to: below it a result is cut to nothing useful, above it the
/// prompt outgrows a small model's context.
pub const OBSERVATION_CHARS_RANGE: std::ops::RangeInclusive<usize> = 300..=20_000;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("query cannot be empty")]
    EmptyQuery,
    #[error("the agent is already answering {0} questions; try again shortly")]
    Busy(usize),
    #[error(transparent)]
    Conversation(#[from] ConversationError),
    #[error("cannot reach the other nodes' agent runs: {0}")]
    Database(#[from] sqlx::Error),
    #[error("no knowledge base is named {0:?}")]
    UnknownKnowledgeBase(String),
    #[error("cannot list the knowledge bases: {0}")]
    Knowledge(String),
}

/// One question to the agent (the body of `POST /api/agent/run`).
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    pub query: String,
    pub conversation_id: Option<i64>,
    pub history: Vec<HistoryTurn>,
    /// Nexent's `minio_files` as sent: saved with the question, descriptions folded into it, objects readable
    /// by the run.
    pub minio_files: Option<Value>,
    pub language: Option<Language>,
    /// The knowledge bases this run searches, instead of Config Sync's selection (the command line's
    /// `nexent ask --kb`); each must exist.
    pub knowledge_bases: Option<Vec<String>>,
}

/// A started run: its messages as they come. The run goes on (and is saved) if this is dropped.
pub struct RunHandle {
    pub conversation_id: i64,
    pub messages: mpsc::Receiver<StreamUnit>,
    pub finished: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
pub struct Agent {
    pub conversations: ConversationStore,
    pub config_sync: Arc<ConfigSync>,
    pub knowledge: Arc<KnowledgeBase>,
    pub storage: FileStorage,
    pub chat: SharedChatModel,
    pub mcp: mcp::McpTools,
    pub runs: AgentRuns,
}

impl Agent {
    /// Stops the conversation's run wherever it streams: on this node, or (in a deployment of several
    /// nodes) on the node that holds it.
    pub async fn stop(&self, conversation_id: i64) -> Result<StopReach, AgentError> {
        if self.runs.stop(conversation_id) {
            return Ok(StopReach::Stopped);
        }
        match &self.runs.shared {
            Some(shared) => Ok(shared.request_stop(conversation_id).await?),
            None => Ok(StopReach::NotRunning),
        }
    }

    pub async fn start(&self, request: RunRequest) -> Result<RunHandle, AgentError> {
        let query = request.query.trim().to_owned();
        if query.is_empty() {
            return Err(AgentError::EmptyQuery);
        }
        // Asked-for bases are checked before anything is saved: a misspelt name is the caller's mistake.
        let existing = match self.knowledge.list_indices("*").await {
            Ok(names) => names,
            Err(error) if request.knowledge_bases.is_some() => return Err(AgentError::Knowledge(error.to_string())),
            Err(error) => {
                tracing::warn!(%error, "cannot list the knowledge bases; none is searched");
                Vec::new()
            }
        };
        if let Some(unknown) = request.knowledge_bases.iter().flatten().find(|name| !existing.contains(name)) {
            return Err(AgentError::UnknownKnowledgeBase(unknown.clone()));
        }
        // Admission before anything is saved: a run over capacity is refused whole.
        let permit = self.runs.admit()?;
        let conversation_id = match request.conversation_id {
            Some(id) => self.conversations.get(id).await?.id,
            None => self.conversations.create(None).await?.id,
        };
        // Stoppable from here on: choosing the tools may wait for an MCP server's first connection.
        let (run_id, stop) = self.runs.register(conversation_id);
        self.runs.announce(run_id, conversation_id).await;
        let saved = self.conversations.append_user_message(conversation_id, &query, request.minio_files.as_ref()).await;
        if let Err(error) = saved {
            self.runs.retire(conversation_id, run_id).await;
            return Err(error.into());
        }

        let tools = self.tools_for(request.minio_files.as_ref(), request.knowledge_bases, existing).await;
        let language = request
            .language
            .or_else(|| self.config_sync.get(LANGUAGE_KEY).map(|value| Language::parse(&value)))
            .unwrap_or_default();
        let assistant_name = Some(self.config_sync.load().app.name).filter(|name| !name.trim().is_empty());
        let defaults = AgentConfig::default();
        let max_step_tokens = self
            .config_sync
            .get(MAX_STEP_TOKENS_KEY)
            .and_then(|value| value.trim().parse::<u32>().ok())
            .filter(|tokens| *tokens > 0)
            .unwrap_or(defaults.max_step_tokens);
        let answer_language = Language::of_text(&query);
        let max_observation_chars = observation_chars(self.config_sync.get(OBSERVATION_CHARS_KEY).as_deref())
            .unwrap_or_else(|| {
                observation_budget(self.chat.prompt_speed(), answer_language, defaults.max_observation_chars)
            });
        let config = AgentConfig {
            max_step_tokens,
            max_observation_chars,
            language,
            answer_language,
            assistant_name: assistant_name.unwrap_or_else(|| "Nexent".into()),
            search_first: self.config_sync.get(SEARCH_FIRST_KEY).is_none_or(|value| is_true(&value)),
            direct_first_search: self.config_sync.get(DIRECT_SEARCH_KEY).is_none_or(|value| is_true(&value)),
            ..defaults
        };
        let task = AgentTask {
            query: fold_attachments(&query, request.minio_files.as_ref()),
            history: request.history,
            tools: tools.specs(),
        };
        let machine = AgentMachine::new(config, task);
        let (sink, messages) = mpsc::channel(256);
        // The stream ends when its last sender goes: this one is dropped after the answer is saved, so a
        // client that reloads the conversation when the stream ends finds the answer there.
        let open_until_saved = sink.clone();
        let driver = driver::Driver::new(machine, self.chat.clone(), tools, stop, sink);
        let conversations = self.conversations.clone();
        let runs = self.runs.clone();
        let finished = tokio::spawn(async move {
            let produced = driver.run().await;
            if let Err(error) = conversations.append_assistant_message(conversation_id, produced).await {
                tracing::error!(conversation_id, %error, "cannot save the agent's answer");
            }
            runs.retire(conversation_id, run_id).await;
            drop(permit);
            drop(open_until_saved);
        });
        Ok(RunHandle { conversation_id, messages, finished })
    }

    /// The run's tools: a search of `asked` bases (all of which exist) or else of Config Sync's selection,
    /// the attached files, and the MCP servers' tools.
    async fn tools_for(
        &self,
        minio_files: Option<&Value>,
        asked: Option<Vec<String>>,
        existing: Vec<String>,
    ) -> ToolBox {
        let mut tools = ToolBox::default();
        let index_names = match asked {
            Some(names) => names,
            None => {
                let selected: Vec<String> = self
                    .config_sync
                    .selected_knowledge_bases()
                    .into_iter()
                    .filter(|name| {
                        let exists = existing.contains(name);
                        if !exists {
                            tracing::warn!(index = %name, "a selected knowledge base does not exist; not searched");
                        }
                        exists
                    })
                    .collect();
                let search_all = self.config_sync.get(SEARCH_ALL_KEY).is_some_and(|value| is_true(&value));
                if selected.is_empty() && search_all { existing } else { selected }
            }
        };
        if !index_names.is_empty() {
            tools.push(Arc::new(KnowledgeSearchTool { knowledge: self.knowledge.clone(), index_names, top_k: 5 }));
        }
        let files = attached_files(minio_files);
        if !files.is_empty() {
            tools.push(Arc::new(AttachedFileTool { storage: self.storage.clone(), files }));
        }
        for tool in self.mcp.tools().await {
            let name = tool.spec().definition.name;
            if tools.get(&name).is_some() {
                // One name must mean one tool for the model and the grammar; ours (or the first) wins.
                tracing::warn!(tool = %name, "an MCP tool has the name of another tool; not offered");
                continue;
            }
            tools.push(tool);
        }
        tools
    }
}

/// The time the model may spend reading one search's results before it starts the answer. With the
/// question, the call and the chat template around them (about 0.7 s more on 2 cores), the first answer
/// token comes within about 1.5 s (bench/results/agent.md).
const OBSERVATION_SECONDS: f64 = 0.6;
/// Characters per prompt token of English prose and JSON in the Qwen and Llama tokenizers, and of Chinese
/// text (sources of a Chinese question are most likely Chinese).
fn chars_per_token(language: Language) -> f64 {
    match language {
        Language::English => 3.5,
        Language::Chinese => 1.5,
    }
}
/// The least budget the speed may set: the best-matching window of the first source (the bench's facts
/// all held at 300 characters).
const MIN_OBSERVATION_CHARS: usize = 300;

/// Characters of search results for a model that reads its prompt at `speed`: what it reads in
/// [`OBSERVATION_SECONDS`], between [`MIN_OBSERVATION_CHARS`] and `most`. A model whose speed is not known
/// yet gets the least (the first question of a process is answered quickly, the next ones take the
/// measured rate); one not bound by this machine gets `most`.
pub fn observation_budget(speed: PromptSpeed, language: Language, most: usize) -> usize {
    let least = MIN_OBSERVATION_CHARS.min(most);
    match speed {
        PromptSpeed::Unbounded => most,
        PromptSpeed::Unmeasured => least,
        PromptSpeed::TokensPerSecond(rate) if rate.is_finite() && rate > 0.0 => {
            ((rate * OBSERVATION_SECONDS * chars_per_token(language)) as usize).clamp(least, most)
        }
        PromptSpeed::TokensPerSecond(_) => least,
    }
}

/// `AGENT_OBSERVATION_CHARS` as a count within [`OBSERVATION_CHARS_RANGE`]; None (the default) when it is
/// unset or not a number.
fn observation_chars(value: Option<&str>) -> Option<usize> {
    let chars = value?.trim().parse::<usize>().ok()?;
    Some(chars.clamp(*OBSERVATION_CHARS_RANGE.start(), *OBSERVATION_CHARS_RANGE.end()))
}

fn is_true(value: &str) -> bool {
    matches!(value.trim().to_lowercase().as_str(), "true" | "1" | "yes" | "on")
}

/// §1.1: descriptions of attached files go before the question.
pub fn fold_attachments(query: &str, minio_files: Option<&Value>) -> String {
    let descriptions: Vec<&str> = minio_files
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|file| file.get("description").and_then(Value::as_str))
        .filter(|description| !description.trim().is_empty())
        .collect();
    if descriptions.is_empty() {
        return query.to_owned();
    }
    format!(
        "User provided some reference files:\n{}\n\nUser wants to answer questions based on the above information: {query}",
        descriptions.join("\n")
    )
}

fn attached_files(minio_files: Option<&Value>) -> Vec<AttachedFile> {
    minio_files
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|file| {
            let object_name = file.get("object_name").and_then(Value::as_str)?.to_owned();
            let name = file.get("name").and_then(Value::as_str).unwrap_or(&object_name).to_owned();
            Some(AttachedFile { object_name, name })
        })
        .collect()
}

/// A run in progress: its id and what stops it.
type RunEntry = (u64, CancellationToken);

/// Runs at once by default: the local engine's queue holds 8 requests, and each run has one at a time.
pub const DEFAULT_MAX_RUNS: usize = 8;

/// The runs in progress, by conversation, so `GET /api/agent/stop/{id}` can stop them; and how many may
/// run at once.
#[derive(Clone)]
pub struct AgentRuns {
    next_id: Arc<AtomicU64>,
    running: Arc<Mutex<HashMap<i64, Vec<RunEntry>>>>,
    capacity: Arc<tokio::sync::Semaphore>,
    max_runs: usize,
    /// The other nodes' view of this node's runs, in a deployment that shares its database.
    shared: Option<SharedRuns>,
}

impl Default for AgentRuns {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_RUNS)
    }
}

impl AgentRuns {
    pub fn new(max_runs: usize) -> Self {
        Self {
            next_id: Arc::default(),
            running: Arc::default(),
            capacity: Arc::new(tokio::sync::Semaphore::new(max_runs.max(1))),
            max_runs: max_runs.max(1),
            shared: None,
        }
    }

    /// Runs that nodes sharing `db` can stop; starts the loop that obeys their requests.
    pub fn shared(db: Database) -> Self {
        let mut runs = Self::default();
        let shared = SharedRuns::new(db);
        runs.shared = Some(shared.clone());
        shared.watch(runs.clone());
        runs
    }

    /// Makes a registered run visible to the other nodes of a shared deployment (nothing otherwise).
    async fn announce(&self, run_id: u64, conversation_id: i64) {
        if let Some(shared) = &self.shared {
            shared.announce(run_id, conversation_id).await;
        }
    }

    /// Unregisters a run that ended, here and for the other nodes.
    async fn retire(&self, conversation_id: i64, run_id: u64) {
        self.unregister(conversation_id, run_id);
        if let Some(shared) = &self.shared {
            shared.retire(run_id).await;
        }
    }

    /// Stops one run by its id; false when it is not running here or was already stopped.
    fn stop_run(&self, run_id: u64) -> bool {
        let running = crate::sync::lock(&self.running);
        let token = running.values().flatten().find(|(id, _)| *id == run_id).map(|(_, token)| token.clone());
        match token {
            Some(token) if !token.is_cancelled() => {
                token.cancel();
                true
            }
            _ => false,
        }
    }

    fn admit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, AgentError> {
        self.capacity.clone().try_acquire_owned().map_err(|_| AgentError::Busy(self.max_runs))
    }

    fn register(&self, conversation_id: i64) -> (u64, CancellationToken) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let token = CancellationToken::new();
        crate::sync::lock(&self.running).entry(conversation_id).or_default().push((id, token.clone()));
        (id, token)
    }

    fn unregister(&self, conversation_id: i64, run_id: u64) {
        let mut running = crate::sync::lock(&self.running);
        if let Some(runs) = running.get_mut(&conversation_id) {
            runs.retain(|(id, _)| *id != run_id);
            if runs.is_empty() {
                running.remove(&conversation_id);
            }
        }
    }

    /// Stops the conversation's runs; false when none is running.
    pub fn stop(&self, conversation_id: i64) -> bool {
        let running = crate::sync::lock(&self.running);
        match running.get(&conversation_id) {
            Some(runs) if !runs.is_empty() => {
                runs.iter().for_each(|(_, token)| token.cancel());
                true
            }
            _ => false,
        }
    }

    pub fn running(&self) -> usize {
        crate::sync::lock(&self.running).values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_observation_budget_setting_is_a_count_in_range_or_the_default() {
        assert_eq!(observation_chars(Some(" 1200 ")), Some(1200));
        assert_eq!(observation_chars(Some("5")), Some(300), "raised to the least useful budget");
        assert_eq!(observation_chars(Some("99999999999")), Some(20_000));
        for hostile in ["", "-1", "1e3", "lots", "12 00", "18446744073709551616"] {
            assert_eq!(observation_chars(Some(hostile)), None, "{hostile:?} keeps the default");
        }
        assert_eq!(observation_chars(None), None);
    }

    #[test]
    fn the_observation_budget_follows_the_prompt_speed() {
        assert_eq!(
            observation_budget(PromptSpeed::Unbounded, Language::English, 2400),
            2400,
            "a remote server is not this machine"
        );
        assert_eq!(
            observation_budget(PromptSpeed::Unmeasured, Language::English, 2400),
            300,
            "unknown speed: assume a slow machine"
        );
        // 2 cores reading a 0.5B model at ~160 tokens/s: about 340 characters; a fast machine gets more.
        assert_eq!(observation_budget(PromptSpeed::TokensPerSecond(160.0), Language::English, 2400), 336);
        assert_eq!(observation_budget(PromptSpeed::TokensPerSecond(600.0), Language::English, 2400), 1260);
        assert_eq!(observation_budget(PromptSpeed::TokensPerSecond(50_000.0), Language::English, 2400), 2400);
        assert_eq!(observation_budget(PromptSpeed::TokensPerSecond(20.0), Language::English, 2400), 300);
        for hostile in [f64::NAN, f64::INFINITY, -5.0, 0.0] {
            assert_eq!(
                observation_budget(PromptSpeed::TokensPerSecond(hostile), Language::English, 2400),
                300,
                "{hostile}"
            );
        }
        assert_eq!(
            observation_budget(PromptSpeed::Unmeasured, Language::English, 200),
            200,
            "never above the most allowed"
        );
        // Chinese takes about 1.5 characters a token: the same time reads fewer characters.
        assert_eq!(observation_budget(PromptSpeed::TokensPerSecond(600.0), Language::Chinese, 2400), 540);
    }

    #[test]
    fn attachments_are_folded_into_the_query_as_nexent_does() {
        let files = serde_json::json!([{"object_name": "a/1.txt", "name": "notes.txt", "description": "File notes.txt content: hi"}, {"name": "x"}]);
        assert_eq!(
            fold_attachments("What?", Some(&files)),
            "User provided some reference files:\nFile notes.txt content: hi\n\nUser wants to answer questions based on the above information: What?"
        );
        assert_eq!(fold_attachments("What?", None), "What?");
        assert_eq!(
            attached_files(Some(&files)),
            vec![AttachedFile { object_name: "a/1.txt".into(), name: "notes.txt".into() }]
        );
    }

    #[test]
    fn runs_are_stopped_by_conversation() {
        let runs = AgentRuns::default();
        let (first, token) = runs.register(7);
        let (_, other) = runs.register(8);
        assert!(runs.stop(7));
        assert!(token.is_cancelled() && !other.is_cancelled());
        runs.unregister(7, first);
        assert!(!runs.stop(7));
        assert_eq!(runs.running(), 1);
    }
}
