//! Files that hold secrets: created owner-only, and refused when anyone else could read them.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error(
        "{path} is readable or writable by group or others (mode {mode:04o}); \
         a key file must be private to its owner: run `chmod 600 {path}`"
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("{path} already exists; refusing to overwrite key material")]
    AlreadyExists { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Creates `path` with mode 0600 and writes `contents`, failing if it exists. The
/// mode is set at creation, so there is no moment when the secret is readable by others.
pub fn create_private(path: &Path, contents: &[u8]) -> Result<(), SecretFileError> {
    let write_err = |source| SecretFileError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                SecretFileError::AlreadyExists {
                    path: path.to_owned(),
                }
            } else {
                write_err(source)
            }
        })?;
    file.write_all(contents).map_err(write_err)?;
    file.sync_all().map_err(write_err)?;
    sync_parent(path)
}

/// Replaces `path` atomically with an owner-only file: a temporary file of a name no
/// other writer uses (so two writers never delete or rename each other's half-written
/// file), fsync, rename, then fsync of the directory so the rename survives a crash.
pub fn replace_private(path: &Path, contents: &[u8]) -> Result<(), SecretFileError> {
    let write_err = |source| SecretFileError::Write {
        path: path.to_owned(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        data_encoding::HEXLOWER.encode(&super::random_bytes::<8>())
    ));
    create_private(&tmp, contents)?;
    if let Err(source) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(write_err(source));
    }
    sync_parent(path)
}

/// Flushes the directory entry of `path`, so a file just created or renamed there is
/// still there after a power cut.
pub fn sync_parent(path: &Path) -> Result<(), SecretFileError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| SecretFileError::Write {
            path: dir.to_owned(),
            source,
        })
}

/// An exclusive lock on a directory's lock file (`flock`), held until dropped. The
/// kernel releases it when the process ends, so a crashed writer leaves no stale lock.
#[derive(Debug)]
pub struct DirLock {
    _file: fs::File,
}

/// Waits for the exclusive lock on `path` (created owner-only if missing).
pub fn lock_exclusive(path: &Path) -> Result<DirLock, SecretFileError> {
    let write_err = |source| SecretFileError::Write {
        path: path.to_owned(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(write_err)?;
    file.lock().map_err(write_err)?;
    Ok(DirLock { _file: file })
}

/// Reads a secret file after checking that only its owner can read or write it.
pub fn read_private(path: &Path) -> Result<Vec<u8>, SecretFileError> {
    let read_err = |source| SecretFileError::Read {
        path: path.to_owned(),
        source,
    };
    let mode = fs::metadata(path).map_err(read_err)?.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SecretFileError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    fs::read(path).map_err(read_err)
}

/// Creates a directory (and parents) that only its owner may enter.
pub fn create_private_dir(path: &Path) -> Result<(), SecretFileError> {
    fs::create_dir_all(path).map_err(|source| SecretFileError::Write {
        path: path.to_owned(),
        source,
    })?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(|source| {
        SecretFileError::Write {
            path: path.to_owned(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_files_are_owner_only_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        create_private(&path, b"s3cret").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(
            create_private(&path, b"other"),
            Err(SecretFileError::AlreadyExists { .. })
        ));
        assert_eq!(read_private(&path).unwrap(), b"s3cret");
    }

    #[test]
    fn group_or_world_readable_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        create_private(&path, b"s3cret").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = read_private(&path).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
        assert!(!err.to_string().contains("s3cret"));
    }
}
