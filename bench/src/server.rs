//! Server benchmark: cold start to the first successful `GET /api/conversation/list`, idle memory, and
//! latency percentiles of `GET /api/conversation/list` and `PUT /api/conversation/create` under 50
//! concurrent keep-alive clients on loopback. The reference, measured in the same run with the same
//! load generator, is a bare axum server answering a static JSON body of the same size: the floor that
//! HTTP, JSON and the load generator cost on this machine, so the difference is what our code adds.
//!
//! `NEXENT_BIN=target/release/nexent cargo run --release -p nexent-bench --bin bench-server -- --out FILE`

use std::time::{Duration, Instant};

use anyhow::Context;
use nexent_e2e::{NexentServer, rss_kib};
use serde_json::json;

const CLIENTS: usize = 50;
const REQUESTS_PER_CLIENT: usize = 200;
const COLD_STARTS: usize = 5;
const SEED_CONVERSATIONS: usize = 100;

#[derive(Debug, Clone, Copy)]
enum Load {
    List,
    Create,
}

struct LatencyReport {
    requests: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    errors: usize,
}

async fn run_load(base_url: &str, load: Load) -> anyhow::Result<LatencyReport> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(CLIENTS).no_proxy().build()?;
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..CLIENTS {
        let client = client.clone();
        let base_url = base_url.to_owned();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(REQUESTS_PER_CLIENT);
            let mut errors = 0usize;
            for _ in 0..REQUESTS_PER_CLIENT {
                let request = match load {
                    Load::List => client.get(format!("{base_url}/api/conversation/list")),
                    Load::Create => client.put(format!("{base_url}/api/conversation/create")).json(&json!({})),
                };
                let sent = Instant::now();
                match request.send().await {
                    Ok(response) if response.status().is_success() => {
                        let _ = response.bytes().await;
                        latencies.push(sent.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (mut worker_latencies, worker_errors) = worker.await?;
        latencies.append(&mut worker_latencies);
        errors += worker_errors;
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort();
    let percentile = |fraction: f64| {
        latencies
            .get(((latencies.len() as f64 * fraction) as usize).min(latencies.len().saturating_sub(1)))
            .map(|duration| duration.as_secs_f64() * 1000.0)
            .unwrap_or(f64::NAN)
    };
    Ok(LatencyReport {
        requests: latencies.len(),
        seconds,
        p50_ms: percentile(0.50),
        p99_ms: percentile(0.99),
        max_ms: latencies.last().map(|duration| duration.as_secs_f64() * 1000.0).unwrap_or(f64::NAN),
        errors,
    })
}

/// Spawns the binary on a fresh data dir and times it until the list answers 200.
async fn cold_start() -> anyhow::Result<(Duration, NexentServer)> {
    let started = Instant::now();
    let server = NexentServer::start()?;
    let client = reqwest::Client::builder().no_proxy().build()?;
    loop {
        if let Ok(response) = client.get(server.url("/api/conversation/list")).send().await
            && response.status().is_success()
        {
            return Ok((started.elapsed(), server));
        }
        if started.elapsed() > Duration::from_secs(60) {
            anyhow::bail!("the server did not answer within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The reference: bare axum on loopback with a static body shaped like our list answer.
async fn start_reference(body: String) -> anyhow::Result<String> {
    let body = std::sync::Arc::new(body);
    let list_body = body.clone();
    let app = axum::Router::new()
        .route(
            "/api/conversation/list",
            axum::routing::get(move || {
                let body = list_body.clone();
                async move { ([("content-type", "application/json")], body.as_ref().clone()) }
            }),
        )
        .route(
            "/api/conversation/create",
            axum::routing::put(|| async {
                ([("content-type", "application/json")], r#"{"code":0,"message":"success","data":{"conversation_id":1,"conversation_title":"新对话","create_time":1,"update_time":1}}"#)
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{address}"))
}

fn row(name: &str, ours: &LatencyReport, reference: &LatencyReport) -> String {
    format!(
        "| {name} | {:.2} | {:.2} | {:.2} | {:.0} | {} | {:.2} | {:.2} | {:.0} |\n",
        ours.p50_ms,
        ours.p99_ms,
        ours.max_ms,
        ours.requests as f64 / ours.seconds,
        ours.errors,
        reference.p50_ms,
        reference.p99_ms,
        reference.requests as f64 / reference.seconds,
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arguments: Vec<String> = std::env::args().collect();
    let out = arguments.iter().position(|argument| argument == "--out").and_then(|index| arguments.get(index + 1));

    let mut start_times = Vec::new();
    for _ in 0..COLD_STARTS {
        let (elapsed, server) = cold_start().await?;
        start_times.push(elapsed);
        drop(server);
    }
    start_times.sort();
    let (_, server) = cold_start().await?;
    let pid = server.pid().context("pid")?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = rss_kib(pid).unwrap_or(0);

    let client = reqwest::Client::new();
    for index in 0..SEED_CONVERSATIONS {
        client
            .put(server.url("/api/conversation/create"))
            .json(&json!({"title": format!("conversation {index}")}))
            .send()
            .await?
            .error_for_status()?;
    }
    let list_body = client.get(server.url("/api/conversation/list")).send().await?.text().await?;
    let reference_url = start_reference(list_body.clone()).await?;

    // Warm both up, then measure ours and the reference back to back.
    run_load(&server.base_url, Load::List).await?;
    run_load(&reference_url, Load::List).await?;
    let ours_list = run_load(&server.base_url, Load::List).await?;
    let reference_list = run_load(&reference_url, Load::List).await?;
    let ours_create = run_load(&server.base_url, Load::Create).await?;
    let reference_create = run_load(&reference_url, Load::Create).await?;
    let loaded_rss = rss_kib(pid).unwrap_or(0);

    let median_start = start_times[start_times.len() / 2];
    let mut table = String::new();
    table.push_str("# Server benchmark\n\n");
    table.push_str(&format!(
        "Machine: {} cores; load generator in the same process as the reference server, separate from nexent. \
         {CLIENTS} keep-alive clients x {REQUESTS_PER_CLIENT} requests per run; list over {SEED_CONVERSATIONS} conversations \
         ({} bytes per answer).\n\n",
        std::thread::available_parallelism().map(|count| count.get()).unwrap_or(0),
        list_body.len(),
    ));
    table.push_str("| measure | nexent |\n|---|---|\n");
    table.push_str(&format!(
        "| cold start to first 200 from `GET /api/conversation/list` (median of {COLD_STARTS}, fresh data dir; min {:.0} ms, max {:.0} ms) | {:.0} ms |\n",
        start_times[0].as_secs_f64() * 1000.0,
        start_times[start_times.len() - 1].as_secs_f64() * 1000.0,
        median_start.as_secs_f64() * 1000.0,
    ));
    table.push_str(&format!("| idle RSS after start | {:.1} MiB |\n", idle_rss as f64 / 1024.0));
    table.push_str(&format!("| RSS after the load runs | {:.1} MiB |\n\n", loaded_rss as f64 / 1024.0));
    table.push_str(
        "| endpoint (50 clients) | nexent p50 ms | nexent p99 ms | nexent max ms | nexent req/s | errors | reference p50 ms | reference p99 ms | reference req/s |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    table.push_str(&row("GET /api/conversation/list", &ours_list, &reference_list));
    table.push_str(&row("PUT /api/conversation/create", &ours_create, &reference_create));
    table.push_str("\nReference: bare axum 0.8 answering a static body of the same shape, measured in the same run.\n");
    print!("{table}");
    if let Some(path) = out {
        std::fs::write(path, &table).with_context(|| format!("cannot write {path}"))?;
        eprintln!("wrote {path}");
    }
    Ok(())
}
