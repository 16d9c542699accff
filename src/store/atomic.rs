//! Crash-safe file writes: temp file → fsync → rename → fsync of the directory.
//!
//! A staged file goes to disk as it is written, a few MiB at a time ([`SYNC_CHUNK`]), not all
//! at its final fsync: a 200 MB layer written in one burst filled the disk's queue for a
//! moment, and every other durable write of the server (the audit log's fsync of a routed
//! case) waited behind it. With at most two chunks under writeback at any time, an fsync
//! elsewhere waits for a few milliseconds of this file's I/O at most.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::StoreError;

pub(super) const TMP_SUFFIX: &str = ".tmp";

/// `<path>.tmp`, in the same directory (a rename within one directory is atomic).
pub(super) fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().expect("a file name").to_os_string();
    name.push(TMP_SUFFIX);
    path.with_file_name(name)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_owned(), source }
}

/// A temp file written and synced, waiting for its rename.
#[must_use]
pub(super) struct Staged {
    pub tmp: PathBuf,
    pub path: PathBuf,
    pub bytes: u64,
}

/// Writes `<path>.tmp` through `body` and syncs it to disk. On failure the temp file is removed.
pub(super) fn stage(path: &Path, body: impl FnOnce(&mut dyn Write) -> Result<(), String>) -> Result<Staged, StoreError> {
    let tmp = tmp_path(path);
    let result = (|| {
        let file = File::create(&tmp).map_err(io(&tmp))?;
        let mut w = BufWriter::with_capacity(1 << 20, ChunkSynced::new(file));
        body(&mut w).map_err(|message| StoreError::Write { path: path.to_owned(), message })?;
        let file = w.into_inner().map_err(|e| StoreError::Io { path: tmp.clone(), source: e.into_error() })?.file;
        file.sync_all().map_err(io(&tmp))?;
        Ok(file.metadata().map_err(io(&tmp))?.len())
    })();
    match result {
        Ok(bytes) => Ok(Staged { tmp, path: path.to_owned(), bytes }),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Bytes of a staged file written between two hand-overs to the disk (Linux).
pub(super) const SYNC_CHUNK: u64 = 2 << 20;

/// A file being written whose data is handed to the disk every [`SYNC_CHUNK`] bytes (Linux:
/// `sync_file_range`): the writeback of the chunk just written is started, and the one before
/// it waited for, so at most two chunks are dirty or in flight at any time and the final
/// `fsync` has little left to do. The data and the file are the same as without it; only
/// the final `sync_all` makes it durable. Elsewhere (or where the call is refused) a plain
/// file.
struct ChunkSynced {
    file: File,
    /// Bytes written so far.
    written: u64,
    /// Start of what was not handed to the disk yet.
    started: u64,
    /// Start of what was handed over but not waited for.
    waited: u64,
    /// False once `sync_file_range` failed (a filesystem without it): plain writes from then on.
    enabled: bool,
}

impl ChunkSynced {
    fn new(file: File) -> ChunkSynced {
        ChunkSynced { file, written: 0, started: 0, waited: 0, enabled: cfg!(target_os = "linux") }
    }

    /// Starts the writeback of `[started, written)` and waits for `[waited, started)`.
    fn hand_over(&mut self) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let fd = self.file.as_raw_fd();
            let range = |from: u64, to: u64, flags: libc::c_uint| {
                // SAFETY: sync_file_range takes no pointers; fd is open for as long as `self`.
                unsafe { libc::sync_file_range(fd, from as libc::off64_t, (to - from) as libc::off64_t, flags) == 0 }
            };
            let mut ok = range(self.started, self.written, libc::SYNC_FILE_RANGE_WRITE);
            if ok && self.started > self.waited {
                ok = range(self.waited, self.started, libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER);
            }
            // An I/O error shows again at the final sync_all, which decides.
            self.enabled = ok;
        }
        self.waited = self.started;
        self.started = self.written;
    }
}

impl Write for ChunkSynced {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.enabled && self.written - self.started >= SYNC_CHUNK {
            self.hand_over();
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Staged {
    /// Renames the temp file to its final name and makes the rename durable.
    pub fn commit(self) -> Result<u64, StoreError> {
        std::fs::rename(&self.tmp, &self.path).map_err(io(&self.path))?;
        sync_dir(self.path.parent().expect("a parent directory"))?;
        Ok(self.bytes)
    }
}

/// Makes renames and removals in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Creates `base/rel` and any missing folder on the way, making each new entry durable (a
/// committed manifest must not name a file whose folder a power cut could lose).
pub(super) fn create_dirs(base: &Path, rel: &str) -> Result<(), StoreError> {
    let mut dir = base.to_owned();
    for part in rel.split('/') {
        let parent = dir.clone();
        dir.push(part);
        match std::fs::create_dir(&dir) {
            Ok(()) => sync_dir(&parent)?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            Err(source) => return Err(StoreError::Io { path: dir, source }),
        }
    }
    Ok(())
}

/// Removes `*.tmp` files directly in `dir` (left by an interrupted write).
pub(super) fn remove_temp_files(dir: &Path) -> Result<(), StoreError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut removed = false;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_file() && entry.file_name().to_string_lossy().ends_with(TMP_SUFFIX) {
            tracing::warn!(file = %path.display(), "removing a temp file of an interrupted write");
            std::fs::remove_file(&path).map_err(io(&path))?;
            removed = true;
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic bytes that do not repeat with any chunk-sized period.
    fn bytes(n: usize) -> Vec<u8> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn a_file_of_many_chunks_is_staged_byte_for_byte_and_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layer.fgb");
        // Several chunks and a partial one, written in uneven pieces.
        let data = bytes(4 * SYNC_CHUNK as usize + 123_457);
        let staged = stage(&path, |w| {
            for piece in data.chunks(700_001) {
                w.write_all(piece).map_err(|e| e.to_string())?;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(staged.bytes, data.len() as u64);
        assert!(!path.exists(), "nothing at the final name before the commit");
        assert_eq!(std::fs::read(&staged.tmp).unwrap(), data);
        assert_eq!(staged.commit().unwrap(), data.len() as u64);
        assert_eq!(std::fs::read(&path).unwrap(), data);
        assert!(!tmp_path(&path).exists(), "the temp file was renamed");
    }

    #[test]
    fn a_body_failing_after_several_chunks_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layer.fgb");
        std::fs::write(&path, b"the version before").unwrap();
        let data = bytes(3 * SYNC_CHUNK as usize);
        let err = stage(&path, |w| {
            w.write_all(&data).map_err(|e| e.to_string())?;
            Err("the source ended early".into())
        })
        .err()
        .expect("refused");
        assert!(matches!(&err, StoreError::Write { message, .. } if message == "the source ended early"), "{err}");
        assert!(!tmp_path(&path).exists(), "the temp file is removed");
        assert_eq!(std::fs::read(&path).unwrap(), b"the version before", "the file at the final name is untouched");
    }

    #[test]
    fn the_writer_hands_chunks_to_the_disk_as_it_goes() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ChunkSynced::new(File::create(dir.path().join("f")).unwrap());
        let data = bytes(SYNC_CHUNK as usize / 4);
        for _ in 0..13 {
            w.write_all(&data).unwrap();
        }
        assert_eq!(w.written, 13 * SYNC_CHUNK / 4);
        if cfg!(target_os = "linux") && w.enabled {
            // Handed over at 1, 2 and 3 chunks: the third started, the second waited for.
            assert_eq!((w.started, w.waited), (3 * SYNC_CHUNK, 2 * SYNC_CHUNK));
        }
        w.flush().unwrap();
        assert_eq!(std::fs::metadata(dir.path().join("f")).unwrap().len(), 13 * SYNC_CHUNK / 4);
    }
}
