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
    Ok(())
}

/// Replaces `path` atomically (temporary file, fsync, rename) with an owner-only file.
pub fn replace_private(path: &Path, contents: &[u8]) -> Result<(), SecretFileError> {
    let tmp = path.with_extension("tmp");
    // A temporary file left by a crash is ours to replace.
    let _ = fs::remove_file(&tmp);
    create_private(&tmp, contents)?;
    fs::rename(&tmp, path).map_err(|source| SecretFileError::Write {
        path: path.to_owned(),
        source,
    })
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
