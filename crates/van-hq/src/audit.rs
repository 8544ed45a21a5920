//! `van-hq vans` (what HQ holds per van, and how stale it is) and `van-hq verify` (re-verify
//! everything stored for a van from its genesis record).

use mtu_journal::ChainVerifier;
use mtu_journal::export::parse_line;
use serde::Serialize;

use crate::protocol::format_time_us;
use crate::store::{Store, StoreError};

/// One van in the `vans` report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VanSummary {
    /// The van.
    pub van: String,
    /// Last verified, stored, contiguous seq.
    pub last_seq: u64,
    /// Its hash.
    pub head_hash: String,
    /// Id of the key that signs the van's next record.
    pub current_key_id: String,
    /// When HQ last acknowledged (RFC 3339), if ever.
    pub last_ack: Option<String>,
    /// When HQ last received a checkpoint, if ever.
    pub last_checkpoint: Option<String>,
    /// The seq that checkpoint named.
    pub last_checkpoint_seq: Option<u64>,
    /// Seconds since the last checkpoint (none: never checked in).
    pub staleness_s: Option<i64>,
    /// Alarms recorded for the van.
    pub alarms: usize,
    /// Kind of the latest alarm.
    pub last_alarm: Option<String>,
}

/// The report of every van, as of `now_us`.
pub fn vans<S: Store>(store: &S, now_us: i64) -> Result<Vec<VanSummary>, StoreError> {
    store
        .vans()?
        .into_iter()
        .map(|row| {
            let alarms = store.alarms(&row.van_id)?;
            Ok(VanSummary {
                last_seq: row.chain.seq,
                head_hash: hex::encode(row.chain.hash),
                current_key_id: hex::encode(mtu_journal::key_id_of(&row.current_key)),
                last_ack: row.last_ack_at.map(format_time_us),
                last_checkpoint: row.last_checkpoint_at.map(format_time_us),
                last_checkpoint_seq: row.last_checkpoint_seq,
                staleness_s: row.last_checkpoint_at.map(|t| (now_us - t) / 1_000_000),
                alarms: alarms.len(),
                last_alarm: alarms.last().map(|a| a.kind.clone()),
                van: row.van_id,
            })
        })
        .collect()
}

/// Why a van's stored records do not verify.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("van {0:?} is not enrolled")]
    UnknownVan(String),
    #[error("van {van}: stored record {seq}: {why}")]
    Bad { van: String, seq: u64, why: String },
    #[error(
        "van {van}: HQ's head says seq {head_seq} hash {head_hash}, the stored records end at {seq} hash {hash}"
    )]
    HeadMismatch { van: String, head_seq: u64, head_hash: String, seq: u64, hash: String },
}

/// Re-verifies every stored record of `van` from genesis (strict signatures, links, the gapless
/// sequence, rules, rotations; the genesis key must be the enrolled one), and that HQ's head
/// matches the last record. Constant memory (pages of `page` records). Returns the count.
pub fn verify_van<S: Store>(store: &S, van: &str, page: usize) -> Result<u64, AuditError> {
    let row = store
        .vans()?
        .into_iter()
        .find(|r| r.van_id == van)
        .ok_or_else(|| AuditError::UnknownVan(van.to_owned()))?;
    let mut verifier = ChainVerifier::from_genesis(Some(row.genesis_key));
    let mut next = 1u64;
    let bad = |seq: u64, why: String| AuditError::Bad { van: van.to_owned(), seq, why };
    loop {
        let rows = store.records(van, next, page.max(1))?;
        if rows.is_empty() {
            break;
        }
        for (seq, hash, line) in rows {
            let rec = parse_line(&line, seq as usize).map_err(|e| bad(seq, e.to_string()))?;
            if rec.seq != seq || rec.hash != hash {
                return Err(bad(seq, "the stored line disagrees with its seq or hash column".into()));
            }
            verifier.check(&rec).map_err(|e| bad(e.seq(), e.to_string()))?;
            next = seq + 1;
        }
    }
    let state = verifier.state();
    if state.seq != row.chain.seq || state.hash != row.chain.hash {
        return Err(AuditError::HeadMismatch {
            van: van.to_owned(),
            head_seq: row.chain.seq,
            head_hash: hex::encode(row.chain.hash),
            seq: state.seq,
            hash: hex::encode(state.hash),
        });
    }
    Ok(state.seq)
}
