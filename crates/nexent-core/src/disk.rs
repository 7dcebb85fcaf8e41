//! The disk reserve: free space kept on the disk holding the data dir for what must always be writable
//! (the database's journal, index commits, logs). Heavy writes (uploads, indexing, new knowledge bases)
//! are refused with a clear reason once they would eat into it, instead of filling the disk to the last
//! byte and failing half-way through whatever write comes next.

use std::path::{Path, PathBuf};

/// The reserve when none is configured: enough for SQLite's journal and a few index commits.
pub const DEFAULT_RESERVE_BYTES: u64 = 256 * 1024 * 1024;

const MIB: f64 = 1024.0 * 1024.0;

/// A write that would leave less than the reserve free.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "The disk holding the data has {:.0} MiB free, and {:.0} MiB are kept in reserve for the database and \
     the indices: nothing was saved; free some space and try again",
    *.free as f64 / MIB,
    *.reserve as f64 / MIB
)]
pub struct LowDisk {
    pub free: u64,
    pub reserve: u64,
}

/// The reserve on the disk holding `dir`. Cheap to clone; every check asks the filesystem afresh.
#[derive(Debug, Clone)]
pub struct DiskReserve {
    dir: PathBuf,
    reserve_bytes: u64,
}

impl DiskReserve {
    /// `reserve_bytes` of 0 turns the checks off.
    pub fn new(dir: &Path, reserve_bytes: u64) -> Self {
        Self { dir: dir.to_path_buf(), reserve_bytes }
    }

    /// No reserve (remote stores, tests of other things).
    pub fn none() -> Self {
        Self { dir: PathBuf::new(), reserve_bytes: 0 }
    }

    pub fn reserve_bytes(&self) -> u64 {
        self.reserve_bytes
    }

    /// Bytes an unprivileged writer may still use on the disk; None when the filesystem cannot say.
    pub fn free_bytes(&self) -> Option<u64> {
        fs4::available_space(&self.dir).ok()
    }

    /// Whether `incoming` more bytes still leave the reserve free. A filesystem that cannot report its
    /// free space is not a reason to refuse: the real write will say if it is full.
    pub fn check(&self, incoming: u64) -> Result<(), LowDisk> {
        if self.reserve_bytes == 0 {
            return Ok(());
        }
        match self.free_bytes() {
            Some(free) if free < self.reserve_bytes.saturating_add(incoming) => {
                Err(LowDisk { free, reserve: self.reserve_bytes })
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_larger_than_the_disk_refuses_with_both_figures() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let reserve = DiskReserve::new(dir.path(), u64::MAX / 2);
        let refused = reserve.check(0);
        assert!(matches!(refused, Err(LowDisk { reserve, .. }) if reserve == u64::MAX / 2), "{refused:?}");
        let message = refused.err().map(|refused| refused.to_string()).unwrap_or_default();
        assert!(message.contains("MiB free") && message.contains("nothing was saved"), "{message}");
        Ok(())
    }

    #[test]
    fn a_small_reserve_lets_writes_through_and_zero_turns_it_off() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        assert!(DiskReserve::new(dir.path(), 1).check(1).is_ok());
        assert!(DiskReserve::new(dir.path(), 0).check(u64::MAX).is_ok());
        assert!(DiskReserve::none().check(u64::MAX).is_ok());
        let free = DiskReserve::new(dir.path(), 1).free_bytes().unwrap_or(u64::MAX - 1);
        assert!(DiskReserve::new(dir.path(), 1).check(free).is_err(), "the incoming bytes count");
        Ok(())
    }

    #[test]
    fn a_missing_dir_cannot_say_and_does_not_refuse() {
        let reserve = DiskReserve::new(Path::new("/nonexistent/nexent/data"), 1 << 40);
        assert_eq!(reserve.free_bytes(), None);
        assert!(reserve.check(1).is_ok());
    }
}
