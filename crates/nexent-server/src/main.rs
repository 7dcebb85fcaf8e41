//! The `nexent` binary: `nexent serve` runs the whole product on one loopback port; the other commands
//! (`ingest`, `search`, `ask`, `chat`, `kb`, `models`, `status`) use it from a terminal or a script
//! (`nexent_server::cli`); `nexent openapi` prints the API description (used to check the UI's generated
//! types against the server); `nexent completions SHELL` prints a shell completion script.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use nexent_server::{ServeArgs, cli, logging, serve, settings_from};

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
    #[command(flatten)]
    Verb(cli::Verb),
    /// Print the OpenAPI document as JSON.
    Openapi,
    /// Print a completion script for a shell (e.g. `nexent completions bash > ~/.local/share/bash-completion/completions/nexent`).
    Completions { shell: clap_complete::Shell },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or_else(|| Command::Serve(Box::default())) {
        Command::Serve(args) => run_serve(*args),
        Command::Verb(verb) => {
            logging::init_for_command();
            return cli::run(verb);
        }
        Command::Openapi => print_openapi(),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "nexent", &mut std::io::stdout());
            Ok(())
        }
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
    let shutdown = {
        let _inside = runtime.enter();
        shutdown_signal()
    };
    runtime.block_on(serve(settings, shutdown, |url| println!("Nexent Local listening on {url}")))
}

/// Registers for SIGINT and SIGTERM at once (call it inside the runtime, before the server listens): a
/// handler installed only when the server first polls this future would leave a window after the
/// listening line in which a SIGTERM still kills the process instead of stopping it cleanly.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let registered = {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::interrupt()).and_then(|interrupt| Ok((interrupt, signal(SignalKind::terminate())?)))
    };
    async move {
        #[cfg(unix)]
        match registered {
            Ok((mut interrupt, mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {},
                    _ = terminate.recv() => {},
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown requested; draining requests");
    }
}
