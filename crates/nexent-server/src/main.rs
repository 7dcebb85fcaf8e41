//! The `nexent` binary: `nexent serve` runs the whole product on one loopback port; `nexent openapi`
//! prints the API description (used to check the UI's generated types against the server).

mod engines;
mod logging;
mod settings;

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use nexent_api::{AppState, SecurityPolicy};
use nexent_core::fetch::FetchPolicy;
use nexent_core::services::{Services, ServicesOptions};
use settings::{ConfigFile, ServeArgs, Settings, resolve_data_dir};

#[derive(Debug, Parser)]
#[command(name = "nexent", version, about = "Nexent Local: a private, local-first knowledge assistant")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the server (the default command).
    Serve(Box<ServeArgs>),
    /// Print the OpenAPI document as JSON.
    Openapi,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or_else(|| Command::Serve(Box::default())) {
        Command::Serve(args) => run_serve(*args),
        Command::Openapi => print_openapi(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("nexent: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn print_openapi() -> anyhow::Result<()> {
    println!("{}", nexent_api::openapi_document().to_pretty_json()?);
    Ok(())
}

fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let data_dir = resolve_data_dir(args.data_dir.as_deref())?;
    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let file = ConfigFile::read(&data_dir)?;
    let settings = Settings::resolve(args, data_dir, file)?;
    let _log_guard = logging::init(&settings)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(settings))
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let fetch_policy = FetchPolicy { allow_private_targets: settings.allow_private_fetch, ..FetchPolicy::default() };
    let engine_settings = settings.clone();
    let (embedder, voice) = tokio::task::spawn_blocking(move || {
        (engines::load_embedder(&engine_settings), engines::load_voice(&engine_settings))
    })
    .await?;
    let chat_model = engines::load_chat_model(&settings);
    let model_connector = std::sync::Arc::new(nexent_engines::connector::EngineConnector {
        chat: chat_model.clone(),
        embedder: embedder.clone(),
        models_dir: settings.models_dir.clone(),
        llm_threads: settings.llm_threads.unwrap_or_else(nexent_engines::llama_chat::default_threads),
    });
    let services = Services::open(
        &settings.data_dir,
        ServicesOptions {
            fetch_policy,
            embedder,
            max_upload_bytes: settings.max_upload_bytes,
            ingest_workers: settings.ingest_workers,
            storage_backend: settings.storage.clone(),
            chat_model,
            models_dir: settings.models_dir.clone(),
            model_connector,
            mcp_servers: settings.mcp_servers.clone(),
            voice,
        },
    )
    .await
    .with_context(|| format!("cannot open the data dir {}", settings.data_dir.display()))?;
    for spec in &settings.watch {
        // A folder that is missing today (an unplugged drive) must not keep the server from starting.
        let path = spec.path.to_string_lossy();
        if let Err(error) = services.watcher.add(&path, &spec.index_name, spec.chunking_strategy.clone()).await {
            tracing::warn!(%error, folder = %path, index = %spec.index_name, "cannot watch a configured folder");
        }
    }
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(settings.host, settings.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", settings.host, settings.port))?;
    let local_address = listener.local_addr()?;
    let security = SecurityPolicy {
        port: local_address.port(),
        allowed_hosts: settings.allowed_hosts.clone(),
        allowed_origins: settings.allowed_origins.clone(),
        api_token: settings.api_token.clone(),
    };
    let state = AppState::new(services, security);
    let shown_host =
        if settings.host.is_unspecified() { "127.0.0.1".to_owned() } else { local_address.ip().to_string() };
    let url = match local_address {
        SocketAddr::V6(_) if !settings.host.is_unspecified() => {
            format!("http://[{shown_host}]:{}", local_address.port())
        }
        _ => format!("http://{shown_host}:{}", local_address.port()),
    };
    tracing::info!(%url, data_dir = %settings.data_dir.display(), "nexent local is listening");
    // Tests and scripts read this line to learn the port; keep its shape.
    println!("Nexent Local listening on {url}");
    let knowledge = state.services.knowledge.clone();
    let chat = state.services.chat.clone();
    nexent_api::serve(listener, state, shutdown_signal()).await?;
    knowledge.flush();
    tokio::task::spawn_blocking(move || chat.finish_loading()).await?;
    tracing::info!("shut down cleanly");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutdown requested; draining requests");
}
