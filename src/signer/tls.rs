//! The signer on another host (`signer_url = "https://HOST:PORT"`): desk and signer
//! authenticate each other with TLS certificates. The signer answers only a client whose
//! certificate its client CA signed (a CA for this purpose alone); the desk trusts only
//! the signer's certificate as its own CA file says. The lines exchanged are the same as
//! over the Unix socket.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::BufReader;
use tokio::net::TcpListener;

use super::service::Service;
use super::socket::{accept_each, answer_lines};

fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let found: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{what} {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if found.is_empty() {
        return Err(format!("{what} {}: no certificate in it", path.display()));
    }
    Ok(found)
}

fn private_key(path: &Path, what: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

fn roots(path: &Path, what: &str) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in certificates(path, what)? {
        roots
            .add(certificate)
            .map_err(|e| format!("{what} {}: {e}", path.display()))?;
    }
    Ok(roots)
}

/// The signer's side: its certificate and key, and the CA whose certificates are the
/// desk's.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let verifier =
        rustls::server::WebPkiClientVerifier::builder(Arc::new(roots(client_ca, "--client-ca")?))
            .build()
            .map_err(|e| format!("--client-ca {}: {e}", client_ca.display()))?;
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certificates(cert, "--tls-cert")?,
            private_key(key, "--tls-key")?,
        )
        .map_err(|e| format!("--tls-cert and --tls-key: {e}"))?;
    Ok(Arc::new(config))
}

/// The desk's side: the CA of the signer's certificate, and the desk's own certificate
/// and key.
pub fn client_config(
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots(ca, "signer_ca_file")?)
        .with_client_auth_cert(
            certificates(cert, "signer_client_cert")?,
            private_key(key, "signer_client_key")?,
        )
        .map_err(|e| format!("signer_client_cert and signer_client_key: {e}"))?;
    Ok(Arc::new(config))
}

/// Listens on `listener` until `stopped`, answering clients with a certificate of the
/// client CA; the same limits as the Unix socket.
pub async fn serve_tls(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    service: Arc<Service>,
    stopped: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tracing::info!(address = %listener.local_addr()?, "the signer is listening (TLS, client certificates)");
    let listener = &listener;
    accept_each(
        move || async move { listener.accept().await },
        move |(tcp, peer): (tokio::net::TcpStream, std::net::SocketAddr)| {
            let (acceptor, service) = (acceptor.clone(), service.clone());
            async move {
                let handshake =
                    tokio::time::timeout(super::socket::READ_TIMEOUT, acceptor.accept(tcp)).await;
                let stream = match handshake {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tracing::warn!(%peer, %error, "a TLS client was refused");
                        return;
                    }
                    Err(_) => return,
                };
                let (read, mut write) = tokio::io::split(stream);
                let mut reader = BufReader::new(read);
                if let Err(error) = answer_lines(&mut reader, &mut write, &service).await {
                    tracing::info!(%error, "a connection to the signer ended");
                }
            }
        },
        stopped,
    )
    .await
}
