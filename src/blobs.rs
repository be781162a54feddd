//! Uploaded files (label photos, exports) behind one interface: a local directory (the
//! default, `<data_dir>/blobs/ab/cdef…`) or an S3-compatible object store for several
//! replicas (`blob_url = "s3://bucket"`). A blob's name is 256 random bits in hex,
//! checked on every use, so a name from the database can never point anywhere else.
//! Names are random rather than content hashes on purpose: a refused submission deletes
//! its own blobs, and with shared names it could delete a photo that a concurrent
//! identical submission just stored.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::config::Settings;
use crate::crypto;
use crate::intake::spool::Upload;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("not a blob name: {0:?}")]
    BadName(String),
    /// The disk (or its quota) is full: nothing can be stored until space is freed.
    #[error("blob storage is full: {0}")]
    Full(std::io::Error),
    #[error("blob storage failed: {0}")]
    Io(#[from] std::io::Error),
    /// The object store cannot be reached (connection refused or cut, timeout, 5xx):
    /// worth trying again, and nothing was stored.
    #[error("the object store cannot be reached: {0}")]
    Unavailable(object_store::Error),
    #[error("the object store failed: {0}")]
    ObjectStore(object_store::Error),
    #[error(
        "blob_url {0:?} is not valid: use s3://BUCKET (or leave it unset for the data directory)"
    )]
    BadUrl(String),
}

impl BlobError {
    /// Whether the blob is not there (removed, or never stored), rather than unreadable
    /// now.
    pub fn is_not_found(&self) -> bool {
        match self {
            Self::Io(e) => e.kind() == std::io::ErrorKind::NotFound,
            Self::ObjectStore(object_store::Error::NotFound { .. }) => true,
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
enum Backend {
    Local(PathBuf),
    ObjectStore(Arc<dyn ObjectStore>),
}

#[derive(Debug, Clone)]
pub struct BlobStore {
    backend: Backend,
    /// The last readiness probe's time and answer, shared by the clones of this store.
    probed: Arc<tokio::sync::Mutex<Option<(std::time::Instant, bool)>>>,
}

/// How long a readiness probe's answer stands: `/readyz` is anonymous, and each probe of
/// an object store is a billed request, so a flood of checks costs one probe per replica
/// this often.
pub const PROBE_CACHE_SECS: u64 = 30;

/// Sorts an object store error into "unreachable now" (the connection failed, was cut
/// or timed out; the store answered 5xx) or "this request failed".
fn object_error(error: object_store::Error) -> BlobError {
    use object_store::client::{HttpError, HttpErrorKind};
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(e) = current {
        if let Some(http) = e.downcast_ref::<HttpError>()
            && matches!(
                http.kind(),
                HttpErrorKind::Connect
                    | HttpErrorKind::Request
                    | HttpErrorKind::Timeout
                    | HttpErrorKind::Interrupted
            )
        {
            return BlobError::Unavailable(error);
        }
        current = e.source();
    }
    // The status of an error answer is only in the (private) retry error's text.
    if error
        .to_string()
        .contains("Server returned non-2xx status code: 5")
    {
        return BlobError::Unavailable(error);
    }
    BlobError::ObjectStore(error)
}

impl From<object_store::Error> for BlobError {
    fn from(error: object_store::Error) -> Self {
        object_error(error)
    }
}

fn check_name(name: &str) -> Result<(), BlobError> {
    if name.len() != 64 || !name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(BlobError::BadName(name.to_owned()));
    }
    Ok(())
}

impl BlobStore {
    /// Blobs in a local directory.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            backend: Backend::Local(dir.into()),
            probed: Arc::default(),
        }
    }

    /// The store the settings ask for: `blob_url` if set, else `<data_dir>/blobs`.
    pub fn from_settings(settings: &Settings) -> Result<Self, BlobError> {
        let Some(url) = &settings.storage.blob_url else {
            return Ok(Self::new(settings.storage.data_dir.join("blobs")));
        };
        let bucket = url
            .strip_prefix("s3://")
            .map(|b| b.trim_end_matches('/'))
            .filter(|b| !b.is_empty() && !b.contains('/'))
            .ok_or_else(|| BlobError::BadUrl(url.clone()))?;
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_region(settings.storage.s3_region.clone());
        if let Some(endpoint) = &settings.storage.s3_endpoint {
            builder = builder
                .with_endpoint(endpoint.clone())
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let (Some(id), Some(secret)) = (
            &settings.storage.s3_access_key_id,
            &settings.storage.s3_secret_access_key,
        ) {
            builder = builder
                .with_access_key_id(id.clone())
                .with_secret_access_key(secret.expose().to_owned());
        }
        Ok(Self {
            backend: Backend::ObjectStore(Arc::new(builder.build()?)),
            probed: Arc::default(),
        })
    }

    fn path_of(dir: &Path, name: &str) -> Result<PathBuf, BlobError> {
        check_name(name)?;
        Ok(dir.join(&name[..2]).join(&name[2..]))
    }

    fn object_of(name: &str) -> Result<ObjectPath, BlobError> {
        check_name(name)?;
        Ok(ObjectPath::from(format!(
            "blobs/{}/{}",
            &name[..2],
            &name[2..]
        )))
    }

    /// Stores `bytes` durably under a new random name.
    pub async fn put(&self, bytes: Vec<u8>) -> Result<String, BlobError> {
        let name = data_encoding::HEXLOWER.encode(&crypto::random_bytes::<32>());
        match &self.backend {
            Backend::Local(dir) => {
                let path = Self::path_of(dir, &name)?;
                tokio::task::spawn_blocking(move || write_new(&path, &bytes))
                    .await
                    .map_err(std::io::Error::other)?
                    .map_err(local_error)?;
            }
            Backend::ObjectStore(store) => {
                store
                    .put(&Self::object_of(&name)?, PutPayload::from(bytes))
                    .await?;
            }
        }
        Ok(name)
    }

    /// Stores the first `len` bytes of an upload durably under a new random name. A
    /// spooled upload is linked into place rather than read back into memory.
    pub async fn put_upload(&self, upload: &Upload, len: u64) -> Result<String, BlobError> {
        let Backend::Local(dir) = &self.backend else {
            return self.put(upload.bytes(len).await?).await;
        };
        let name = data_encoding::HEXLOWER.encode(&crypto::random_bytes::<32>());
        let path = Self::path_of(dir, &name)?;
        let upload = upload.clone();
        tokio::task::spawn_blocking(move || match upload.spooled_path() {
            Some(spooled) => link_new(spooled, &path, len),
            None => upload.with_bytes(|bytes| {
                write_new(
                    &path,
                    &bytes[..usize::try_from(len).unwrap_or(usize::MAX).min(bytes.len())],
                )
            })?,
        })
        .await
        .map_err(std::io::Error::other)?
        .map_err(local_error)?;
        Ok(name)
    }

    pub async fn get(&self, name: &str) -> Result<Vec<u8>, BlobError> {
        match &self.backend {
            Backend::Local(dir) => Ok(tokio::fs::read(Self::path_of(dir, name)?).await?),
            Backend::ObjectStore(store) => Ok(store
                .get(&Self::object_of(name)?)
                .await?
                .bytes()
                .await?
                .to_vec()),
        }
    }

    pub async fn delete(&self, name: &str) -> Result<(), BlobError> {
        match &self.backend {
            Backend::Local(dir) => match tokio::fs::remove_file(Self::path_of(dir, name)?).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            },
            Backend::ObjectStore(store) => match store.delete(&Self::object_of(name)?).await {
                Err(object_store::Error::NotFound { .. }) | Ok(()) => Ok(()),
                Err(e) => Err(e.into()),
            },
        }
    }

    /// Keeps one record of the erasure log (`crate::retention`) where a restore of the
    /// database does not reach: beside the blobs (`erasures/<random>`, in the bucket for
    /// replicas), never listed as a blob, so the sweeper leaves it.
    pub async fn put_erasure_record(&self, bytes: Vec<u8>) -> Result<(), BlobError> {
        let name = data_encoding::HEXLOWER.encode(&crypto::random_bytes::<32>());
        match &self.backend {
            Backend::Local(dir) => {
                let path = dir.join(ERASURES).join(&name);
                tokio::task::spawn_blocking(move || {
                    if let Some(parent) = path.parent() {
                        crate::data_dir::create_dir_all(parent)?;
                    }
                    write_new(&path, &bytes)
                })
                .await
                .map_err(std::io::Error::other)?
                .map_err(local_error)?;
            }
            Backend::ObjectStore(store) => {
                store
                    .put(
                        &ObjectPath::from(format!("{ERASURES}/{name}")),
                        PutPayload::from(bytes),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// Every record of the erasure log.
    pub async fn erasure_records(&self) -> Result<Vec<Vec<u8>>, BlobError> {
        match &self.backend {
            Backend::Local(dir) => {
                let dir = dir.join(ERASURES);
                tokio::task::spawn_blocking(move || -> std::io::Result<Vec<Vec<u8>>> {
                    let entries = match std::fs::read_dir(&dir) {
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            return Ok(Vec::new());
                        }
                        other => other?,
                    };
                    let mut records = Vec::new();
                    for entry in entries {
                        let entry = entry?;
                        let name = entry.file_name().to_string_lossy().into_owned();
                        if check_name(&name).is_ok() {
                            records.push(std::fs::read(entry.path())?);
                        }
                    }
                    Ok(records)
                })
                .await
                .map_err(std::io::Error::other)?
                .map_err(BlobError::Io)
            }
            Backend::ObjectStore(store) => {
                use futures_util::TryStreamExt;
                let prefix = ObjectPath::from(ERASURES);
                let objects: Vec<object_store::ObjectMeta> =
                    store.list(Some(&prefix)).try_collect().await?;
                let mut records = Vec::with_capacity(objects.len());
                for meta in objects {
                    records.push(store.get(&meta.location).await?.bytes().await?.to_vec());
                }
                Ok(records)
            }
        }
    }

    /// Every stored blob with the time it was stored (seconds since the epoch), for the
    /// sweeper. Half-written local files (`.tmp-…`) and anything not named as a blob are
    /// left out: the sweeper never touches what it does not recognise.
    pub async fn list(&self) -> Result<Vec<(String, i64)>, BlobError> {
        match &self.backend {
            Backend::Local(dir) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || list_local(&dir))
                    .await
                    .map_err(std::io::Error::other)?
                    .map_err(BlobError::Io)
            }
            Backend::ObjectStore(store) => {
                use futures_util::TryStreamExt;
                let prefix = ObjectPath::from("blobs");
                let objects: Vec<object_store::ObjectMeta> =
                    store.list(Some(&prefix)).try_collect().await?;
                Ok(objects
                    .into_iter()
                    .filter_map(|meta| {
                        let mut parts = meta.location.parts();
                        let (_, head, tail) = (parts.next()?, parts.next()?, parts.next()?);
                        let name = format!("{}{}", head.as_ref(), tail.as_ref());
                        check_name(&name).ok()?;
                        Some((name, meta.last_modified.timestamp()))
                    })
                    .collect())
            }
        }
    }

    /// Whether uploads can be stored now, for readiness checks; the error is what an
    /// operator reads in `/readyz`. The directory must exist (a free check, made every
    /// time); the object store must answer a read (a HEAD of a name no blob has: "not
    /// found" is an answer). Never a write, and at most one probe of the object store per
    /// [`PROBE_CACHE_SECS`]: anyone can ask `/readyz`, and must not drive its bill.
    pub async fn check_ready(&self) -> Result<(), &'static str> {
        let store = match &self.backend {
            Backend::Local(dir) => {
                let dir = dir.clone();
                return match tokio::task::spawn_blocking(move || {
                    crate::data_dir::create_dir_all(&dir)
                })
                .await
                {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "readiness: the blob directory is not writable");
                        Err("not writable")
                    }
                    Err(_) => Err("not writable"),
                };
            }
            Backend::ObjectStore(store) => store,
        };
        let mut probed = self.probed.lock().await;
        if let Some((at, answered)) = *probed
            && at.elapsed() < std::time::Duration::from_secs(PROBE_CACHE_SECS)
        {
            return if answered { Ok(()) } else { Err("unreachable") };
        }
        ::metrics::counter!("resetdesk_blob_probes_total").increment(1);
        let answer = match store.head(&ObjectPath::from("readyz-probe")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => {
                tracing::warn!(%error, "readiness: the object store does not answer");
                Err(())
            }
        };
        *probed = Some((std::time::Instant::now(), answer.is_ok()));
        answer.map_err(|_| "unreachable")
    }
}

/// Where the erasure log's records are kept, beside the blobs.
const ERASURES: &str = "erasures";

fn list_local(dir: &Path) -> std::io::Result<Vec<(String, i64)>> {
    let mut found = Vec::new();
    let top = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        other => other?,
    };
    for sub in top {
        let sub = sub?;
        if !sub.file_type()?.is_dir() {
            continue;
        }
        let head = sub.file_name().to_string_lossy().into_owned();
        for file in std::fs::read_dir(sub.path())? {
            let file = file?;
            let name = format!("{head}{}", file.file_name().to_string_lossy());
            if check_name(&name).is_err() {
                continue;
            }
            let stored = file
                .metadata()?
                .modified()?
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            found.push((name, stored));
        }
    }
    Ok(found)
}

fn local_error(e: std::io::Error) -> BlobError {
    match e.kind() {
        std::io::ErrorKind::StorageFull
        | std::io::ErrorKind::QuotaExceeded
        | std::io::ErrorKind::FileTooLarge => BlobError::Full(e),
        _ => BlobError::Io(e),
    }
}

/// Puts a new file at `path` all at once: `fill` writes it under a temporary name in the
/// same directory, then it is synced and renamed into place, so a crash or a full disk
/// never leaves half a blob under a real name; then the directory is synced, so the new
/// name survives a power cut too (a ticket committed after this names a blob that is
/// there), whatever the file system orders.
fn place_new(
    path: &Path,
    fill: impl FnOnce(&Path) -> std::io::Result<std::fs::File>,
) -> std::io::Result<()> {
    let parent = path
        .parent()
        .ok_or_else(|| std::io::Error::other("blob path has no parent"))?;
    folder_on_disk(parent)?;
    let tmp = parent.join(format!(
        ".tmp-{}",
        data_encoding::HEXLOWER.encode(&crypto::random_bytes::<8>())
    ));
    let result = fill(&tmp)
        .and_then(|file| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    // A blob whose name may not survive is not given out: its caller stores no ticket
    // naming it, and nothing is left for the sweeper.
    result.and_then(|()| {
        crate::data_dir::sync_dir(parent).inspect_err(|_| {
            let _ = std::fs::remove_file(path);
        })
    })
}

/// Makes sure a blob folder exists and its entry is on disk, as are those of the two
/// folders above it (the blob directory, and the one holding it), once per process and
/// folder. Whoever made the folder, it is synced here too: a folder another upload made
/// a moment ago may not have been synced yet when this one stores in it.
fn folder_on_disk(folder: &Path) -> std::io::Result<()> {
    static SYNCED: std::sync::Mutex<std::collections::BTreeSet<PathBuf>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    if SYNCED.lock().is_ok_and(|set| set.contains(folder)) {
        return Ok(());
    }
    crate::data_dir::create_dir_all(folder)?;
    let mut above = folder.parent();
    for _ in 0..2 {
        let Some(dir) = above.filter(|d| !d.as_os_str().is_empty()) else {
            break;
        };
        crate::data_dir::sync_dir(dir)?;
        above = dir.parent();
    }
    if let Ok(mut set) = SYNCED.lock() {
        set.insert(folder.to_owned());
    }
    Ok(())
}

/// Gives a spooled file a second name in the blob directory, cut to `len`. Across file
/// systems, where a link cannot be made, it is copied. Either way the blob is 0600 (a
/// link shares the spool file's mode, which is set here too).
fn link_new(spooled: &Path, path: &Path, len: u64) -> std::io::Result<()> {
    place_new(path, |tmp| {
        if std::fs::hard_link(spooled, tmp).is_err() {
            let mut from = std::io::Read::take(std::fs::File::open(spooled)?, len);
            std::io::copy(&mut from, &mut crate::data_dir::create_new_file(tmp)?)?;
        }
        let file = std::fs::OpenOptions::new().write(true).open(tmp)?;
        file.set_permissions(
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(
                crate::data_dir::FILE_MODE,
            ),
        )?;
        file.set_len(len)?;
        Ok(file)
    })
}

fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    place_new(path, |tmp| {
        let mut file = crate::data_dir::create_new_file(tmp)?;
        std::io::Write::write_all(&mut file, bytes)?;
        Ok(file)
    })
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

    #[test]
    fn blob_urls_are_checked() {
        for url in ["ftp://x", "s3://", "s3://bucket/path"] {
            let mut settings = Settings::default();
            settings.storage.blob_url = Some(url.to_owned());
            assert!(
                matches!(
                    BlobStore::from_settings(&settings),
                    Err(BlobError::BadUrl(_))
                ),
                "{url}"
            );
        }
    }
}
