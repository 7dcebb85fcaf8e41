//! The web UI in a real browser (Debian's Chromium through playwright-core, `ui/e2e/run.mjs`) against the
//! real server: knowledge base, uploads, chat with steps and a citation, like, rename, delete, with axe
//! checks and screenshots under `bench/results/screenshots/`. Also: the UI's API types match the server's
//! OpenAPI document.

use std::path::Path;
use std::process::Command;

use nexent_e2e::{NexentServer, ServerOptions, models_dir, nexent_binary};

fn ui_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../ui"))
}

#[tokio::test]
async fn a_person_builds_a_knowledge_base_and_gets_a_cited_answer_in_the_browser() -> anyhow::Result<()> {
    anyhow::ensure!(
        ui_dir().join("dist/index.html").is_file() && ui_dir().join("node_modules").is_dir(),
        "the UI is not built: scripts/setup.sh runs `npm ci` and `npm run build` in ui/"
    );
    // The Markdown checks read answers the local model writes at temperature 0; with the sources' share of
    // the prompt fixed (instead of sized by the prompt speed measured under this machine's load), the same
    // question gets the same answer on every run.
    let server = NexentServer::start_with(ServerOptions::default().env("AGENT_OBSERVATION_CHARS", "340"))?;
    let screenshots = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/results/screenshots"));
    let base = server.url("");
    let output = tokio::task::spawn_blocking({
        let screenshots = screenshots.to_path_buf();
        // The fake microphone plays jfk.wav into the dictation test.
        let microphone = models_dir().join("jfk.wav").canonicalize();
        move || -> anyhow::Result<std::process::Output> {
            // Chromium reads the fake microphone file only by a plain absolute path.
            let microphone = microphone?;
            Ok(Command::new("node")
                .current_dir(ui_dir())
                .arg("e2e/run.mjs")
                .arg(base)
                .arg(screenshots)
                .arg(microphone)
                .output()?)
        }
    })
    .await??;
    let log = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    println!("{log}");
    assert!(output.status.success(), "the browser test failed:\n{log}");
    assert!(log.contains("all expectations held"));
    Ok(())
}

#[test]
fn the_uis_api_types_are_generated_from_this_servers_openapi_document() -> anyhow::Result<()> {
    let output = Command::new("node")
        .current_dir(ui_dir())
        .arg("scripts/api-types.mjs")
        .arg("--check")
        .env("NEXENT_BIN", nexent_binary()?)
        .output()?;
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}
