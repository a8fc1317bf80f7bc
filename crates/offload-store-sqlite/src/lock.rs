//! The exclusive OS lock on the database file: one SQLite file, one server.
//!
//! Invariant: while a [`FileLock`] lives, no other [`FileLock`] on the same file can be taken, by another
//! process or by this one; the operating system drops it with the descriptor, so a process that dies in any
//! way (SIGKILL included) leaves no stale lock behind. Because the lock proves that no other server uses the
//! file, whatever leases the file records for other nodes were held by a process that is gone.
//!
//! The lock is an advisory `flock`-style lock, which SQLite's own (`fcntl`) locks do not see. The descriptor
//! stays open as long as the store's connections are (it is dropped after them), so closing it never releases
//! a lock SQLite holds on the same file.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use offload_store::{Result, StoreError};

/// Holds the exclusive lock until dropped.
#[derive(Debug)]
pub(crate) struct FileLock {
    _file: File,
}

/// Takes the exclusive lock on `path` (creating the file if missing: SQLite treats an empty file as a new
/// database), or fails at once if another holder has it.
pub(crate) fn acquire(path: &Path) -> Result<FileLock> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| {
            StoreError::Unavailable(format!("cannot open {} to lock it: {e}", path.display()))
        })?;
    match file.try_lock() {
        Ok(()) => Ok(FileLock { _file: file }),
        Err(TryLockError::WouldBlock) => Err(StoreError::Unavailable(format!(
            "{} is in use by another offload server (a SQLite database file is served by one process at \
             a time; stop the other server or use PostgreSQL to run several)",
            path.display()
        ))),
        Err(TryLockError::Error(e)) => Err(StoreError::Unavailable(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_file_fails_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offload.db");
        let first = acquire(&path).unwrap();
        let second = acquire(&path).unwrap_err();
        assert!(
            second
                .to_string()
                .contains("in use by another offload server"),
            "{second}"
        );
        drop(first);
        acquire(&path).unwrap();
    }
}
