//! Crash-safe file writes: temp file → fsync → rename → fsync of the directory.

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
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A temp file written and synced, waiting for its rename.
#[must_use]
pub(super) struct Staged {
    pub tmp: PathBuf,
    pub path: PathBuf,
    pub bytes: u64,
}

/// Writes `<path>.tmp` through `body` and syncs it to disk. On failure the temp file is removed.
pub(super) fn stage(
    path: &Path,
    body: impl FnOnce(&mut dyn Write) -> Result<(), String>,
) -> Result<Staged, StoreError> {
    let tmp = tmp_path(path);
    let result = (|| {
        let file = File::create(&tmp).map_err(io(&tmp))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        body(&mut w).map_err(|message| StoreError::Write {
            path: path.to_owned(),
            message,
        })?;
        let file = w.into_inner().map_err(|e| StoreError::Io {
            path: tmp.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io(&tmp))?;
        Ok(file.metadata().map_err(io(&tmp))?.len())
    })();
    match result {
        Ok(bytes) => Ok(Staged {
            tmp,
            path: path.to_owned(),
            bytes,
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
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
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
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
