//! Chat-model benchmark: prompt processing and generation tokens/s, and time to first token, for each local
//! model through our server (`POST /v1/chat/completions`, streamed), beside the reference a user would pick
//! instead (stock llama.cpp built for this CPU, `scripts/build-native-llama.sh`) and
//! beside llama.cpp driven directly through our build (the same `llama-cpp-2` crate and CPU kernels), with
//! the same GGUF file, prompt, batch and thread count, in one run, one after the other so they never share
//! the cores.
//!
//! `NEXENT_LLAMA_BENCH=$(bash scripts/build-native-llama.sh) NEXENT_BIN=target/release/nexent cargo run --release -p nexent-bench --bin bench-llm -- --models models/files --out FILE`

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use nexent_bench::{argument, median};
use nexent_e2e::{NexentServer, ServerOptions};
use serde_json::{Value, json};

const MODELS: [&str; 2] = ["SmolLM2-135M-Instruct.Q4_1", "Qwen2.5-Coder-0.5B-Instruct-Q4_K_M"];
const GENERATED: usize = 128;
const RUNS: usize = 3;
const CONTEXT: u32 = 2048;

/// A prompt of a few hundred tokens, asking for a long answer. Each run's differs in its first words: the
/// server keeps the prompt prefix a request shares with the previous one in its KV cache, and the prompt
/// rate is what is measured here.
fn question(run: usize) -> String {
    let passage = "Tides are the rise and fall of sea levels caused by the combined effects of the gravitational \
        forces exerted by the Moon and the Sun, and the rotation of the Earth. Tide tables can be used for any \
        given locale to find the predicted times and amplitude. The predictions are influenced by many factors \
        including the alignment of the Sun and Moon, the phase and amplitude of the tide, the amphidromic \
        systems of the oceans, and the shape of the coastline and near-shore bathymetry. ";
    format!(
        "Question {run}. {}\nExplain in a long, detailed essay how tides work and why they differ from place to place.",
        passage.repeat(4)
    )
}

#[derive(Clone, Copy)]
struct Figures {
    prompt_tokens: usize,
    prompt_per_s: f64,
    generated: usize,
    generation_per_s: f64,
    first_token_ms: f64,
}

fn median_figures(runs: &[Figures]) -> Figures {
    Figures {
        prompt_tokens: runs[0].prompt_tokens,
        prompt_per_s: median(runs.iter().map(|run| run.prompt_per_s).collect()),
        generated: runs[0].generated,
        generation_per_s: median(runs.iter().map(|run| run.generation_per_s).collect()),
        first_token_ms: median(runs.iter().map(|run| run.first_token_ms).collect()),
    }
}

/// llama.cpp directly: the prompt in 512-token batches, then greedy generation of [`GENERATED`] tokens
/// (end-of-generation tokens are sampled past, so every run generates the same count).
fn direct(backend: &LlamaBackend, path: &Path, threads: i32) -> anyhow::Result<Figures> {
    let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())?;
    let template = model.chat_template(None)?;
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(CONTEXT))
        .with_n_batch(512)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut context = model.new_context(backend, params)?;
    let mut runs = Vec::new();
    for run in 0..RUNS {
        let chat = [LlamaChatMessage::new("user".into(), question(run))?];
        let prompt = model.apply_chat_template(&template, &chat, true)?;
        let tokens = model.vocab().tokenize(prompt.as_bytes(), false, true);
        context.clear_kv_cache();
        let mut sampler = LlamaSampler::greedy();
        let started = Instant::now();
        let mut batch = LlamaBatch::new(512, 1);
        for (chunk_index, chunk) in tokens.chunks(512).enumerate() {
            batch.clear();
            for (offset, token) in chunk.iter().enumerate() {
                let position = chunk_index * 512 + offset;
                batch.add(*token, position as i32, &[0], position == tokens.len() - 1)?;
            }
            context.decode(&mut batch)?;
        }
        let prompt_seconds = started.elapsed().as_secs_f64();
        let mut logits = batch.n_tokens() - 1;
        let mut first_token = None;
        let generating = Instant::now();
        for position in tokens.len()..tokens.len() + GENERATED {
            let token = sampler.sample(&context, logits);
            first_token.get_or_insert_with(|| started.elapsed());
            let _ = model.vocab().token_to_piece(token, false, None);
            batch.clear();
            batch.add(token, position as i32, &[0], true)?;
            logits = 0;
            context.decode(&mut batch)?;
        }
        runs.push(Figures {
            prompt_tokens: tokens.len(),
            prompt_per_s: tokens.len() as f64 / prompt_seconds,
            generated: GENERATED,
            generation_per_s: GENERATED as f64 / generating.elapsed().as_secs_f64(),
            first_token_ms: first_token.unwrap_or_default().as_secs_f64() * 1000.0,
        });
    }
    Ok(median_figures(&runs))
}

/// Stock llama.cpp built for this CPU (`NEXENT_LLAMA_BENCH`: `scripts/build-native-llama.sh`'s harness over
/// `llama.h`, measuring as llama-bench does) on the same file, a prompt of the same token count, the same
/// batch (512) and threads (for both phases), [`RUNS`] repetitions after a warm-up.
fn native_reference(tool: &Path, path: &Path, prompt_tokens: usize, threads: usize) -> anyhow::Result<Figures> {
    let output = std::process::Command::new(tool)
        .arg(path)
        .args([prompt_tokens.to_string(), GENERATED.to_string(), threads.to_string(), RUNS.to_string()])
        .output()
        .with_context(|| format!("cannot run {}", tool.display()))?;
    anyhow::ensure!(output.status.success(), "the reference failed: {}", String::from_utf8_lossy(&output.stderr));
    let result: Value = serde_json::from_slice(&output.stdout).context("the reference's JSON")?;
    let rate = |key: &str| result[key].as_f64().with_context(|| format!("{key} in {result}"));
    let (prompt_per_s, generation_per_s) = (rate("prompt_tokens_per_s")?, rate("generation_tokens_per_s")?);
    Ok(Figures {
        prompt_tokens,
        prompt_per_s,
        generated: GENERATED,
        generation_per_s,
        first_token_ms: 1000.0 * (prompt_tokens as f64 / prompt_per_s + 1.0 / generation_per_s),
    })
}

/// The same through the server: streamed, greedy, `max_tokens` [`GENERATED`]; the first streamed text gives
/// the time to first token, the usage block the token counts. `threads`: both phases' (`--llm-threads`),
/// or the server's defaults when `None`. `guessing`: the server's default guessing ahead, else none (the
/// same work as the other paths, token by token).
async fn through_server(path: &Path, threads: Option<usize>, guessing: bool) -> anyhow::Result<Figures> {
    let mut options = ServerOptions::default()
        .arg("--chat-model")
        .arg(path.display().to_string())
        .arg("--llm-context")
        .arg(CONTEXT.to_string());
    if !guessing {
        options = options.arg("--draft-tokens").arg("0");
    }
    if let Some(threads) = threads {
        options = options.arg("--llm-threads").arg(threads.to_string());
    }
    let server = NexentServer::start_with(options)?;
    // One request loads the model (it loads in the background) and warms the page cache.
    let (status, warm) = server
        .post_json("/v1/chat/completions", &json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}))
        .await?;
    anyhow::ensure!(status == 200, "{warm}");
    let mut runs = Vec::new();
    for run in 0..RUNS {
        let body = json!({"messages": [{"role": "user", "content": question(run)}], "max_tokens": GENERATED,
                          "temperature": 0, "stream": true, "stream_options": {"include_usage": true}});
        let started = Instant::now();
        let response = server.client.post(server.url("/v1/chat/completions")).json(&body).send().await?;
        anyhow::ensure!(response.status() == 200, "status {}", response.status());
        let mut stream = response.bytes_stream();
        let (mut first, mut usage, mut buffer) = (None::<Duration>, Value::Null, String::new());
        while let Some(chunk) = stream.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk?));
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                let Some(data) = event.trim().strip_prefix("data: ") else { continue };
                if data == "[DONE]" {
                    continue;
                }
                let chunk: Value = serde_json::from_str(data)?;
                if chunk["choices"][0]["delta"]["content"].as_str().is_some_and(|text| !text.is_empty()) {
                    first.get_or_insert_with(|| started.elapsed());
                }
                if chunk["usage"].is_object() {
                    usage = chunk["usage"].clone();
                }
            }
        }
        let total = started.elapsed().as_secs_f64();
        let first = first.context("no text was streamed")?.as_secs_f64();
        let prompt_tokens = usage["prompt_tokens"].as_u64().unwrap_or(0) as usize;
        let generated = usage["completion_tokens"].as_u64().unwrap_or(0) as usize;
        runs.push(Figures {
            prompt_tokens,
            // The first token's time holds the prompt and one generation step; the step is taken out at the
            // generation rate measured in the same run.
            prompt_per_s: 0.0,
            generated,
            generation_per_s: (generated.saturating_sub(1)) as f64 / (total - first),
            first_token_ms: first * 1000.0,
        });
        let last = runs.len() - 1;
        let step = 1.0 / runs[last].generation_per_s;
        runs[last].prompt_per_s = prompt_tokens as f64 / (first - step).max(1e-6);
    }
    Ok(median_figures(&runs))
}

/// A process that keeps one core busy (what an indexing job, a browser or a build does to an assistant).
struct BusyCore(std::process::Child);

impl BusyCore {
    fn start() -> anyhow::Result<Self> {
        Ok(Self(std::process::Command::new("sh").arg("-c").arg("while :; do :; done").spawn()?))
    }
}

impl Drop for BusyCore {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Why the default is cores − 1: the default model, direct, idle and beside one busy process, with one
/// thread fewer than the cores and with all of them.
fn contention(backend: &LlamaBackend, models: &Path) -> anyhow::Result<String> {
    let name = MODELS[1];
    let path = models.join(format!("{name}.gguf"));
    let cores = nexent_bench::cores();
    let mut table = format!(
        "\n## Under load: the thread default\n\n{name}, direct, as above; \"busy\" runs a shell loop that keeps one \
         core busy during the measurement. llama.cpp's workers spin-wait on each other, so a thread that shares \
         its core with another process holds all of them back.\n\n\
         | threads | other load | prompt tok/s | generation tok/s | first token ms |\n|---|---|---|---|---|\n"
    );
    let mut thread_counts = vec![cores.saturating_sub(1).max(1), cores];
    thread_counts.dedup();
    for threads in thread_counts {
        for busy in [false, true] {
            let _load = if busy { Some(BusyCore::start()?) } else { None };
            let figures = direct(backend, &path, threads as i32)?;
            eprintln!("{name} threads {threads} busy {busy}: {:.1} tok/s", figures.generation_per_s);
            table.push_str(&format!(
                "| {threads} | {} | {:.0} | {:.1} | {:.0} |\n",
                if busy { "one busy process" } else { "idle" },
                figures.prompt_per_s,
                figures.generation_per_s,
                figures.first_token_ms
            ));
        }
    }
    Ok(table)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arguments: Vec<String> = std::env::args().collect();
    let models = PathBuf::from(argument(&arguments, "--models").unwrap_or_else(|| "models/files".into()));
    let out = argument(&arguments, "--out");
    let backend = nexent_engines::llama_chat::backend()?;
    llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default().with_logs_enabled(false));
    let kernels = nexent_engines::llama_chat::cpu_kernels::loaded_variant().unwrap_or_else(|| "?".into());
    let native = std::env::var_os("NEXENT_LLAMA_BENCH").map(PathBuf::from);
    let cores = nexent_bench::cores();
    let (default_generation, default_prompt) =
        (nexent_engines::llama_chat::default_threads(), nexent_engines::llama_chat::default_batch_threads());
    let mut report = format!(
        "# Chat-model benchmark\n\nMachine: {cores} cores. Produced by `make bench-llm` (bench/src/llm.rs). Each row: \
         median of {RUNS} runs of a {}-character prompt (chat template applied) and {GENERATED} generated tokens, \
         greedy, batch 512, context {CONTEXT}, the same thread count for both phases unless the row says \
         otherwise.\n\n\
         - **reference**: stock llama.cpp built for this CPU (`GGML_NATIVE=ON`) from the same vendored source, \
         measured as llama-bench does by a harness over `llama.h` (`scripts/build-native-llama.sh`; the vendored \
         source leaves llama-bench out), on the same file, prompt length, batch and threads.\n\
         - **direct**: llama.cpp driven through our build (`llama-cpp-2`, the CPU kernels chosen at start: \
         `{kernels}` here) in this process.\n\
         - **server**: `POST /v1/chat/completions` (streamed) on the real release server, guessing ahead off \
         (`--draft-tokens 0`) unless the row says so; its prompt tokens/s are derived from the time to first \
         token minus one generation step.\n\n\
         Goal: server ≥ 95% of the reference for prompt and generation tokens/s.\n\n\
         | model | threads | path | prompt tokens | prompt tok/s | generated | generation tok/s | first token ms | server / reference (prompt, generation) |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        question(0).len()
    );
    for name in MODELS {
        let path = models.join(format!("{name}.gguf"));
        anyhow::ensure!(path.is_file(), "{} is missing: python3 models/fetch.py llm llm-tiny", path.display());
        for threads in [1usize, 2] {
            let ours = direct(backend, &path, threads as i32)?;
            let reference = match &native {
                Some(tool) => Some(native_reference(tool, &path, ours.prompt_tokens, threads)?),
                None => None,
            };
            let served = through_server(&path, Some(threads), false).await?;
            eprintln!(
                "{name} threads {threads}: reference {:?} tok/s, direct {:.1} tok/s, server {:.1} tok/s",
                reference.map(|figures| figures.generation_per_s),
                ours.generation_per_s,
                served.generation_per_s
            );
            let mut rows = Vec::new();
            if let Some(reference) = reference {
                rows.push(("reference (stock llama.cpp, native)", reference));
            }
            rows.push(("direct", ours));
            rows.push(("server", served));
            for (label, figures) in rows {
                let ratio = match (label, reference) {
                    ("server", Some(reference)) => format!(
                        "{:.0}%, {:.0}%",
                        100.0 * served.prompt_per_s / reference.prompt_per_s,
                        100.0 * served.generation_per_s / reference.generation_per_s
                    ),
                    _ => String::new(),
                };
                report.push_str(&format!(
                    "| {name} | {threads} | {label} | {} | {:.0} | {} | {:.1} | {:.0} | {ratio} |\n",
                    figures.prompt_tokens,
                    figures.prompt_per_s,
                    figures.generated,
                    figures.generation_per_s,
                    figures.first_token_ms
                ));
            }
        }
        // The server's own choice: every core for the prompt, one fewer for generating; then with its
        // default guessing ahead too (prompt lookup: what it gains depends on how much the answer repeats).
        for (label, guessing) in [("server, default threads", false), ("server, default threads and guessing", true)] {
            let defaults = through_server(&path, None, guessing).await?;
            report.push_str(&format!(
                "| {name} | prompt {default_prompt}, generation {default_generation} | {label} | {} | {:.0} | {} | {:.1} | {:.0} | |\n",
                defaults.prompt_tokens,
                defaults.prompt_per_s,
                defaults.generated,
                defaults.generation_per_s,
                defaults.first_token_ms
            ));
        }
    }
    report.push_str(&contention(backend, &models)?);
    print!("{report}");
    if let Some(out) = out {
        std::fs::write(&out, &report)?;
        eprintln!("wrote {out}");
    }
    Ok(())
}
