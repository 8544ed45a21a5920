//! `van-hq tls-init` and `van-hq serve --tls-cert --tls-key`: the throwaway CA's files and modes,
//! a TLS client trusting only that CA reaches the receiver, one trusting another CA is refused.

use std::io::BufRead;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn van_hq(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_van-hq")).args(args).output().unwrap()
}

/// `GET /v1/ack` over TLS trusting only `ca`; the whole answer, or the TLS error.
async fn get_ack(addr: std::net::SocketAddr, ca: &Path) -> Result<String, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in van_hq::tls::read_certs(ca).unwrap() {
        roots.add(c).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(van_hq::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.map_err(|e| e.to_string())?;
    tls.write_all(b"GET /v1/ack HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await.map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn tls_init_then_serve_over_tls_with_only_that_ca_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    let t = tls.to_str().unwrap();
    let out = van_hq(&["tls-init", "--dir", t, "--host", "127.0.0.1", "--host", "localhost"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (f, mode) in [("ca.key", 0o600), ("server.key", 0o600), ("ca.pem", 0o644), ("server.pem", 0o644)] {
        assert_eq!(std::fs::metadata(tls.join(f)).unwrap().mode() & 0o777, mode, "{f}");
    }
    let again = van_hq(&["tls-init", "--dir", t, "--host", "localhost"]);
    assert!(
        !again.status.success() && String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite")
    );
    let other = dir.path().join("other");
    assert!(van_hq(&["tls-init", "--dir", other.to_str().unwrap(), "--host", "localhost"]).status.success());

    let key = dir.path().join("hq.key");
    let db = dir.path().join("hq.db");
    assert!(van_hq(&["keygen", "--key", key.to_str().unwrap()]).status.success());
    let cert = tls.join("server.pem");
    let half = van_hq(&[
        "serve",
        "--db",
        db.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
    ]);
    assert!(!half.status.success(), "--tls-cert needs --tls-key");
    let mut child = Command::new(env!("CARGO_BIN_EXE_van-hq"))
        .args([
            "serve",
            "--db",
            db.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--tls-cert", cert.to_str().unwrap(), "--tls-key", tls.join("server.key").to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stderr.take().unwrap()).read_line(&mut line).unwrap();
    let addr: std::net::SocketAddr = match line.trim().rsplit("https://").next().unwrap().parse() {
        Ok(a) => a,
        Err(_) => {
            let _ = child.kill();
            panic!("not serving HTTPS: {line}");
        }
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let good = rt.block_on(get_ack(addr, &tls.join("ca.pem")));
    let bad = rt.block_on(get_ack(addr, &other.join("ca.pem")));
    let _ = child.kill();
    let _ = child.wait();
    let good = good.unwrap();
    assert!(good.starts_with("HTTP/1.1 401"), "{good}");
    assert!(good.contains("sync.unknown_van") || good.contains("sync."), "{good}");
    let bad = bad.unwrap_err();
    assert!(bad.to_lowercase().contains("certificate"), "{bad}");
}
