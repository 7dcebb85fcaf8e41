//! Child processes the server starts (MCP servers, the speech-to-text helper) end with it.

/// On Linux the child is told to end when we do, even if we are killed (kill-on-drop needs an orderly exit).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn die_with_parent(process: &mut tokio::process::Command) {
    // SAFETY: between fork and exec the closure only calls prctl, which is async-signal-safe and touches
    // no memory of the parent.
    unsafe {
        process.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub fn die_with_parent(_process: &mut tokio::process::Command) {}

/// Keeps the data dir to its owner: the database holds remote models' API keys, `config.toml` the API
/// token, `storage.secret` the URL signing key. Everything the process creates from now on is private
/// (umask 077, so SQLite's WAL files and every object too), the data dir is 0700, and what is already at
/// its top level is made 0600 (files) or 0700 (folders); a folder others cannot enter hides the rest.
#[cfg(unix)]
#[allow(unsafe_code)]
pub fn make_private(data_dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: umask only swaps the process's file-creation mask; it cannot fail and touches no memory.
    unsafe {
        libc::umask(0o077);
    }
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))?;
    for entry in std::fs::read_dir(data_dir)? {
        let entry = entry?;
        let file_type = entry.file_type()?;
        // Links are left alone: chmod would change what they point to (a linked model file).
        let mode = if file_type.is_dir() {
            0o700
        } else if file_type.is_file() {
            0o600
        } else {
            continue;
        };
        if entry.metadata()?.permissions().mode() & 0o777 != mode {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode))?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
pub fn make_private(_data_dir: &std::path::Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_data_dir_and_its_files_become_private() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::write(data.join("nexent.db"), b"x").expect("file");
        std::fs::set_permissions(data.join("nexent.db"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
        std::fs::create_dir(data.join("logs")).expect("logs");
        super::make_private(&data).expect("private");
        let mode = |path: &std::path::Path| std::fs::metadata(path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("nexent.db")), 0o600);
        assert_eq!(mode(&data.join("logs")), 0o700);
        std::fs::write(data.join("new.txt"), b"y").expect("new file");
        assert_eq!(mode(&data.join("new.txt")) & 0o077, 0, "files made later are private too");
    }
}
