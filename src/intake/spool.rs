//! Uploaded files as they arrive. A file stays in memory while the desk's upload memory
//! (`upload_memory_mb`, shared by every request) has room for it; past that it goes to
//! a file under `<data_dir>/spool`, so two hundred 10 MB uploads at once cost disk, not
//! memory. Spooled files are removed when the upload is dropped, and at start (a killed
//! desk leaves some behind).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Chunks written to spool files at once, by as many blocking threads. Page-cache writes
/// are quick; what costs is threads: each one that allocates gets its own malloc arena,
/// and two hundred uploads writing at once grew the blocking pool (and the desk's
/// resident memory) by hundreds of threads.
const SPOOL_WRITERS: usize = 4;

/// Where uploads wait to be checked and stored, and how much memory they may take.
pub struct Spool {
    dir: PathBuf,
    memory: Arc<Semaphore>,
    writers: Arc<Semaphore>,
    /// Uploads being read at once (`uploads_at_once`). Each connection being read holds
    /// actix's read and multipart buffers, about half a megabyte under load (measured
    /// with massif): two hundred at once held a hundred megabytes.
    readers: Arc<Semaphore>,
    /// Uploads each client address has in flight, waiting for a turn or being read, at
    /// most `uploads_per_address`: so one client trickling bodies cannot hold every turn.
    per_address: Arc<Mutex<HashMap<String, usize>>>,
    uploads_per_address: usize,
}

/// How many uploads the spool takes at once, and from one client address.
#[derive(Debug, Clone, Copy)]
pub struct SpoolLimits {
    pub memory_bytes: u64,
    pub uploads_at_once: usize,
    pub uploads_per_address: usize,
}

/// One of a client address's `uploads_per_address`, given back when dropped.
pub struct AddressClaim {
    per_address: Arc<Mutex<HashMap<String, usize>>>,
    address: String,
}

impl Drop for AddressClaim {
    fn drop(&mut self) {
        let mut counts = self
            .per_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

impl Spool {
    /// A spool in `dir`, emptied of anything an earlier run left behind.
    pub fn open(dir: PathBuf, limits: SpoolLimits) -> std::io::Result<Self> {
        crate::data_dir::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_file() {
                std::fs::remove_file(&path)?;
            }
        }
        let permits = usize::try_from(limits.memory_bytes)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Ok(Self {
            dir,
            memory: Arc::new(Semaphore::new(permits)),
            writers: Arc::new(Semaphore::new(SPOOL_WRITERS)),
            readers: Arc::new(Semaphore::new(limits.uploads_at_once.max(1))),
            per_address: Arc::default(),
            uploads_per_address: limits.uploads_per_address.max(1),
        })
    }

    /// Claims one of `address`'s uploads in flight; `None` when it has them all.
    pub fn claim(&self, address: &str) -> Option<AddressClaim> {
        let mut counts = self
            .per_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(address.to_owned()).or_insert(0);
        if *count >= self.uploads_per_address {
            return None;
        }
        *count += 1;
        Some(AddressClaim {
            per_address: self.per_address.clone(),
            address: address.to_owned(),
        })
    }

    pub fn uploads_per_address(&self) -> usize {
        self.uploads_per_address
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Uploads in flight from every address, waiting for a turn or being read: the sign
    /// that a client's upload has reached the desk (the throttling tests wait on it).
    pub fn uploads_in_flight(&self) -> usize {
        self.per_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .sum()
    }

    /// Turns no upload holds now: how close the desk is to making uploads wait.
    pub fn turns_free(&self) -> usize {
        self.readers.available_permits()
    }

    /// A turn at being read: hold it while the request's body is read.
    pub async fn admit(&self) -> std::io::Result<OwnedSemaphorePermit> {
        take_turn(&self.readers).await
    }

    /// Starts receiving one file.
    pub fn receive(&self) -> UploadWriter {
        UploadWriter {
            dir: self.dir.clone(),
            memory: self.memory.clone(),
            writers: self.writers.clone(),
            body: Writing::Memory(Vec::new(), None),
            len: 0,
        }
    }
}

/// A turn from one of the spool's semaphores, which are never closed.
async fn take_turn(turns: &Arc<Semaphore>) -> std::io::Result<OwnedSemaphorePermit> {
    turns
        .clone()
        .acquire_owned()
        .await
        .map_err(std::io::Error::other)
}

enum Writing {
    Memory(Vec<u8>, Option<OwnedSemaphorePermit>),
    File(tempfile::NamedTempFile),
}

/// One file being received.
pub struct UploadWriter {
    dir: PathBuf,
    memory: Arc<Semaphore>,
    writers: Arc<Semaphore>,
    body: Writing,
    len: u64,
}

impl UploadWriter {
    /// Adds the next chunk: in memory if the budget has room, else (from then on) on disk.
    pub async fn push(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.len += chunk.len() as u64;
        if let Writing::Memory(bytes, reserved) = &mut self.body {
            let more = u32::try_from(chunk.len())
                .ok()
                .and_then(|n| self.memory.clone().try_acquire_many_owned(n).ok());
            if let Some(more) = more {
                match reserved {
                    Some(held) => held.merge(more),
                    None => *reserved = Some(more),
                }
                // Grown by a quarter, not doubled: the budget counts the bytes, and a
                // doubled buffer would hold up to twice what it counts.
                if bytes.capacity() - bytes.len() < chunk.len() {
                    bytes.reserve_exact(chunk.len().max(bytes.len() / 4));
                }
                bytes.extend_from_slice(chunk);
                return Ok(());
            }
            let held = std::mem::take(bytes);
            let dir = self.dir.clone();
            let writer = self.writer().await?;
            let file = tokio::task::spawn_blocking(move || {
                let _writer = writer;
                let mut file = tempfile::NamedTempFile::new_in(dir)?;
                file.write_all(&held)?;
                Ok::<_, std::io::Error>(file)
            })
            .await
            .map_err(std::io::Error::other)??;
            // Dropping the old state gives its memory back to the budget.
            self.body = Writing::File(file);
        }
        if let Writing::File(file) = &mut self.body {
            let chunk = chunk.to_vec();
            let mut handle = file.as_file().try_clone()?;
            let writer = self.writer().await?;
            tokio::task::spawn_blocking(move || {
                let _writer = writer;
                handle.write_all(&chunk)
            })
            .await
            .map_err(std::io::Error::other)??;
        }
        Ok(())
    }

    /// A turn at writing to the spool (`SPOOL_WRITERS` at once).
    async fn writer(&self) -> std::io::Result<OwnedSemaphorePermit> {
        take_turn(&self.writers).await
    }

    pub fn finish(self) -> Upload {
        let body = match self.body {
            Writing::Memory(bytes, reserved) => Body::Memory {
                bytes,
                _reserved: reserved,
            },
            Writing::File(file) => Body::File(file),
        };
        Upload(Arc::new(Received {
            body,
            len: self.len,
        }))
    }
}

enum Body {
    Memory {
        bytes: Vec<u8>,
        /// Its share of the upload memory, given back when the upload is dropped.
        _reserved: Option<OwnedSemaphorePermit>,
    },
    File(tempfile::NamedTempFile),
}

struct Received {
    body: Body,
    len: u64,
}

/// A file as uploaded, in memory or spooled; cheap to clone, so picture work on the
/// blocking pool can hold it.
#[derive(Clone)]
pub struct Upload(Arc<Received>);

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("len", &self.0.len)
            .field("spooled", &self.spooled_path().is_some())
            .finish()
    }
}

impl Upload {
    /// An upload already in memory (a typed reset string, a test's file).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        let len = bytes.len() as u64;
        Self(Arc::new(Received {
            body: Body::Memory {
                bytes,
                _reserved: None,
            },
            len,
        }))
    }

    pub fn len(&self) -> u64 {
        self.0.len
    }

    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }

    /// The spooled file, when the upload is on disk.
    pub fn spooled_path(&self) -> Option<&Path> {
        match &self.0.body {
            Body::File(file) => Some(file.path()),
            Body::Memory { .. } => None,
        }
    }

    /// Runs `f` over the whole upload, reading a spooled one into memory for the time
    /// of the call. Blocking: call it on the blocking pool.
    pub fn with_bytes<T>(&self, f: impl FnOnce(&[u8]) -> T) -> std::io::Result<T> {
        match &self.0.body {
            Body::Memory { bytes, .. } => Ok(f(bytes)),
            Body::File(file) => {
                let mut bytes = Vec::with_capacity(usize::try_from(self.0.len).unwrap_or(0));
                file.reopen()?.read_to_end(&mut bytes)?;
                Ok(f(&bytes))
            }
        }
    }

    /// The first `len` bytes, read off the async workers when spooled.
    pub async fn bytes(&self, len: u64) -> std::io::Result<Vec<u8>> {
        let len = usize::try_from(len.min(self.0.len)).unwrap_or(usize::MAX);
        if let Body::Memory { bytes, .. } = &self.0.body {
            return Ok(bytes[..len].to_vec());
        }
        let upload = self.clone();
        tokio::task::spawn_blocking(move || upload.with_bytes(|bytes| bytes[..len].to_vec()))
            .await
            .map_err(std::io::Error::other)?
    }

    /// A reader over the upload (for reading just a header). Blocking.
    pub fn reader(&self) -> std::io::Result<Box<dyn Read + '_>> {
        Ok(match &self.0.body {
            Body::Memory { bytes, .. } => Box::new(bytes.as_slice()),
            Body::File(file) => Box::new(std::io::BufReader::new(file.reopen()?)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(memory_bytes: u64) -> SpoolLimits {
        SpoolLimits {
            memory_bytes,
            uploads_at_once: 4,
            uploads_per_address: 2,
        }
    }

    #[test]
    fn an_address_has_its_uploads_in_flight_and_gets_them_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let spool = Spool::open(dir.path().join("spool"), limits(1000)).expect("spool");
        let first = spool.claim("192.0.2.1").expect("a first upload");
        let second = spool.claim("192.0.2.1").expect("a second upload");
        assert!(
            spool.claim("192.0.2.1").is_none(),
            "a third is one too many"
        );
        let other = spool
            .claim("192.0.2.2")
            .expect("another address is not affected");
        drop(first);
        let third = spool
            .claim("192.0.2.1")
            .expect("a finished upload gives its claim back");
        drop((second, third, other));
        let counts = spool.per_address.lock().expect("not poisoned");
        assert!(
            counts.is_empty(),
            "nothing is kept for addresses with nothing in flight"
        );
    }

    fn files_in(dir: &Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |d| d.count())
    }

    #[tokio::test]
    async fn small_files_stay_in_memory_and_the_rest_goes_to_disk() {
        let dir = tempfile::tempdir().expect("temp dir");
        let spool = Spool::open(dir.path().join("spool"), limits(1000)).expect("spool");
        let mut small = spool.receive();
        small.push(&[1; 600]).await.expect("push");
        let small = small.finish();
        assert_eq!(small.spooled_path(), None);

        // 600 of 1000 bytes are taken: the next file spills once it needs more than 400.
        let mut large = spool.receive();
        for chunk in [[2u8; 300], [3; 300], [4; 300]] {
            large.push(&chunk).await.expect("push");
        }
        let large = large.finish();
        assert!(large.spooled_path().is_some());
        assert_eq!(large.len(), 900);
        let read = large.bytes(900).await.expect("read back");
        assert_eq!(&read[..300], &[2; 300]);
        assert_eq!(&read[600..], &[4; 300]);
        assert_eq!(files_in(spool.dir()), 1);

        // Dropping uploads gives back their memory and removes their files.
        drop(small);
        drop(large);
        assert_eq!(files_in(spool.dir()), 0);
        assert_eq!(spool.memory.available_permits(), 1000);
    }

    #[tokio::test]
    async fn a_restart_removes_what_a_killed_desk_left() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("spool");
        std::fs::create_dir_all(&path).expect("dir");
        std::fs::write(path.join(".tmpleft"), b"half an upload").expect("write");
        let spool = Spool::open(path.clone(), limits(10)).expect("spool");
        assert_eq!(files_in(spool.dir()), 0);
    }
}
