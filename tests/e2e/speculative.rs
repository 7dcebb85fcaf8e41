//! Guessing ahead (speculative decoding, issue 17): the chat model checks guessed tokens in one pass and
//! keeps only those it would have written, so a greedy answer is the same with and without guessing, and
//! `usage.completion_tokens_details` says how many guesses were taken. A draft model that does not fit is
//! reported and left out; an out-of-range setting is refused at start.

use std::time::Duration;

use nexent_e2e::{NexentServer, ServerOptions, models_dir, nexent_binary};
use serde_json::{Value, json};

const SMOLLM: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn smollm2(flags: &[&str]) -> ServerOptions {
    let model = models_dir().join(SMOLLM);
    let mut options =
        ServerOptions::default().arg("--chat-model").arg(model.display().to_string()).arg("--llm-threads").arg("1");
    for flag in flags {
        options = options.arg(*flag);
    }
    options
}

/// A greedy answer that quotes its prompt (what prompt lookup guesses well), and its usage.
async fn quote(server: &NexentServer) -> anyhow::Result<(String, Value)> {
    let passage = "The lighthouse on Varn Island was built in 1872 by the engineer Mara Olsen, who used granite \
                   from the quarry at Keld and a lens made in Paris.";
    let request = json!({
        "messages": [{"role": "user", "content": format!("Repeat this sentence word for word: {passage}")}],
        "max_tokens": 48,
        "temperature": 0,
    });
    let (status, answer) = server.post_json("/v1/chat/completions", &request).await?;
    anyhow::ensure!(status == 200, "{answer}");
    let text = answer["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_owned();
    Ok((text, answer["usage"].clone()))
}

fn accepted(usage: &Value) -> u64 {
    usage["completion_tokens_details"]["accepted_prediction_tokens"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn guessing_ahead_keeps_the_greedy_answer_and_reports_the_guesses_taken() -> anyhow::Result<()> {
    let plain = NexentServer::start_with(smollm2(&["--draft-tokens", "0"]))?;
    let (expected, usage) = quote(&plain).await?;
    assert!(!expected.is_empty());
    assert!(usage.get("completion_tokens_details").is_none(), "no guesses, no details: {usage}");
    drop(plain);

    // The default: prompt lookup, six tokens at a time.
    let lookup = NexentServer::start_with(smollm2(&[]))?;
    let (answer, usage) = quote(&lookup).await?;
    assert_eq!(answer, expected, "the same answer with guessing");
    assert!(accepted(&usage) > 0, "a quoted sentence is guessed from the prompt: {usage}");
    let completion = usage["completion_tokens"].as_u64().unwrap_or(0);
    assert!(accepted(&usage) < completion, "a guess is one of the answer's tokens: {usage}");
    drop(lookup);

    // A draft model alone (the same file drafting for itself guesses what the model writes).
    let model = models_dir().join(SMOLLM).display().to_string();
    let drafted = NexentServer::start_with(smollm2(&["--prompt-lookup", "false", "--draft-model", &model]))?;
    let (answer, usage) = quote(&drafted).await?;
    assert_eq!(answer, expected, "the same answer with a draft model");
    assert!(accepted(&usage) * 2 >= completion, "most drafted tokens are taken: {usage}");
    Ok(())
}

/// Waits for `needle` in the server's log file.
async fn log_mentions(server: &NexentServer, needle: &str) -> bool {
    let log = server.data_dir().join("logs/nexent.log");
    for _ in 0..50 {
        if std::fs::read_to_string(&log).is_ok_and(|text| text.contains(needle)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn a_draft_model_that_does_not_fit_is_reported_and_chat_goes_on() -> anyhow::Result<()> {
    let scratch = tempfile::tempdir()?;
    let not_a_model = scratch.path().join("draft.gguf");
    std::fs::write(&not_a_model, b"GGUF but not really a model file")?;
    // Qwen's vocabulary is three times SmolLM's: it cannot draft for it.
    let other_vocabulary = models_dir().join("Qwen2.5-Coder-0.5B-Instruct-Q4_K_M.gguf");
    let missing = scratch.path().join("missing.gguf");
    for (draft, reason) in [
        (&not_a_model, "cannot load the draft model"),
        (&other_vocabulary, "cannot draft for this model"),
        (&missing, "no draft model file"),
    ] {
        let server = NexentServer::start_with(smollm2(&[
            "--prompt-lookup",
            "false",
            "--draft-model",
            &draft.display().to_string(),
        ]))?;
        let (answer, usage) = quote(&server).await?;
        assert!(!answer.is_empty(), "chat answers without the draft model");
        assert_eq!(accepted(&usage), 0, "{usage}");
        assert!(log_mentions(&server, reason).await, "the log says why the draft model is not used: {reason}");
    }
    Ok(())
}

#[test]
fn out_of_range_guessing_settings_are_refused_at_start_with_the_flag_named() -> anyhow::Result<()> {
    let data_dir = tempfile::tempdir()?;
    for (flag, value) in [("--draft-tokens", "33"), ("--draft-tokens", "-1"), ("--prompt-lookup", "sometimes")] {
        let output = std::process::Command::new(nexent_binary()?)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir.path())
            .arg("--port")
            .arg("0")
            .arg(format!("{flag}={value}"))
            .output()?;
        assert!(!output.status.success(), "{flag} {value} is refused");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(flag), "the message names {flag}: {stderr}");
    }
    Ok(())
}
