//! The data directory's files are the desk's most sensitive after the keys: customers'
//! names, addresses and label photos, the database (sessions, the audit log, mail waiting
//! to be sent with its reset keys) and `.eml` files holding reset keys. Everything the
//! desk creates under it is owner-only — files 0600, directories 0700 — set explicitly,
//! so a permissive umask or a data directory made 0755 by hand does not open them to
//! other users of the machine. What already exists keeps the mode its operator chose,
//! with a warning at start when others can read it.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

/// The mode of every file the desk creates under the data directory.
pub const FILE_MODE: u32 = 0o600;
/// The mode of every directory the desk creates under the data directory.
pub const DIR_MODE: u32 = 0o700;

/// Creates the data directory owner-only if it does not exist, and warns when an
/// existing one is open to group or others.
pub fn prepare(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        warn_if_open(dir);
        return Ok(());
    }
    create_dir_all(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))
}

/// Logs a warning naming `path` and its mode when group or others may read, write or
/// enter it. Nothing when it does not exist.
pub fn warn_if_open(path: &Path) {
    let Ok(metadata) = fs::metadata(path) else {
        return;
    };
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return;
    }
    // Named in full: the setting may be relative to a working directory the reader of
    // the log does not know.
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let (what, fix) = if metadata.is_dir() {
        ("directory", "chmod 700")
    } else {
        ("file", "chmod 600")
    };
    tracing::warn!(
        path = %path.display(),
        mode = %format!("{mode:04o}"),
        "the {what} {} is open to group or others (mode {mode:04o}): it holds customers' \
         details and reset keys; run `{fix} {}`",
        path.display(),
        path.display(),
    );
}

/// `mkdir -p` with every directory it creates made 0700, whatever the umask, and its
/// entry synced in the directory above, so what is later stored in it is not lost with
/// it in a power cut; directories that exist are left as they are.
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        create_dir_all(parent)?;
    }
    match fs::DirBuilder::new().mode(DIR_MODE).create(path) {
        Ok(()) => {
            fs::set_permissions(path, fs::Permissions::from_mode(DIR_MODE))?;
            sync_dir(parent.unwrap_or(Path::new(".")))
        }
        // Made meanwhile by a concurrent request: its maker set the mode, and may not
        // have synced its entry yet.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {
            sync_dir(parent.unwrap_or(Path::new(".")))
        }
        Err(e) => Err(e),
    }
}

/// Flushes a directory's entries, so a file just created or renamed in it is still there
/// after a power cut.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates a new file (failing if it exists), mode 0600 whatever the umask.
pub fn create_new_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)?;
    file.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}

/// Creates `path` empty, 0600, unless it exists: SQLite then opens the file as a new
/// database, and gives its `-wal` and `-shm` files the database file's mode.
pub fn create_file_if_missing(path: &Path) -> io::Result<()> {
    match create_new_file(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn created_directories_and_files_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let deep = dir.path().join("a/b/c");
        create_dir_all(&deep).unwrap();
        for path in ["a", "a/b", "a/b/c"] {
            assert_eq!(mode(&dir.path().join(path)), DIR_MODE, "{path}");
        }
        assert_eq!(
            mode(dir.path()),
            0o755,
            "an existing directory keeps its mode"
        );
        create_dir_all(&deep).unwrap();

        let file = deep.join("f");
        create_new_file(&file).unwrap();
        assert_eq!(mode(&file), FILE_MODE);
        assert_eq!(
            create_new_file(&file).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        create_file_if_missing(&file).unwrap();
        let db = deep.join("db");
        create_file_if_missing(&db).unwrap();
        assert_eq!(mode(&db), FILE_MODE);
    }
}
