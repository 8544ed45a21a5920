//! Authentication, upload and checkpoint logic of HQ, as plain functions over a [`Store`]: the
//! HTTP layer only moves bytes and headers in and answers out.

use ed25519_dalek::SigningKey;
use mtu_journal::export::parse_line;
use mtu_journal::{ChainState, ChainVerifier, Record};
use serde_json::json;
use sha2::{Digest, Sha256};

use mtu_sync::BatchDecodeError;

use crate::protocol::{self, CheckpointJson, MAX_BATCH_BYTES, MAX_CLOCK_SKEW_S, SignedAck, hex_array};
use crate::store::{Store, StoreError, VanTx};

/// A refused request: its HTTP status, wire code, message and machine-readable details.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Rejection {
    /// HTTP status (401, 400, 409, 413, 415, 422, 500).
    pub status: u16,
    /// Stable code, e.g. `sync.gap`.
    pub code: &'static str,
    /// What went wrong.
    pub message: String,
    /// Facts a van acts on (`expected_seq`, `seq`, hashes).
    pub details: Option<serde_json::Value>,
}

impl Rejection {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Rejection { status, code, message: message.into(), details: None }
    }
    fn with(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }
}

impl From<StoreError> for Rejection {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UnknownVan(v) => {
                Rejection::new(401, "sync.unknown_van", format!("van {v:?} is not enrolled at HQ"))
            }
            other => Rejection::new(500, "sync.storage", other.to_string()),
        }
    }
}

/// The authentication headers of a request, as received (absent ones are `None`).
#[derive(Debug, Clone, Default)]
pub struct AuthHeaders<'a> {
    /// `X-MTU-Van`.
    pub van: Option<&'a str>,
    /// `X-MTU-Time`.
    pub time: Option<&'a str>,
    /// `X-MTU-Nonce`.
    pub nonce: Option<&'a str>,
    /// `X-MTU-Signature`.
    pub signature: Option<&'a str>,
}

fn bad_sig(message: String) -> Rejection {
    Rejection::new(401, "sync.bad_request_signature", message)
}

/// Authenticates a request (docs/sync.md, "Request authentication") and returns the van id.
/// Checks, in order: the van is enrolled, the headers are well formed, the time is within
/// 300 s of `now_us`, the signature verifies strictly with the van's current key, and only then
/// that the nonce is new (so a forged request cannot use up a van's nonces).
pub fn authenticate<S: Store>(
    store: &S,
    h: &AuthHeaders<'_>,
    method: &str,
    path: &str,
    body: &[u8],
    now_us: i64,
) -> Result<String, Rejection> {
    authenticate_with(store, h, method, path, body, now_us, &|| Vec::new())
}

/// The keys an upload's body hands over to: the new public key of each `key.rotate` record in
/// it (docs/sync.md, "Requests after a key rotation"). A van that rotated its key signs with the
/// new one; HQ accepts that signature for an upload carrying the rotation, whose chain ingest
/// then verifies strictly (the rotation record must be signed by the key HQ holds), so a forged
/// rotation stores nothing.
pub fn rotation_keys(body: &[u8]) -> Vec<ed25519_dalek::VerifyingKey> {
    let Ok(text) = decompress(body) else { return Vec::new() };
    let Ok(records) = parse_batch(&text) else { return Vec::new() };
    records
        .iter()
        .filter(|(r, _)| r.kind == mtu_journal::kinds::KEY_ROTATE)
        .filter_map(|(r, _)| serde_json::from_slice::<serde_json::Value>(&r.payload).ok())
        .filter_map(|v| hex_array::<32>(v["new_public_key"].as_str()?).ok())
        .filter_map(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
        .collect()
}

/// [`authenticate`], also accepting a signature by one of `handover()`'s keys (asked only when
/// the current key does not verify): an upload carrying the van's key rotation.
pub fn authenticate_with<S: Store>(
    store: &S,
    h: &AuthHeaders<'_>,
    method: &str,
    path: &str,
    body: &[u8],
    now_us: i64,
    handover: &dyn Fn() -> Vec<ed25519_dalek::VerifyingKey>,
) -> Result<String, Rejection> {
    let missing = |name: &str| bad_sig(format!("header {name} is missing"));
    let van = h.van.ok_or_else(|| missing("X-MTU-Van"))?;
    let key = store.current_key(van)?.ok_or_else(|| {
        Rejection::new(401, "sync.unknown_van", format!("van {van:?} is not enrolled at HQ"))
    })?;
    let time = h.time.ok_or_else(|| missing("X-MTU-Time"))?;
    let nonce: [u8; 16] = hex_array(h.nonce.ok_or_else(|| missing("X-MTU-Nonce"))?)
        .map_err(|e| bad_sig(format!("header X-MTU-Nonce: {e}")))?;
    let sig: [u8; 64] = hex_array(h.signature.ok_or_else(|| missing("X-MTU-Signature"))?)
        .map_err(|e| bad_sig(format!("header X-MTU-Signature: {e}")))?;
    let t = protocol::parse_utc("X-MTU-Time", time).map_err(|e| bad_sig(format!("header {e}")))?;
    let skew_us = MAX_CLOCK_SKEW_S * 1_000_000;
    if (t - now_us).abs() > skew_us {
        return Err(Rejection::new(
            401,
            "sync.stale_request",
            format!(
                "request time {time} is {} s from HQ's clock ({}); at most {MAX_CLOCK_SKEW_S} s is accepted",
                (t - now_us) / 1_000_000,
                protocol::format_time_us(now_us)
            ),
        ));
    }
    let headers = protocol::AuthHeaders {
        van: van.to_owned(),
        time: time.to_owned(),
        nonce: hex::encode(nonce),
        signature: hex::encode(sig),
    };
    let verifies =
        |k: &ed25519_dalek::VerifyingKey| protocol::verify_request(k, method, path, &headers, body);
    if !verifies(&key) && !handover().iter().any(verifies) {
        return Err(bad_sig(format!(
            "request signature does not verify with van {van:?}'s current key {}",
            hex::encode(mtu_journal::key_id_of(&key))
        )));
    }
    // A nonce must stay remembered as long as a request carrying it could still pass the time check.
    if !store.remember_nonce(van, &nonce, now_us, now_us - 2 * skew_us)? {
        return Err(Rejection::new(
            401,
            "sync.replayed_request",
            format!("nonce {} was already used by van {van:?}", hex::encode(nonce)),
        ));
    }
    Ok(van.to_owned())
}

fn batch_refusal(e: BatchDecodeError) -> Rejection {
    let status = match e {
        BatchDecodeError::TooLarge { .. } | BatchDecodeError::TooManyRecords { .. } => 413,
        _ => 400,
    };
    Rejection::new(
        status,
        if status == 413 { "sync.batch_too_large" } else { "sync.bad_batch" },
        e.to_string(),
    )
}

/// Decompresses an upload body, refusing more than [`MAX_BATCH_BYTES`] uncompressed.
pub fn decompress(body: &[u8]) -> Result<Vec<u8>, Rejection> {
    mtu_sync::inflate_batch(body, MAX_BATCH_BYTES).map_err(batch_refusal)
}

/// Parses a batch (JSON Lines, one export line per record) into records and their lines.
/// Never panics; errors name the line.
pub fn parse_batch(text: &[u8]) -> Result<Vec<(Record, String)>, Rejection> {
    mtu_sync::parse_batch_lines(text).map_err(batch_refusal)
}

fn ack_of(key: &SigningKey, van: &str, chain: &ChainState, now_us: i64) -> Result<SignedAck, Rejection> {
    Ok(SignedAck::sign(key, van, chain.seq, &chain.hash, now_us))
}

fn bad_record(seq: u64, why: String) -> Rejection {
    Rejection::new(422, "sync.bad_record", format!("record {seq}: {why}"))
        .with(json!({"seq": seq, "why": why}))
}

/// Ingests one authenticated, decompressed batch for `van` (docs/sync.md, `POST /v1/records`):
/// identical duplicates are skipped, a different record at a stored seq is a fork (alarm, 409),
/// a batch starting beyond the head is a gap (409), every new record is verified strictly from
/// the stored verifier state (422 naming the seq); all good, the new records are stored in one
/// transaction and HQ's signed acknowledgement is returned.
pub fn ingest<S: Store>(
    store: &S,
    hq_key: &SigningKey,
    van: &str,
    batch: &[u8],
    now_us: i64,
) -> Result<SignedAck, Rejection> {
    let records = parse_batch(batch)?;
    for w in records.windows(2) {
        let (a, b) = (w[0].0.seq, w[1].0.seq);
        if Some(b) != a.checked_add(1) {
            return Err(bad_record(
                b,
                format!("batch is not ascending and contiguous: record {b} follows {a}"),
            ));
        }
    }
    if records[0].0.seq == 0 {
        return Err(bad_record(0, mtu_journal::RuleError::SeqZero.to_string()));
    }
    if let Some((rec, _)) = records.iter().find(|(r, _)| r.van_id != van) {
        return Err(bad_record(
            rec.seq,
            format!("belongs to van {:?}, the request is van {van:?}", rec.van_id),
        ));
    }
    let mut refused = None;
    match store.in_van_tx(van, &mut |tx| ingest_locked(tx, hq_key, van, &records, now_us, &mut refused)) {
        // A record failed verification after earlier ones went to the store: rolled back.
        Err(StoreError::RolledBack) => Err(refused.take().unwrap_or_else(|| {
            Rejection::new(500, "sync.storage", "transaction rolled back without a reason")
        })),
        other => other?,
    }
}

/// Records verified per chunk handed to the store while the next chunk is verified.
const STORE_CHUNK: usize = 100;

/// Verifies `fresh` in order from `verifier` and stores each verified chunk meanwhile: a helper
/// thread verifies (CPU) while this one waits on the database, which writes the previous chunk
/// (PostgreSQL on its own core). The first refusal stops both; the caller rolls back.
fn verify_and_store(
    tx: &mut dyn VanTx,
    verifier: ChainVerifier,
    fresh: &[(Record, String)],
) -> Result<Result<ChainVerifier, Rejection>, StoreError> {
    std::thread::scope(|s| {
        let (send, recv) = std::sync::mpsc::sync_channel::<&[(Record, String)]>(2);
        let checker = s.spawn(move || {
            let mut verifier = verifier;
            for chunk in fresh.chunks(STORE_CHUNK) {
                for (rec, _) in chunk {
                    verifier.check(rec).map_err(|e| bad_record(e.seq(), e.to_string()))?;
                }
                if send.send(chunk).is_err() {
                    break; // the store failed; its error is returned below
                }
            }
            Ok(verifier)
        });
        let mut stored = Ok(());
        for chunk in recv.iter() {
            stored = tx.insert_records(chunk);
            if stored.is_err() {
                break;
            }
        }
        drop(recv);
        let checked =
            checker.join().map_err(|_| StoreError::Database("the verification thread panicked".into()))?;
        stored?;
        Ok(checked)
    })
}

fn ingest_locked(
    tx: &mut dyn VanTx,
    hq_key: &SigningKey,
    van: &str,
    records: &[(Record, String)],
    now_us: i64,
    refused: &mut Option<Rejection>,
) -> Result<Result<SignedAck, Rejection>, StoreError> {
    let row = tx.van()?;
    let last = row.chain.seq;
    let mut new_from = records.len();
    for (i, (rec, _)) in records.iter().enumerate() {
        if rec.seq > last {
            new_from = i;
            break;
        }
        let Some(stored) = tx.stored_line(rec.seq)? else {
            return Err(StoreError::Damaged {
                van: van.to_owned(),
                what: format!("record {} is below the head {last} but not stored", rec.seq),
            });
        };
        let same = parse_line(&stored, 1).map(|s| &s == rec).unwrap_or(false);
        if !same {
            let received: [u8; 32] = Sha256::digest(rec.signed_bytes()).into();
            let stored_hash = parse_line(&stored, 1).map(|s| hex::encode(s.hash)).unwrap_or_default();
            let details =
                json!({"seq": rec.seq, "stored_hash": stored_hash, "received_hash": hex::encode(received)});
            tx.add_alarm(now_us, "fork", &details)?;
            return Ok(Err(Rejection::new(
                409,
                "sync.fork",
                format!("record {} differs from the one HQ stores at that seq; alarm recorded", rec.seq),
            )
            .with(details)));
        }
    }
    let fresh = &records[new_from..];
    if let Some((first, _)) = fresh.first()
        && first.seq > last + 1
    {
        return Ok(Err(Rejection::new(
            409,
            "sync.gap",
            format!("batch starts at record {} but HQ expects {}", first.seq, last + 1),
        )
        .with(json!({"expected_seq": last + 1}))));
    }
    let verifier = if last == 0 {
        ChainVerifier::from_genesis(Some(row.genesis_key))
    } else {
        ChainVerifier::resume(row.chain.clone())
    };
    let verifier = match verify_and_store(tx, verifier, fresh)? {
        Ok(v) => v,
        Err(rejection) => {
            *refused = Some(rejection);
            return Err(StoreError::RolledBack);
        }
    };
    let head = verifier.state().clone();
    if !fresh.is_empty() {
        tx.set_head(&head)?;
    }
    let head = if fresh.is_empty() { row.chain } else { head };
    tx.set_last_ack(now_us)?;
    Ok(ack_of(hq_key, van, &head, now_us))
}

/// The acknowledgement of what HQ holds for `van` now (`GET /v1/ack`).
pub fn current_ack<S: Store>(
    store: &S,
    hq_key: &SigningKey,
    van: &str,
    now_us: i64,
) -> Result<SignedAck, Rejection> {
    store.in_van_tx(van, &mut |tx| {
        let row = tx.van()?;
        tx.set_last_ack(now_us)?;
        Ok(ack_of(hq_key, van, &row.chain, now_us))
    })?
}

/// Records a checkpoint (docs/sync.md, `POST /v1/checkpoint`): notes when, raises `rollback` if
/// the van's seq is below HQ's head with the hash HQ stores there, `rollback_or_fork` if HQ stores
/// that seq with another hash; answers the signed acknowledgement either way.
pub fn checkpoint<S: Store>(
    store: &S,
    hq_key: &SigningKey,
    van: &str,
    body: &[u8],
    now_us: i64,
) -> Result<SignedAck, Rejection> {
    let cp: CheckpointJson = serde_json::from_slice(body)
        .map_err(|e| Rejection::new(400, "sync.bad_checkpoint", format!("checkpoint body: {e}")))?;
    if cp.van != van {
        return Err(Rejection::new(
            400,
            "sync.bad_checkpoint",
            format!("checkpoint names van {:?}, the request is van {van:?}", cp.van),
        ));
    }
    let head: [u8; 32] = hex_array(&cp.head_hash)
        .map_err(|e| Rejection::new(400, "sync.bad_checkpoint", format!("checkpoint head_hash: {e}")))?;
    protocol::parse_utc("time", &cp.time)
        .map_err(|e| Rejection::new(400, "sync.bad_checkpoint", format!("checkpoint {e}")))?;
    store.in_van_tx(van, &mut |tx| {
        let row = tx.van()?;
        let last = row.chain.seq;
        tx.set_checkpoint(now_us, cp.seq)?;
        if cp.seq <= last {
            let stored_hash = if cp.seq == 0 {
                Some([0u8; 32])
            } else {
                match tx.stored_line(cp.seq)? {
                    Some(line) => parse_line(&line, 1).ok().map(|r| r.hash),
                    None => None,
                }
            };
            let details = json!({
                "checkpoint_seq": cp.seq,
                "checkpoint_hash": cp.head_hash,
                "hq_seq": last,
                "stored_hash": stored_hash.map(hex::encode),
            });
            if stored_hash != Some(head) {
                tx.add_alarm(now_us, "rollback_or_fork", &details)?;
            } else if cp.seq < last {
                tx.add_alarm(now_us, "rollback", &details)?;
            }
        }
        tx.set_last_ack(now_us)?;
        Ok(ack_of(hq_key, van, &row.chain, now_us))
    })?
}

/// Enrolls a van: its id (format rule 1) and genesis public key (64 hex digits, strict rule).
pub fn enroll<S: Store>(store: &S, van: &str, public_key_hex: &str, now_us: i64) -> Result<(), EnrollError> {
    mtu_journal::rules::check_van_id(van).map_err(|e| EnrollError::VanId(e.to_string()))?;
    let key = crate::store::public_key_from_hex(public_key_hex).map_err(EnrollError::Key)?;
    store.enroll(van, &key, now_us).map_err(EnrollError::Store)
}

/// Why a van was not enrolled.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("{0}")]
    VanId(String),
    #[error("--public-key: {0}")]
    Key(String),
    #[error(transparent)]
    Store(StoreError),
}

/// HQ's clock: microseconds since the epoch, UTC.
pub fn now_us() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}
