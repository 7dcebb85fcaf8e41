//! `nexent ask QUESTION` and `nexent chat`: the agent's answer streamed to the terminal as it is written,
//! then the sources it cited; `chat` keeps one conversation going, a question per line.

use std::io::{BufRead, IsTerminal, Write};

use futures::StreamExt;
use serde_json::{Value, json};

use super::client::{Api, Target};
use super::{Outcome, print_json};

#[derive(Debug, clap::Args)]
pub struct AskArgs {
    pub question: String,
    /// A knowledge base to search (repeat for several; default: those selected in the app).
    #[arg(long, value_name = "NAME")]
    pub kb: Vec<String>,
    /// Also show the agent's steps (on stderr).
    #[arg(long, short)]
    pub verbose: bool,
    /// Print the answer and its sources as one JSON object when done.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    /// A knowledge base to search (repeat for several; default: those selected in the app).
    #[arg(long, value_name = "NAME")]
    pub kb: Vec<String>,
    /// Also show the agent's steps (on stderr).
    #[arg(long, short)]
    pub verbose: bool,
    #[command(flatten)]
    pub target: Target,
}

/// What one run produced.
#[derive(Debug, Default)]
struct Answer {
    conversation_id: Option<i64>,
    text: String,
    sources: Vec<Value>,
    errors: Vec<String>,
}

pub async fn ask(args: AskArgs) -> anyhow::Result<Outcome> {
    let api = Api::connect(&args.target).await?;
    let answer = run_once(&api, &args.question, &args.kb, None, &[], !args.json, args.verbose).await;
    api.close().await?;
    let answer = answer?;
    if args.json {
        print_json(&json!({
            "conversation_id": answer.conversation_id,
            "answer": answer.text,
            "sources": answer.sources,
            "errors": answer.errors,
        }));
    } else {
        print_sources(&answer.sources);
    }
    Ok(if answer.text.trim().is_empty() { Outcome::Failure } else { Outcome::Success })
}

pub async fn chat(args: ChatArgs) -> anyhow::Result<Outcome> {
    let api = Api::connect(&args.target).await?;
    let result = converse(&api, &args).await;
    api.close().await?;
    result
}

async fn converse(api: &Api, args: &ChatArgs) -> anyhow::Result<Outcome> {
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!("Ask a question; an empty line or Ctrl-D ends the conversation.");
    }
    let mut conversation_id = None;
    let mut history: Vec<Value> = Vec::new();
    let (lines, mut receiver) = tokio::sync::mpsc::channel::<String>(1);
    // stdin blocks; read it on its own thread and hand the lines over.
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if lines.blocking_send(line).is_err() {
                break;
            }
        }
    });
    loop {
        if interactive {
            eprint!("> ");
            std::io::stderr().flush()?;
        }
        let Some(line) = receiver.recv().await else { break };
        let question = line.trim().to_owned();
        if question.is_empty() || question == "/exit" {
            break;
        }
        let answer = run_once(api, &question, &args.kb, conversation_id, &history, true, args.verbose).await?;
        print_sources(&answer.sources);
        conversation_id = answer.conversation_id.or(conversation_id);
        history.push(json!({"role": "user", "content": question}));
        history.push(json!({"role": "assistant", "content": answer.text}));
    }
    if let Some(id) = conversation_id {
        eprintln!("The conversation is saved (id {id}).");
    }
    Ok(Outcome::Success)
}

/// One question to the agent; prints the answer's text as it streams when `echo`.
async fn run_once(
    api: &Api,
    question: &str,
    knowledge_bases: &[String],
    conversation_id: Option<i64>,
    history: &[Value],
    echo: bool,
    verbose: bool,
) -> anyhow::Result<Answer> {
    let mut body = json!({"query": question, "history": history});
    if !knowledge_bases.is_empty() {
        body["knowledge_bases"] = json!(knowledge_bases);
    }
    if let Some(id) = conversation_id {
        body["conversation_id"] = json!(id);
    }
    let response = api.stream("/api/agent/run", &body).await?;
    let mut answer = Answer {
        conversation_id: response
            .headers()
            .get("x-conversation-id")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok()),
        ..Answer::default()
    };
    let mut events = response.bytes_stream();
    let mut buffer: Vec<u8> = Vec::new();
    let mut stdout = std::io::stdout();
    while let Some(bytes) = events.next().await {
        buffer.extend_from_slice(&bytes?);
        while let Some(end) = buffer.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let Some(event) = parse_event(&line) else { continue };
            let (kind, content) = event;
            match kind.as_str() {
                "final_answer" => {
                    // The answer's first words come after the steps: no blank line before them.
                    let content = if answer.text.is_empty() { content.trim_start().to_owned() } else { content };
                    answer.text.push_str(&content);
                    if echo {
                        write!(stdout, "{content}")?;
                        stdout.flush()?;
                    }
                }
                "search_content" => {
                    if let Ok(Value::Array(found)) = serde_json::from_str::<Value>(&content) {
                        answer.sources.extend(found);
                    }
                }
                "error" => {
                    if echo {
                        eprintln!("error: {content}");
                    }
                    answer.errors.push(content);
                }
                _ if verbose => eprintln!("[{kind}] {}", super::snippet(&content, 200)),
                _ => {}
            }
        }
    }
    if echo {
        writeln!(stdout)?;
    }
    Ok(answer)
}

/// `data: {"type": ..., "content": ...}` as (type, content); anything else is None.
fn parse_event(line: &[u8]) -> Option<(String, String)> {
    let line = std::str::from_utf8(line).ok()?;
    let data = line.trim().strip_prefix("data:")?;
    let event: Value = serde_json::from_str(data.trim()).ok()?;
    Some((event["type"].as_str()?.to_owned(), event["content"].as_str()?.to_owned()))
}

/// The cited sources, as the answer's `[[a0]]` marks name them.
fn print_sources(sources: &[Value]) {
    if sources.is_empty() {
        return;
    }
    println!("\nSources:");
    for source in sources {
        let mark = format!(
            "{}{}",
            source["tool_sign"].as_str().unwrap_or(""),
            source["cite_index"].as_i64().map(|index| index.to_string()).unwrap_or_default()
        );
        let name = source["filename"]
            .as_str()
            .filter(|name| !name.is_empty())
            .or_else(|| source["title"].as_str())
            .unwrap_or("?");
        println!("  [{mark}] {name}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_data_lines_with_a_type_and_a_content_are_events() {
        assert_eq!(
            parse_event(br#"data: {"type": "final_answer", "content": "Hi"}"#),
            Some(("final_answer".into(), "Hi".into()))
        );
        assert_eq!(parse_event(b"\n"), None);
        assert_eq!(parse_event(b": keep-alive"), None);
        assert_eq!(parse_event(b"data: not json"), None);
        assert_eq!(parse_event(br#"data: {"type": "x", "content": 3}"#), None);
        assert_eq!(parse_event(&[0xff, 0xfe]), None);
    }
}
