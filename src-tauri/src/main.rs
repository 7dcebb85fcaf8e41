//! `nexent-desktop`: the desktop window. A thin shell (DESIGN.md): it runs the same server as `nexent serve`
//! in this process on loopback, opens a window on its web UI, and adds what only a desktop app has (a
//! tray icon with Open and Quit, one instance per data dir, files dropped on the window going to the
//! page). No domain logic lives here; the page talks to `/api` exactly as it does in a browser.
//!
//! Flags are `nexent serve`'s (`--port`, `--data-dir`, `--models-dir`, ...). With an API token set, the
//! window's address carries it (`#/chat?token=`) so the page can authenticate.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use std::fs::File;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tauri::menu::{Menu, MenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{Manager, RunEvent, WebviewUrl, WebviewWindowBuilder};

use nexent_server::{ServeArgs, logging, serve, settings_from};

#[derive(Debug, Parser)]
#[command(name = "nexent-desktop", version, about = "Nexent Local's desktop window")]
struct DesktopArgs {
    #[command(flatten)]
    serve: ServeArgs,
}

const MAIN_WINDOW: &str = "main";

fn main() -> ExitCode {
    match run(DesktopArgs::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("nexent-desktop: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: DesktopArgs) -> anyhow::Result<()> {
    let settings = settings_from(args.serve)?;
    // One window per data dir: a second start finds the lock held and says so instead of fighting over
    // the index writers.
    let lock_path = settings.data_dir.join("desktop.lock");
    let lock = File::create(&lock_path).with_context(|| format!("cannot create {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        anyhow::bail!("Nexent Local is already open for {}", settings.data_dir.display());
    }
    let _log_guard = logging::init(&settings)?;
    let token = settings.api_token.clone();

    // The server runs on its own runtime thread; the window waits for its address.
    let (address, listening) = mpsc::channel::<String>();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::Builder::new().name("nexent-server".into()).spawn(move || -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        runtime.block_on(serve(
            settings,
            async {
                let _ = stopped.await;
            },
            |url| {
                println!("Nexent Local listening on {url}");
                let _ = address.send(url.to_owned());
            },
        ))
    })?;
    let url = match listening.recv_timeout(Duration::from_secs(120)) {
        Ok(url) => url,
        Err(_) => {
            let outcome = server.join().map_err(|_| anyhow::anyhow!("the server thread panicked"))?;
            outcome?;
            anyhow::bail!("the server stopped before it listened");
        }
    };
    let page = match &token {
        Some(token) => format!("{url}/#/chat?token={token}"),
        None => format!("{url}/#/chat"),
    };
    let page: tauri::Url = page.parse().context("the server's address is not a URL")?;

    let app = tauri::Builder::default()
        .setup(move |app| {
            WebviewWindowBuilder::new(app, MAIN_WINDOW, WebviewUrl::External(page))
                .title("Nexent Local")
                .inner_size(1280.0, 820.0)
                .min_inner_size(720.0, 480.0)
                // Files dropped on the window reach the page (the knowledge base's drop zone), not Tauri.
                .disable_drag_drop_handler()
                .build()?;
            if let Err(error) = tray(app) {
                // A desktop without a tray area still has the window.
                tracing::warn!(%error, "no tray icon");
            }
            Ok(())
        })
        .build(tauri::generate_context!())
        .context("cannot start the window")?;
    let mut stop = Some(stop);
    app.run(move |_, event| {
        if let RunEvent::Exit = event
            && let Some(stop) = stop.take()
        {
            let _ = stop.send(());
        }
    });
    match server.join() {
        Ok(outcome) => outcome,
        Err(_) => anyhow::bail!("the server thread panicked"),
    }
}

fn tray(app: &mut tauri::App) -> tauri::Result<()> {
    let open = MenuItem::with_id(app, "open", "Open Nexent Local", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&open, &quit])?;
    let mut builder =
        TrayIconBuilder::new().tooltip("Nexent Local").menu(&menu).on_menu_event(|app, event| {
            match event.id.as_ref() {
                "open" => {
                    if let Some(window) = app.get_webview_window(MAIN_WINDOW) {
                        let _ = window.unminimize();
                        let _ = window.show();
                        let _ = window.set_focus();
                    }
                }
                "quit" => app.exit(0),
                _ => {}
            }
        });
    if let Some(icon) = app.default_window_icon() {
        builder = builder.icon(icon.clone());
    }
    builder.build(app)?;
    Ok(())
}
