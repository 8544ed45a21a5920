//! TLS for `van-hq serve` (rustls with the ring provider) and `van-hq tls-init`, which makes a
//! throwaway certificate authority and a server certificate signed by it for trials and tests.
//! A fleet's HQ uses certificates from its own CA; each van pins that CA's certificate
//! (`sync.ca_file`) and trusts nothing else.
//!
//! The handshake runs in a task of its own per connection, so a client that stalls in the
//! handshake never holds up the others; finished connections reach axum through
//! [`TlsListener`].

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::server::{Hq, router};
use crate::store::Store;

/// A handshake that takes longer than this is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// File names `tls-init` writes in its folder.
pub const CA_CERT: &str = "ca.pem";
/// The CA's private key (0600; only needed to sign more server certificates).
pub const CA_KEY: &str = "ca.key";
/// The server's certificate chain (server certificate, then the CA's).
pub const SERVER_CERT: &str = "server.pem";
/// The server's private key (0600).
pub const SERVER_KEY: &str = "server.key";

/// Why TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: PathBuf },
    #[error("{path}: not a PEM private key (PKCS#8, SEC1 or PKCS#1): {detail}")]
    BadKey { path: PathBuf, detail: String },
    #[error("{path}: mode {mode:04o} lets others read the TLS key; it must be 0600 (chmod 600 {path})")]
    KeyPermissions { path: PathBuf, mode: u32 },
    #[error("TLS certificate and key do not fit together: {0}")]
    Config(String),
    #[error("{path}: already exists; refusing to overwrite it")]
    Exists { path: PathBuf },
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("making the certificates: {0}")]
    Generate(String),
}

/// What `tls-init` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate each van pins.
    pub ca_cert: PathBuf,
    /// The CA's key.
    pub ca_key: PathBuf,
    /// The server's certificate chain for `serve --tls-cert`.
    pub server_cert: PathBuf,
    /// The server's key for `serve --tls-key`.
    pub server_key: PathBuf,
}

impl TlsFiles {
    /// The file names inside `dir`.
    pub fn in_dir(dir: &Path) -> TlsFiles {
        TlsFiles {
            ca_cert: dir.join(CA_CERT),
            ca_key: dir.join(CA_KEY),
            server_cert: dir.join(SERVER_CERT),
            server_key: dir.join(SERVER_KEY),
        }
    }

    /// True when every file exists.
    pub fn exist(&self) -> bool {
        [&self.ca_cert, &self.ca_key, &self.server_cert, &self.server_key].iter().all(|p| p.exists())
    }
}

/// Certificates in memory (PEM), before they are written.
#[derive(Clone)]
pub struct ThrowawayCa {
    /// The CA certificate.
    pub ca_cert_pem: String,
    /// The CA's private key (PKCS#8).
    pub ca_key_pem: String,
    /// Server certificate followed by the CA certificate.
    pub server_chain_pem: String,
    /// The server's private key (PKCS#8).
    pub server_key_pem: String,
}

impl std::fmt::Debug for ThrowawayCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThrowawayCa").field("ca_cert_pem", &self.ca_cert_pem).finish_non_exhaustive()
    }
}

/// Makes a new CA (ECDSA P-256, `CN = <ca_name>`) and a server certificate signed by it for
/// `hosts` (IP addresses become IP subject alternative names, the rest DNS names).
pub fn throwaway_ca(ca_name: &str, hosts: &[String]) -> Result<ThrowawayCa, TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        KeyUsagePurpose,
    };
    let g = |e: rcgen::Error| TlsError::Generate(e.to_string());
    if hosts.is_empty() {
        return Err(TlsError::Generate("name at least one --host for the server certificate".into()));
    }
    let ca_key = KeyPair::generate().map_err(g)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(g)?;
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(g)?;
    let issuer = Issuer::new(ca, &ca_key);

    let server_key = KeyPair::generate().map_err(g)?;
    let mut server = CertificateParams::new(hosts.to_vec()).map_err(g)?;
    server.distinguished_name.push(DnType::CommonName, hosts[0].as_str());
    server.is_ca = IsCa::ExplicitNoCa;
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &issuer).map_err(g)?;
    Ok(ThrowawayCa {
        ca_cert_pem: ca_cert.pem(),
        ca_key_pem: ca_key.serialize_pem(),
        server_chain_pem: format!("{}{}", server_cert.pem(), ca_cert.pem()),
        server_key_pem: server_key.serialize_pem(),
    })
}

/// `van-hq tls-init`: writes a throwaway CA and a server certificate into `dir` (created 0700 if
/// missing; keys 0600, certificates 0644). Refuses to overwrite any of the files.
pub fn init(dir: &Path, hosts: &[String]) -> Result<TlsFiles, TlsError> {
    let files = TlsFiles::in_dir(dir);
    for p in [&files.ca_cert, &files.ca_key, &files.server_cert, &files.server_key] {
        if p.exists() {
            return Err(TlsError::Exists { path: p.clone() });
        }
    }
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(|source| TlsError::Write { path: dir.to_owned(), source })?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|source| TlsError::Write { path: dir.to_owned(), source })?;
    }
    let ca = throwaway_ca("van-hq throwaway CA", hosts)?;
    write_new(&files.ca_key, ca.ca_key_pem.as_bytes(), 0o600)?;
    write_new(&files.server_key, ca.server_key_pem.as_bytes(), 0o600)?;
    write_new(&files.ca_cert, ca.ca_cert_pem.as_bytes(), 0o644)?;
    write_new(&files.server_cert, ca.server_chain_pem.as_bytes(), 0o644)?;
    Ok(files)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let werr = |source| TlsError::Write { path: path.to_owned(), source };
    let mut f = match OpenOptions::new().write(true).create_new(true).mode(mode).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(TlsError::Exists { path: path.to_owned() });
        }
        Err(e) => return Err(werr(e)),
    };
    f.set_permissions(fs::Permissions::from_mode(mode)).map_err(werr)?;
    f.write_all(bytes).map_err(werr)?;
    f.sync_all().map_err(werr)
}

/// The ring crypto provider every TLS configuration of this crate uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate of a PEM file.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = fs::read(path).map_err(|source| TlsError::Read { path: path.to_owned(), source })?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes).filter_map(Result::ok).collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_owned() });
    }
    Ok(certs)
}

/// The server configuration from a PEM certificate chain and its private key (which must not be
/// readable by group or others).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = read_certs(cert)?;
    let meta = fs::metadata(key).map_err(|source| TlsError::Read { path: key.to_owned(), source })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TlsError::KeyPermissions { path: key.to_owned(), mode });
    }
    let key_pem = zeroize::Zeroizing::new(
        fs::read(key).map_err(|source| TlsError::Read { path: key.to_owned(), source })?,
    );
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| TlsError::BadKey { path: key.to_owned(), detail: e.to_string() })?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Connections that finished their TLS handshake, for `axum::serve`.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl TlsListener {
    /// Accepts on `tcp`, handshaking each connection in its own task.
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, ready) = mpsc::channel(64);
        let accept_task = tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(s) => s,
                    Err(_) => {
                        // Out of descriptors and the like: wait, then go on accepting.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        Ok(TlsListener { local, ready, accept_task })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept task never ends on its own; if it is gone, nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Serves protocol v1 over TLS on `tcp` until `shutdown` resolves.
pub async fn serve_tls<S: Store>(
    tcp: TcpListener,
    config: Arc<ServerConfig>,
    hq: Arc<Hq<S>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = TlsListener::new(tcp, config)?;
    axum::serve(listener, router(hq)).with_graceful_shutdown(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_private_keys_0600_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("tls");
        let files = init(&d, &["127.0.0.1".into(), "localhost".into()]).unwrap();
        for (p, mode) in [
            (&files.ca_key, 0o600),
            (&files.server_key, 0o600),
            (&files.ca_cert, 0o644),
            (&files.server_cert, 0o644),
        ] {
            assert_eq!(fs::metadata(p).unwrap().permissions().mode() & 0o777, mode, "{}", p.display());
        }
        assert_eq!(fs::metadata(&d).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(read_certs(&files.server_cert).unwrap().len(), 2);
        server_config(&files.server_cert, &files.server_key).unwrap();
        assert!(matches!(init(&d, &["localhost".into()]), Err(TlsError::Exists { .. })));
        fs::set_permissions(&files.server_key, fs::Permissions::from_mode(0o644)).unwrap();
        let e = server_config(&files.server_cert, &files.server_key).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        assert!(matches!(read_certs(&files.server_key), Err(TlsError::NoCertificate { .. })));
    }
}
