//! The van's HTTPS client to HQ: reqwest over rustls with the ring provider, trusting only HQ's
//! CA certificate from the configuration (no system roots), HTTP/1.1, bounded timeouts. Every
//! request is signed with the journal writer's key ([`super::authenticate`]: fresh nonce, current
//! time), so a retry is a new request that HQ's replay check accepts.
//!
//! The uplink sends the machine's [`Request`]s with [`HqClient::send`]; other code (the down-sync)
//! uses [`HqClient::get_signed`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::machine::{Request, Response};
use crate::keys::DomainSigner;

/// Largest answer read from HQ (acknowledgements are a few hundred bytes; down-sync bundles and
/// dossiers are bounded by HQ well below this).
pub const MAX_ANSWER: usize = 8 * 1024 * 1024;

/// Why the client cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("sync.ca_file {path}: cannot read: {source}")]
    ReadCa {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("sync.ca_file {path}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)")]
    NoCa { path: String },
    #[error("sync.ca_file {path}: {detail}")]
    BadCa { path: String, detail: String },
    #[error("sync.url {url:?}: {detail}")]
    BadUrl { url: String, detail: String },
    #[error("HTTP client: {0}")]
    Build(String),
}

/// Where HQ is and how to reach it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Base URL, e.g. `https://hq.example:8443` (no path; `http://` only for tests on loopback).
    pub url: String,
    /// PEM of the CA certificate(s) HQ's server certificate must chain to.
    pub ca_pem: Vec<u8>,
    /// Whole-request timeout (connect, send, answer).
    pub timeout: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
}

impl Endpoint {
    /// An endpoint with the CA read from `ca_file`.
    pub fn with_ca_file(url: &str, ca_file: &Path, timeout: Duration) -> Result<Endpoint, ClientError> {
        let ca_pem = std::fs::read(ca_file)
            .map_err(|source| ClientError::ReadCa { path: ca_file.display().to_string(), source })?;
        Ok(Endpoint {
            url: url.to_owned(),
            ca_pem,
            timeout,
            connect_timeout: timeout.min(Duration::from_secs(15)),
        })
    }
}

/// The signing side the client needs: the journal writer (or a van key in tests).
pub type Signer = Arc<dyn DomainSigner + Send + Sync>;

/// A signed-request client for one van and one HQ.
#[derive(Clone)]
pub struct HqClient {
    http: reqwest::Client,
    base: String,
    van: String,
    signer: Signer,
}

impl std::fmt::Debug for HqClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HqClient").field("base", &self.base).field("van", &self.van).finish_non_exhaustive()
    }
}

/// The rustls client configuration: ring provider, HQ's CA as the only trust anchor.
fn tls_config(ca_pem: &[u8], shown: &str) -> Result<rustls::ClientConfig, ClientError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let mut n = 0;
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| ClientError::BadCa { path: shown.to_owned(), detail: e.to_string() })?;
        roots.add(cert).map_err(|e| ClientError::BadCa { path: shown.to_owned(), detail: e.to_string() })?;
        n += 1;
    }
    if n == 0 {
        return Err(ClientError::NoCa { path: shown.to_owned() });
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Build(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

impl HqClient {
    /// A client for `van` signing with `signer`. `ca_shown` names the CA's source in errors.
    pub fn new(
        endpoint: &Endpoint,
        ca_shown: &str,
        van: &str,
        signer: Signer,
    ) -> Result<HqClient, ClientError> {
        let base = endpoint.url.trim_end_matches('/').to_owned();
        let bad = |detail: &str| ClientError::BadUrl { url: endpoint.url.clone(), detail: detail.into() };
        let rest = if let Some(r) = base.strip_prefix("https://") {
            r
        } else if let Some(r) = base.strip_prefix("http://") {
            r
        } else {
            return Err(bad("must start with https://"));
        };
        if rest.is_empty() || rest.contains('/') || rest.contains('?') {
            return Err(bad("must be scheme://host[:port] with no path"));
        }
        let builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config(&endpoint.ca_pem, ca_shown)?)
            .timeout(endpoint.timeout)
            .connect_timeout(endpoint.connect_timeout)
            .http1_only()
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("mtu-vand/", env!("CARGO_PKG_VERSION")));
        let http = builder.build().map_err(|e| ClientError::Build(e.to_string()))?;
        Ok(HqClient { http, base, van: van.to_owned(), signer })
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Signs and sends one of the uplink's requests; a transport failure (refused, reset, TLS
    /// refused, body cut short, timeout) is the error text. HQ's HTTP status and body are returned
    /// as they came, whatever they are: the machine judges them.
    pub async fn send(&self, req: &Request) -> Result<Response, String> {
        let (status, body) = self
            .exchange(req.method, req.path, req.path, req.content_type, req.content_encoding, &req.body)
            .await?;
        Ok(Response { status, body })
    }

    /// A signed `GET` of `path_and_query` (e.g. `/v1/bundles?after=3`): HQ's status and body. The
    /// request signature covers the path without the query, as HQ checks it (docs/sync.md).
    pub async fn get_signed(&self, path_and_query: &str) -> Result<(u16, Vec<u8>), String> {
        if !path_and_query.starts_with('/') {
            return Err(format!("path {path_and_query:?} must start with /"));
        }
        let path = path_and_query.split('?').next().unwrap_or(path_and_query);
        self.exchange("GET", path, path_and_query, None, None, &[]).await
    }

    async fn exchange(
        &self,
        method: &'static str,
        signed_path: &str,
        path_and_query: &str,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
        body: &[u8],
    ) -> Result<(u16, Vec<u8>), String> {
        let (signer, van, signed_path_owned, body_owned) =
            (self.signer.clone(), self.van.clone(), signed_path.to_owned(), body.to_vec());
        // Signing takes the journal writer's lock (it may be committing): off the async threads.
        let auth = tokio::task::spawn_blocking(move || {
            super::sign_request_now(&*signer, &van, method, &signed_path_owned, &body_owned)
        })
        .await
        .map_err(|e| format!("signing the request: {e}"))?
        .map_err(|e| format!("signing the request: {e}"))?;
        let url = format!("{}{}", self.base, path_and_query);
        let m = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut rb = self.http.request(m, &url);
        for (name, value) in auth.pairs() {
            rb = rb.header(name, value);
        }
        if let Some(ct) = content_type {
            rb = rb.header(reqwest::header::CONTENT_TYPE, ct);
        }
        if let Some(ce) = content_encoding {
            rb = rb.header(reqwest::header::CONTENT_ENCODING, ce);
        }
        if !body.is_empty() {
            rb = rb.body(body.to_vec());
        }
        let mut resp = rb.send().await.map_err(transport_error)?;
        let status = resp.status().as_u16();
        let mut out = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport_error)? {
            if out.len() + chunk.len() > MAX_ANSWER {
                return Err(format!("HQ's answer is larger than {MAX_ANSWER} bytes"));
            }
            out.extend_from_slice(&chunk);
        }
        Ok((status, out))
    }
}

/// A transport error as logged and shown: without the URL, whose query may hold a citizen's
/// national ID (the down-sync's dossier lookup), and with its causes.
fn transport_error(e: reqwest::Error) -> String {
    describe(&e.without_url())
}

/// A transport error with its causes (reqwest's top-level text alone says little).
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn transport_errors_do_not_carry_the_query() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}/v1/dossier?national_id=29001011234567");
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        let client = reqwest::Client::builder().tls_backend_preconfigured(tls).build().unwrap();
        let e = rt.block_on(client.get(&url).send()).expect_err("nothing listens");
        assert!(super::describe(&e).contains("29001011234567"), "reqwest's own text names the URL");
        let text = super::transport_error(e);
        assert!(!text.contains("29001011234567") && !text.contains("national_id"), "{text}");
    }
}
