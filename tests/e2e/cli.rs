//! The command line (`nexent ingest|search|ask|kb|status|completions`) as a script or a person uses it:
//! the real binary, a real data dir, the real models; with no server running (the command opens the data
//! dir itself) and beside a running server (the command goes through its API). The progress bar is
//! checked in a real terminal (tmux).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nexent_e2e::{NexentServer, ServerOptions, models_dir, nexent_binary};
use serde_json::Value;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/agent/corpus");
const FORMATS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/formats");

/// Runs `nexent ARGS --data-dir DATA --models-dir MODELS` with no NEXENT_* surprises from the environment.
fn nexent(data_dir: &Path, args: &[&str]) -> anyhow::Result<Output> {
    let mut command = Command::new(nexent_binary()?);
    command
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--models-dir")
        .arg(models_dir())
        .stdin(Stdio::null())
        .env_remove("NEXENT_SERVER")
        .env_remove("NEXENT_API_TOKEN")
        .env_remove("NEXENT_HOME")
        .env("NEXENT_LLM_THREADS", "2");
    Ok(command.output()?)
}

fn stdout_json(output: &Output) -> anyhow::Result<Value> {
    serde_json::from_slice(&output.stdout).map_err(|error| {
        anyhow::anyhow!("stdout is not JSON ({error}): {}\n{}", text(&output.stdout), text(&output.stderr))
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ensure_success(output: &Output, what: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    Ok(())
}

/// A folder of mixed formats: two Markdown files, Word, Excel and PDF fixtures, a text file in a
/// subfolder; plus what a folder ingest leaves out: a hidden folder and a program.
fn mixed_folder(root: &Path) -> anyhow::Result<PathBuf> {
    let folder = root.join("documents");
    std::fs::create_dir_all(folder.join("notes"))?;
    std::fs::create_dir_all(folder.join(".cache"))?;
    for name in ["zorblax-x2.md", "velmora-ferry.md"] {
        std::fs::copy(Path::new(CORPUS).join(name), folder.join(name))?;
    }
    for name in ["garden.docx", "inventory.xlsx", "report.pdf"] {
        std::fs::copy(Path::new(FORMATS).join(name), folder.join(name))?;
    }
    std::fs::write(folder.join("notes/harbour.txt"), "The Quillon harbour crane lifts 42 tonnes.\n")?;
    std::fs::write(folder.join(".cache/hidden.txt"), "never ingested")?;
    std::fs::write(folder.join("tool.exe"), [0x4d, 0x5a, 0, 0])?;
    Ok(folder)
}

fn file_names(value: &Value, key: &str) -> Vec<String> {
    value[key]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item["filename"].as_str().or_else(|| item["path"].as_str()))
                .map(|name| Path::new(name).file_name().unwrap_or_default().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn without_a_server_the_command_line_ingests_a_folder_searches_and_answers() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let data_dir = work.path().join("data");
    let folder = mixed_folder(work.path())?;

    let ingested = nexent(&data_dir, &["ingest", &folder.display().to_string(), "--kb", "docs", "--json"])?;
    ensure_success(&ingested, "ingest")?;
    let summary = stdout_json(&ingested)?;
    assert_eq!(summary["ingested"], 6, "{summary:#}");
    assert_eq!(summary["failed"], 0, "{summary:#}");
    assert_eq!(summary["skipped"], 1, "the program is skipped: {summary:#}");
    assert_eq!(summary["created"], true);
    assert!(summary["chunks"].as_u64().unwrap_or(0) >= 6, "{summary:#}");
    let mut names = file_names(&summary, "files");
    names.sort();
    assert_eq!(
        names,
        ["garden.docx", "harbour.txt", "inventory.xlsx", "report.pdf", "velmora-ferry.md", "zorblax-x2.md"],
        "the hidden folder is left out"
    );
    assert!(!data_dir.join("server.json").exists(), "a command's own server does not announce itself");

    let found = nexent(&data_dir, &["search", "warranty of the Zorblax X2 kettle", "--kb", "docs", "--json"])?;
    ensure_success(&found, "search")?;
    let found = stdout_json(&found)?;
    assert_eq!(file_names(&found, "results").first().map(String::as_str), Some("zorblax-x2.md"), "{found:#}");
    let keyword = nexent(
        &data_dir,
        &["search", "Quillon crane", "--kb", "docs", "--mode", "accurate", "--top-k", "1", "--json"],
    )?;
    ensure_success(&keyword, "keyword search")?;
    assert_eq!(file_names(&stdout_json(&keyword)?, "results"), ["harbour.txt"]);

    let human = nexent(&data_dir, &["search", "ferry crossing", "--kb", "docs"])?;
    ensure_success(&human, "search for people")?;
    assert!(text(&human.stdout).starts_with("1. velmora-ferry.md"), "{}", text(&human.stdout));

    let answered =
        nexent(&data_dir, &["ask", "How long is the warranty of the Zorblax X2 kettle?", "--kb", "docs", "--json"])?;
    ensure_success(&answered, "ask")?;
    let answer = stdout_json(&answered)?;
    assert!(answer["answer"].as_str().unwrap_or("").contains('7'), "{answer:#}");
    assert!(file_names(&answer, "sources").contains(&"zorblax-x2.md".to_owned()), "{answer:#}");
    let streamed = nexent(&data_dir, &["ask", "What does the Zorblax X2 cost?", "--kb", "docs"])?;
    ensure_success(&streamed, "ask for people")?;
    let streamed = text(&streamed.stdout);
    assert!(
        streamed.contains("412") && streamed.contains("Sources:") && streamed.contains("zorblax-x2.md"),
        "{streamed}"
    );

    // A conversation in the terminal: a question per line, the second one following up on the first.
    let mut chat = Command::new(nexent_binary()?)
        .args(["chat", "--kb", "docs", "--data-dir"])
        .arg(&data_dir)
        .arg("--models-dir")
        .arg(models_dir())
        .env_remove("NEXENT_SERVER")
        .env_remove("NEXENT_API_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    {
        use std::io::Write;
        let mut input = chat.stdin.take().expect("piped stdin");
        input
            .write_all(b"How much does the Zorblax X2 kettle cost?\nWhat is the name of the Velmora Island ferry?\n")?;
    }
    let chatted = chat.wait_with_output()?;
    ensure_success(&chatted, "chat")?;
    let transcript = text(&chatted.stdout);
    assert!(transcript.contains("412") && transcript.matches("Sources:").count() == 2, "{transcript}");
    assert!(text(&chatted.stderr).contains("The conversation is saved"), "{}", text(&chatted.stderr));

    let models = nexent(&data_dir, &["models", "list", "--json"])?;
    ensure_success(&models, "models list")?;
    let models = stdout_json(&models)?;
    let names: Vec<&str> =
        models.as_array().into_iter().flatten().filter_map(|model| model["model_name"].as_str()).collect();
    assert!(names.iter().any(|name| name.contains("Qwen2.5")), "{models:#}");

    let listed = nexent(&data_dir, &["kb", "list", "--json"])?;
    ensure_success(&listed, "kb list")?;
    let listed = stdout_json(&listed)?;
    assert_eq!(listed[0]["name"], "docs", "{listed:#}");
    assert_eq!(listed[0]["documents"], 6, "{listed:#}");

    let status = nexent(&data_dir, &["status", "--json"])?;
    ensure_success(&status, "status")?;
    assert_eq!(stdout_json(&status)?["server"], Value::Null, "no server runs");
    Ok(())
}

#[tokio::test]
async fn the_command_line_fails_clearly_with_a_non_zero_status() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let data_dir = work.path().join("data");
    let missing = work.path().join("missing.txt");
    let note = work.path().join("note.txt");
    std::fs::write(&note, "The Brellin lighthouse is painted green.")?;
    let broken = work.path().join("broken.pdf");
    std::fs::copy(Path::new(FORMATS).join("bad-truncated.pdf"), &broken)?;
    let program = work.path().join("setup.exe");
    std::fs::write(&program, [0x4d, 0x5a])?;

    // One good file, one missing, one that cannot be parsed, one of a type that cannot be ingested: the
    // good one is ingested, the others are listed with their reasons, and the status says it failed.
    let ingested = nexent(
        &data_dir,
        &[
            "ingest",
            &note.display().to_string(),
            &missing.display().to_string(),
            &broken.display().to_string(),
            &program.display().to_string(),
            "--kb",
            "notes",
        ],
    )?;
    let stderr = text(&ingested.stderr);
    assert_eq!(ingested.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Ingested 1 file"), "{stderr}");
    assert!(stderr.contains("3 failed"), "{stderr}");
    assert!(stderr.contains(&format!("{}: No such file or directory", missing.display())), "{stderr}");
    assert!(stderr.contains("broken.pdf: "), "{stderr}");
    assert!(stderr.contains("setup.exe: file type not supported"), "{stderr}");

    let unknown = nexent(&data_dir, &["search", "lighthouse", "--kb", "nope"])?;
    assert_eq!(unknown.status.code(), Some(1));
    let message = text(&unknown.stderr);
    assert!(message.starts_with("nexent: ") && message.contains("nope") && message.contains("404"), "{message}");
    assert!(unknown.stdout.is_empty());

    let asked = nexent(&data_dir, &["ask", "What colour is the lighthouse?", "--kb", "nope"])?;
    assert_eq!(asked.status.code(), Some(1));
    assert!(text(&asked.stderr).contains("no knowledge base is named \"nope\""), "{}", text(&asked.stderr));

    let delete = nexent(&data_dir, &["kb", "delete", "notes"])?;
    assert_eq!(delete.status.code(), Some(1));
    assert!(text(&delete.stderr).contains("pass --yes"), "{}", text(&delete.stderr));
    let hostile = nexent(&data_dir, &["kb", "create", "../escape"])?;
    assert_eq!(hostile.status.code(), Some(1), "{}", text(&hostile.stderr));
    assert!(!work.path().join("escape").exists());
    let unknown_model = nexent(&data_dir, &["kb", "create", "other", "--embedding-model", "no-such-model"])?;
    assert_eq!(unknown_model.status.code(), Some(1));
    assert!(text(&unknown_model.stderr).contains("no-such-model"), "{}", text(&unknown_model.stderr));
    let deleted = nexent(&data_dir, &["kb", "delete", "notes", "--yes"])?;
    ensure_success(&deleted, "kb delete --yes")?;

    let usage = nexent(&data_dir, &["search", "no knowledge base named"])?;
    assert_eq!(usage.status.code(), Some(2), "a usage error: {}", text(&usage.stderr));
    let nonsense = nexent(&data_dir, &["frobnicate"])?;
    assert_eq!(nonsense.status.code(), Some(2));

    let completions = Command::new(nexent_binary()?).args(["completions", "bash"]).output()?;
    ensure_success(&completions, "completions")?;
    let script = text(&completions.stdout);
    assert!(script.contains("_nexent") && script.contains("ingest") && script.contains("--chunking"), "{script}");
    Ok(())
}

#[tokio::test]
async fn beside_a_running_server_the_command_line_goes_through_its_api() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let data_dir = work.path().join("data");
    std::fs::create_dir_all(&data_dir)?;
    let folder = mixed_folder(work.path())?;
    let mut server = NexentServer::start_in(&data_dir, ServerOptions::default())?;
    assert!(data_dir.join("server.json").is_file(), "the server announces itself in its data dir");

    let ingested = nexent(&data_dir, &["ingest", &folder.display().to_string(), "--kb", "docs", "--json"])?;
    ensure_success(&ingested, "ingest beside the server")?;
    assert_eq!(stdout_json(&ingested)?["ingested"], 6);
    // The server did the work: its task list has the files, and it finds them at once.
    let (_, tasks) = server.get_json("/api/tasks").await?;
    let indexed =
        tasks["tasks"].as_array().map_or(0, |tasks| tasks.iter().filter(|task| task["index_name"] == "docs").count());
    assert_eq!(indexed, 6, "{tasks:#}");
    let top = nexent_e2e::top_hit(&server, "docs", "Quillon harbour crane").await?;
    assert_eq!(top["filename"], "harbour.txt", "{top:#}");

    let status = nexent(&data_dir, &["status", "--json"])?;
    ensure_success(&status, "status")?;
    let status = stdout_json(&status)?;
    assert_eq!(status["server"]["url"], server.url(""), "{status:#}");
    assert_eq!(status["server"]["knowledge_bases"], serde_json::json!(["docs"]), "{status:#}");

    // Stopped cleanly, the server takes its file away; commands then open the data dir themselves.
    server.terminate()?;
    assert!(!data_dir.join("server.json").exists());
    let found = nexent(&data_dir, &["search", "ferry", "--kb", "docs", "--json"])?;
    ensure_success(&found, "search after the server stopped")?;
    assert_eq!(file_names(&stdout_json(&found)?, "results").first().map(String::as_str), Some("velmora-ferry.md"));

    // A server killed outright leaves its file behind; commands see that nothing answers there.
    let mut killed = NexentServer::start_in(&data_dir, ServerOptions::default())?;
    killed.kill()?;
    assert!(data_dir.join("server.json").is_file());
    let listed = nexent(&data_dir, &["kb", "list", "--json"])?;
    ensure_success(&listed, "kb list after a kill")?;
    assert_eq!(stdout_json(&listed)?[0]["documents"], 6);
    Ok(())
}

#[tokio::test]
async fn the_progress_bar_shows_files_chunks_throughput_and_eta_in_a_terminal() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let data_dir = work.path().join("data");
    let folder = work.path().join("many");
    std::fs::create_dir_all(&folder)?;
    const FILES: usize = 60;
    for index in 0..FILES {
        let body = format!("Note {index}. The depot number {index} stores {} crates of Velmora tea.\n", index * 7);
        std::fs::write(folder.join(format!("note-{index:03}.txt")), body.repeat(20))?;
    }
    let session = format!("nexent-progress-{}", std::process::id());
    let command = format!(
        "{} ingest {} --kb many --jobs 1 --data-dir {} --models-dir {}; echo EXIT=$?; sleep 600",
        nexent_binary()?.display(),
        folder.display(),
        data_dir.display(),
        models_dir().display()
    );
    let tmux = |args: &[&str]| Command::new("tmux").args(args).output();
    let started = tmux(&["new-session", "-d", "-s", &session, "-x", "150", "-y", "20", &command])?;
    anyhow::ensure!(started.status.success(), "tmux: {}", text(&started.stderr));
    let mut frames: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    let finished = loop {
        let screen = text(&tmux(&["capture-pane", "-p", "-t", &session])?.stdout);
        let done = screen.contains("EXIT=");
        if frames.last() != Some(&screen) {
            frames.push(screen);
        }
        if done || Instant::now() > deadline {
            break done;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = tmux(&["kill-session", "-t", &session]);
    let last = frames.last().cloned().unwrap_or_default();
    anyhow::ensure!(finished, "the ingest did not finish in time:\n{last}");
    assert!(last.contains(&format!("Ingested {FILES} files")) && last.contains("EXIT=0"), "{last}");
    let bars: Vec<&String> = frames
        .iter()
        .filter(|frame| {
            frame.contains("files ·")
                && frame.contains("chunks ·")
                && frame.contains("files/s")
                && frame.contains("ETA")
        })
        .collect();
    assert!(
        bars.len() >= 3,
        "the bar was drawn and moved: {} frames with a bar of {}:\n{}",
        bars.len(),
        frames.len(),
        frames.join("\n----\n")
    );
    let positions: Vec<usize> = bars
        .iter()
        .filter_map(|frame| {
            let (before, _) = frame.split_once(&format!("/{FILES} files"))?;
            before.rsplit(' ').next()?.parse().ok()
        })
        .collect();
    assert!(positions.windows(2).all(|pair| pair[0] <= pair[1]), "{positions:?}");
    assert!(positions.iter().any(|position| *position > 0 && *position < FILES), "{positions:?}");
    assert!(!last.contains("ETA"), "the bar is cleared at the end:\n{last}");
    Ok(())
}
