//! Crash-safe file writes: temp file → fsync → rename → fsync of the directory.
//!
//! A staged file is made durable as it is written, [`SYNC_CHUNK`] bytes at a time
//! (`fdatasync` after each chunk), not all at its final fsync. Every durable write of the
//! server shares the disk's cache flush: an fsync elsewhere (the audit log's, before a routed
//! case is answered) has to carry to stable storage everything written to the disk since the
//! last flush. A 200 MB layer written in one burst — or handed to the disk a few MiB at a time
//! but never flushed, as before — put megabytes of it in front of each of those fsyncs for as
//! long as the write lasted (20–70 ms each on a virtual disk: `BENCHMARKS.md`, "Routing while a
//! layer is switched in"). With a flush after every chunk, at most one chunk of this file is
//! written and not yet flushed at any time, so an fsync elsewhere carries at most that. The
//! writer pays for it: one flush per chunk (a 208 MB layer: ~1.5 s more on that disk).

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

/// Bytes of a staged file written between two flushes to stable storage.
pub(super) const SYNC_CHUNK: u64 = 512 << 10;

/// A file being written whose data is flushed to stable storage (`fdatasync`) every
/// [`SYNC_CHUNK`] bytes, so that at most one chunk of it is written and not flushed at any time
/// (see the module doc). The bytes and the file are the same as without it; the caller's final
/// `sync_all` still makes the whole file (and its size) durable. A failed flush fails the write.
struct ChunkSynced {
    file: File,
    /// Bytes written so far.
    written: u64,
    /// Bytes written up to the last flush.
    flushed: u64,
    /// Flushes so far.
    flushes: u64,
}

impl ChunkSynced {
    fn new(file: File) -> ChunkSynced {
        ChunkSynced { file, written: 0, flushed: 0, flushes: 0 }
    }
}

impl Write for ChunkSynced {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // At most up to the next chunk boundary, so that no more than a chunk is ever unflushed.
        let room = (self.flushed + SYNC_CHUNK - self.written) as usize;
        let n = self.file.write(&buf[..buf.len().min(room)])?;
        self.written += n as u64;
        if self.written - self.flushed >= SYNC_CHUNK {
            self.file.sync_data()?;
            self.flushed = self.written;
            self.flushes += 1;
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
    fn the_writer_flushes_every_chunk_as_it_goes() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ChunkSynced::new(File::create(dir.path().join("f")).unwrap());
        // Pieces that straddle chunk boundaries: a write stops at the boundary, and is flushed.
        let data = bytes(SYNC_CHUNK as usize / 4 + 1000);
        for _ in 0..13 {
            w.write_all(&data).unwrap();
            assert!(w.written - w.flushed < SYNC_CHUNK, "never a whole chunk unflushed");
        }
        let total = 13 * data.len() as u64;
        assert_eq!(w.written, total);
        assert_eq!((w.flushes, w.flushed), (total / SYNC_CHUNK, total / SYNC_CHUNK * SYNC_CHUNK));
        w.flush().unwrap();
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), data.repeat(13));
    }
}
