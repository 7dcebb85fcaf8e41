//! One desktop instance per data dir. The first start holds `desktop.lock` and listens on a Unix socket
//! beside it; a second start connects, asks for the window, and exits. A socket (rather than a D-Bus
//! name per application) keeps the rule per data dir, like the lock, and needs no session bus.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

const SOCKET_FILE: &str = "desktop.sock";
const SHOW: &str = "show";
const SHOWN: &str = "shown";
/// The protocol has two words; nothing longer is read.
const MAX_LINE: u64 = 64;

fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_FILE)
}

/// The first instance's end: requests arrive here until they are forwarded.
pub struct ShowRequests {
    listener: UnixListener,
}

/// Binds the socket. Only the lock holder calls this, so a socket file left by a crash is stale and goes.
pub fn listen(data_dir: &Path) -> anyhow::Result<ShowRequests> {
    let path = socket_path(data_dir);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error).with_context(|| format!("cannot remove {}", path.display())),
    }
    let listener = UnixListener::bind(&path).with_context(|| format!("cannot listen on {}", path.display()))?;
    // Only this user may knock (the data dir may be readable by others).
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", path.display()))?;
    Ok(ShowRequests { listener })
}

impl ShowRequests {
    /// Calls `show` for every request, on a thread of its own, for the life of the process.
    pub fn forward(self, show: impl Fn() + Send + 'static) {
        let spawned = std::thread::Builder::new().name("nexent-single-instance".into()).spawn(move || {
            for stream in self.listener.incoming() {
                match stream {
                    Ok(stream) => {
                        if let Err(error) = answer(stream, &show) {
                            tracing::debug!(%error, "a second start's request was cut short");
                        }
                    }
                    Err(error) => tracing::warn!(%error, "the single-instance socket failed"),
                }
            }
        });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot watch for second starts");
        }
    }
}

fn answer(stream: UnixStream, show: &impl Fn()) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new(&stream).take(MAX_LINE).read_line(&mut line)?;
    if line.trim() == SHOW {
        show();
        (&stream).write_all(format!("{SHOWN}\n").as_bytes())?;
    }
    Ok(())
}

/// The second start's end: asks the running instance to show its window.
pub fn ask_first_to_show(data_dir: &Path) -> anyhow::Result<()> {
    let path = socket_path(data_dir);
    let stream = UnixStream::connect(&path).with_context(|| format!("no answer on {}", path.display()))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    (&stream).write_all(format!("{SHOW}\n").as_bytes())?;
    let mut reply = String::new();
    BufReader::new(&stream).take(MAX_LINE).read_line(&mut reply)?;
    anyhow::ensure!(reply.trim() == SHOWN, "unexpected answer {:?}", reply.trim());
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn a_second_start_reaches_the_first_and_a_stale_socket_is_replaced() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("nexent-single-instance-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        // A crash left the socket file behind: nobody answers on it.
        drop(UnixListener::bind(socket_path(&dir))?);
        assert!(ask_first_to_show(&dir).is_err());

        let shown = Arc::new(AtomicUsize::new(0));
        let counter = shown.clone();
        listen(&dir)?.forward(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        ask_first_to_show(&dir)?;
        ask_first_to_show(&dir)?;
        assert_eq!(shown.load(Ordering::SeqCst), 2);
        let mode = std::fs::metadata(socket_path(&dir))?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
