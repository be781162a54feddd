//! Uploaded files (label photos, exports), stored under `<data_dir>/blobs/ab/cdef…`.
//! A blob's name is 256 random bits in hex, checked on every use, so a name from the
//! database can never point outside the directory. Names are random rather than content
//! hashes on purpose: a refused submission deletes its own blobs, and with shared names it
//! could delete a photo that a concurrent identical submission just stored.

use std::path::{Path, PathBuf};

use crate::crypto;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("not a blob name: {0:?}")]
    BadName(String),
    #[error("blob storage failed: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
}

impl BlobStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn path_of(&self, name: &str) -> Result<PathBuf, BlobError> {
        if name.len() != 64 || !name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(BlobError::BadName(name.to_owned()));
        }
        Ok(self.dir.join(&name[..2]).join(&name[2..]))
    }

    /// Stores `bytes` durably (write to a temporary file, fsync, rename).
    pub async fn put(&self, bytes: Vec<u8>) -> Result<String, BlobError> {
        let name = data_encoding::HEXLOWER.encode(&crypto::random_bytes::<32>());
        let path = self.path_of(&name)?;
        tokio::task::spawn_blocking(move || write_new(&path, &bytes))
            .await
            .map_err(std::io::Error::other)??;
        Ok(name)
    }

    pub async fn get(&self, name: &str) -> Result<Vec<u8>, BlobError> {
        Ok(tokio::fs::read(self.path_of(name)?).await?)
    }

    pub async fn delete(&self, name: &str) -> Result<(), BlobError> {
        match tokio::fs::remove_file(self.path_of(name)?).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Whether the directory can be written to, for readiness checks.
    pub async fn check_writable(&self) -> Result<(), BlobError> {
        tokio::fs::create_dir_all(&self.dir).await?;
        Ok(())
    }
}

fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let parent = path
        .parent()
        .ok_or_else(|| std::io::Error::other("blob path has no parent"))?;
    std::fs::create_dir_all(parent)?;
    let tmp = parent.join(format!(
        ".tmp-{}",
        data_encoding::HEXLOWER.encode(&crypto::random_bytes::<8>())
    ));
    let result = (|| {
        let mut file = std::fs::File::create_new(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let first = store.put(b"photo".to_vec()).await.unwrap();
        let again = store.put(b"photo".to_vec()).await.unwrap();
        assert_ne!(first, again, "each upload is its own blob");
        assert_eq!(store.get(&first).await.unwrap(), b"photo");
        store.delete(&first).await.unwrap();
        assert!(store.get(&first).await.is_err());
        assert_eq!(store.get(&again).await.unwrap(), b"photo");
    }

    #[tokio::test]
    async fn names_cannot_escape_the_directory() {
        let store = BlobStore::new("/tmp/none");
        assert!(matches!(
            store.get("../../etc/passwd").await,
            Err(BlobError::BadName(_))
        ));
    }
}
