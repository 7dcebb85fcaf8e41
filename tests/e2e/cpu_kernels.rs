//! llama.cpp's CPU kernels are chosen at start among run-time modules (issue 17): the server answers
//! with only the lowest x86-64 variant to choose from (what a CPU without AVX gets), uses the best one
//! otherwise, and without any it starts and says why chat is unavailable.

use nexent_e2e::{NexentServer, ServerOptions, nexent_binary};
use serde_json::json;

/// The `libggml-cpu-*.so` files mapped into a process.
fn mapped_kernels(pid: u32) -> Vec<String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let mut names: Vec<String> = maps
        .lines()
        .filter_map(|line| line.rsplit('/').next())
        .filter(|name| name.starts_with("libggml-cpu-"))
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

async fn say_hello(server: &NexentServer) -> anyhow::Result<(u16, serde_json::Value)> {
    server
        .post_json(
            "/v1/chat/completions",
            &json!({"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}),
        )
        .await
}

#[tokio::test]
async fn the_server_answers_with_only_the_lowest_cpu_variant() -> anyhow::Result<()> {
    let binary_dir = nexent_binary()?.parent().map(std::path::Path::to_path_buf).expect("a folder");
    let only_lowest = tempfile::tempdir()?;
    std::fs::copy(binary_dir.join("libggml-cpu-x64.so"), only_lowest.path().join("libggml-cpu-x64.so"))?;
    let server = NexentServer::start_with(
        ServerOptions::default()
            .arg("--llm-threads")
            .arg("1")
            .env("NEXENT_GGML_BACKENDS", only_lowest.path().display().to_string()),
    )?;
    let (status, answer) = say_hello(&server).await?;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["choices"][0]["message"]["content"].as_str().is_some_and(|text| !text.is_empty()), "{answer}");
    assert_eq!(mapped_kernels(server.pid().expect("pid")), ["libggml-cpu-x64.so"]);

    // With every variant beside the binary, one built for a newer CPU than plain x86-64 is taken here.
    let server = NexentServer::start_with(ServerOptions::default().arg("--llm-threads").arg("1"))?;
    let (status, answer) = say_hello(&server).await?;
    assert_eq!(status, 200, "{answer}");
    let mapped = mapped_kernels(server.pid().expect("pid"));
    assert_eq!(mapped.len(), 1, "{mapped:?}");
    assert_ne!(mapped[0], "libggml-cpu-x64.so", "this machine has at least SSE4.2");
    Ok(())
}

#[tokio::test]
async fn without_cpu_kernels_chat_is_unavailable_and_says_why() -> anyhow::Result<()> {
    let empty = tempfile::tempdir()?;
    let server = NexentServer::start_with(
        ServerOptions::default().env("NEXENT_GGML_BACKENDS", empty.path().display().to_string()),
    )?;
    let (status, answer) = say_hello(&server).await?;
    assert_eq!(status, 503, "{answer}");
    assert!(answer.to_string().contains("CPU kernels"), "{answer}");
    let (status, _) = server.get_json("/api/health").await?;
    assert_eq!(status, 200, "the rest of the server works");
    Ok(())
}
