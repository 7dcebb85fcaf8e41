//! `nexent-desktop`: the desktop window. A thin shell (DESIGN.md): it runs the same server as `nexent serve`
//! in this process on loopback, opens a window on its web UI, and adds what only a desktop app has: a
//! tray icon with Open and Quit, one instance per data dir whose second start brings the first window to
//! the front, files dropped on the window going to the page, a native folder chooser, the microphone for
//! dictation (WebKitGTK's media stream, allowed to our own page only; `media.rs`), and the models an
//! installed package carries. No domain logic lives here; the page talks to `/api` as it does in a browser.
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
use tauri::ipc::CapabilityBuilder;
use tauri::menu::{Menu, MenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{Manager, RunEvent, WebviewUrl, WebviewWindowBuilder};

use nexent_server::{ServeArgs, logging, serve, settings_from};

mod bundled_models;
mod media;
mod single_instance;

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
    // One window per data dir: a second start finds the lock held, asks the first to bring its window to
    // the front, and leaves, instead of fighting over the index writers.
    let lock_path = settings.data_dir.join("desktop.lock");
    let lock = File::create(&lock_path).with_context(|| format!("cannot create {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        let dir = settings.data_dir.display();
        return match single_instance::ask_first_to_show(&settings.data_dir) {
            Ok(()) => {
                println!("Nexent Local is already open for {dir}: its window was brought to the front");
                Ok(())
            }
            Err(error) => anyhow::bail!("Nexent Local is already open for {dir} (cannot reach it: {error})"),
        };
    }
    // Holding the lock, this instance owns the socket later starts knock on.
    let show_requests = single_instance::listen(&settings.data_dir)?;
    let _log_guard = logging::init(&settings)?;
    let context = tauri::generate_context!();
    // An installed package carries the default models; they are linked into the default models folder
    // (a `--models-dir` of the user's own is left alone).
    if settings.models_dir == settings.data_dir.join("models")
        && let Ok(resources) = tauri::utils::platform::resource_dir(context.package_info(), &tauri::Env::default())
    {
        match bundled_models::link_missing(&resources.join("models"), &settings.models_dir) {
            Ok(linked) if !linked.is_empty() => tracing::info!(?linked, "bundled models linked"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot link the bundled models"),
        }
    }
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
    // The one command the page may call (the folder chooser), granted to this server's own origin only:
    // not to another port on loopback, where any local program could listen.
    let dialog_capability = CapabilityBuilder::new("folder-chooser")
        .remote(format!("{url}/*"))
        .window(MAIN_WINDOW)
        .permission("dialog:allow-open");

    let app = tauri::Builder::default()
        .plugin(tauri_plugin_dialog::init())
        .setup(move |app| {
            app.add_capability(dialog_capability)?;
            // The window starts blank: the page is loaded once the microphone policy is in place.
            let blank: tauri::Url = "about:blank".parse()?;
            let window = WebviewWindowBuilder::new(app, MAIN_WINDOW, WebviewUrl::External(blank))
                .title("Nexent Local")
                .inner_size(1280.0, 820.0)
                .min_inner_size(720.0, 480.0)
                // Files dropped on the window reach the page (the knowledge base's drop zone), not Tauri.
                .disable_drag_drop_handler()
                .build()?;
            media::enable_and_open(&window, page)?;
            if let Err(error) = tray(app) {
                // A desktop without a tray area still has the window.
                tracing::warn!(%error, "no tray icon");
            }
            let handle = app.handle().clone();
            show_requests.forward(move || {
                tracing::info!("a second start asked for the window");
                let window_handle = handle.clone();
                let _ = handle.run_on_main_thread(move || bring_to_front(&window_handle));
            });
            Ok(())
        })
        .build(context)
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

/// Shows the main window, un-minimised and focused.
fn bring_to_front(app: &tauri::AppHandle) {
    if let Some(window) = app.get_webview_window(MAIN_WINDOW) {
        let _ = window.unminimize();
        let _ = window.show();
        let _ = window.set_focus();
    }
}

fn tray(app: &mut tauri::App) -> tauri::Result<()> {
    let open = MenuItem::with_id(app, "open", "Open Nexent Local", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&open, &quit])?;
    let mut builder =
        TrayIconBuilder::new().tooltip("Nexent Local").menu(&menu).on_menu_event(|app, event| {
            match event.id.as_ref() {
                "open" => bring_to_front(app),
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
