//! The signer's Unix socket: it answers only the desk's user (`SO_PEERCRED`), one JSON
//! request per line, each line at most [`MAX_LINE_BYTES`].

use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::service::Service;
use super::wire::{MAX_LINE_BYTES, Reply, Request};

/// Connections served at once; more wait in the socket's backlog. Each may hold a line
/// of up to [`MAX_LINE_BYTES`] in memory.
pub(super) const MAX_CONNECTIONS: usize = 32;
/// A connection that sends nothing for this long is closed (a slow sender holds a slot).
pub(super) const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Listens on `path` until `stopped`; `desk_uid` is the only user answered. A socket
/// file left by an earlier run is replaced; anything else at the path is refused, and so
/// is a directory that others may write to (they could swap the socket for a link).
pub async fn serve(
    path: &Path,
    desk_uid: u32,
    service: Arc<Service>,
    stopped: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let listener = bind_privately(path)?;
    tracing::info!(socket = %path.display(), desk_uid, "the signer is listening");
    let listener = &listener;
    accept_each(
        move || async move { listener.accept().await.map(|(stream, _)| stream) },
        move |stream| {
            let service = service.clone();
            async move {
                if let Err(error) = connection(stream, desk_uid, &service).await {
                    tracing::info!(%error, "a connection to the signer ended");
                }
            }
        },
        stopped,
    )
    .await
}

/// Takes connections from `accept` until `stopped`, at most [`MAX_CONNECTIONS`] at
/// once (more wait in the listener's backlog), each handled by `handle` on a task of
/// its own. An accept error (out of file descriptors, say) is logged and tried again
/// after a pause: it never ends the loop.
pub(super) async fn accept_each<S, A, AFut, H, HFut>(
    mut accept: A,
    handle: H,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()>
where
    A: FnMut() -> AFut,
    AFut: std::future::Future<Output = std::io::Result<S>>,
    H: Fn(S) -> HFut,
    HFut: std::future::Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut pause = std::time::Duration::from_millis(50);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.map_err(std::io::Error::other)?,
            _ = stopped.changed() => return Ok(()),
        };
        tokio::select! {
            accepted = accept() => match accepted {
                Ok(stream) => {
                    pause = std::time::Duration::from_millis(50);
                    let handled = handle(stream);
                    tokio::spawn(async move {
                        let _slot = slot;
                        handled.await;
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection; trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(2));
                }
            },
            _ = stopped.changed() => return Ok(()),
        }
    }
}

/// Binds the socket at `path` with mode 0660 without a window for a link swap: bound
/// and chmodded in a directory of its own (0700), then renamed into place (a rename
/// replaces whatever is at `path`, a link included, without following it). The
/// directory holding `path` must be this user's and writable by nobody else.
fn bind_privately(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let refuse = |why: String| std::io::Error::new(std::io::ErrorKind::PermissionDenied, why);
    let dir = std::fs::metadata(parent)?;
    if dir.uid() != rustix::process::getuid().as_raw() || dir.mode() & 0o022 != 0 {
        return Err(refuse(format!(
            "the socket's directory {} must be the signer's user's and writable by nobody else \
             (its mode is {:o}): another user could put a link where the socket goes",
            parent.display(),
            dir.mode() & 0o777
        )));
    }
    if let Ok(existing) = std::fs::symlink_metadata(path)
        && !existing.file_type().is_socket()
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    let staging = tempfile::Builder::new()
        .prefix(".signer-socket-")
        .tempdir_in(parent)?;
    let staged = staging.path().join("signer.sock");
    let listener = UnixListener::bind(&staged)?;
    // The peer check is what keeps others out; the mode only stops them connecting.
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o660))?;
    std::fs::rename(&staged, path)?;
    Ok(listener)
}

async fn connection(stream: UnixStream, desk_uid: u32, service: &Service) -> std::io::Result<()> {
    let peer = stream.peer_cred()?;
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    if peer.uid() != desk_uid {
        tracing::warn!(
            uid = peer.uid(),
            desk_uid,
            "a process of another user was refused"
        );
        // Its request is read (and dropped) first, so it hears why instead of a broken
        // pipe; it gets a few seconds to send it.
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(5), read_line(&mut reader)).await;
        let reply = Reply::Failed {
            error: format!(
                "user {} is not the desk's (uid {desk_uid}): the signer answers only the desk",
                peer.uid()
            ),
        };
        write_line(&mut write, &reply).await?;
        return Ok(());
    }
    answer_lines(&mut reader, &mut write, service).await
}

/// Answers the requests of one connection whose peer was checked, a line at a time.
pub(super) async fn answer_lines<R: AsyncRead + Unpin, W: tokio::io::AsyncWrite + Unpin>(
    reader: &mut BufReader<R>,
    write: &mut W,
    service: &Service,
) -> std::io::Result<()> {
    loop {
        let line = match tokio::time::timeout(READ_TIMEOUT, read_line(reader)).await {
            Ok(line) => line?,
            Err(_) => return Ok(()),
        };
        let Some(line) = line else {
            return Ok(());
        };
        let reply = match serde_json::from_slice::<Request>(&line) {
            Ok(request) => service.handle(request).await,
            Err(error) => Reply::Failed {
                error: format!("not a request: {error}"),
            },
        };
        write_line(write, &reply).await?;
    }
}

/// One line without its newline; `None` at the end of the stream. A line longer than
/// [`MAX_LINE_BYTES`] ends the connection.
pub(super) async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok((!line.is_empty()).then_some(line));
        }
        let (taken, done) = match available.iter().position(|b| *b == b'\n') {
            Some(at) => (at + 1, true),
            None => (available.len(), false),
        };
        line.extend_from_slice(&available[..taken]);
        reader.consume(taken);
        if line.len() > MAX_LINE_BYTES + 1 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "a line over the signer's limit",
            ));
        }
        if done {
            line.pop();
            return Ok(Some(line));
        }
    }
}

pub(super) async fn write_line<W: tokio::io::AsyncWrite + Unpin, T: serde::Serialize>(
    write: &mut W,
    value: &T,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    write.flush().await
}
