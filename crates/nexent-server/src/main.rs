//! The `nexent` binary: `nexent serve` runs the whole product on one loopback port; `nexent openapi`
//! prints the API description (used to check the UI's generated types against the server).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use nexent_server::{ServeArgs, logging, serve, settings_from};

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
    let settings = settings_from(args)?;
    let _log_guard = logging::init(&settings)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    // Tests and scripts read this line to learn the port; keep its shape.
    runtime.block_on(serve(settings, shutdown_signal(), |url| println!("Nexent Local listening on {url}")))
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
