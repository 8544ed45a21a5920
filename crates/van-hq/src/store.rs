//! What HQ keeps per van, behind a trait so the ingest logic runs on any database.
//!
//! Per van: its genesis and current keys, the last verified seq, head hash and verifier state (so
//! an upload after a key rotation verifies without re-reading history), the records as received,
//! alarms, recent request nonces, and when it last got an acknowledgement and a checkpoint.
//! Per-van ordering is the database's job: [`Store::in_van_tx`] runs with the van's row locked.

use ed25519_dalek::VerifyingKey;
use mtu_journal::{ChainState, Record};
use serde::{Deserialize, Serialize};

/// A storage failure (HQ answers 500 and stores nothing).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(String),
    #[error("van {van}: stored state is damaged: {what}")]
    Damaged { van: String, what: String },
    #[error("van {0:?} is already enrolled")]
    AlreadyEnrolled(String),
    #[error("van {0:?} is not enrolled")]
    UnknownVan(String),
    /// Different bytes under a key that is already stored (a bundle's target, kind and version).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The work of the transaction was refused and rolled back (ingest: a record failed
    /// verification after earlier ones of its batch went to the store).
    #[error("refused; the transaction was rolled back")]
    RolledBack,
}

/// One van's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VanRow {
    /// The van's id.
    pub van_id: String,
    /// The key enrolled (the genesis record must name it).
    pub genesis_key: VerifyingKey,
    /// The key that signs the van's next record and its requests.
    pub current_key: VerifyingKey,
    /// Verifier state after the last stored record (seq 0: nothing stored).
    pub chain: ChainState,
    /// When HQ last sent this van an acknowledgement (µs since the epoch).
    pub last_ack_at: Option<i64>,
    /// When HQ last received a checkpoint (µs since the epoch).
    pub last_checkpoint_at: Option<i64>,
    /// The seq that checkpoint named.
    pub last_checkpoint_seq: Option<u64>,
}

/// An alarm HQ recorded (a fork, a rollback).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    /// Row id.
    pub id: i64,
    /// The van.
    pub van_id: String,
    /// When (µs since the epoch).
    pub at: i64,
    /// `fork`, `rollback`, `rollback_or_fork`.
    pub kind: String,
    /// Facts (seq, hashes).
    pub details: serde_json::Value,
}

/// The operations of one transaction on one locked van.
pub trait VanTx {
    /// The van's row.
    fn van(&mut self) -> Result<VanRow, StoreError>;
    /// The export line stored at `seq`, if any.
    fn stored_line(&mut self, seq: u64) -> Result<Option<String>, StoreError>;
    /// Stores one verified record with its line as received.
    fn insert_record(&mut self, rec: &Record, line: &str) -> Result<(), StoreError>;
    /// Moves the van's head (last seq, head hash, verifier state, current key).
    fn set_head(&mut self, chain: &ChainState) -> Result<(), StoreError>;
    /// Notes when an acknowledgement was sent.
    fn set_last_ack(&mut self, at_us: i64) -> Result<(), StoreError>;
    /// Notes a checkpoint.
    fn set_checkpoint(&mut self, at_us: i64, seq: u64) -> Result<(), StoreError>;
    /// Records an alarm.
    fn add_alarm(&mut self, at_us: i64, kind: &str, details: &serde_json::Value) -> Result<(), StoreError>;
    /// Stores verified records (ascending, contiguous) with their lines as received. A store may
    /// override this to write them in fewer round trips.
    fn insert_records(&mut self, records: &[(Record, String)]) -> Result<(), StoreError> {
        for (rec, line) in records {
            self.insert_record(rec, line)?;
        }
        Ok(())
    }
}

/// A bundle HQ published for one van (`target` = van id) or every van (`target` = "*").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedBundle {
    /// The cursor: ascending in publication order.
    pub id: u64,
    /// Van id, or `*` for every van.
    pub target: String,
    /// `bookings`, `roster`, `schedule`, `blocklist`, …
    pub kind: String,
    /// The bundle's own version.
    pub version: u64,
    /// The bundle bytes as published.
    pub body: Vec<u8>,
    /// When (µs since the epoch).
    pub published_at: i64,
}

/// What [`Store::publish_bundle`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Stored under this id.
    Stored(u64),
    /// The same bytes were already stored under this id (a no-op).
    AlreadyStored(u64),
}

/// HQ's storage.
pub trait Store: Send + Sync + 'static {
    /// Enrolls a van with its genesis public key.
    fn enroll(&self, van: &str, key: &VerifyingKey, at_us: i64) -> Result<(), StoreError>;
    /// The van's current key, if enrolled (request authentication).
    fn current_key(&self, van: &str) -> Result<Option<VerifyingKey>, StoreError>;
    /// Remembers a request nonce; false if the van already used it since `forget_before_us`
    /// (nonces older than that are dropped).
    fn remember_nonce(
        &self,
        van: &str,
        nonce: &[u8; 16],
        at_us: i64,
        forget_before_us: i64,
    ) -> Result<bool, StoreError>;
    /// Runs `f` in one transaction with the van's row locked; commits if `f` returns `Ok`, rolls
    /// back otherwise. Fails with [`StoreError::UnknownVan`] for a van not enrolled.
    fn in_van_tx<R>(
        &self,
        van: &str,
        f: &mut dyn FnMut(&mut dyn VanTx) -> Result<R, StoreError>,
    ) -> Result<R, StoreError>;
    /// Every van's row, by id.
    fn vans(&self) -> Result<Vec<VanRow>, StoreError>;
    /// A van's alarms, oldest first.
    fn alarms(&self, van: &str) -> Result<Vec<Alarm>, StoreError>;
    /// Up to `limit` stored (seq, hash, line) of a van from `from_seq` on, ascending.
    fn records(
        &self,
        van: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, [u8; 32], String)>, StoreError>;

    /// Publishes a bundle for `target` (a van id or `*`). The same bytes under the same (target,
    /// kind, version) again: [`PublishOutcome::AlreadyStored`]; different bytes:
    /// [`StoreError::Conflict`].
    fn publish_bundle(
        &self,
        target: &str,
        kind: &str,
        version: u64,
        body: &[u8],
        at_us: i64,
    ) -> Result<PublishOutcome, StoreError>;
    /// Up to `limit` bundles for `van` (its own and those for every van) with id > `after_id`,
    /// ascending by id.
    fn bundles_after(
        &self,
        van: &str,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<PublishedBundle>, StoreError>;
    /// Stores (replacing) the dossier of a national id.
    fn put_dossier(&self, national_id: &str, dossier_json: &str, at_us: i64) -> Result<(), StoreError>;
    /// The dossier of a national id, if HQ holds one.
    fn dossier(&self, national_id: &str) -> Result<Option<String>, StoreError>;
}

/// The verifier state as stored (`vans.chain_state_json`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChainStateJson {
    van_id: String,
    seq: u64,
    hash: String,
    key: Option<String>,
}

/// Serialises a verifier state.
pub fn chain_state_to_json(state: &ChainState) -> String {
    serde_json::to_string(&ChainStateJson {
        van_id: state.van_id.clone(),
        seq: state.seq,
        hash: hex::encode(state.hash),
        key: state.key.map(|k| hex::encode(k.as_bytes())),
    })
    .unwrap_or_default()
}

/// Reads a verifier state back.
pub fn chain_state_from_json(text: &str) -> Result<ChainState, String> {
    let j: ChainStateJson = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let hash = crate::protocol::hex_array::<32>(&j.hash).map_err(|e| format!("hash: {e}"))?;
    let key = match j.key {
        Some(k) => Some(public_key_from_hex(&k)?),
        None => None,
    };
    Ok(ChainState { van_id: j.van_id, seq: j.seq, hash, key })
}

/// A journal public key from 64 hex digits, under the strict key rule.
pub fn public_key_from_hex(text: &str) -> Result<VerifyingKey, String> {
    let bytes = crate::protocol::hex_array::<32>(text).map_err(|e| format!("public key: {e}"))?;
    mtu_journal::keys::strict_public_key(&bytes).map_err(|e| format!("public key refused: {e}"))
}
