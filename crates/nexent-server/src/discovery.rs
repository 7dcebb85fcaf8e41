//! How a command finds the server that owns a data dir. A running server owns the data dir's index
//! writers, so `nexent ingest` and the other commands must go through its API rather than open the files
//! beside it. The server writes `server.json` (its URL and process id) into the data dir once it listens
//! and removes it when it stops; a file left by a killed server names a process that is gone, or a URL
//! that no longer answers, and is ignored.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file in the data dir that names the running server.
pub const SERVER_FILE_NAME: &str = "server.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRecord {
    pub url: String,
    pub pid: u32,
    pub version: String,
}

/// Removes `server.json` when dropped, if it still names this process.
#[derive(Debug)]
pub struct Announcement {
    path: PathBuf,
}

/// Writes `server.json` for this process (whole or not at all: a temporary file renamed into place).
pub fn announce(data_dir: &Path, url: &str) -> std::io::Result<Announcement> {
    let record =
        ServerRecord { url: url.to_owned(), pid: std::process::id(), version: env!("CARGO_PKG_VERSION").into() };
    let path = data_dir.join(SERVER_FILE_NAME);
    let temporary = data_dir.join(format!(".{SERVER_FILE_NAME}.{}", std::process::id()));
    std::fs::write(&temporary, serde_json::to_vec_pretty(&record).map_err(std::io::Error::other)?)?;
    std::fs::rename(&temporary, &path)?;
    Ok(Announcement { path })
}

impl Drop for Announcement {
    fn drop(&mut self) {
        // Another server may have started on the data dir since (and failed on its locks): its file stays.
        if read_record(&self.path).is_some_and(|record| record.pid == std::process::id()) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The server that announced itself in `data_dir`, if its process is still alive. Whether it answers is
/// the caller's to check.
pub fn running_server(data_dir: &Path) -> Option<ServerRecord> {
    read_record(&data_dir.join(SERVER_FILE_NAME)).filter(|record| process_alive(record.pid))
}

fn read_record(path: &Path) -> Option<ServerRecord> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether a process with this id exists (on Linux, by `/proc`; elsewhere assumed, and the URL check
/// decides).
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") { Path::new(&format!("/proc/{pid}")).exists() } else { true }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announcement_is_found_while_it_lasts_and_removed_after() {
        let dir = tempfile::tempdir().expect("dir");
        assert_eq!(running_server(dir.path()), None);
        let announcement = announce(dir.path(), "http://127.0.0.1:5010").expect("announce");
        let found = running_server(dir.path()).expect("found");
        assert_eq!(found.url, "http://127.0.0.1:5010");
        assert_eq!(found.pid, std::process::id());
        drop(announcement);
        assert_eq!(running_server(dir.path()), None);
        assert!(!dir.path().join(SERVER_FILE_NAME).exists());
    }

    #[test]
    fn a_file_left_by_a_dead_process_or_garbage_is_ignored() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(SERVER_FILE_NAME);
        std::fs::write(&path, "not json").expect("write");
        assert_eq!(running_server(dir.path()), None);
        // Process ids wrap well below this on Linux (pid_max is at most 2^22).
        let dead = ServerRecord { url: "http://127.0.0.1:1".into(), pid: u32::MAX - 1, version: "0".into() };
        std::fs::write(&path, serde_json::to_vec(&dead).expect("json")).expect("write");
        if cfg!(target_os = "linux") {
            assert_eq!(running_server(dir.path()), None);
        }
    }

    #[test]
    fn dropping_an_announcement_keeps_another_servers_file() {
        let dir = tempfile::tempdir().expect("dir");
        let announcement = announce(dir.path(), "http://127.0.0.1:5010").expect("announce");
        let other = ServerRecord { url: "http://127.0.0.1:5011".into(), pid: 1, version: "0".into() };
        std::fs::write(dir.path().join(SERVER_FILE_NAME), serde_json::to_vec(&other).expect("json")).expect("write");
        drop(announcement);
        assert!(dir.path().join(SERVER_FILE_NAME).exists());
    }
}
