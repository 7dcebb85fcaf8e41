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
