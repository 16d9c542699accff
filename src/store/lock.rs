//! One writer per data directory: an exclusive lock on `DIR/writer.lock`, held by a running
//! server for its whole life and by a command-line import while it writes.
//!
//! The lock is the operating system's (`flock` on Unix): it is released when its holder exits,
//! however it exits (a `kill -9` too), so a stale lock file never blocks anyone. The file holds
//! the holder's PID, what it is and since when, so that a refused writer can name it. Readers
//! (`citygrid locate`, `route`, `validate`) take no lock.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::StoreError;

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "writer.lock";

/// The writer lock of a data directory, released on drop.
#[derive(Debug)]
pub struct WriterLock {
    file: File,
    path: PathBuf,
}

impl WriterLock {
    /// Takes the lock of `dir` for `holder` (e.g. `citygrid serve on 127.0.0.1:8080`), or says
    /// who holds it ([`StoreError::Locked`]). Never waits.
    pub fn acquire(dir: &Path, holder: &str) -> Result<WriterLock, StoreError> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| StoreError::Io { path: path.clone(), source })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = text.trim();
                let holder = if holder.is_empty() { "another citygrid process".to_owned() } else { holder.to_owned() };
                return Err(StoreError::Locked { dir: dir.to_owned(), holder });
            }
            Err(std::fs::TryLockError::Error(source)) => return Err(StoreError::Io { path, source }),
        }
        let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let line = format!("pid {} ({holder}, since {since})\n", std::process::id());
        let written = file.set_len(0).and_then(|()| file.rewind()).and_then(|()| file.write_all(line.as_bytes()));
        written.map_err(|source| StoreError::Io { path: path.clone(), source })?;
        Ok(WriterLock { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_with_the_holders_pid_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = WriterLock::acquire(dir.path(), "citygrid serve on 127.0.0.1:8080").unwrap();
        let e = WriterLock::acquire(dir.path(), "citygrid import").unwrap_err().to_string();
        assert!(e.contains(&format!("pid {}", std::process::id())) && e.contains("citygrid serve on 127.0.0.1:8080"), "{e}");
        drop(first);
        WriterLock::acquire(dir.path(), "citygrid import").unwrap();
    }
}
