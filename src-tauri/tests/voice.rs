//! Voice in the desktop window, end to end, under Xvfb with a PulseAudio server of the test's own (Debian's
//! `pulseaudio`, started on a private runtime dir, not the desktop's): a null sink `speaker` is the default
//! output and records what the window plays; the default input `microphone` is the monitor of a second null
//! sink, into which `paplay` plays `jfk.wav` while the window listens.
//!
//! Driven as a person would, by keyboard: `/` focuses the question box, Tab reaches the microphone button,
//! Space presses it. The question box is read through the clipboard (select all, copy, `xclip -o`): what
//! is in the box is what the page holds, with no hook of the test's own in the product.
//!
//! The test is skipped (with the daemon's log) only when the PulseAudio daemon exits at start: a sandbox
//! without Unix sockets or shared memory for it, say. Missing tools are failures: `scripts/setup-test.sh`
//! installs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{Running, models_dir, screen, start_desktop, take_screenshot, temp_dir, wait_for_chat_screen, xdotool};

/// Words of jfk.wav's transcript, as `normalise` leaves them.
const KNOWN_TRANSCRIPT: &str = "ask not what your country can do for you";

/// The PulseAudio server and the environment its clients (the window, paplay, parec, pactl) need.
struct Pulse {
    env: Vec<(&'static str, String)>,
    daemon: Running,
}

impl Pulse {
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.envs(self.env.iter().map(|(name, value)| (*name, value.as_str())));
        command
    }

    fn pactl(&self, arguments: &[&str]) -> anyhow::Result<String> {
        let output = self.command("pactl").args(arguments).output()?;
        anyhow::ensure!(output.status.success(), "pactl {arguments:?}: {}", String::from_utf8_lossy(&output.stderr));
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

enum Started {
    Running(Pulse),
    /// The daemon exited at start; its log says why.
    Refused(String),
}

fn start_pulse(dir: &Path) -> anyhow::Result<Started> {
    let runtime = dir.join("runtime");
    std::fs::create_dir_all(runtime.join("pulse"))?;
    std::fs::set_permissions(&runtime, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let socket = runtime.join("pulse/native");
    // No cookie: the socket sits in a directory only this user can enter.
    let script = format!(
        "load-module module-native-protocol-unix socket={socket} auth-anonymous=1\n\
         load-module module-null-sink sink_name=speaker sink_properties=device.description=Speaker\n\
         load-module module-null-sink sink_name=microphone_feed sink_properties=device.description=MicrophoneFeed\n\
         load-module module-remap-source source_name=microphone master=microphone_feed.monitor source_properties=device.description=Microphone\n\
         set-default-sink speaker\n\
         set-default-source microphone\n",
        socket = socket.display()
    );
    let script_path = dir.join("default.pa");
    std::fs::write(&script_path, script)?;
    let log = dir.join("pulseaudio.log");
    let env = vec![
        ("XDG_RUNTIME_DIR", runtime.display().to_string()),
        ("PULSE_SERVER", format!("unix:{}", socket.display())),
    ];
    let daemon = Command::new("pulseaudio")
        .arg("-n")
        .arg("-F")
        .arg(&script_path)
        .args(["--daemonize=no", "--exit-idle-time=-1", "--disallow-exit", "--use-pid-file=no"])
        .args(["--realtime=no", "--high-priority=no"])
        .arg(format!("--log-target=file:{}", log.display()))
        .env("HOME", dir)
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("PULSE_RUNTIME_PATH", runtime.join("pulse"))
        .env("PULSE_STATE_PATH", dir.join("state"))
        .env_remove("PULSE_SERVER")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let daemon = match daemon {
        Ok(daemon) => Running(daemon),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            anyhow::bail!("pulseaudio is not installed: run scripts/setup-test.sh")
        }
        Err(error) => return Err(error.into()),
    };
    let mut pulse = Pulse { env, daemon };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = pulse.daemon.0.try_wait()? {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            return Ok(Started::Refused(format!("pulseaudio exited at start ({status}): {said}")));
        }
        if pulse.pactl(&["info"]).is_ok() {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "pulseaudio did not answer: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(Started::Running(pulse))
}

/// Lower case, letters and digits, one space between words.
fn normalise(text: &str) -> String {
    let kept: String = text.chars().map(|c| if c.is_alphanumeric() { c.to_ascii_lowercase() } else { ' ' }).collect();
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The 30 ms frames (at 16 kHz) of s16le mono PCM louder than −40 dBFS, and the peak.
fn loud_frames(pcm: &[u8]) -> (usize, f64) {
    let samples: Vec<f64> =
        pcm.chunks_exact(2).map(|pair| f64::from(i16::from_le_bytes([pair[0], pair[1]])) / 32768.0).collect();
    let peak = samples.iter().fold(0.0_f64, |peak, sample| peak.max(sample.abs()));
    let loud = samples
        .chunks(480)
        .filter(|frame| (frame.iter().map(|sample| sample * sample).sum::<f64>() / frame.len() as f64).sqrt() > 0.01)
        .count();
    (loud, peak)
}

fn key(display: &str, keys: &[&str]) -> anyhow::Result<()> {
    let mut arguments = vec!["key", "--delay", "120"];
    arguments.extend_from_slice(keys);
    xdotool(display, &arguments)?;
    std::thread::sleep(Duration::from_millis(300));
    Ok(())
}

/// The question box's text: selected and copied in the window, read from the clipboard.
fn question_box(display: &str) -> anyhow::Result<String> {
    key(display, &["ctrl+a", "ctrl+c"])?;
    let output = Command::new("timeout")
        .args(["5", "xclip", "-o", "-selection", "clipboard"])
        .env("DISPLAY", display)
        .output()?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn get(url: &str) -> anyhow::Result<String> {
    let output = Command::new("curl").args(["-sf", url]).output()?;
    anyhow::ensure!(output.status.success(), "GET {url} failed");
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A failure that points at the screen as it was.
fn failed(display: &str, screenshot: &Path, what: String) -> anyhow::Error {
    let _ = take_screenshot(display, screenshot);
    anyhow::anyhow!("{what} (screen: {})", screenshot.display())
}

#[test]
fn the_microphone_button_dictates_and_read_aloud_plays_in_the_window() -> anyhow::Result<()> {
    let dir = temp_dir("desktop-voice-test")?;
    let pulse = match start_pulse(&dir)? {
        Started::Running(pulse) => pulse,
        Started::Refused(why) => {
            eprintln!("SKIPPED: no audio server in this environment: {why}");
            return Ok(());
        }
    };
    let microphone = pulse
        .pactl(&["list", "short", "sources"])?
        .lines()
        .find(|line| line.split('\t').nth(1) == Some("microphone"))
        .and_then(|line| line.split('\t').next().map(str::to_owned))
        .ok_or_else(|| anyhow::anyhow!("the virtual microphone is missing"))?;

    let screen = screen(140)?;
    let display = screen.display.as_str();
    let env: Vec<(&str, &str)> = pulse.env.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let desktop = start_desktop(display, &dir.join("data"), &env)?;
    let screenshot: PathBuf = dir.join("screen.png");
    let window = wait_for_chat_screen(display, &screenshot)?;
    xdotool(display, &["windowactivate", "--sync", &window])?;

    // Dictation: `/` focuses the question box; the microphone button is two stops on (past the hidden file
    // input of "Attach"). The window asks for the microphone and records from the default source.
    key(display, &["slash"])?;
    key(display, &["Tab", "Tab", "space"])?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pulse
        .pactl(&["list", "short", "source-outputs"])?
        .lines()
        .any(|line| line.split('\t').nth(1) == Some(microphone.as_str()))
    {
        if Instant::now() > deadline {
            return Err(failed(display, &screenshot, "the window never started recording the microphone".into()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let played = pulse.command("paplay").args(["-d", "microphone_feed"]).arg(models_dir().join("jfk.wav")).status()?;
    anyhow::ensure!(played.success(), "paplay could not play jfk.wav into the microphone");
    std::thread::sleep(Duration::from_secs(2));
    // Space again on the (still focused) button stops; the final transcript lands in the box.
    key(display, &["space"])?;
    key(display, &["slash"])?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let transcript = loop {
        let text = question_box(display)?;
        if normalise(&text).contains(KNOWN_TRANSCRIPT) {
            break text;
        }
        if Instant::now() > deadline {
            return Err(failed(display, &screenshot, format!("the question box holds {text:?}")));
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    println!("dictated into the question box: {transcript}");

    // Read-aloud: the dictated question is sent, and once its answer is saved the answer's "Read aloud"
    // (three stops back from the question box: Regenerate, Copy, Read aloud) is pressed while the speaker's
    // monitor records.
    key(display, &["Return"])?;
    let api = &desktop.url;
    let deadline = Instant::now() + Duration::from_secs(300);
    let conversation = loop {
        let list = get(&format!("{api}/api/conversation/list"))?;
        if let Some(id) = list.split("\"conversation_id\":").nth(1).and_then(|rest| rest.split(',').next()) {
            let conversation = get(&format!("{api}/api/conversation/{}", id.trim_matches('"')))?;
            if conversation.contains("\"role\":\"assistant\"") {
                break conversation;
            }
        }
        if Instant::now() > deadline {
            return Err(failed(display, &screenshot, "the dictated question got no answer".into()));
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    anyhow::ensure!(
        normalise(&conversation).contains(KNOWN_TRANSCRIPT),
        "the question sent is not the dictated one: {conversation}"
    );
    std::thread::sleep(Duration::from_secs(2)); // the page shows the answer's buttons
    let recording = dir.join("speaker.raw");
    let _recorder = Running(
        pulse
            .command("parec")
            .args(["-d", "speaker.monitor", "--format=s16le", "--rate=16000", "--channels=1", "--raw"])
            .stdout(std::fs::File::create(&recording)?)
            .spawn()?,
    );
    key(display, &["shift+Tab", "shift+Tab", "shift+Tab", "space"])?;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (loud, peak) = loud_frames(&std::fs::read(&recording)?);
        // Half a second of speech on the speaker.
        if loud >= 17 {
            println!("read-aloud reached the speaker: {loud} loud 30 ms frames, peak {peak:.2}");
            break;
        }
        if Instant::now() > deadline {
            return Err(failed(display, &screenshot, format!("no read-aloud on the speaker ({loud} loud frames)")));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(desktop);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn loudness_and_transcripts_are_measured_as_meant() {
    assert_eq!(
        normalise("And so, my fellow Americans: ask not what your country can do for you!"),
        "and so my fellow americans ask not what your country can do for you"
    );
    let silence = vec![0_u8; 32_000];
    assert_eq!(loud_frames(&silence).0, 0);
    let tone: Vec<u8> =
        (0..16_000).flat_map(|index| (((index as f64 * 0.2).sin() * 8000.0) as i16).to_le_bytes()).collect();
    assert!(loud_frames(&tone).0 >= 33);
}
