//! The desktop shell starts under Xvfb (Debian's `xvfb`; ImageMagick's `import` takes the screenshot) with
//! the server in process, and its window shows the chat screen; a second start on the same data dir brings
//! the minimised window back and exits. The screenshot is kept under `bench/results/screenshots/desktop.png`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{screen, start_desktop, temp_dir, wait_for_chat_screen, xdotool};

#[test]
fn the_window_opens_on_the_chat_screen_under_xvfb() -> anyhow::Result<()> {
    let screen = screen(90)?;
    let display = screen.display.as_str();
    let data_dir = temp_dir("desktop-test")?;
    let desktop = start_desktop(display, &data_dir, &[])?;

    // The window exists, with its title, and the page renders.
    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/results/screenshots/desktop.png");
    let window = wait_for_chat_screen(display, &screenshot)?;
    // The in-process server answers the API too.
    let health = Command::new("curl").args(["-sf", &format!("{}/api/health", desktop.url)]).output()?;
    anyhow::ensure!(health.status.success(), "the API does not answer");

    // Single instance: minimised, the window comes back when Nexent Local is started again on the same data
    // dir, and the second start leaves at once.
    xdotool(display, &["windowminimize", &window])?;
    wait_for_map_state(display, &window, "IsUnMapped")?;
    let second = Command::new(env!("CARGO_BIN_EXE_nexent-desktop"))
        .args(["--port", "0", "--data-dir"])
        .arg(&data_dir)
        .env("DISPLAY", display)
        .env("NEXENT_LOG", "warn")
        .output()?;
    let said = String::from_utf8_lossy(&second.stdout);
    anyhow::ensure!(
        second.status.success() && said.contains("brought to the front"),
        "the second start did not hand over: {said} {}",
        String::from_utf8_lossy(&second.stderr)
    );
    wait_for_map_state(display, &window, "IsViewable")?;
    drop(desktop);
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

fn wait_for_map_state(display: &str, window: &str, state: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = Command::new("xwininfo").args(["-display", display, "-id", window]).output()?;
        if String::from_utf8_lossy(&info.stdout).contains(&format!("Map State: {state}")) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "the window never reached {state}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
