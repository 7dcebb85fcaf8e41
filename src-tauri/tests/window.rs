//! The desktop shell starts under Xvfb (Debian's `xvfb`; ImageMagick's `import` takes the screenshot) with
//! the server in process, and its window shows the chat screen; a second start on the same data dir brings
//! the minimised window back and exits. The screenshot is kept under `bench/results/screenshots/desktop.png`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the process when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_display() -> u32 {
    (90..140).find(|number| !Path::new(&format!("/tmp/.X{number}-lock")).exists()).unwrap_or(140)
}

fn models_dir() -> PathBuf {
    std::env::var("NEXENT_TEST_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/files"))
}

/// How many pixels of the screenshot have exactly this colour (ImageMagick's histogram).
fn pixels_of(screenshot: &Path, colour: &str) -> anyhow::Result<u64> {
    let output = Command::new("convert").arg(screenshot).args(["-format", "%c", "histogram:info:-"]).output()?;
    let histogram = String::from_utf8_lossy(&output.stdout);
    Ok(histogram
        .lines()
        .filter(|line| line.to_ascii_uppercase().contains(colour))
        .filter_map(|line| line.trim().split(':').next()?.trim().parse::<u64>().ok())
        .sum())
}

#[test]
fn the_window_opens_on_the_chat_screen_under_xvfb() -> anyhow::Result<()> {
    let display = format!(":{}", free_display());
    let _xvfb = Running(
        Command::new("Xvfb")
            .args([display.as_str(), "-screen", "0", "1400x900x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let socket = format!("/tmp/.X11-unix/X{}", display.trim_start_matches(':'));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !Path::new(&socket).exists() {
        anyhow::ensure!(Instant::now() < deadline, "Xvfb did not start");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A window manager, so the window can be minimised and brought back as on a desktop.
    let _window_manager = Running(
        Command::new("openbox")
            .args(["--sm-disable"])
            .env("DISPLAY", &display)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );

    let data_dir = tempfile_dir()?;
    let mut desktop = Command::new(env!("CARGO_BIN_EXE_nexent-desktop"))
        .args(["--port", "0", "--data-dir"])
        .arg(&data_dir)
        .arg("--models-dir")
        .arg(models_dir())
        .env("DISPLAY", &display)
        .env("NEXENT_LOG", "warn")
        .env_remove("NEXENT_API_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = desktop.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let desktop = Running(desktop);
    let mut url = String::new();
    for line in BufReader::new(stdout).lines() {
        if let Some(found) = line?.strip_prefix("Nexent Local listening on ") {
            url = found.to_owned();
            break;
        }
    }
    anyhow::ensure!(!url.is_empty(), "the shell's server did not start");

    // The window exists, with its title.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tree = Command::new("xwininfo").args(["-root", "-tree", "-display", &display]).output()?;
        if String::from_utf8_lossy(&tree.stdout).contains("\"Nexent Local\"") {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "no Nexent Local window appeared");
        std::thread::sleep(Duration::from_millis(250));
    }

    // The page renders: the top bar's dark blue and the "New chat" button's blue fill the screenshot.
    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/results/screenshots/desktop.png");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let status =
            Command::new("import").args(["-display", &display, "-window", "root"]).arg(&screenshot).status()?;
        anyhow::ensure!(status.success(), "import failed");
        let (bar, button) = (pixels_of(&screenshot, "#17202C")?, pixels_of(&screenshot, "#1F5FBF")?);
        if bar > 20_000 && button > 2_000 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the chat screen did not render (top bar {bar} px, button {button} px): see {}",
            screenshot.display()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    // The in-process server answers the API too.
    let health = Command::new("curl").args(["-sf", &format!("{url}/api/health")]).output()?;
    anyhow::ensure!(health.status.success(), "the API does not answer");

    // Single instance: minimised, the window comes back when Nexent Local is started again on the same data
    // dir, and the second start leaves at once.
    let window = xdotool(&display, &["search", "--onlyvisible", "--name", "^Nexent Local$"])?;
    let window = window.lines().next().ok_or_else(|| anyhow::anyhow!("xdotool finds no window"))?.to_owned();
    xdotool(&display, &["windowminimize", &window])?;
    wait_for_map_state(&display, &window, "IsUnMapped")?;
    let second = Command::new(env!("CARGO_BIN_EXE_nexent-desktop"))
        .args(["--port", "0", "--data-dir"])
        .arg(&data_dir)
        .env("DISPLAY", &display)
        .env("NEXENT_LOG", "warn")
        .output()?;
    let said = String::from_utf8_lossy(&second.stdout);
    anyhow::ensure!(
        second.status.success() && said.contains("brought to the front"),
        "the second start did not hand over: {said} {}",
        String::from_utf8_lossy(&second.stderr)
    );
    wait_for_map_state(&display, &window, "IsViewable")?;
    drop(desktop);
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

fn xdotool(display: &str, arguments: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("xdotool").args(arguments).env("DISPLAY", display).output()?;
    anyhow::ensure!(output.status.success(), "xdotool {arguments:?}: {}", String::from_utf8_lossy(&output.stderr));
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
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

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("nexent-desktop-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
