//! Hostile input to the engines (issue 15, items 1 and 6): no grammar a client sends (a dead end, one that
//! does not parse, a left-recursive one, one too deep for llama.cpp's parser) ends the process, and six
//! concurrent health checks of one local model file load it once.

use std::path::Path;

use anyhow::Context;
use nexent_e2e::{NexentServer, ServerOptions, models_dir, peak_rss_kib, rss_kib};
use serde_json::{Value, json};

const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1";

fn smollm2_in(models: Option<&Path>) -> ServerOptions {
    let model = models_dir().join(format!("{SMOLLM2}.gguf"));
    let options =
        ServerOptions::default().arg("--chat-model").arg(model.display().to_string()).arg("--llm-threads").arg("1");
    match models {
        Some(folder) => options.with_models_dir(folder),
        None => options,
    }
}

async fn chat(server: &NexentServer, body: &Value) -> anyhow::Result<(u16, String)> {
    let response = server.client.post(server.url("/v1/chat/completions")).json(body).send().await?;
    Ok((response.status().as_u16(), response.text().await?))
}

/// The same process answers: the health route works and `pid` is still alive.
async fn assert_still_serving(server: &NexentServer, pid: u32, after: &str) -> anyhow::Result<()> {
    let (status, _) = server.get_json("/api/health").await.with_context(|| format!("no answer after {after}"))?;
    assert_eq!(status, 200, "health after {after}");
    assert_eq!(server.pid(), Some(pid));
    assert!(Path::new(&format!("/proc/{pid}")).exists(), "the server process is gone after {after}");
    Ok(())
}

#[tokio::test]
async fn no_grammar_can_end_the_server() -> anyhow::Result<()> {
    let server = NexentServer::start_with(smollm2_in(None))?;
    let pid = server.pid().context("pid")?;
    // Loaded, so grammars are checked before anything is streamed.
    let (status, body) =
        chat(&server, &json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1})).await?;
    assert_eq!(status, 200, "{body}");

    // Dead ends: after what they allow, nothing may follow (the issue's request is the first). Each answers
    // what its grammar allowed and stops there.
    let dead_ends: [(&str, &[&str]); 4] = [
        (r#"root ::= "a" [^\x00-\U003FFFFF]"#, &["a"]),
        (r#"root ::= [^\x00-\U003FFFFF]"#, &[""]),
        ("root ::= \"hello\" nothing\nnothing ::= [^\\x00-\\U0010FFFF]", &["hello"]),
        (r#"root ::= "a" "b"? [^\x00-\U003FFFFF] "c""#, &["a", "ab"]),
    ];
    for (grammar, answers) in dead_ends {
        for stream in [false, true] {
            let request = json!({"messages": [{"role": "user", "content": "hi"}], "grammar": grammar,
                                 "max_tokens": 8, "stream": stream, "temperature": 0.7});
            let (status, body) = chat(&server, &request).await.with_context(|| format!("grammar {grammar}"))?;
            assert_eq!(status, 200, "{grammar}: {body}");
            if stream {
                assert!(body.contains("\"finish_reason\":\"stop\""), "{grammar}: {body}");
                assert!(body.trim_end().ends_with("data: [DONE]") && !body.contains("\"error\""), "{body}");
            } else {
                let answer: Value = serde_json::from_str(&body)?;
                let text = answer["choices"][0]["message"]["content"].as_str().context("content")?;
                assert!(answers.contains(&text), "{grammar}: {text:?}");
                assert_eq!(answer["choices"][0]["finish_reason"], "stop", "{body}");
            }
            assert_still_serving(&server, pid, grammar).await?;
        }
    }

    // Grammars that cannot be used at all: a 400 in OpenAI's shape, streamed or not.
    let deep = format!("root ::= {}\"a\"{}", "(".repeat(5000), ")".repeat(5000));
    let long = format!("root ::= \"{}\"", "a".repeat(100_000));
    let invalid = [
        "root ::= (",
        "root ::= root \"a\" | \"a\"",
        "root ::= missing",
        "start ::= \"a\"",
        "root ::= \"a\u{0}\"",
        deep.as_str(),
        long.as_str(),
    ];
    for grammar in invalid {
        for stream in [false, true] {
            let request = json!({"messages": [{"role": "user", "content": "hi"}], "grammar": grammar,
                                 "max_tokens": 5, "stream": stream});
            let (status, body) = chat(&server, &request).await?;
            let shown = &grammar[..grammar.len().min(40)];
            assert_eq!(status, 400, "{shown}: {body}");
            let error: Value = serde_json::from_str(&body)?;
            assert_eq!(error["error"]["type"], "invalid_request_error", "{body}");
            assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("grammar")), "{body}");
            assert_still_serving(&server, pid, shown).await?;
        }
    }

    // The agent's own tool-call grammar, cut short by max_tokens and run to its end, also ends cleanly.
    let tools = json!([{"type": "function", "function": {"name": "lookup", "description": "Look a word up",
        "parameters": {"type": "object", "properties": {"word": {"type": "string", "enum": ["tide", "moon"]}},
                       "required": ["word"]}}}]);
    for max_tokens in [3, 40] {
        let request = json!({"messages": [{"role": "user", "content": "Look up tide"}], "tools": tools,
                             "tool_choice": "required", "max_tokens": max_tokens});
        let (status, body) = chat(&server, &request).await?;
        assert_eq!(status, 200, "{body}");
        assert_still_serving(&server, pid, "a tool call").await?;
    }
    Ok(())
}

/// Makes the kernel's peak-RSS counter start again from the current resident size (`clear_refs` 5).
fn reset_peak_rss(pid: u32) -> anyhow::Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").context("reset VmHWM")
}

/// Runs `count` health checks of `model` at once; returns how far the peak RSS rose above the RSS before.
async fn concurrent_checks_growth_kib(
    server: &NexentServer,
    pid: u32,
    model: &str,
    count: usize,
) -> anyhow::Result<u64> {
    reset_peak_rss(pid)?;
    let before = rss_kib(pid).context("VmRSS")?;
    let path = format!("/api/model/healthcheck?model_name={model}");
    let checks = (0..count).map(|_| server.get_json(&path));
    for outcome in futures::future::join_all(checks).await {
        let (status, report) = outcome?;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["data"]["connectivity"], true, "{model}: {report}");
    }
    let peak = peak_rss_kib(pid).context("VmHWM")?;
    Ok(peak.saturating_sub(before))
}

#[tokio::test]
async fn concurrent_health_checks_load_a_model_file_once() -> anyhow::Result<()> {
    // The usual models, plus SmolLM2 under two more names: a link to the chat model's file and a copy.
    let folder = tempfile::tempdir()?;
    for entry in std::fs::read_dir(models_dir())? {
        let entry = entry?;
        std::os::unix::fs::symlink(entry.path(), folder.path().join(entry.file_name()))?;
    }
    let original = models_dir().join(format!("{SMOLLM2}.gguf"));
    std::os::unix::fs::symlink(&original, folder.path().join("smollm2-link.gguf"))?;
    std::fs::copy(&original, folder.path().join("smollm2-copy.gguf"))?;
    let model_kib = std::fs::metadata(&original)?.len() / 1024;

    let server = NexentServer::start_with(smollm2_in(Some(folder.path())))?;
    let pid = server.pid().context("pid")?;
    let (status, body) =
        chat(&server, &json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})).await?;
    assert_eq!(status, 200, "{body}");

    let one_load = concurrent_checks_growth_kib(&server, pid, "smollm2-copy", 1).await?;
    let six_of_the_copy = concurrent_checks_growth_kib(&server, pid, "smollm2-copy", 6).await?;
    let six_of_the_link = concurrent_checks_growth_kib(&server, pid, "smollm2-link", 6).await?;
    println!(
        "peak RSS growth: model file {model_kib} KiB; one check of a copy {one_load} KiB; six concurrent checks of \
         the copy {six_of_the_copy} KiB; six of a link to the loaded chat model {six_of_the_link} KiB"
    );
    let bound = model_kib.max(one_load) * 3 / 2;
    assert!(six_of_the_copy < bound, "six checks of one file loaded it more than once: {six_of_the_copy} KiB");
    assert!(six_of_the_link < model_kib / 2, "the loaded chat model was loaded again: {six_of_the_link} KiB");
    assert_still_serving(&server, pid, "the health checks").await?;
    Ok(())
}
