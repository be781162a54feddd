//! The signer's Unix socket: it answers only the desk's user (`SO_PEERCRED`), one JSON
//! request per line, each line at most [`MAX_LINE_BYTES`].

use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::service::Service;
use super::wire::{MAX_LINE_BYTES, Reply, Request};

/// Listens on `path` until `stopped`; `desk_uid` is the only user answered. A socket
/// file left by an earlier run is replaced; anything else at the path is refused.
pub async fn serve(
    path: &Path,
    desk_uid: u32,
    service: Arc<Service>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    if let Ok(metadata) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !metadata.file_type().is_socket() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    // The peer check is what keeps others out; the mode only stops them connecting.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    }
    tracing::info!(socket = %path.display(), desk_uid, "the signer is listening");
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = accepted?;
                let service = service.clone();
                tokio::spawn(async move {
                    if let Err(error) = connection(stream, desk_uid, &service).await {
                        tracing::info!(%error, "a connection to the signer ended");
                    }
                });
            }
            _ = stopped.changed() => return Ok(()),
        }
    }
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
    while let Some(line) = read_line(&mut reader).await? {
        let reply = match serde_json::from_slice::<Request>(&line) {
            Ok(request) => service.handle(request).await,
            Err(error) => Reply::Failed {
                error: format!("not a request: {error}"),
            },
        };
        write_line(&mut write, &reply).await?;
    }
    Ok(())
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
