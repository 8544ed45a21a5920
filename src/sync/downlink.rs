//! Down-sync, the van's side (docs/sync.md, "Down-sync"): pulls the bundles HQ published for this
//! van after its cursor, checks HQ's signature on each (strictly, with HQ's pinned key), applies
//! them through the office (journaled `refdata.applied` with `source: "hq"` before office.db
//! changes), journals the ones it refuses (`refdata.refused`) and moves its cursor (kept in
//! office.db) past each bundle dealt with, so one bad bundle never blocks the next. Also the live
//! dossier lookup for walk-ups ([`HqDossiers`]).
//!
//! HTTP is behind [`Transport`]: the shell that owns the HTTPS client signs each request with the
//! van key (docs/sync.md, "Request authentication"; the signed path has no query string).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use ed25519_dalek::VerifyingKey;
use mtu_sync::bundle::{
    DossierQuery, EnvelopeError, PATH_BUNDLES, PATH_DOSSIER, verify_bundles, verify_dossier,
};

use crate::office::front::{HqBundleOutcome, LiveDossiers, LiveFuture, Office};
use crate::office::model::Dossier;

/// What a signed GET answers: the HTTP status and the body.
pub type TransportFuture<'a> = Pin<Box<dyn Future<Output = Result<(u16, Vec<u8>), String>> + Send + 'a>>;

/// Sends an authenticated `GET` to HQ (headers of docs/sync.md over the path without its query,
/// empty body) and returns the status and body; `Err` for a network failure or timeout.
pub trait Transport: Send + Sync {
    /// `GET path_and_query` (e.g. `/v1/bundles?after=3`).
    fn get_signed<'a>(&'a self, path_and_query: &'a str) -> TransportFuture<'a>;
}

/// Why a pull stopped. Bundles dealt with before it stay dealt with (cursor saved).
#[derive(Debug, thiserror::Error)]
pub enum DownlinkError {
    #[error("HQ cannot be reached: {0}")]
    Transport(String),
    #[error("HQ answered {status}: {detail}")]
    Refused { status: u16, detail: String },
    #[error("HQ's answer is refused, nothing of it used: {0}")]
    Envelope(#[from] EnvelopeError),
    #[error("office: {0}")]
    Office(String),
}

/// What one pull did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PullReport {
    /// HQ ids applied.
    pub applied: Vec<u64>,
    /// HQ ids already applied before (a pull repeated after a crash).
    pub already: Vec<u64>,
    /// HQ ids refused, with the code journaled.
    pub refused: Vec<(u64, String)>,
    /// The cursor after the pull.
    pub cursor: u64,
}

/// The van's down-sync: HQ's pinned key, this van's id, the transport.
#[derive(Clone)]
pub struct Downlink {
    transport: Arc<dyn Transport>,
    hq_key: VerifyingKey,
    van: String,
}

fn refused(status: u16, body: &[u8]) -> DownlinkError {
    let detail = match mtu_sync::parse_error(body) {
        Ok(e) => format!("{:?}: {}", e.code, e.message),
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    };
    DownlinkError::Refused { status, detail }
}

impl Downlink {
    /// A downlink for van `van` trusting `hq_key`.
    pub fn new(transport: Arc<dyn Transport>, hq_key: VerifyingKey, van: impl Into<String>) -> Downlink {
        Downlink { transport, hq_key, van: van.into() }
    }

    /// Pulls and deals with every bundle HQ has after the cursor, page by page.
    pub async fn pull(&self, office: &Office) -> Result<PullReport, DownlinkError> {
        let office_err = |e: &dyn std::fmt::Display| DownlinkError::Office(e.to_string());
        let mut report = PullReport::default();
        loop {
            let after = office.refdata().down_cursor().map_err(|e| office_err(&e))?;
            report.cursor = after;
            let (status, body) = self
                .transport
                .get_signed(&format!("{PATH_BUNDLES}?after={after}"))
                .await
                .map_err(DownlinkError::Transport)?;
            if status != 200 {
                return Err(refused(status, &body));
            }
            let page = verify_bundles(&body, &self.hq_key, &self.van, after)?;
            for b in &page.bundles {
                match office.apply_hq_bundle(b.id, &b.kind, b.version, &b.bytes).await {
                    Ok(HqBundleOutcome::Applied(_)) => report.applied.push(b.id),
                    Ok(HqBundleOutcome::AlreadyApplied) => report.already.push(b.id),
                    Ok(HqBundleOutcome::Refused(code)) => {
                        tracing::warn!(hq_id = b.id, kind = %b.kind, version = b.version, %code, "HQ bundle refused");
                        report.refused.push((b.id, code));
                    }
                    Err(e) => return Err(office_err(&e)),
                }
                office.refdata().set_down_cursor(b.id).map_err(|e| office_err(&e))?;
                report.cursor = b.id;
            }
            if !page.more || page.bundles.is_empty() {
                return Ok(report);
            }
        }
    }

    /// The live dossier lookup over this downlink (install with `Office::set_live_dossiers`).
    pub fn dossiers(&self) -> HqDossiers {
        HqDossiers { link: self.clone(), clock: Arc::new(|| jiff::Timestamp::now().as_microsecond()) }
    }
}

/// Live dossier lookups at HQ: the answer must carry HQ's signature over this van, the exact query
/// sent and a time within 300 s of the van's clock.
#[derive(Clone)]
pub struct HqDossiers {
    link: Downlink,
    clock: Arc<dyn Fn() -> i64 + Send + Sync>,
}

impl HqDossiers {
    /// The same lookups with another clock (UTC µs), for tests.
    pub fn with_clock(mut self, clock: Arc<dyn Fn() -> i64 + Send + Sync>) -> HqDossiers {
        self.clock = clock;
        self
    }

    /// Asks HQ; `Ok(None)` when HQ answers 404 `sync.no_dossier`.
    pub async fn fetch(
        &self,
        national_id: &str,
        plate: Option<(&str, &str)>,
    ) -> Result<Option<Dossier>, String> {
        let q = DossierQuery {
            national_id: national_id.to_owned(),
            plate: plate.map(|(l, d)| (l.to_owned(), d.to_owned())),
        }
        .to_query();
        let (status, body) = self.link.transport.get_signed(&format!("{PATH_DOSSIER}?{q}")).await?;
        if status == 404
            && mtu_sync::parse_error(&body)
                .is_ok_and(|e| e.code == mtu_sync::HqErrorCode::Other("sync.no_dossier".into()))
        {
            return Ok(None);
        }
        if status != 200 {
            return Err(refused(status, &body).to_string());
        }
        let bytes = verify_dossier(&body, &self.link.hq_key, &self.link.van, &q, (self.clock)())
            .map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map(Some).map_err(|e| format!("HQ's dossier is not a dossier: {e}"))
    }
}

impl LiveDossiers for HqDossiers {
    fn lookup<'a>(&'a self, national_id: &'a str, plate: Option<(&'a str, &'a str)>) -> LiveFuture<'a> {
        Box::pin(self.fetch(national_id, plate))
    }
}

/// The uplink's signed HTTPS client carries the down-sync too (same pinned CA, same van key).
impl Transport for super::http::HqClient {
    fn get_signed<'a>(&'a self, path_and_query: &'a str) -> TransportFuture<'a> {
        Box::pin(super::http::HqClient::get_signed(self, path_and_query))
    }
}

/// What vand runs after each uplink session that ended with everything acknowledged: the
/// down-sync of HQ's bundles into the office. A failure is logged and retried after the next
/// session; bundles dealt with before it stay dealt with.
pub fn session_hook(link: Downlink, office: Arc<Office>) -> super::shell::SessionHook {
    Arc::new(move || {
        let (link, office) = (link.clone(), office.clone());
        Box::pin(async move {
            match link.pull(&office).await {
                Ok(r) if r.applied.is_empty() && r.refused.is_empty() => {}
                Ok(r) => tracing::info!(
                    applied = r.applied.len(),
                    refused = r.refused.len(),
                    cursor = r.cursor,
                    "down-sync from HQ"
                ),
                Err(e) => tracing::warn!("down-sync from HQ: {e}"),
            }
        })
    })
}
