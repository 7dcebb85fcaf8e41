//! What the desktop tests share: an X server of their own (Xvfb) with a window manager (openbox), the shell
//! started on a temporary data dir, and the window found and rendered.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the process when the test ends, however it ends.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An X display of the test's own, with a window manager so windows can be focused, minimised and brought
/// back as on a desktop.
pub struct Screen {
    pub display: String,
    // Dropped in order: the window manager before its server.
    _window_manager: Running,
    _xvfb: Running,
}

/// Starts Xvfb on the first free display from `first` on (each test file starts from its own number, so
/// tests running at once do not race for one display) and openbox on it.
pub fn screen(first: u32) -> anyhow::Result<Screen> {
    let number =
        (first..first + 50).find(|number| !Path::new(&format!("/tmp/.X{number}-lock")).exists()).unwrap_or(first + 50);
    let display = format!(":{number}");
    let xvfb = Running(
        Command::new("Xvfb")
            .args([display.as_str(), "-screen", "0", "1400x900x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let socket = format!("/tmp/.X11-unix/X{number}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !Path::new(&socket).exists() {
        anyhow::ensure!(Instant::now() < deadline, "Xvfb did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let window_manager = Running(
        Command::new("openbox")
            .args(["--sm-disable"])
            .env("DISPLAY", &display)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    Ok(Screen { display, _window_manager: window_manager, _xvfb: xvfb })
}

pub fn models_dir() -> PathBuf {
    std::env::var("NEXENT_TEST_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/files"))
}

/// A fresh directory under the system's temporary one.
pub fn temp_dir(name: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("nexent-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The running shell and the address of its in-process server.
pub struct Desktop {
    pub url: String,
    _process: Running,
}

/// Starts `nexent-desktop` on `data_dir` (the test's models, a free port, no API token) with `env` added,
/// and waits until its server listens.
pub fn start_desktop(display: &str, data_dir: &Path, env: &[(&str, &str)]) -> anyhow::Result<Desktop> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nexent-desktop"));
    command
        .args(["--port", "0", "--data-dir"])
        .arg(data_dir)
        .arg("--models-dir")
        .arg(models_dir())
        .env("DISPLAY", display)
        .env("NEXENT_LOG", "warn")
        .env_remove("NEXENT_API_TOKEN")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut process = command.spawn()?;
    let stdout = process.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let process = Running(process);
    let mut url = String::new();
    for line in BufReader::new(stdout).lines() {
        if let Some(found) = line?.strip_prefix("Nexent Local listening on ") {
            url = found.to_owned();
            break;
        }
    }
    anyhow::ensure!(!url.is_empty(), "the shell's server did not start");
    Ok(Desktop { url, _process: process })
}

/// Waits for the window titled "Nexent Local" and for the chat screen to render in it (the top bar's dark
/// blue and the "New chat" button's blue fill the screenshot, kept at `screenshot`); returns the window's id.
pub fn wait_for_chat_screen(display: &str, screenshot: &Path) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tree = Command::new("xwininfo").args(["-root", "-tree", "-display", display]).output()?;
        if String::from_utf8_lossy(&tree.stdout).contains("\"Nexent Local\"") {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "no Nexent Local window appeared");
        std::thread::sleep(Duration::from_millis(250));
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        take_screenshot(display, screenshot)?;
        let (bar, button) = (pixels_of(screenshot, "#17202C")?, pixels_of(screenshot, "#1F5FBF")?);
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
    let window = xdotool(display, &["search", "--onlyvisible", "--name", "^Nexent Local$"])?;
    Ok(window.lines().next().ok_or_else(|| anyhow::anyhow!("xdotool finds no window"))?.to_owned())
}

/// The whole screen as a PNG (ImageMagick's `import`).
pub fn take_screenshot(display: &str, path: &Path) -> anyhow::Result<()> {
    let status = Command::new("import").args(["-display", display, "-window", "root"]).arg(path).status()?;
    anyhow::ensure!(status.success(), "import failed");
    Ok(())
}

/// How many pixels of the screenshot have exactly this colour (ImageMagick's histogram).
pub fn pixels_of(screenshot: &Path, colour: &str) -> anyhow::Result<u64> {
    let output = Command::new("convert").arg(screenshot).args(["-format", "%c", "histogram:info:-"]).output()?;
    let histogram = String::from_utf8_lossy(&output.stdout);
    Ok(histogram
        .lines()
        .filter(|line| line.to_ascii_uppercase().contains(colour))
        .filter_map(|line| line.trim().split(':').next()?.trim().parse::<u64>().ok())
        .sum())
}

pub fn xdotool(display: &str, arguments: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("xdotool").args(arguments).env("DISPLAY", display).output()?;
    anyhow::ensure!(output.status.success(), "xdotool {arguments:?}: {}", String::from_utf8_lossy(&output.stderr));
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
