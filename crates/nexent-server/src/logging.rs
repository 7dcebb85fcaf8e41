//! Logs: `tracing` to stderr and to `logs/nexent.log` in the data dir. `NEXENT_LOG` (a `tracing` filter)
//! overrides `log` in config.toml; the default is `info`.

use anyhow::Context;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::settings::Settings;

/// Our own messages at info; llama.cpp's model-loading chatter (a hundred lines per load) only when it warns,
/// and the binding's complaints about llama.cpp's log continuation lines not at all.
const DEFAULT_FILTER: &str = "info,llama-cpp-2=warn,llama_cpp_2::log=off";

/// Installs the subscriber; keep the guard alive so the file writer flushes on exit.
pub fn init(settings: &Settings) -> anyhow::Result<WorkerGuard> {
    let filter = std::env::var("NEXENT_LOG")
        .ok()
        .or_else(|| settings.log_filter.clone())
        .unwrap_or_else(|| DEFAULT_FILTER.to_owned());
    let filter = EnvFilter::try_new(&filter).with_context(|| format!("invalid log filter {filter:?}"))?;
    let log_dir = settings.data_dir.join("logs");
    std::fs::create_dir_all(&log_dir).with_context(|| format!("cannot create {}", log_dir.display()))?;
    // The builder reports a log file it cannot create (a read-only or full data dir) instead of panicking,
    // as `rolling::never` does.
    let appender = tracing_appender::rolling::RollingFileAppender::builder()
        .rotation(tracing_appender::rolling::Rotation::NEVER)
        .filename_prefix("nexent.log")
        .build(&log_dir)
        .with_context(|| {
            format!("cannot write the log file in {}: the data dir must be writable", log_dir.display())
        })?;
    let (file_writer, guard) = tracing_appender::non_blocking(appender);
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(file_writer))
        .try_init()
        .context("cannot install the logger")?;
    Ok(guard)
}

/// For the commands other than `serve`: only warnings and errors reach the terminal (stderr), where the
/// command's own output is; `NEXENT_LOG` overrides. A server a command starts logs through this too.
pub fn init_for_command() {
    let filter = std::env::var("NEXENT_LOG").unwrap_or_else(|_| "warn,llama-cpp-2=error,llama_cpp_2::log=off".into());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .try_init();
}
