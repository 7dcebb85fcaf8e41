//! Agent benchmark: 20 questions about invented facts (`tests/fixtures/agent`), asked through
//! `POST /api/agent/run` on the real server with each local chat model. For every question it records
//! whether `knowledge_base_search` was called, whether the right document was in `search_content`, whether
//! the final answer holds the expected fact and cites a source, and the times to the first message, the first
//! model token and the final answer.
//!
//! References from the same run and model, through `/v1/chat/completions`: the question alone (closed book:
//! what the model knows without our documents) and the question with its right document pasted in (an
//! oracle retriever: the best a perfect search could give this model). The agent runs twice: with the first
//! step required to search (the default) and with the model deciding (`AGENT_SEARCH_FIRST=false`).
//!
//! `NEXENT_BIN=target/release/nexent cargo run --release -p nexent-bench --bin bench-agent -- --models models/files --out FILE`

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use nexent_bench::{argument, median, read_jsonl};
use nexent_e2e::{NexentServer, ServerOptions, ingest_file, select_knowledge_bases};
use serde_json::{Value, json};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/agent");
const MODELS: [(&str, &str); 2] = [
    ("Qwen2.5-Coder-0.5B-Instruct-Q4_K_M", "Qwen2.5-Coder 0.5B"),
    ("Qwen2.5-Coder-1.5B-Instruct-Q4_K_M", "Qwen2.5-Coder 1.5B"),
];

struct Question {
    question: String,
    document: String,
    answers: Vec<String>,
}

#[derive(Default)]
struct Outcome {
    searched: bool,
    right_document: bool,
    fact: bool,
    cited: bool,
    first_message_ms: f64,
    first_token_ms: f64,
    answer_ms: f64,
}

fn holds_fact(answer: &str, question: &Question) -> bool {
    let answer = answer.to_lowercase();
    question.answers.iter().any(|expected| answer.contains(&expected.to_lowercase()))
}

async fn ask_agent(server: &NexentServer, question: &Question) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let response = server
        .client
        .post(server.url("/api/agent/run"))
        .json(&json!({"query": question.question, "history": []}))
        .timeout(Duration::from_secs(600))
        .send()
        .await?;
    anyhow::ensure!(response.status() == 200, "agent run: {}", response.status());
    let mut outcome = Outcome::default();
    let mut buffer = Vec::new();
    let mut answer = String::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        buffer.extend_from_slice(&chunk?);
        while let Some(newline) = buffer.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = buffer.drain(..=newline).collect();
            let line = String::from_utf8_lossy(&line);
            let Some(data) = line.strip_prefix("data:") else { continue };
            let message: Value = serde_json::from_str(data.trim())?;
            let elapsed = started.elapsed().as_secs_f64() * 1000.0;
            let kind = message["type"].as_str().unwrap_or_default();
            let content = message["content"].as_str().unwrap_or_default();
            if outcome.first_message_ms == 0.0 {
                outcome.first_message_ms = elapsed;
            }
            // The first token of the answer the model writes (a search call, written by the model or made
            // for it, is not an answer).
            if outcome.first_token_ms == 0.0 && kind == "model_output_thinking" && !content.is_empty() {
                outcome.first_token_ms = elapsed;
            }
            match kind {
                "parse" if content.contains("knowledge_base_search") => outcome.searched = true,
                "search_content" => {
                    let sources: Value = serde_json::from_str(content).unwrap_or_default();
                    outcome.right_document |= sources
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|source| source["filename"].as_str() == Some(question.document.as_str()));
                }
                "final_answer" => {
                    answer.push_str(content);
                    outcome.answer_ms = elapsed;
                }
                _ => {}
            }
        }
    }
    outcome.fact = holds_fact(&answer, question);
    outcome.cited = answer.contains("[[a");
    Ok(outcome)
}

/// A reference through `/v1/chat/completions`: the question, with or without its document.
async fn ask_directly(server: &NexentServer, question: &Question, document: Option<&str>) -> anyhow::Result<Outcome> {
    let content = match document {
        Some(document) => format!(
            "{document}\n\nUsing the text above, answer this question in one or two full sentences: {}",
            question.question
        ),
        None => format!("Answer this question in one or two full sentences: {}", question.question),
    };
    let started = Instant::now();
    let (status, answer) = server
        .post_json(
            "/v1/chat/completions",
            &json!({"messages": [{"role": "user", "content": content}], "temperature": 0, "max_tokens": 200}),
        )
        .await?;
    anyhow::ensure!(status == 200, "chat completion: {status} {answer}");
    let text = answer["choices"][0]["message"]["content"].as_str().unwrap_or_default();
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    Ok(Outcome { fact: holds_fact(text, question), answer_ms: elapsed, ..Outcome::default() })
}

fn percent(outcomes: &[Outcome], test: impl Fn(&Outcome) -> bool) -> String {
    let count = outcomes.iter().filter(|outcome| test(outcome)).count();
    format!("{count}/{} ({:.0}%)", outcomes.len(), 100.0 * count as f64 / outcomes.len().max(1) as f64)
}

fn row(model: &str, setting: &str, outcomes: &[Outcome], agent: bool) -> String {
    let seconds = |values: Vec<f64>| format!("{:.2} s", median(values) / 1000.0);
    let dash = || "–".to_owned();
    format!(
        "| {model} | {setting} | {} | {} | {} | {} | {} | {} | {} |",
        if agent { percent(outcomes, |outcome| outcome.searched) } else { dash() },
        if agent { percent(outcomes, |outcome| outcome.right_document) } else { dash() },
        percent(outcomes, |outcome| outcome.fact),
        if agent { percent(outcomes, |outcome| outcome.cited) } else { dash() },
        if agent {
            format!("{:.0} ms", median(outcomes.iter().map(|outcome| outcome.first_message_ms).collect()))
        } else {
            dash()
        },
        if agent { seconds(outcomes.iter().map(|outcome| outcome.first_token_ms).collect()) } else { dash() },
        seconds(outcomes.iter().map(|outcome| outcome.answer_ms).collect()),
    )
}

/// How the first step searches.
#[derive(Clone, Copy, PartialEq)]
enum Search {
    /// The question is searched as asked (the default).
    Direct,
    /// The model writes the first search (before issue 17).
    ModelWrites,
    /// The model decides whether to search at all.
    ModelDecides,
}

/// One configuration of the server the 20 questions are asked of.
struct Setting {
    label: String,
    search: Search,
    /// Server flags beyond the model and threads (guessing ahead).
    flags: Vec<String>,
    /// Server environment (Config Sync keys).
    env: Vec<(String, String)>,
    /// Also ask the references (closed book, oracle) of this server.
    references: bool,
}

impl Setting {
    fn new(label: &str, search: Search, flags: &[&str]) -> Self {
        Self {
            label: label.to_owned(),
            search,
            flags: flags.iter().map(|flag| flag.to_string()).collect(),
            env: Vec::new(),
            references: false,
        }
    }
}

/// What is measured per model: the defaults first, then each change taken away. `observation_chars`: a
/// row with the sources cut to that many characters (`AGENT_OBSERVATION_CHARS`).
fn settings(model_file: &str, models: &Path, observation_chars: Option<&str>) -> Vec<Setting> {
    let mut settings = vec![Setting {
        references: true,
        ..Setting::new("agent (default: question searched as asked, prompt lookup)", Search::Direct, &[])
    }];
    if let Some(chars) = observation_chars {
        settings.push(Setting {
            env: vec![("AGENT_OBSERVATION_CHARS".into(), chars.to_owned())],
            ..Setting::new(&format!("agent, sources cut to {chars} characters"), Search::Direct, &[])
        });
    }
    settings.push(Setting::new("agent, no guessing ahead", Search::Direct, &["--draft-tokens", "0"]));
    let draft = models.join(format!("{}.gguf", MODELS[0].0));
    if model_file != MODELS[0].0 && draft.exists() {
        settings.push(Setting::new(
            "agent, prompt lookup + 0.5B draft model",
            Search::Direct,
            &["--draft-model", &draft.display().to_string()],
        ));
    }
    // The larger model's "before" is the previous run's row (it takes some ten minutes a setting).
    if model_file == MODELS[0].0 {
        settings.push(Setting::new(
            "agent before issue 17: model writes the first search, no guessing",
            Search::ModelWrites,
            &["--draft-tokens", "0"],
        ));
        settings.push(Setting::new("agent, model decides whether to search", Search::ModelDecides, &[]));
    }
    settings
}

async fn start_with_corpus(model: &Path, threads: Option<&str>, setting: &Setting) -> anyhow::Result<NexentServer> {
    let mut options = ServerOptions::default()
        .arg("--chat-model")
        .arg(model.display().to_string())
        .env("AGENT_SEARCH_FIRST", if setting.search == Search::ModelDecides { "false" } else { "true" })
        .env("AGENT_DIRECT_SEARCH", if setting.search == Search::Direct { "true" } else { "false" });
    if let Some(threads) = threads {
        options = options.arg("--llm-threads").arg(threads);
    }
    for flag in &setting.flags {
        options = options.arg(flag);
    }
    for (key, value) in &setting.env {
        options = options.env(key, value);
    }
    let server = NexentServer::start_with(options)?;
    let mut documents: Vec<PathBuf> = std::fs::read_dir(format!("{FIXTURES}/corpus"))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect();
    documents.sort();
    for document in &documents {
        let name = document.file_name().and_then(|name| name.to_str()).unwrap_or_default();
        ingest_file(&server, "facts", name, &std::fs::read(document)?).await?;
    }
    select_knowledge_bases(&server, &["facts"]).await?;
    Ok(server)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arguments: Vec<String> = std::env::args().collect();
    let models = PathBuf::from(argument(&arguments, "--models").unwrap_or_else(|| "models/files".into()));
    let out = argument(&arguments, "--out");
    // The server's own thread choice unless `--threads` pins both phases.
    let threads = argument(&arguments, "--threads");
    let threads_text = match &threads {
        Some(threads) => format!("{threads} llama.cpp threads"),
        None => format!(
            "llama.cpp reading prompts with {} threads and generating with {}",
            nexent_engines::llama_chat::default_batch_threads(),
            nexent_engines::llama_chat::default_threads()
        ),
    };
    // For trying a change quickly: the first N questions, and one model (a label's substring, e.g. 1.5B).
    let limit = argument(&arguments, "--questions").map(|count| count.parse::<usize>()).transpose()?;
    let only = argument(&arguments, "--model");
    let default_only = arguments.iter().any(|argument| argument == "--default-only");
    let observation_chars = argument(&arguments, "--observation-chars");
    let questions: Vec<Question> = read_jsonl(&Path::new(FIXTURES).join("questions.jsonl"))?
        .into_iter()
        .take(limit.unwrap_or(usize::MAX))
        .map(|item| Question {
            question: item["question"].as_str().unwrap_or_default().to_owned(),
            document: item["document"].as_str().unwrap_or_default().to_owned(),
            answers: item["answers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        })
        .collect();

    let mut rows = Vec::new();
    for (file, label) in MODELS {
        let model = models.join(format!("{file}.gguf"));
        if only.as_deref().is_some_and(|only| !label.contains(only)) {
            continue;
        }
        if !model.exists() {
            eprintln!("skipping {label}: {} is missing (python3 models/fetch.py llm-large)", model.display());
            continue;
        }
        let mut settings = settings(file, &models, observation_chars.as_deref());
        if default_only {
            settings.truncate(if observation_chars.is_some() { 2 } else { 1 });
        }
        for setting in settings {
            let server = start_with_corpus(&model, threads.as_deref(), &setting).await?;
            let mut outcomes = Vec::new();
            for question in &questions {
                let outcome = ask_agent(&server, question).await?;
                eprintln!(
                    "{label} {}: searched={} right={} fact={} cited={} {:.1}s — {}",
                    setting.label,
                    outcome.searched,
                    outcome.right_document,
                    outcome.fact,
                    outcome.cited,
                    outcome.answer_ms / 1000.0,
                    question.question
                );
                outcomes.push(outcome);
            }
            rows.push(row(label, &setting.label, &outcomes, true));
            if setting.references {
                let mut closed = Vec::new();
                let mut oracle = Vec::new();
                for question in &questions {
                    closed.push(ask_directly(&server, question, None).await?);
                    let document = std::fs::read_to_string(format!("{FIXTURES}/corpus/{}", question.document))?;
                    oracle.push(ask_directly(&server, question, Some(&document)).await?);
                }
                rows.push(row(label, "reference: question alone (closed book)", &closed, false));
                rows.push(row(label, "reference: right document pasted in (oracle)", &oracle, false));
            }
        }
    }

    let report = format!(
        "# Agent: answers grounded in the knowledge base\n\n\
         `make bench-agent` on this machine ({} cores, {threads_text}, release build): 10 invented documents \
         (`tests/fixtures/agent/corpus`), 20 questions whose answers only they hold (`questions.jsonl`), asked one at \
         a time through `POST /api/agent/run` with greedy decoding. \"Searched\": a `knowledge_base_search` call was \
         made; \"right document\": the question's document was among the `search_content` results; \"fact\": the \
         final answer contains the expected value; \"cites\": it holds a `[[a…]]` citation. Times are medians from \
         sending the request: first SSE message, first model token, final answer. The references ask the same \
         server's `/v1/chat/completions` with the question alone and with its document pasted in. \"First token\" \
         is the first token of text the model writes (`model_output_thinking`), so a search call does not count.\n\n\
         | model | setting | searched | right document | fact in answer | cites | first message | first token | final answer |\n\
         |---|---|---|---|---|---|---|---|---|\n{}\n",
        nexent_bench::cores(),
        rows.join("\n")
    );
    println!("{report}");
    if let Some(out) = out {
        std::fs::write(out, &report)?;
    }
    Ok(())
}
