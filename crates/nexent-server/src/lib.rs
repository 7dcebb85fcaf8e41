//! Nexent Local's server as a library: settings (flags, environment, config.toml), logging, the engines
//! chosen at start-up, and [`serve`]. The `nexent` binary (`main.rs`) and the desktop shell (`src-tauri`)
//! run the same server through it.

pub mod cli;
pub mod discovery;
pub mod engines;
pub mod logging;
pub mod model_files;
pub mod settings;

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;

use nexent_api::{AppState, SecurityPolicy};
use nexent_core::fetch::FetchPolicy;
use nexent_core::services::{Services, ServicesOptions};
pub use settings::{ConfigFile, ServeArgs, Settings, resolve_data_dir};

/// Settings from parsed flags: the data dir (created), its config.toml, and the flags over it.
pub fn settings_from(args: ServeArgs) -> anyhow::Result<Settings> {
    let data_dir = resolve_data_dir(args.data_dir.as_deref())?;
    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let file = ConfigFile::read(&data_dir)?;
    Settings::resolve(args, data_dir, file)
}

/// Opens the data dir and every engine, listens, reports the URL to `on_listening` and serves until
/// `shutdown` completes; then drains requests and flushes the indices. The `nexent` binary and the
/// desktop shell both run the server through this.
pub async fn serve(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_listening: impl FnOnce(&str),
) -> anyhow::Result<()> {
    let fetch_policy = FetchPolicy { allow_private_targets: settings.allow_private_fetch, ..FetchPolicy::default() };
    let engine_settings = settings.clone();
    let (embedders, voice) = tokio::task::spawn_blocking(move || {
        (engines::load_embedders(&engine_settings), engines::load_voice(&engine_settings))
    })
    .await?;
    let chat_model = engines::load_chat_model(&settings);
    let model_connector = std::sync::Arc::new(nexent_engines::connector::EngineConnector {
        chat: chat_model.clone(),
        embedders: embedders.clone(),
        models_dir: settings.models_dir.clone(),
        llm_threads: settings.llm_threads.unwrap_or_else(nexent_engines::llama_chat::default_threads),
    });
    let services = Services::open(
        &settings.data_dir,
        ServicesOptions {
            fetch_policy,
            embedders,
            max_upload_bytes: settings.max_upload_bytes,
            storage_quota_bytes: settings.storage_quota_bytes,
            disk_reserve_bytes: settings.disk_reserve_bytes,
            ingest_workers: settings.ingest_workers,
            storage_backend: settings.storage.clone(),
            chat_model,
            models_dir: settings.models_dir.clone(),
            model_connector,
            mcp_servers: settings.mcp_servers.clone(),
            voice,
            database_url: settings.database_url.clone(),
            knowledge_store: settings.knowledge_store,
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
    let shown_host =
        if settings.host.is_unspecified() { "127.0.0.1".to_owned() } else { local_address.ip().to_string() };
    let url = match local_address {
        SocketAddr::V6(_) if !settings.host.is_unspecified() => {
            format!("http://[{shown_host}]:{}", local_address.port())
        }
        _ => format!("http://{shown_host}:{}", local_address.port()),
    };
    let state = AppState::new(services, security).with_own_url(&url);
    tracing::info!(%url, data_dir = %settings.data_dir.display(), "nexent local is listening");
    // Commands run beside this server find it here (and must not open the indices it writes).
    let _announcement = if settings.advertise {
        match discovery::announce(&settings.data_dir, &url) {
            Ok(announcement) => Some(announcement),
            Err(error) => {
                tracing::warn!(%error, "cannot write server.json; commands will not find this server");
                None
            }
        }
    } else {
        None
    };
    on_listening(&url);
    let knowledge = state.services.knowledge.clone();
    let chat = state.services.chat.clone();
    nexent_api::serve(listener, state, shutdown).await?;
    knowledge.flush();
    tokio::task::spawn_blocking(move || chat.finish_loading()).await?;
    tracing::info!("shut down cleanly");
    Ok(())
}
