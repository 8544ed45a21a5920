//! Sync with HQ, the van's side (docs/sync.md): the wire protocol ([`wire`]: request
//! signatures, zstd batches of export lines, HQ's signed acknowledgements and error answers)
//! and the uplink as a pure state machine ([`machine`]). The task in `vand` that drives it over
//! HTTP is a thin shell on top.

pub mod downlink;
pub mod http;
pub mod machine;
pub mod shell;
pub mod training;
pub mod wire;

pub use machine::{Event, JournalView, Request, RequestKind, Response, Uplink, UplinkConfig, UplinkError};
pub use shell::{SessionHook, ShellConfig, UplinkHandle, UplinkTask};
pub use wire::{Ack, AuthHeaders, Batch, HqError, HqErrorCode, VerifiedAck};

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

use crate::config::{Config, SyncConfig};

use crate::journal::{JournalError, JournalReader, Record};
use crate::keys::DomainSigner;

/// Signs `req` for sending now: a fresh nonce of 16 random bytes from the operating system, the
/// van's current key, the request time `utc_us`. The shell calls this for every try, so a retry
/// is a new request that HQ's replay check accepts.
pub fn authenticate(
    req: &Request,
    signer: &(impl DomainSigner + ?Sized),
    van: &str,
    utc_us: i64,
) -> Result<AuthHeaders, wire::WireError> {
    sign_request_at(signer, van, req.method, req.path, &req.body, utc_us)
}

/// Signs a request to `path` (without its query) with a fresh random nonce at `utc_us`.
pub fn sign_request_at(
    signer: &(impl DomainSigner + ?Sized),
    van: &str,
    method: &str,
    path: &str,
    body: &[u8],
    utc_us: i64,
) -> Result<AuthHeaders, wire::WireError> {
    let mut nonce = [0u8; wire::NONCE_LEN];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    wire::sign_request(signer, van, method, path, utc_us, &nonce, body)
}

/// [`sign_request_at`] the current wall-clock time.
pub fn sign_request_now(
    signer: &(impl DomainSigner + ?Sized),
    van: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<AuthHeaders, wire::WireError> {
    sign_request_at(signer, van, method, path, body, crate::clock::now_utc_us())
}

/// The shell's tunables from `[sync]`.
pub fn shell_config(s: &SyncConfig) -> ShellConfig {
    ShellConfig {
        uplink: UplinkConfig {
            max_records: s.max_records,
            max_bytes: s.max_bytes,
            request_timeout: Duration::from_secs(s.request_timeout_s),
            backoff_base: Duration::from_secs(s.backoff_base_s),
            backoff_max: Duration::from_secs(s.backoff_max_s),
            checkpoint_every: Duration::from_secs(s.checkpoint_every_s),
        },
        poll_interval: Duration::from_millis(s.poll_interval_ms),
    }
}

/// The uplink as vand starts it: the task to run, its handle, and the training HQ if any.
pub struct Started {
    /// Run it under the daemon's supervisor.
    pub task: UplinkTask,
    /// Status and `sync now`.
    pub handle: UplinkHandle,
    /// The local HQ of the training van (`[sync.training_hq]`).
    pub training: Option<training::TrainingHq>,
    /// The same signed HTTPS client, for the down-sync and live dossier lookups.
    pub client: http::HqClient,
    /// HQ's pinned public key.
    pub hq_key: ed25519_dalek::VerifyingKey,
}

/// Builds the uplink from `[sync]` (`None` when disabled); in simulation with
/// `[sync.training_hq]`, first starts the local HQ and pins its key and CA.
pub async fn start(config: &Config, journal: &crate::journal::Journal) -> anyhow::Result<Option<Started>> {
    let s = &config.sync;
    if !s.enabled {
        return Ok(None);
    }
    let (url, hq_key, ca_file, training) = match &s.training_hq {
        #[cfg(not(feature = "training-hq"))]
        Some(_) => return Err(no_training_hq(&config.source)),
        #[cfg(feature = "training-hq")]
        Some(t) => {
            let hq = training::TrainingHq::start(t, &config.van.id, &config.paths.journal_path()).await?;
            tracing::info!(
                "training HQ on {} (database {}); see what arrived: `cargo run -p van-hq -- vans --db {}`",
                hq.url,
                hq.db.display(),
                hq.db.display()
            );
            (hq.url.clone(), hq.hq_key, hq.ca_file.clone(), Some(hq))
        }
        None => {
            let bytes =
                wire::lower_hex::<32>(&s.hq_public_key).context("sync.hq_public_key: not 64 hex digits")?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                .map_err(|e| anyhow::anyhow!("sync.hq_public_key: not an Ed25519 public key: {e}"))?;
            (s.url.clone(), key, s.ca_file.clone(), None)
        }
    };
    let endpoint = http::Endpoint::with_ca_file(&url, &ca_file, Duration::from_secs(s.request_timeout_s))?;
    let signer: http::Signer = Arc::new(journal.clone());
    let client = http::HqClient::new(&endpoint, &ca_file.display().to_string(), &config.van.id, signer)?;
    let reader = JournalReader::open(&config.paths.journal_path())?;
    let (task, handle) = UplinkTask::new(
        shell_config(s),
        &config.van.id,
        hq_key,
        client.clone(),
        reader,
        Some(&config.paths.state_dir),
    );
    Ok(Some(Started { task, handle, training, client, hq_key }))
}

/// The error of a build without the `training-hq` feature (the van's package) given a config with
/// `[sync.training_hq]`: names the file and the key, says why and what to do.
pub fn no_training_hq(source: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{source}: sync.training_hq: this build of vand has no training HQ (built without the \
         `training-hq` feature, as the van's package is); remove [sync.training_hq] and set sync.url, \
         sync.hq_public_key and sync.ca_file to the real HQ, or run the training van from a default \
         build (`cargo run --bin vand`)"
    )
}

/// `vanctl sync status|now` on the control socket.
pub struct SyncControl {
    handle: Option<UplinkHandle>,
    /// Why the uplink is not running (disabled, or its start failed).
    why_not: String,
}

impl SyncControl {
    /// Commands for a running uplink, or answers saying why there is none.
    pub fn new(handle: Option<UplinkHandle>, why_not: impl Into<String>) -> SyncControl {
        SyncControl { handle, why_not: why_not.into() }
    }
}

impl SyncControl {
    /// `vanctl sync status --json`'s answer: the running uplink's status, or why there is none.
    pub async fn status(&self) -> Value {
        match &self.handle {
            Some(h) => h.status().await,
            None => json!({"enabled": false, "why": self.why_not}),
        }
    }
}

/// The officers' API shows the same status (`GET /api/v1/sync`).
impl crate::office::front::SyncStatus for SyncControl {
    fn status(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = Value> + Send + '_>> {
        Box::pin(SyncControl::status(self))
    }
}

impl crate::control::ControlExtra for SyncControl {
    fn commands(&self) -> &[&'static str] {
        &["sync_status", "sync_now"]
    }

    fn handle(&self, request: Value) -> crate::control::ExtraFuture<'_> {
        Box::pin(async move {
            let Some(h) = &self.handle else {
                return Ok(json!({"sync": {"enabled": false, "why": self.why_not}}));
            };
            match request.get("cmd").and_then(Value::as_str) {
                Some("sync_now") => {
                    let wait = request.get("wait_s").and_then(Value::as_u64).unwrap_or(30).min(600);
                    Ok(json!({"sync": h.sync_now_and_wait(Duration::from_secs(wait)).await}))
                }
                _ => Ok(json!({"sync": h.status().await})),
            }
        })
    }
}

/// The journal's own reader serves the uplink (one short read per call).
impl JournalView for JournalReader {
    fn head(&self) -> Result<(u64, [u8; 32]), String> {
        match self.tail() {
            Ok(Some(r)) => Ok((r.seq, r.hash)),
            Ok(None) => Ok((0, [0; 32])),
            Err(e) => Err(e.to_string()),
        }
    }

    fn hash_at(&self, seq: u64) -> Result<Option<[u8; 32]>, String> {
        if seq == 0 {
            return Ok(None);
        }
        match self.get(seq) {
            Ok(r) => Ok(Some(r.hash)),
            Err(JournalError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    fn read(&self, from: u64, max: usize) -> Result<Vec<Record>, String> {
        let mut out = Vec::new();
        let to = from.saturating_add(max as u64).saturating_sub(1);
        self.for_each(from, to, |r| {
            out.push(r);
            Ok(out.len() < max)
        })
        .map_err(|e| e.to_string())?;
        Ok(out)
    }
}

/// A chain of `n` well-formed signed records of one van for tests (shared with HQ's tests).
#[cfg(test)]
pub(crate) fn test_chain(van: &str, n: u64, payload_len: usize) -> Vec<Record> {
    mtu_sync::testing::chain(van, n, payload_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_try_gets_a_fresh_nonce_and_verifies() {
        let key = crate::keys::VanKey::from_seed(&[5u8; 32]);
        let req = Request {
            id: 1,
            kind: RequestKind::FetchAck,
            method: "GET",
            path: wire::PATH_ACK,
            content_type: None,
            content_encoding: None,
            body: Vec::new(),
        };
        let a = authenticate(&req, &key, "MTU-1", 1_764_588_180_000_000).unwrap();
        let b = authenticate(&req, &key, "MTU-1", 1_764_588_180_000_000).unwrap();
        assert_ne!(a.nonce, b.nonce);
        assert_eq!(a.nonce.len(), 32);
        for h in [&a, &b] {
            assert!(wire::verify_request(&key.verifying_key(), "GET", wire::PATH_ACK, h, b""));
        }
    }

    #[test]
    fn a_build_without_training_hq_names_the_file_the_key_and_why() {
        let e = no_training_hq("/etc/mtu/vand.toml").to_string();
        assert!(e.starts_with("/etc/mtu/vand.toml: sync.training_hq: "), "{e}");
        assert!(e.contains("this build of vand has no training HQ"), "{e}");
        assert!(e.contains("`training-hq` feature"), "{e}");
    }
}
