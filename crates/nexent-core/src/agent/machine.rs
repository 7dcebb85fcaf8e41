//! The agent as a pure state machine: it takes events (model text, tool calls, tool results, the end of a
//! generation, cancellation) and returns effects (emit a stream message, call the model, call a tool,
//! finish). No IO and no clock: the driver passes the time of each event, so every run can be replayed in a
//! unit test from a script of events.
//!
//! A run is a ReAct loop of steps. Each step calls the model with the conversation so far and the tools;
//! text it writes streams as `model_output_thinking`; a tool call it makes is shown (`model_output_code`,
//! `parse`, `tool`, `card`), performed, and its result shown (`search_content`, `execution_logs`) and given
//! back to the model for the next step. A step without a tool call ends the run with its text as the
//! `final_answer`. Small models loop, so a repeated call is not run again, tools are offered for at most
//! `max_tool_rounds` steps, and the last step (`max_steps`) must answer without tools.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use super::labels::Language;
use crate::chat::{ChatMessage, ChatRequest, FinishReason, Role, ToolCall, ToolChoice, ToolDefinition};
use crate::conversation::units::{SEARCH_CONTENT_TYPE, StreamUnit};
use crate::language::is_cjk;

/// Stream message types of nexent-api.md §2.2.
pub mod kinds {
    pub const AGENT_NEW_RUN: &str = "agent_new_run";
    pub const STEP_COUNT: &str = "step_count";
    pub const THINKING: &str = "model_output_thinking";
    pub const CODE: &str = "model_output_code";
    pub const PARSE: &str = "parse";
    pub const EXECUTION_LOGS: &str = "execution_logs";
    pub const TOKEN_COUNT: &str = "token_count";
    pub const TOOL: &str = "tool";
    pub const CARD: &str = "card";
    pub const ERROR: &str = "error";
    pub const FINAL_ANSWER: &str = "final_answer";
}

#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The language of the step labels (the user's choice for the screen).
    pub language: Language,
    /// The language the answer is written in: the question's ([`Language::of_text`]).
    pub answer_language: Language,
    /// Steps of a run, the last one answering without tools.
    pub max_steps: usize,
    /// Steps in which tools are offered.
    pub max_tool_rounds: usize,
    pub temperature: f32,
    /// Tokens one step may generate.
    pub max_step_tokens: u32,
    /// Prior messages of the conversation given to the model (the most recent ones).
    pub max_history_messages: usize,
    /// Characters of one search result's text the model sees.
    pub max_result_chars: usize,
    /// Characters of all of one search's results together: every character is prompt the model must read
    /// before its first answer token (about 4 characters a token; a 0.5B model on 2 cores reads some
    /// 150-250 tokens a second), so the best results get the room and a long one keeps the sentences
    /// nearest the question ([`focused_text`]).
    pub max_observation_chars: usize,
    /// Who the assistant is, opening the system prompt.
    pub assistant_name: String,
    /// The first step must call a tool when a search tool is offered ("always retrieve"): small models
    /// answer from memory too often when left to choose. The query is still the model's own.
    pub search_first: bool,
    /// When the first step must search and the question stands alone (no earlier turns, no attachment to
    /// read), the question itself is the query: the call is made without asking the model to write it,
    /// which on a small CPU costs more than the search and the answer together.
    pub direct_first_search: bool,
    /// A step that found sources (or read an attachment) is followed by the answer (small models otherwise
    /// search again and again).
    pub answer_after_sources: bool,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            language: Language::English,
            answer_language: Language::English,
            max_steps: 5,
            max_tool_rounds: 3,
            temperature: 0.0,
            max_step_tokens: 768,
            max_history_messages: 10,
            max_result_chars: 1200,
            max_observation_chars: 2400,
            assistant_name: "Nexent".into(),
            search_first: true,
            direct_first_search: true,
            answer_after_sources: true,
        }
    }
}

/// How the run presents a tool and reads its results.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolKind {
    /// Results are cited sources (`search_content`, cite indices `{sign}{n}`).
    Search { sign: String, search_type: String },
    /// Reads what the user gave (an attached file): results are text, and like a search it grounds the
    /// answer (the first step must call one of these, and the answer follows).
    Reader,
    /// Results are text for the model.
    Plain,
}

impl ToolKind {
    fn grounds(&self) -> bool {
        matches!(self, ToolKind::Search { .. } | ToolKind::Reader)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub definition: ToolDefinition,
    pub kind: ToolKind,
}

/// A search result a tool found (nexent-api.md §2.3, before its cite index is given).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FoundSource {
    pub title: String,
    pub text: String,
    pub url: String,
    pub filename: String,
    pub source_type: String,
    pub published_date: String,
    pub score: f64,
    pub accurate: Option<f64>,
    pub semantic: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ToolOutcome {
    Text(String),
    Sources(Vec<FoundSource>),
    Failed(String),
}

/// One turn of the conversation before this question.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryTurn {
    pub role: Role,
    pub content: String,
}

#[derive(Debug, Clone)]
pub struct AgentTask {
    /// The question as the model gets it (with attachment descriptions folded in).
    pub query: String,
    pub history: Vec<HistoryTurn>,
    pub tools: Vec<ToolSpec>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    ModelText(String),
    ModelToolCalls(Vec<ToolCall>),
    ModelFinished(FinishReason),
    ModelFailed(String),
    ToolFinished(ToolOutcome),
    /// The user stopped the run, or its client went away (the reason is shown).
    Cancelled(Option<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Emit(StreamUnit),
    CallModel(ChatRequest),
    CallTool(ToolCall),
    Finish,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ready,
    Generating,
    RunningTool,
    Finished,
}

pub struct AgentMachine {
    config: AgentConfig,
    tools: Vec<ToolSpec>,
    query: String,
    messages: Vec<ChatMessage>,
    phase: Phase,
    step: usize,
    tool_rounds: usize,
    step_started: Duration,
    step_text: String,
    step_calls: Vec<ToolCall>,
    /// Calls of this step still to run, in order.
    queued_calls: Vec<ToolCall>,
    running: Option<ToolCall>,
    seen_calls: HashSet<(String, String)>,
    /// The next step answers without tools.
    must_answer: bool,
    /// The current step offered tools (calls in a step that did not are ignored: a remote model may
    /// disregard `tool_choice` none, and running them would loop past `max_steps`).
    offered_tools: bool,
    next_cite: usize,
    /// (`a0`, text) of every source shown, for citing the answer.
    cited: Vec<(String, String)>,
}

impl AgentMachine {
    pub fn new(config: AgentConfig, task: AgentTask) -> Self {
        let mut messages = vec![ChatMessage::new(Role::System, system_prompt(&config, &task.tools))];
        let skip = task.history.len().saturating_sub(config.max_history_messages);
        for turn in task.history.into_iter().skip(skip) {
            if matches!(turn.role, Role::User | Role::Assistant) && !turn.content.trim().is_empty() {
                messages.push(ChatMessage::new(turn.role, turn.content.trim()));
            }
        }
        messages.push(ChatMessage::new(Role::User, task.query.clone()));
        Self {
            config,
            tools: task.tools,
            query: task.query,
            messages,
            phase: Phase::Ready,
            step: 0,
            tool_rounds: 0,
            step_started: Duration::ZERO,
            step_text: String::new(),
            step_calls: Vec::new(),
            queued_calls: Vec::new(),
            running: None,
            seen_calls: HashSet::new(),
            must_answer: false,
            offered_tools: false,
            next_cite: 0,
            cited: Vec::new(),
        }
    }

    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished
    }

    /// Starts the run: `agent_new_run`, then the first step.
    pub fn start(&mut self, now: Duration) -> Vec<Effect> {
        let mut effects = vec![emit(kinds::AGENT_NEW_RUN, &self.query)];
        self.begin_step(now, &mut effects);
        effects
    }

    pub fn handle(&mut self, event: Event, now: Duration) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.phase == Phase::Finished {
            return effects;
        }
        match (event, self.phase) {
            (Event::Cancelled(reason), _) => {
                let message = reason.unwrap_or_else(|| self.config.language.stopped().to_owned());
                self.fail(&message, &mut effects);
            }
            (Event::ModelText(text), Phase::Generating) if !text.is_empty() => {
                self.step_text.push_str(&text);
                effects.push(emit(kinds::THINKING, &text));
            }
            (Event::ModelToolCalls(calls), Phase::Generating) => self.step_calls.extend(calls),
            (Event::ModelFinished(reason), Phase::Generating) => self.end_generation(reason, now, &mut effects),
            (Event::ModelFailed(message), Phase::Generating) => self.fail(&message, &mut effects),
            (Event::ToolFinished(outcome), Phase::RunningTool) => self.tool_finished(outcome, now, &mut effects),
            // An event the phase does not expect (a driver bug) is ignored rather than corrupting the run.
            _ => {}
        }
        effects
    }

    fn begin_step(&mut self, now: Duration, effects: &mut Vec<Effect>) {
        self.step += 1;
        self.step_started = now;
        self.step_text.clear();
        self.step_calls.clear();
        effects.push(emit(kinds::STEP_COUNT, &self.config.language.step_count(self.step)));
        let offer_tools = !self.must_answer
            && self.step < self.config.max_steps
            && self.tool_rounds < self.config.max_tool_rounds
            && !self.tools.is_empty();
        if offer_tools && let Some(call) = self.direct_search_call() {
            // Shown and recorded as if the model had written it, so the next step's prompt has the shape
            // the model knows (and its start stays the same across questions, for the engine's cache).
            self.offered_tools = true;
            self.tool_rounds += 1;
            let mut assistant = ChatMessage::new(Role::Assistant, "");
            assistant.tool_calls = vec![call.clone()];
            self.messages.push(assistant);
            effects.push(emit(kinds::CODE, &call_text(&call)));
            self.queued_calls = vec![call];
            self.next_call(now, effects);
            return;
        }
        let mut request = ChatRequest::new(self.messages.clone());
        if !offer_tools && !self.tools.is_empty() {
            // Described but not callable: the prompt's start stays as in the steps before, and the
            // engine reuses what it computed for them.
            request.tools = self.tools.iter().map(|tool| tool.definition.clone()).collect();
            request.tool_choice = ToolChoice::None;
        }
        if offer_tools {
            request.tools = self.tools.iter().map(|tool| tool.definition.clone()).collect();
            let grounded = self.tools.iter().any(|tool| tool.kind.grounds());
            if self.step == 1 && self.config.search_first && grounded {
                request.tool_choice = ToolChoice::Required;
            }
        } else if self.tool_rounds > 0 {
            // Results are in; a small model answers better when the question is put again beside them.
            request.messages.push(ChatMessage::new(
                Role::User,
                // Asking a 0.5B model for citations here makes it answer with a citation alone; the
                // answer is cited afterwards instead (`cite_sources`).
                format!("Using the results above, answer this question in one or two full sentences: {}", self.query),
            ));
        }
        self.offered_tools = offer_tools;
        request.temperature = Some(self.config.temperature);
        request.max_tokens = Some(self.config.max_step_tokens);
        self.phase = Phase::Generating;
        effects.push(Effect::CallModel(request));
    }

    fn end_generation(&mut self, reason: FinishReason, now: Duration, effects: &mut Vec<Effect>) {
        let mut calls = std::mem::take(&mut self.step_calls);
        if !self.offered_tools {
            calls.clear();
        }
        if calls.is_empty() {
            let answer = self.step_text.trim().to_owned();
            self.end_step(now, effects);
            if answer.is_empty() {
                let message = match reason {
                    FinishReason::Length => "The model ran out of room before it answered",
                    _ => "The model gave an empty answer",
                };
                self.fail(message, effects);
                return;
            }
            effects.push(emit(kinds::FINAL_ANSWER, &format!("\n{}", cite_sources(&answer, &self.cited))));
            self.phase = Phase::Finished;
            effects.push(Effect::Finish);
            return;
        }
        self.tool_rounds += 1;
        let mut assistant = ChatMessage::new(Role::Assistant, self.step_text.trim());
        assistant.tool_calls = calls.clone();
        self.messages.push(assistant);
        for call in &calls {
            effects.push(emit(kinds::CODE, &call_text(call)));
        }
        self.queued_calls = calls;
        self.queued_calls.reverse();
        self.next_call(now, effects);
    }

    /// Starts the next queued call of this step, or ends the step when none is left.
    fn next_call(&mut self, now: Duration, effects: &mut Vec<Effect>) {
        while let Some(call) = self.queued_calls.pop() {
            let arguments = normalised_arguments(&call.arguments);
            let Some(kind) = self.tool(&call.name).map(|tool| tool.kind.clone()) else {
                let known: Vec<&str> = self.tools.iter().map(|tool| tool.definition.name.as_str()).collect();
                let message =
                    format!("The model called an unknown tool {:?}; the tools are: {}", call.name, known.join(", "));
                effects.push(emit(kinds::ERROR, &self.config.language.error(&message)));
                self.answer_call(&call, &format!("Error: {message}"));
                continue;
            };
            let arguments = match arguments {
                Ok(arguments) => arguments,
                Err(reason) => {
                    let message =
                        format!("The call of {} had arguments that are not a JSON object: {reason}", call.name);
                    effects.push(emit(kinds::ERROR, &self.config.language.error(&message)));
                    self.answer_call(&call, &format!("Error: {message}"));
                    continue;
                }
            };
            if !self.seen_calls.insert((call.name.clone(), arguments.to_string())) {
                // The same call again: its result is already in the conversation.
                self.answer_call(&call, "You already have the result of this call above. Answer from it now.");
                self.must_answer = true;
                continue;
            }
            let shown = serde_json::to_string_pretty(&arguments).unwrap_or_default();
            effects.push(emit(kinds::PARSE, &self.config.language.used_tool(&call.name, &shown)));
            match kind {
                ToolKind::Search { .. } => {
                    effects.push(emit(kinds::TOOL, self.config.language.searching()));
                    let text = arguments.get("query").and_then(Value::as_str).unwrap_or_default();
                    effects.push(emit(kinds::CARD, &json!([{"icon": "search", "text": text}]).to_string()));
                }
                ToolKind::Reader => effects.push(emit(kinds::TOOL, self.config.language.reading())),
                ToolKind::Plain => effects.push(emit(kinds::TOOL, &self.config.language.calling(&call.name))),
            }
            let call = ToolCall { arguments: arguments.to_string(), ..call };
            self.running = Some(call.clone());
            self.phase = Phase::RunningTool;
            effects.push(Effect::CallTool(call));
            return;
        }
        self.end_step(now, effects);
        self.begin_step(now, effects);
    }

    fn tool_finished(&mut self, outcome: ToolOutcome, now: Duration, effects: &mut Vec<Effect>) {
        let Some(call) = self.running.take() else { return };
        let kind = self.tool(&call.name).map(|tool| tool.kind.clone());
        let found_something = match &outcome {
            ToolOutcome::Text(_) => true,
            ToolOutcome::Sources(sources) => !sources.is_empty(),
            ToolOutcome::Failed(_) => false,
        };
        if found_something && self.config.answer_after_sources && kind.as_ref().is_some_and(ToolKind::grounds) {
            self.must_answer = true;
        }
        let observation = match outcome {
            ToolOutcome::Text(text) => {
                effects.push(emit(kinds::EXECUTION_LOGS, &self.config.language.execution_logs(&text)));
                text
            }
            ToolOutcome::Sources(sources) if sources.is_empty() => {
                let text = "No results were found for this query.".to_owned();
                effects.push(emit(kinds::EXECUTION_LOGS, &self.config.language.execution_logs(&text)));
                text
            }
            ToolOutcome::Sources(sources) => {
                let (sign, search_type) = match kind {
                    Some(ToolKind::Search { sign, search_type }) => (sign, search_type),
                    _ => ("a".to_owned(), call.name.clone()),
                };
                let mut shown = Vec::new();
                let mut seen_by_model = Vec::new();
                let mut room = self.config.max_observation_chars;
                for source in sources {
                    let cite_index = self.next_cite;
                    self.next_cite += 1;
                    let index = format!("{sign}{cite_index}");
                    self.cited.push((index.clone(), source.text.clone()));
                    // Every result is shown and citable; the model reads those that fit its budget.
                    let share = room.min(self.config.max_result_chars);
                    if share >= MIN_RESULT_CHARS {
                        let text = focused_text(&source.text, &self.query, share);
                        room = room.saturating_sub(text.chars().count());
                        seen_by_model.push(json!({"title": source.title, "text": text, "index": index}));
                    }
                    shown.push(json!({
                        "title": source.title, "url": source.url, "text": source.text,
                        "published_date": source.published_date, "source_type": source.source_type,
                        "filename": source.filename, "score": source.score,
                        "score_details": {"accurate": source.accurate, "semantic": source.semantic},
                        "cite_index": cite_index, "search_type": search_type, "tool_sign": sign,
                    }));
                }
                effects.push(emit(SEARCH_CONTENT_TYPE, &Value::Array(shown).to_string()));
                let seen_by_model = Value::Array(seen_by_model);
                let shown_to_user = serde_json::to_string_pretty(&seen_by_model).unwrap_or_default();
                effects.push(emit(kinds::EXECUTION_LOGS, &self.config.language.execution_logs(&shown_to_user)));
                // Compact for the model: every token of the prompt costs time on a small machine.
                seen_by_model.to_string()
            }
            ToolOutcome::Failed(message) => {
                effects.push(emit(kinds::ERROR, &self.config.language.error(&message)));
                format!("Error: {message}")
            }
        };
        self.answer_call(&call, &observation);
        self.next_call(now, effects);
    }

    /// The first step's search, made from the question itself, when that needs no model: see
    /// [`AgentConfig::direct_first_search`]. A follow-up question ("and its price?") needs the earlier
    /// turns to become a query, and an attachment must be read first, so those steps ask the model.
    fn direct_search_call(&self) -> Option<ToolCall> {
        let first_turn = self.messages.iter().filter(|message| message.role != Role::System).count() == 1;
        if !(self.step == 1 && self.config.search_first && self.config.direct_first_search && first_turn) {
            return None;
        }
        if self.tools.iter().any(|tool| tool.kind == ToolKind::Reader) {
            return None;
        }
        let search = self.tools.iter().find(|tool| matches!(tool.kind, ToolKind::Search { .. }))?;
        let query = truncate_chars(self.query.trim(), MAX_DIRECT_QUERY_CHARS).trim_end_matches('…').to_owned();
        Some(ToolCall {
            id: "call_0".into(),
            name: search.definition.name.clone(),
            arguments: json!({ "query": query }).to_string(),
        })
    }

    fn tool(&self, name: &str) -> Option<&ToolSpec> {
        self.tools.iter().find(|tool| tool.definition.name == name)
    }

    fn answer_call(&mut self, call: &ToolCall, content: &str) {
        let mut message = ChatMessage::new(Role::Tool, content);
        message.tool_call_id = Some(call.id.clone());
        self.messages.push(message);
    }

    fn end_step(&mut self, now: Duration, effects: &mut Vec<Effect>) {
        let seconds = now.saturating_sub(self.step_started).as_secs_f64();
        effects.push(emit(kinds::TOKEN_COUNT, &self.config.language.duration(seconds)));
    }

    fn fail(&mut self, message: &str, effects: &mut Vec<Effect>) {
        effects.push(emit(kinds::ERROR, &self.config.language.error(message)));
        self.phase = Phase::Finished;
        effects.push(Effect::Finish);
    }
}

/// A question longer than this is cut for its direct search (search engines weigh a few words anyway).
const MAX_DIRECT_QUERY_CHARS: usize = 500;

fn emit(kind: &str, content: &str) -> Effect {
    Effect::Emit(StreamUnit::new(kind, content))
}

fn system_prompt(config: &AgentConfig, tools: &[ToolSpec]) -> String {
    let mut prompt = format!("You are {}, a helpful assistant.", config.assistant_name);
    if tools.iter().any(|tool| matches!(tool.kind, ToolKind::Search { .. })) {
        prompt.push_str(
            " The user's own documents are in a knowledge base. For any question that may be answered by them \
             (facts, names, numbers, products, people, places), first call knowledge_base_search with a short \
             query, then answer only from the results and cite each result you use by its index, like [[a0]]. \
             If the results do not hold the answer, say that the documents do not say.",
        );
    }
    if tools.iter().any(|tool| tool.kind == ToolKind::Reader) {
        prompt
            .push_str(" The user attached files to the question: read them with read_attached_file before answering.");
    }
    // Small models answer in the language of their instructions unless told; an English question keeps
    // the prompt as it was (and the KV cache of English conversations).
    if config.answer_language == Language::Chinese {
        prompt.push_str(" The user writes in Chinese: answer in Simplified Chinese. 请用简体中文回答。");
    }
    prompt
}

/// The call as the model wrote it, for `model_output_code`.
fn call_text(call: &ToolCall) -> String {
    let arguments: Value = serde_json::from_str(&call.arguments).unwrap_or(Value::String(call.arguments.clone()));
    json!({"name": call.name, "arguments": arguments}).to_string()
}

/// Arguments as a JSON object; a JSON string holding an object (some models double-encode) is unwrapped.
fn normalised_arguments(arguments: &str) -> Result<Value, String> {
    let trimmed = arguments.trim();
    let value: Value = if trimmed.is_empty() {
        json!({})
    } else {
        serde_json::from_str(trimmed).map_err(|error| error.to_string())?
    };
    match value {
        Value::Object(_) => Ok(value),
        Value::String(inner) => match serde_json::from_str::<Value>(&inner) {
            Ok(object @ Value::Object(_)) => Ok(object),
            _ => Err(format!("a string, {inner:?}")),
        },
        other => Err(format!("{other}")),
    }
}

/// A result with less room than this is left out of the model's prompt (it is still shown and citable).
const MIN_RESULT_CHARS: usize = 120;

/// At most `limit` characters of `text` for a model answering `query`: all of it when it fits; otherwise
/// the sentences sharing most words with the query, in their original order, with `…` where text was
/// left out. A fact is usually in the sentence that names what was asked about, wherever the chunk has it.
pub(super) fn focused_text(text: &str, query: &str, limit: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let sentences = split_sentences(text);
    let query_words = words(query);
    let mut ranked: Vec<(usize, usize)> = sentences
        .iter()
        .enumerate()
        .map(|(position, sentence)| (position, words(sentence).intersection(&query_words).count()))
        .collect();
    // Most shared words first; ties to the earlier sentence (a chunk's start often names its subject).
    ranked.sort_by(|left, right| right.1.cmp(&left.1).then(left.0.cmp(&right.0)));
    let mut chosen = Vec::new();
    let mut used = 0;
    for (position, _) in ranked {
        let length = sentences[position].chars().count() + 2;
        if used + length <= limit {
            chosen.push(position);
            used += length;
        }
    }
    if chosen.is_empty() {
        return truncate_chars(text, limit.saturating_sub(1));
    }
    chosen.sort_unstable();
    let mut focused = String::new();
    let mut next = 0;
    for position in chosen {
        if position > next {
            focused.push_str(if focused.is_empty() { "… " } else { " … " });
        } else if !focused.is_empty() {
            focused.push(' ');
        }
        focused.push_str(sentences[position]);
        next = position + 1;
    }
    if next < sentences.len() {
        focused.push_str(" …");
    }
    focused
}

/// Sentences of `text`: split after `.`, `!`, `?` (and their full-width forms) followed by a space or
/// the end, and at line breaks; each trimmed, empty ones dropped.
fn split_sentences(text: &str) -> Vec<&str> {
    let mut sentences = Vec::new();
    let mut start = 0;
    let mut characters = text.char_indices().peekable();
    while let Some((offset, character)) = characters.next() {
        let next_is_break = characters.peek().is_none_or(|(_, next)| next.is_whitespace());
        let ends =
            matches!(character, '。' | '！' | '？' | '\n') || (matches!(character, '.' | '!' | '?') && next_is_break);
        if ends {
            let end = offset + character.len_utf8();
            let sentence = text[start..end].trim();
            if !sentence.is_empty() {
                sentences.push(sentence);
            }
            start = end;
        }
    }
    let rest = text[start..].trim();
    if !rest.is_empty() {
        sentences.push(rest);
    }
    sentences
}

/// The first `limit` characters of `text`, with `…` when something was cut.
pub(super) fn truncate_chars(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let kept: String = text.chars().take(limit).collect();
    format!("{kept}…")
}

/// The answer with its citations in Nexent's `[[a0]]` form: `[a0]` and `【a0】` are rewritten, citations of
/// sources never shown are dropped, and an answer that cites nothing although sources were shown cites the
/// source it shares most words with (when it shares at least two), so every grounded answer links its source.
pub fn cite_sources(answer: &str, sources: &[(String, String)]) -> String {
    let known: HashSet<&str> = sources.iter().map(|(index, _)| index.as_str()).collect();
    let mut text = String::with_capacity(answer.len());
    let mut cited_any = false;
    let mut rest = answer;
    while let Some(open) = rest.find(['[', '【']) {
        text.push_str(&rest[..open]);
        let after = &rest[open..];
        match citation_at(after) {
            Some((index, consumed)) => {
                if known.contains(index) {
                    text.push_str(&format!("[[{index}]]"));
                    cited_any = true;
                }
                rest = &after[consumed..];
            }
            None => {
                let width = after.chars().next().map_or(1, char::len_utf8);
                text.push_str(&after[..width]);
                rest = &after[width..];
            }
        }
    }
    text.push_str(rest);
    if !cited_any {
        let answer_words = words(&text);
        let best = sources
            .iter()
            .map(|(index, source)| (index, words(source).intersection(&answer_words).count()))
            .max_by_key(|(_, shared)| *shared);
        if let Some((index, _)) = best.filter(|(_, shared)| *shared >= 2) {
            text = format!("{} [[{index}]]", text.trim_end());
        }
    }
    text
}

/// A citation such as `[[a0]]`, `[a0]` or `【a0】` at the start of `text`: its index and length.
fn citation_at(text: &str) -> Option<(&str, usize)> {
    let opening = if text.starts_with("[[") {
        2
    } else if text.starts_with('[') {
        1
    } else if text.starts_with('【') {
        '【'.len_utf8()
    } else {
        return None;
    };
    let body = &text[opening..];
    let end = body.find([']', '】'])?;
    let index = body[..end].trim();
    if !looks_like_index(index) {
        return None;
    }
    let closing = &text[opening + end..];
    let closing_length = if closing.starts_with("]]") { 2 } else { closing.chars().next().map_or(0, char::len_utf8) };
    Some((index, opening + end + closing_length))
}

fn looks_like_index(text: &str) -> bool {
    let mut characters = text.chars();
    characters.next().is_some_and(|first| first.is_ascii_lowercase())
        && characters.clone().next().is_some()
        && characters.all(|character| character.is_ascii_digit())
}

/// Words of `text` for matching sentences to a question: runs of letters or digits (at least three
/// characters, or holding a digit), lower-cased; Chinese, written without spaces, gives its overlapping
/// character pairs instead (the unit most Chinese words are made of).
fn words(text: &str) -> HashSet<String> {
    let mut words = HashSet::new();
    for run in text.split(|character: char| !character.is_alphanumeric()) {
        let mut latin = String::new();
        let mut previous_cjk: Option<char> = None;
        for character in run.chars() {
            if is_cjk(character) {
                if let Some(previous) = previous_cjk {
                    words.insert(format!("{previous}{character}"));
                }
                previous_cjk = Some(character);
                push_word(&mut words, std::mem::take(&mut latin));
            } else {
                previous_cjk = None;
                latin.push(character);
            }
        }
        push_word(&mut words, latin);
    }
    words
}

fn push_word(words: &mut HashSet<String>, word: String) {
    if word.chars().count() >= 3 || word.chars().any(|character| character.is_ascii_digit()) {
        words.insert(word.to_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search_tool() -> ToolSpec {
        ToolSpec {
            definition: ToolDefinition {
                name: "knowledge_base_search".into(),
                description: "search".into(),
                parameters: json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
            },
            kind: ToolKind::Search { sign: "a".into(), search_type: "knowledge_base_search".into() },
        }
    }

    /// A machine whose model writes every call (the path follow-up questions take).
    fn machine(tools: Vec<ToolSpec>, history: Vec<HistoryTurn>) -> AgentMachine {
        AgentMachine::new(
            AgentConfig { direct_first_search: false, ..AgentConfig::default() },
            AgentTask { query: "How long is the Zorblax warranty?".into(), history, tools },
        )
    }

    fn default_machine(tools: Vec<ToolSpec>, history: Vec<HistoryTurn>) -> AgentMachine {
        AgentMachine::new(
            AgentConfig::default(),
            AgentTask { query: "How long is the Zorblax warranty?".into(), history, tools },
        )
    }

    #[test]
    fn long_results_keep_the_sentences_nearest_the_question() {
        let filler = "The company was founded by two friends who liked tea. ".repeat(8);
        let text = format!("{filler}The Zorblax X2 kettle has a warranty of 7 years. {filler}");
        let focused = focused_text(&text, "How long is the warranty of the Zorblax X2 kettle?", 200);
        assert!(focused.chars().count() <= 200, "{focused}");
        assert!(focused.contains("warranty of 7 years"), "{focused}");
        assert!(focused.contains(" … The Zorblax") && focused.ends_with('…'), "gaps are marked: {focused}");
        assert_eq!(focused_text("Short text.", "anything", 200), "Short text.");
        // One sentence longer than the room: its start, cut.
        let long = "word ".repeat(100);
        assert_eq!(focused_text(&long, "word", 50).chars().count(), 50);
        assert_eq!(split_sentences("A b. C d! E f? 3.5 g\nH。I"), ["A b.", "C d!", "E f?", "3.5 g", "H。", "I"]);
    }

    #[test]
    fn chinese_results_keep_the_sentence_that_shares_character_pairs_with_the_question() {
        let filler = "青禾公司成立于二〇一二年，总部位于栖宁市。".repeat(6);
        let text = format!("{filler}青禾Q7型电动自行车的电池保修三年。{filler}");
        let focused = focused_text(&text, "青禾电动自行车的电池保修多久？", 60);
        assert!(focused.contains("电池保修三年"), "{focused}");
        assert_eq!(
            words("电池A7x保修"),
            ["电池", "a7x", "保修"].into_iter().map(String::from).collect::<HashSet<_>>(),
            "pairs of Chinese characters, Latin words as before"
        );
        let chinese = AgentConfig { answer_language: Language::Chinese, ..AgentConfig::default() };
        assert!(system_prompt(&chinese, &[]).contains("简体中文"));
        assert!(!system_prompt(&AgentConfig::default(), &[]).contains("Chinese"), "English prompts are unchanged");
    }

    #[test]
    fn the_best_results_get_the_room_and_all_stay_citable() {
        let mut agent = default_machine(vec![search_tool()], Vec::new());
        agent.start(second(0));
        let long = "The Zorblax warranty lasts 7 years. ".repeat(40);
        let sources: Vec<FoundSource> = (0..5).map(|_| source(&long)).collect();
        let effects = agent.handle(Event::ToolFinished(ToolOutcome::Sources(sources)), second(1));
        let Effect::Emit(found) = &effects[0] else { panic!() };
        let found: Value = serde_json::from_str(&found.content).expect("json");
        assert_eq!(found.as_array().map(Vec::len), Some(5), "every result is shown");
        let Effect::CallModel(request) = &effects[4] else { panic!() };
        let observation = &request.messages[request.messages.len() - 2].content;
        let seen: Value = serde_json::from_str(observation).expect("json");
        assert_eq!(seen.as_array().map(Vec::len), Some(2), "two results of 1200 fill the 2400 budget: {seen}");
        assert!(observation.chars().count() < 2600, "{}", observation.chars().count());
    }

    #[test]
    fn a_standalone_question_is_searched_without_a_model_call() {
        let mut agent = default_machine(vec![search_tool()], Vec::new());
        let effects = agent.start(second(0));
        assert_eq!(
            kinds_of(&effects),
            [
                "agent_new_run",
                "step_count",
                "model_output_code",
                "parse",
                "tool",
                "card",
                "call_tool(knowledge_base_search)"
            ]
        );
        let Effect::CallTool(call) = &effects[6] else { panic!() };
        assert_eq!(call.arguments, r#"{"query":"How long is the Zorblax warranty?"}"#);
        let effects = agent.handle(
            Event::ToolFinished(ToolOutcome::Sources(vec![source("The Zorblax warranty lasts 7 years.")])),
            second(1),
        );
        assert_eq!(
            kinds_of(&effects),
            ["search_content", "execution_logs", "token_count", "step_count", "call_model(tools=0)"]
        );
        let Effect::CallModel(request) = &effects[4] else { panic!() };
        // The model sees the call as its own turn, then the results, then the question again.
        let roles: Vec<Role> = request.messages.iter().map(|message| message.role).collect();
        assert_eq!(roles, [Role::System, Role::User, Role::Assistant, Role::Tool, Role::User]);
        assert_eq!(request.messages[2].tool_calls.len(), 1);
        agent.handle(Event::ModelText("It lasts 7 years.".into()), second(2));
        let effects = agent.handle(Event::ModelFinished(FinishReason::Stop), second(3));
        assert_eq!(kinds_of(&effects), ["token_count", "final_answer", "finish"]);
    }

    #[test]
    fn follow_ups_and_attachments_and_no_search_tool_ask_the_model() {
        let earlier = vec![
            HistoryTurn { role: Role::User, content: "Tell me about the Zorblax X2.".into() },
            HistoryTurn { role: Role::Assistant, content: "It is a kettle.".into() },
        ];
        let reader = ToolSpec {
            definition: ToolDefinition {
                name: "read_attached_file".into(),
                description: "read".into(),
                parameters: json!({"type": "object"}),
            },
            kind: ToolKind::Reader,
        };
        let plain = ToolSpec { kind: ToolKind::Plain, ..reader.clone() };
        for (tools, history) in
            [(vec![search_tool()], earlier), (vec![search_tool(), reader], Vec::new()), (vec![plain], Vec::new())]
        {
            let mut agent = default_machine(tools, history);
            let effects = agent.start(second(0));
            let kinds = kinds_of(&effects);
            assert!(kinds.last().is_some_and(|kind| kind.starts_with("call_model")), "{kinds:?}");
        }
    }

    fn kinds_of(effects: &[Effect]) -> Vec<String> {
        effects
            .iter()
            .map(|effect| match effect {
                Effect::Emit(unit) => unit.kind.clone(),
                Effect::CallModel(request) if request.tool_choice == ToolChoice::None => "call_model(tools=0)".into(),
                Effect::CallModel(request) => format!("call_model(tools={})", request.tools.len()),
                Effect::CallTool(call) => format!("call_tool({})", call.name),
                Effect::Finish => "finish".into(),
            })
            .collect()
    }

    fn call(name: &str, arguments: &str) -> ToolCall {
        ToolCall { id: "call_0".into(), name: name.into(), arguments: arguments.into() }
    }

    fn source(text: &str) -> FoundSource {
        FoundSource {
            title: "Zorblax manual".into(),
            text: text.into(),
            score: 0.9,
            accurate: Some(1.0),
            semantic: Some(0.8),
            ..Default::default()
        }
    }

    fn second(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    #[test]
    fn a_search_then_an_answer_streams_nexents_sequence_and_cites() {
        let mut agent = machine(vec![search_tool()], Vec::new());
        let effects = agent.start(second(0));
        assert_eq!(kinds_of(&effects), ["agent_new_run", "step_count", "call_model(tools=1)"]);
        let Effect::CallModel(first) = &effects[2] else { panic!() };
        assert_eq!(first.tool_choice, ToolChoice::Required);
        assert_eq!(
            kinds_of(&agent.handle(Event::ModelText("Let me look.".into()), second(1))),
            ["model_output_thinking"]
        );
        assert!(
            agent
                .handle(
                    Event::ModelToolCalls(vec![call("knowledge_base_search", r#"{"query":"Zorblax warranty"}"#)]),
                    second(1)
                )
                .is_empty()
        );
        let effects = agent.handle(Event::ModelFinished(FinishReason::ToolCalls), second(2));
        assert_eq!(
            kinds_of(&effects),
            ["model_output_code", "parse", "tool", "card", "call_tool(knowledge_base_search)"]
        );
        let Effect::Emit(card) = &effects[3] else { panic!() };
        assert_eq!(card.content, r#"[{"icon":"search","text":"Zorblax warranty"}]"#);
        let effects = agent.handle(
            Event::ToolFinished(ToolOutcome::Sources(vec![source("The Zorblax warranty lasts 7 years.")])),
            second(3),
        );
        assert_eq!(
            kinds_of(&effects),
            ["search_content", "execution_logs", "token_count", "step_count", "call_model(tools=0)"]
        );
        let Effect::Emit(found) = &effects[0] else { panic!() };
        let found: Value = serde_json::from_str(&found.content).expect("search_content is JSON");
        assert_eq!(found[0]["cite_index"], 0);
        assert_eq!(found[0]["tool_sign"], "a");
        assert_eq!(found[0]["score_details"], json!({"accurate": 1.0, "semantic": 0.8}));
        let Effect::CallModel(request) = &effects[4] else { panic!() };
        assert_eq!(request.tool_choice, ToolChoice::None, "the answer step describes the tools but may not call them");
        let answer_prompt = request.messages.last().expect("messages");
        assert!(
            answer_prompt.role == Role::User && answer_prompt.content.contains("Zorblax warranty?"),
            "{answer_prompt:?}"
        );
        let last = &request.messages[request.messages.len() - 2];
        assert_eq!((last.role, last.tool_call_id.as_deref()), (Role::Tool, Some("call_0")));
        assert!(last.content.contains("\"index\":\"a0\""), "{}", last.content);
        let Effect::Emit(duration) = &effects[2] else { panic!() };
        assert!(duration.content.contains("Duration:3"), "{}", duration.content);
        agent.handle(Event::ModelText("It lasts 7 years [a0].".into()), second(4));
        let effects = agent.handle(Event::ModelFinished(FinishReason::Stop), second(5));
        assert_eq!(kinds_of(&effects), ["token_count", "final_answer", "finish"]);
        let Effect::Emit(answer) = &effects[1] else { panic!() };
        assert_eq!(answer.content, "\nIt lasts 7 years [[a0]].");
        assert!(agent.is_finished());
    }

    #[test]
    fn history_is_given_to_the_model() {
        let history = vec![
            HistoryTurn { role: Role::User, content: "Hi".into() },
            HistoryTurn { role: Role::Assistant, content: "Hello!".into() },
        ];
        let mut agent = machine(Vec::new(), history);
        let effects = agent.start(second(0));
        let Effect::CallModel(request) = &effects[2] else { panic!() };
        let roles: Vec<Role> = request.messages.iter().map(|message| message.role).collect();
        assert_eq!(roles, [Role::System, Role::User, Role::Assistant, Role::User]);
        assert!(request.tools.is_empty());
    }

    #[test]
    fn unknown_tools_and_bad_arguments_are_error_steps_and_the_run_goes_on() {
        let mut agent = machine(vec![search_tool()], Vec::new());
        agent.start(second(0));
        agent.handle(
            Event::ModelToolCalls(vec![call("web_search", "{}"), call("knowledge_base_search", "[1]")]),
            second(1),
        );
        let effects = agent.handle(Event::ModelFinished(FinishReason::ToolCalls), second(1));
        assert_eq!(
            kinds_of(&effects),
            [
                "model_output_code",
                "model_output_code",
                "error",
                "error",
                "token_count",
                "step_count",
                "call_model(tools=1)"
            ]
        );
        let Effect::Emit(error) = &effects[2] else { panic!() };
        assert!(error.content.contains("unknown tool \"web_search\""), "{}", error.content);
    }

    #[test]
    fn a_repeated_call_is_not_run_again_and_the_model_must_answer() {
        let mut agent = machine(vec![search_tool()], Vec::new());
        agent.start(second(0));
        for round in 0..2 {
            agent.handle(
                Event::ModelToolCalls(vec![call("knowledge_base_search", r#"{"query": "warranty"}"#)]),
                second(1),
            );
            let effects = agent.handle(Event::ModelFinished(FinishReason::ToolCalls), second(1));
            if round == 0 {
                assert!(kinds_of(&effects).contains(&"call_tool(knowledge_base_search)".to_owned()));
                agent.handle(Event::ToolFinished(ToolOutcome::Sources(Vec::new())), second(2));
            } else {
                assert_eq!(
                    kinds_of(&effects),
                    ["model_output_code", "token_count", "step_count", "call_model(tools=0)"]
                );
            }
        }
    }

    #[test]
    fn calls_in_a_step_without_tools_are_ignored() {
        let mut agent = AgentMachine::new(
            AgentConfig { max_steps: 1, ..AgentConfig::default() },
            AgentTask { query: "q".into(), history: Vec::new(), tools: vec![search_tool()] },
        );
        let effects = agent.start(second(0));
        assert_eq!(kinds_of(&effects), ["agent_new_run", "step_count", "call_model(tools=0)"]);
        agent.handle(Event::ModelText("It is 7.".into()), second(1));
        agent.handle(Event::ModelToolCalls(vec![call("knowledge_base_search", r#"{"query": "a"}"#)]), second(1));
        let effects = agent.handle(Event::ModelFinished(FinishReason::ToolCalls), second(1));
        assert_eq!(kinds_of(&effects), ["token_count", "final_answer", "finish"]);
    }

    #[test]
    fn the_last_step_answers_without_tools() {
        let mut agent = AgentMachine::new(
            AgentConfig { max_steps: 2, ..AgentConfig::default() },
            AgentTask { query: "q".into(), history: Vec::new(), tools: vec![search_tool()] },
        );
        agent.start(second(0));
        agent.handle(Event::ModelToolCalls(vec![call("knowledge_base_search", r#"{"query": "a"}"#)]), second(1));
        agent.handle(Event::ModelFinished(FinishReason::ToolCalls), second(1));
        let effects = agent.handle(Event::ToolFinished(ToolOutcome::Failed("Index kb not found".into())), second(2));
        assert_eq!(kinds_of(&effects), ["error", "token_count", "step_count", "call_model(tools=0)"]);
    }

    #[test]
    fn cancellation_and_model_failures_end_the_run_with_an_error() {
        let mut agent = machine(vec![search_tool()], Vec::new());
        agent.start(second(0));
        agent.handle(Event::ModelText("partial".into()), second(1));
        let effects = agent.handle(Event::Cancelled(None), second(1));
        assert_eq!(kinds_of(&effects), ["error", "finish"]);
        let Effect::Emit(error) = &effects[0] else { panic!() };
        assert!(error.content.contains("stopped by the user"));
        assert!(agent.handle(Event::ModelText("late".into()), second(2)).is_empty(), "a finished run ignores events");

        let mut agent = machine(Vec::new(), Vec::new());
        agent.start(second(0));
        assert_eq!(kinds_of(&agent.handle(Event::ModelFailed("busy".into()), second(1))), ["error", "finish"]);
        let mut agent = machine(Vec::new(), Vec::new());
        agent.start(second(0));
        assert_eq!(
            kinds_of(&agent.handle(Event::ModelFinished(FinishReason::Stop), second(1))),
            ["token_count", "error", "finish"]
        );
    }

    #[test]
    fn citations_are_normalised_and_added_when_missing() {
        let sources = vec![
            ("a0".to_owned(), "The Zorblax X2 costs 412 euros.".to_owned()),
            ("a1".to_owned(), "Unrelated text.".to_owned()),
        ];
        assert_eq!(cite_sources("It costs 412 euros [[a0]].", &sources), "It costs 412 euros [[a0]].");
        assert_eq!(cite_sources("It costs 412 euros 【a0】 [a9].", &sources), "It costs 412 euros [[a0]] .");
        assert_eq!(cite_sources("The Zorblax costs 412 euros.", &sources), "The Zorblax costs 412 euros. [[a0]]");
        assert_eq!(cite_sources("I do not know.", &sources), "I do not know.");
        assert_eq!(cite_sources("see [1] and [link](x)", &[]), "see [1] and [link](x)");
    }
}
