//! Wire protocol v1 between the van and HQ (docs/sync.md), shared by both sides so neither can
//! drift from the other: the bytes a request signature covers and its headers, upload batches
//! (export lines, zstd), HQ's signed acknowledgement, checkpoints and error bodies. Pure: no clock,
//! no randomness, no sockets (time and nonce are passed in). The van signs requests through its
//! journal writer (`mtu::sync::wire::sign_request`); this crate only lays out and checks bytes.

use std::io::Read;

pub mod bundle;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use mtu_journal::export;
use mtu_journal::record::{MAX_VAN_ID, Record};

/// Domain prefix of a request signature: ASCII `mtu.sync.request.v1` then one 0x00.
pub const REQUEST_DOMAIN: &[u8] = b"mtu.sync.request.v1\0";
/// Domain prefix of HQ's acknowledgement signature: ASCII `mtu.sync.ack.v1` then one 0x00.
pub const ACK_DOMAIN: &[u8] = b"mtu.sync.ack.v1\0";
/// Length of a request nonce in bytes (sent as 32 lowercase hex digits).
pub const NONCE_LEN: usize = 16;
/// At most this many records in one upload batch (HQ answers 413 `sync.batch_too_large` above).
pub const MAX_BATCH_RECORDS: usize = 1000;
/// At most this many uncompressed bytes (export lines with their newlines) in one batch.
pub const MAX_BATCH_BYTES: usize = 1 << 20;
/// How far a signed time (a request's `X-MTU-Time`, a dossier answer's `time`) may be from the
/// receiver's clock, in seconds, either way.
pub const MAX_CLOCK_SKEW_S: i64 = 300;
/// zstd level for batches: the library's default (fast on the van's CPU, well below raw size).
pub const ZSTD_LEVEL: i32 = 3;

/// Header naming the van.
pub const HEADER_VAN: &str = "X-MTU-Van";
/// Header carrying the request time (RFC 3339 UTC).
pub const HEADER_TIME: &str = "X-MTU-Time";
/// Header carrying the nonce (32 lowercase hex digits).
pub const HEADER_NONCE: &str = "X-MTU-Nonce";
/// Header carrying the Ed25519 signature (128 lowercase hex digits).
pub const HEADER_SIGNATURE: &str = "X-MTU-Signature";

/// Path of the batch upload.
pub const PATH_RECORDS: &str = "/v1/records";
/// Path of the checkpoint.
pub const PATH_CHECKPOINT: &str = "/v1/checkpoint";
/// Path of the acknowledgement query.
pub const PATH_ACK: &str = "/v1/ack";

/// Why a request could not be signed or a batch not built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("request field {field}: {len} bytes, at most {max} fit its length prefix")]
    TooLong { field: &'static str, len: usize, max: usize },
    #[error("request signature: {0}")]
    Sign(String),
    #[error("batch: no records")]
    EmptyBatch,
    #[error("batch: record {seq} follows record {prev}; a batch is contiguous and ascending")]
    NotContiguous { prev: u64, seq: u64 },
    #[error("batch: record {seq} belongs to van {found:?}, not {expected:?}")]
    ForeignVan { seq: u64, expected: String, found: String },
    #[error("batch: record {seq} cannot be exported: {detail}")]
    Export { seq: u64, detail: String },
    #[error("batch: compression failed: {0}")]
    Compress(String),
}

/// The four authentication headers of one request, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHeaders {
    /// `X-MTU-Van`.
    pub van: String,
    /// `X-MTU-Time`, RFC 3339 UTC, whole seconds (`2026-12-01T11:23:00Z`).
    pub time: String,
    /// `X-MTU-Nonce`, 32 lowercase hex digits.
    pub nonce: String,
    /// `X-MTU-Signature`, 128 lowercase hex digits.
    pub signature: String,
}

impl AuthHeaders {
    /// The headers as (name, value) pairs in protocol order.
    pub fn pairs(&self) -> [(&'static str, &str); 4] {
        [
            (HEADER_VAN, self.van.as_str()),
            (HEADER_TIME, self.time.as_str()),
            (HEADER_NONCE, self.nonce.as_str()),
            (HEADER_SIGNATURE, self.signature.as_str()),
        ]
    }
}

/// Formats UTC microseconds as the request time text: RFC 3339, whole seconds, `Z`.
pub fn request_time_text(utc_us: i64) -> String {
    match jiff::Timestamp::from_microsecond(utc_us.div_euclid(1_000_000) * 1_000_000) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => "1970-01-01T00:00:00Z".to_owned(),
    }
}

fn push_u8_len(out: &mut Vec<u8>, field: &'static str, bytes: &[u8]) -> Result<(), WireError> {
    let len =
        u8::try_from(bytes.len()).map_err(|_| WireError::TooLong { field, len: bytes.len(), max: 255 })?;
    out.push(len);
    out.extend_from_slice(bytes);
    Ok(())
}

/// The message a request signature covers, after [`REQUEST_DOMAIN`]: `u8 len + van id`,
/// `u8 len + method`, `u16 BE len + path`, `u8 len + time text`, the 16 nonce bytes, SHA-256 of
/// the body as sent (compressed bytes for a batch).
pub fn request_message(
    van: &str,
    method: &str,
    path: &str,
    time_text: &str,
    nonce: &[u8; NONCE_LEN],
    body: &[u8],
) -> Result<Vec<u8>, WireError> {
    if van.len() > MAX_VAN_ID {
        return Err(WireError::TooLong { field: "van id", len: van.len(), max: MAX_VAN_ID });
    }
    let mut out = Vec::with_capacity(4 + van.len() + method.len() + path.len() + time_text.len() + 48);
    push_u8_len(&mut out, "van id", van.as_bytes())?;
    push_u8_len(&mut out, "method", method.as_bytes())?;
    let plen = u16::try_from(path.len()).map_err(|_| WireError::TooLong {
        field: "path",
        len: path.len(),
        max: u16::MAX as usize,
    })?;
    out.extend_from_slice(&plen.to_be_bytes());
    out.extend_from_slice(path.as_bytes());
    push_u8_len(&mut out, "time", time_text.as_bytes())?;
    out.extend_from_slice(nonce);
    out.extend_from_slice(&Sha256::digest(body));
    Ok(out)
}

/// The authentication headers of a request signed over [`request_message`] (after
/// [`REQUEST_DOMAIN`]) with `signature`.
pub fn auth_headers(
    van: &str,
    time_text: String,
    nonce: &[u8; NONCE_LEN],
    signature: &[u8; 64],
) -> AuthHeaders {
    AuthHeaders {
        van: van.to_owned(),
        time: time_text,
        nonce: hex::encode(nonce),
        signature: hex::encode(signature),
    }
}

/// Checks a request's signature as HQ does (strict Ed25519 over domain and message). The van's
/// tests use it as their fake HQ; the time window and nonce memory are the receiver's business.
pub fn verify_request(
    key: &VerifyingKey,
    method: &str,
    path: &str,
    headers: &AuthHeaders,
    body: &[u8],
) -> bool {
    let Some(nonce) = lower_hex::<NONCE_LEN>(&headers.nonce) else { return false };
    let Some(sig) = lower_hex::<64>(&headers.signature) else { return false };
    let Ok(message) = request_message(&headers.van, method, path, &headers.time, &nonce, body) else {
        return false;
    };
    let mut signed = REQUEST_DOMAIN.to_vec();
    signed.extend_from_slice(&message);
    mtu_journal::keys::verify_strict(key, &signed, &sig)
}

/// An upload batch ready to send: the compressed body and the range it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Seq of the first record.
    pub first_seq: u64,
    /// Seq of the last record.
    pub last_seq: u64,
    /// Hash of the last record (what HQ's acknowledgement must name for `last_seq`).
    pub last_hash: [u8; 32],
    /// Size of the JSON Lines before compression.
    pub raw_len: usize,
    /// zstd-compressed JSON Lines (`Content-Encoding: zstd`).
    pub body: Vec<u8>,
}

impl Batch {
    /// Number of records.
    pub fn len(&self) -> u64 {
        self.last_seq - self.first_seq + 1
    }

    /// Never true (a batch holds at least one record); for clippy's `len` convention.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Builds a batch from the front of `records` (contiguous, ascending, one van), taking as many as
/// fit `max_records` and `max_bytes` of export lines. The first record is always taken, even if
/// its line alone exceeds `max_bytes` (a record's payload may be up to 256 KiB; see docs/sync.md).
pub fn encode_batch(records: &[Record], max_records: usize, max_bytes: usize) -> Result<Batch, WireError> {
    let first = records.first().ok_or(WireError::EmptyBatch)?;
    let mut raw = Vec::new();
    let mut line = Vec::new();
    let mut last = first;
    for (i, rec) in records.iter().take(max_records.max(1)).enumerate() {
        if i > 0 {
            if rec.seq != last.seq.wrapping_add(1) {
                return Err(WireError::NotContiguous { prev: last.seq, seq: rec.seq });
            }
            if rec.van_id != first.van_id {
                return Err(WireError::ForeignVan {
                    seq: rec.seq,
                    expected: first.van_id.clone(),
                    found: rec.van_id.clone(),
                });
            }
        }
        line.clear();
        export::write_line(&mut line, rec)
            .map_err(|e| WireError::Export { seq: rec.seq, detail: e.to_string() })?;
        if i > 0 && raw.len() + line.len() > max_bytes {
            break;
        }
        raw.extend_from_slice(&line);
        last = rec;
    }
    let body = zstd::bulk::compress(&raw, ZSTD_LEVEL).map_err(|e| WireError::Compress(e.to_string()))?;
    Ok(Batch { first_seq: first.seq, last_seq: last.seq, last_hash: last.hash, raw_len: raw.len(), body })
}

/// Why a received batch body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BatchDecodeError {
    #[error("batch: not a zstd frame: {0}")]
    Zstd(String),
    #[error("batch: more than {max} bytes uncompressed")]
    TooLarge { max: usize },
    #[error("batch: more than {max} records")]
    TooManyRecords { max: usize },
    #[error("batch: not UTF-8 at byte {0}")]
    Utf8(usize),
    #[error("batch: {0}")]
    Line(#[from] export::ExportLineError),
    #[error("batch: no records")]
    Empty,
}

/// Reads a batch body (as HQ does): zstd, at most `max_bytes` uncompressed (bounded while
/// decompressing), at most [`MAX_BATCH_RECORDS`] lines. Order and chain are not checked here.
pub fn decode_batch(body: &[u8], max_bytes: usize) -> Result<Vec<Record>, BatchDecodeError> {
    Ok(parse_batch_lines(&inflate_batch(body, max_bytes)?)?.into_iter().map(|(r, _)| r).collect())
}

/// Decompresses a batch body: one zstd frame, at most `max_bytes` uncompressed (bounded while
/// decompressing, so a small bomb cannot take memory).
pub fn inflate_batch(body: &[u8], max_bytes: usize) -> Result<Vec<u8>, BatchDecodeError> {
    let decoder =
        zstd::stream::read::Decoder::new(body).map_err(|e| BatchDecodeError::Zstd(e.to_string()))?;
    let mut raw = Vec::new();
    decoder
        .take(max_bytes as u64 + 1)
        .read_to_end(&mut raw)
        .map_err(|e| BatchDecodeError::Zstd(e.to_string()))?;
    if raw.len() > max_bytes {
        return Err(BatchDecodeError::TooLarge { max: max_bytes });
    }
    Ok(raw)
}

/// Parses uncompressed batch text: each line (LF-terminated) an export line, at most
/// [`MAX_BATCH_RECORDS`], at least one. Returns each record with its line as received (what HQ
/// stores). Never panics; errors name the line.
pub fn parse_batch_lines(raw: &[u8]) -> Result<Vec<(Record, String)>, BatchDecodeError> {
    let text = std::str::from_utf8(raw).map_err(|e| BatchDecodeError::Utf8(e.valid_up_to()))?;
    let mut out = Vec::new();
    for (i, line) in text.split_terminator('\n').enumerate() {
        if out.len() == MAX_BATCH_RECORDS {
            return Err(BatchDecodeError::TooManyRecords { max: MAX_BATCH_RECORDS });
        }
        out.push((export::parse_line(line, i + 1)?, line.to_owned()));
    }
    if out.is_empty() {
        return Err(BatchDecodeError::Empty);
    }
    Ok(out)
}

/// HQ's acknowledgement: it holds every record of `van` up to `seq` (contiguous), the last one
/// with hash `head_hash`, as of `time_us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack<'a> {
    /// Van id.
    pub van: &'a str,
    /// HQ's highest contiguous stored seq (0: nothing stored).
    pub seq: u64,
    /// Hash of that record (zeros for seq 0).
    pub head_hash: [u8; 32],
    /// HQ's time of the acknowledgement, microseconds since the epoch, UTC.
    pub time_us: i64,
}

/// An acknowledgement whose signature verified with HQ's pinned key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAck {
    /// Van id.
    pub van: String,
    /// HQ's highest contiguous stored seq.
    pub seq: u64,
    /// Hash of that record.
    pub head_hash: [u8; 32],
    /// HQ's time of the acknowledgement (UTC µs).
    pub time_us: i64,
}

/// The bytes HQ signs, after [`ACK_DOMAIN`]: `u8 len + van`, seq u64 BE, 32-byte head hash, time
/// as i64 BE microseconds since the epoch.
pub fn ack_message(ack: &Ack<'_>) -> Vec<u8> {
    let van = &ack.van.as_bytes()[..ack.van.len().min(255)];
    let mut out = Vec::with_capacity(1 + van.len() + 8 + 32 + 8);
    out.push(van.len() as u8);
    out.extend_from_slice(van);
    out.extend_from_slice(&ack.seq.to_be_bytes());
    out.extend_from_slice(&ack.head_hash);
    out.extend_from_slice(&ack.time_us.to_be_bytes());
    out
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckJson {
    van: String,
    seq: u64,
    head_hash: String,
    time: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedAckJson {
    ack: AckJson,
    sig: String,
}

/// Signs an acknowledgement and renders HQ's JSON answer (HQ's side; the van's tests use it as a
/// fake HQ). The time is written with microseconds, as signed.
pub fn sign_ack(key: &SigningKey, ack: &Ack<'_>) -> String {
    let mut signed = ACK_DOMAIN.to_vec();
    signed.extend_from_slice(&ack_message(ack));
    let sig: Signature = key.sign(&signed);
    let json = SignedAckJson {
        ack: AckJson {
            van: ack.van.to_owned(),
            seq: ack.seq,
            head_hash: hex::encode(ack.head_hash),
            time: export::format_utc_us(ack.time_us),
        },
        sig: hex::encode(sig.to_bytes()),
    };
    serde_json::to_string(&json).unwrap_or_default()
}

/// Why an acknowledgement was refused. None of them is progress.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    #[error("acknowledgement: not the expected JSON: {0}")]
    Json(String),
    #[error("acknowledgement: field {field}: {detail}")]
    Field { field: &'static str, detail: String },
    #[error("acknowledgement: signature does not verify with HQ's pinned key (forged or altered)")]
    BadSignature,
}

/// `N` bytes from exactly `2N` lowercase hex digits.
pub fn lower_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

pub fn hex_field<const N: usize>(field: &'static str, text: &str) -> Result<[u8; N], AckError> {
    lower_hex(text)
        .ok_or_else(|| AckError::Field { field, detail: format!("expected {} lowercase hex digits", 2 * N) })
}

/// Parses an RFC 3339 UTC time (`Z` suffix) into microseconds since the epoch. Digits below the
/// microsecond are refused: a signed time has exactly one text.
pub fn parse_utc(field: &'static str, text: &str) -> Result<i64, AckError> {
    if !text.ends_with('Z') {
        return Err(AckError::Field { field, detail: format!("{text:?} is not RFC 3339 UTC (ending in Z)") });
    }
    let t = text
        .parse::<jiff::Timestamp>()
        .map_err(|e| AckError::Field { field, detail: format!("{text:?}: {e}") })?;
    if t.subsec_nanosecond() % 1000 != 0 {
        return Err(AckError::Field { field, detail: format!("{text:?} has digits below the microsecond") });
    }
    Ok(t.as_microsecond())
}

/// Parses HQ's acknowledgement and verifies its signature strictly with HQ's pinned public key.
/// Whether it matches the van's own journal is the caller's check. Never panics on any input.
pub fn verify_ack(body: &[u8], hq_key: &VerifyingKey) -> Result<VerifiedAck, AckError> {
    let json: SignedAckJson = serde_json::from_slice(body).map_err(|e| AckError::Json(e.to_string()))?;
    if json.ack.van.is_empty() || json.ack.van.len() > MAX_VAN_ID {
        return Err(AckError::Field { field: "ack.van", detail: format!("1–{MAX_VAN_ID} bytes expected") });
    }
    let head_hash = hex_field::<32>("ack.head_hash", &json.ack.head_hash)?;
    let time_us = parse_utc("ack.time", &json.ack.time)?;
    let sig = hex_field::<64>("sig", &json.sig)?;
    let ack = Ack { van: &json.ack.van, seq: json.ack.seq, head_hash, time_us };
    let mut signed = ACK_DOMAIN.to_vec();
    signed.extend_from_slice(&ack_message(&ack));
    if !mtu_journal::keys::verify_strict(hq_key, &signed, &sig) {
        return Err(AckError::BadSignature);
    }
    Ok(VerifiedAck { van: json.ack.van, seq: json.ack.seq, head_hash, time_us })
}

/// The JSON of `POST /v1/checkpoint` as it travels (HQ parses it with this shape; unknown fields
/// are refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointJson {
    /// The van.
    pub van: String,
    /// Its journal's last seq.
    pub seq: u64,
    /// Hash of that record, 64 lowercase hex digits.
    pub head_hash: String,
    /// The van's clock, RFC 3339 UTC.
    pub time: String,
}

/// The body of `POST /v1/checkpoint`: the van's journal head now.
pub fn checkpoint_body(van: &str, seq: u64, head_hash: &[u8; 32], utc_us: i64) -> Vec<u8> {
    serde_json::to_vec(&CheckpointJson {
        van: van.to_owned(),
        seq,
        head_hash: hex::encode(head_hash),
        time: export::format_utc_us(utc_us),
    })
    .unwrap_or_default()
}

/// What HQ refused, by its error code (docs/sync.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HqErrorCode {
    /// `sync.unknown_van`: HQ has not enrolled this van.
    UnknownVan,
    /// `sync.bad_request_signature`.
    BadRequestSignature,
    /// `sync.stale_request`: the request time is more than 300 s from HQ's clock.
    StaleRequest,
    /// `sync.replayed_request`: the nonce was seen before.
    ReplayedRequest,
    /// `sync.batch_too_large`.
    BatchTooLarge,
    /// `sync.fork`: HQ stores different bytes at `seq`.
    Fork { seq: u64, stored_hash: [u8; 32], received_hash: [u8; 32] },
    /// `sync.gap`: the batch starts after HQ's next expected seq.
    Gap { expected_seq: u64 },
    /// `sync.bad_record`: record `seq` failed verification at HQ.
    BadRecord { seq: u64, why: String },
    /// A code this van does not know (kept as sent).
    Other(String),
}

/// An error answer from HQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HqError {
    /// The code, with its details.
    pub code: HqErrorCode,
    /// HQ's human message.
    pub message: String,
}

#[derive(Serialize, Deserialize)]
struct ErrorJson {
    error: ErrorInner,
}

#[derive(Serialize, Deserialize)]
struct ErrorInner {
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    details: serde_json::Value,
}

/// HQ's refusal body `{"error":{"code","message","details"?}}` (`details` left out when null).
pub fn error_body(code: &str, message: &str, details: Option<serde_json::Value>) -> Vec<u8> {
    let json = ErrorJson {
        error: ErrorInner {
            code: code.to_owned(),
            message: message.to_owned(),
            details: details.unwrap_or(serde_json::Value::Null),
        },
    };
    serde_json::to_vec(&json).unwrap_or_default()
}

/// Parses HQ's error body `{"error":{"code","message","details"}}`; the details a code needs
/// must be present and well formed. Never panics on any input.
pub fn parse_error(body: &[u8]) -> Result<HqError, AckError> {
    let json: ErrorJson = serde_json::from_slice(body).map_err(|e| AckError::Json(e.to_string()))?;
    let d = &json.error.details;
    let u64_at = |field: &'static str, key: &str| {
        d.get(key)
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| AckError::Field { field, detail: "missing or not an unsigned integer".into() })
    };
    let hash_at = |field: &'static str, key: &str| {
        d.get(key)
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| AckError::Field { field, detail: "missing or not a string".into() })
            .and_then(|s| hex_field::<32>(field, s))
    };
    let code = match json.error.code.as_str() {
        "sync.unknown_van" => HqErrorCode::UnknownVan,
        "sync.bad_request_signature" => HqErrorCode::BadRequestSignature,
        "sync.stale_request" => HqErrorCode::StaleRequest,
        "sync.replayed_request" => HqErrorCode::ReplayedRequest,
        "sync.batch_too_large" => HqErrorCode::BatchTooLarge,
        "sync.fork" => HqErrorCode::Fork {
            seq: u64_at("details.seq", "seq")?,
            stored_hash: hash_at("details.stored_hash", "stored_hash")?,
            received_hash: hash_at("details.received_hash", "received_hash")?,
        },
        "sync.gap" => HqErrorCode::Gap { expected_seq: u64_at("details.expected_seq", "expected_seq")? },
        "sync.bad_record" => HqErrorCode::BadRecord {
            seq: u64_at("details.seq", "seq")?,
            why: d.get("why").and_then(serde_json::Value::as_str).unwrap_or_default().to_owned(),
        },
        other => HqErrorCode::Other(other.to_owned()),
    };
    Ok(HqError { code, message: json.error.message })
}

/// Test material both sides' tests use (feature `testing`, on in the dev-dependencies only).
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    use ed25519_dalek::{Signer, SigningKey};
    use mtu_journal::Record;
    use sha2::{Digest, Sha256};

    /// A chain of `n` well-formed signed records of `van` (key seed 7; `test.note` payloads of
    /// about `payload_len` bytes). Record 1 is not a real genesis: the wire does not look inside
    /// records.
    pub fn chain(van: &str, n: u64, payload_len: usize) -> Vec<Record> {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let key_id = mtu_journal::keys::key_id_of(&key.verifying_key());
        let mut prev = [0u8; 32];
        (1..=n)
            .map(|seq| {
                let mut r = Record {
                    seq,
                    van_id: van.to_owned(),
                    key_id,
                    time_us: 1_764_000_000_000_000 + seq as i64,
                    boot_id: [1; 16],
                    boot_us: seq,
                    kind: "test.note".into(),
                    payload: format!("{{\"n\":{seq},\"x\":\"{}\"}}", "a".repeat(payload_len)).into_bytes(),
                    prev_hash: prev,
                    hash: [0; 32],
                    sig: [0; 64],
                };
                let body = r.signed_bytes();
                r.hash = Sha256::digest(&body).into();
                r.sig = key.sign(&body).to_bytes();
                prev = r.hash;
                r
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chain(n: u64, payload_len: usize) -> Vec<Record> {
        crate::testing::chain("MTU-7", n, payload_len)
    }

    #[test]
    fn request_message_layout() {
        let nonce = [0xabu8; 16];
        let m =
            request_message("MTU-1", "POST", "/v1/records", "2026-12-01T11:23:00Z", &nonce, b"xyz").unwrap();
        let mut want = vec![5];
        want.extend_from_slice(b"MTU-1");
        want.push(4);
        want.extend_from_slice(b"POST");
        want.extend_from_slice(&[0, 11]);
        want.extend_from_slice(b"/v1/records");
        want.push(20);
        want.extend_from_slice(b"2026-12-01T11:23:00Z");
        want.extend_from_slice(&nonce);
        want.extend_from_slice(&Sha256::digest(b"xyz"));
        assert_eq!(m, want);
        assert!(matches!(
            request_message("MTU-1", &"P".repeat(256), "/", "t", &nonce, b""),
            Err(WireError::TooLong { field: "method", .. })
        ));
    }

    #[test]
    fn batch_respects_count_and_byte_bounds_and_round_trips() {
        let recs = chain(30, 100);
        let b = encode_batch(&recs, 10, MAX_BATCH_BYTES).unwrap();
        assert_eq!((b.first_seq, b.last_seq, b.last_hash), (1, 10, recs[9].hash));
        let back = decode_batch(&b.body, MAX_BATCH_BYTES).unwrap();
        assert_eq!(back, recs[..10].to_vec());
        let mut line = Vec::new();
        export::write_line(&mut line, &recs[0]).unwrap();
        // Room for three lines and a bit: three records.
        let b = encode_batch(&recs[4..], 1000, line.len() * 3 + 10).unwrap();
        assert_eq!((b.first_seq, b.last_seq), (5, 7));
        assert!(b.raw_len <= line.len() * 3 + 10);
        // One record larger than the bound still goes alone.
        let b = encode_batch(&recs, 1000, 10).unwrap();
        assert_eq!((b.first_seq, b.last_seq), (1, 1));
        // Compression pays on a batch of real records.
        let b = encode_batch(&recs, 1000, MAX_BATCH_BYTES).unwrap();
        assert!(b.body.len() * 2 < b.raw_len, "{} vs {}", b.body.len(), b.raw_len);
    }

    #[test]
    fn batch_refuses_gaps_and_foreign_records() {
        let recs = chain(5, 10);
        let holes = vec![recs[0].clone(), recs[2].clone()];
        assert_eq!(
            encode_batch(&holes, 10, MAX_BATCH_BYTES),
            Err(WireError::NotContiguous { prev: 1, seq: 3 })
        );
        let mut foreign = recs[1].clone();
        foreign.van_id = "MTU-8".into();
        assert!(matches!(
            encode_batch(&[recs[0].clone(), foreign], 10, MAX_BATCH_BYTES),
            Err(WireError::ForeignVan { seq: 2, .. })
        ));
        assert_eq!(encode_batch(&[], 10, 10), Err(WireError::EmptyBatch));
    }

    #[test]
    fn decode_batch_bounds_what_it_inflates() {
        let zeros = zstd::bulk::compress(&vec![b'\n'; MAX_BATCH_BYTES + 1], 3).unwrap();
        assert!(matches!(decode_batch(&zeros, MAX_BATCH_BYTES), Err(BatchDecodeError::TooLarge { .. })));
        assert!(matches!(decode_batch(b"not zstd", MAX_BATCH_BYTES), Err(BatchDecodeError::Zstd(_))));
    }

    fn hq() -> SigningKey {
        SigningKey::from_bytes(&[42u8; 32])
    }

    #[test]
    fn ack_round_trips_and_forgeries_fail() {
        let ack = Ack { van: "MTU-1", seq: 12, head_hash: [5; 32], time_us: 1_764_588_180_000_001 };
        let body = sign_ack(&hq(), &ack);
        let v = verify_ack(body.as_bytes(), &hq().verifying_key()).unwrap();
        assert_eq!((v.van.as_str(), v.seq, v.head_hash, v.time_us), ("MTU-1", 12, [5; 32], ack.time_us));
        // Another key.
        let other = SigningKey::from_bytes(&[43u8; 32]);
        assert_eq!(
            verify_ack(sign_ack(&other, &ack).as_bytes(), &hq().verifying_key()),
            Err(AckError::BadSignature)
        );
        // A changed field under the same signature.
        let moved = body.replace("\"seq\":12", "\"seq\":13");
        assert_eq!(verify_ack(moved.as_bytes(), &hq().verifying_key()), Err(AckError::BadSignature));
        let later = body.replace(".000001Z", ".000002Z");
        assert_eq!(verify_ack(later.as_bytes(), &hq().verifying_key()), Err(AckError::BadSignature));
        // Unknown fields, upper-case hex, non-UTC times and truncation are refused.
        let extra = body.replacen("{\"ack\":{", "{\"ack\":{\"extra\":1,", 1);
        assert!(matches!(verify_ack(extra.as_bytes(), &hq().verifying_key()), Err(AckError::Json(_))));
        let ack2 = Ack { head_hash: [0xab; 32], ..ack };
        let body2 = sign_ack(&hq(), &ack2);
        let upper = body2.replace(&"ab".repeat(32), &"AB".repeat(32));
        assert!(matches!(verify_ack(upper.as_bytes(), &hq().verifying_key()), Err(AckError::Field { .. })));
        let offset = body.replace(".000001Z", ".000001+00:00");
        assert!(matches!(verify_ack(offset.as_bytes(), &hq().verifying_key()), Err(AckError::Field { .. })));
        assert!(matches!(
            verify_ack(&body.as_bytes()[..body.len() - 3], &hq().verifying_key()),
            Err(AckError::Json(_))
        ));
    }

    #[test]
    fn utc_times_are_exact_to_the_microsecond() {
        assert_eq!(parse_utc("t", "1970-01-01T00:00:01.000002Z"), Ok(1_000_002));
        assert_eq!(parse_utc("t", "1970-01-01T00:00:01Z"), Ok(1_000_000));
        // Two texts for one signed value would make a signed time malleable.
        assert!(parse_utc("t", "1970-01-01T00:00:01.0000021Z").is_err());
        assert!(parse_utc("t", "1970-01-01T00:00:01+00:00").is_err());
        assert!(parse_utc("t", "yesterday").is_err());
    }

    #[test]
    fn error_bodies_parse_with_their_details() {
        let fork = format!(
            r#"{{"error":{{"code":"sync.fork","message":"m","details":{{"seq":4,"stored_hash":"{}","received_hash":"{}"}}}}}}"#,
            "01".repeat(32),
            "02".repeat(32)
        );
        assert_eq!(
            parse_error(fork.as_bytes()).unwrap().code,
            HqErrorCode::Fork { seq: 4, stored_hash: [1; 32], received_hash: [2; 32] }
        );
        let gap = br#"{"error":{"code":"sync.gap","message":"m","details":{"expected_seq":9}}}"#;
        assert_eq!(parse_error(gap).unwrap().code, HqErrorCode::Gap { expected_seq: 9 });
        let bad = br#"{"error":{"code":"sync.gap","message":"m","details":{}}}"#;
        assert!(parse_error(bad).is_err());
        let stale = br#"{"error":{"code":"sync.stale_request","message":"clock"}}"#;
        assert_eq!(
            parse_error(stale).unwrap(),
            HqError { code: HqErrorCode::StaleRequest, message: "clock".into() }
        );
        let new = br#"{"error":{"code":"sync.future","message":""}}"#;
        assert_eq!(parse_error(new).unwrap().code, HqErrorCode::Other("sync.future".into()));
        // What HQ writes parses back; details are left out when there are none.
        let body = error_body("sync.gap", "m", Some(serde_json::json!({"expected_seq": 9})));
        assert_eq!(parse_error(&body).unwrap().code, HqErrorCode::Gap { expected_seq: 9 });
        assert_eq!(error_body("sync.stale_request", "clock", None), stale.to_vec());
    }

    #[test]
    fn checkpoint_body_has_the_documented_shape() {
        let body = checkpoint_body("MTU-1", 7, &[0xab; 32], 1_000_002);
        let back: CheckpointJson = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (back.van.as_str(), back.seq, back.time.as_str()),
            ("MTU-1", 7, "1970-01-01T00:00:01.000002Z")
        );
        assert_eq!(back.head_hash, "ab".repeat(32));
        assert!(
            serde_json::from_str::<CheckpointJson>(r#"{"van":"V","seq":1,"head_hash":"","time":"","x":1}"#)
                .is_err()
        );
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = verify_ack(&bytes, &hq().verifying_key());
            let _ = parse_error(&bytes);
            let _ = decode_batch(&bytes, 4096);
        }

        #[test]
        fn mutated_acks_never_verify(pos in 0usize..400, byte in any::<u8>(), seq in any::<u64>()) {
            let ack = Ack { van: "MTU-1", seq, head_hash: [0x5a; 32], time_us: 1_764_588_180_000_000 };
            let body = sign_ack(&hq(), &ack).into_bytes();
            let mut m = body.clone();
            let i = pos % m.len();
            prop_assume!(m[i] != byte);
            m[i] = byte;
            // Either refused, or the same statement (e.g. a changed byte in JSON whitespace is impossible here).
            if let Ok(v) = verify_ack(&m, &hq().verifying_key()) {
                prop_assert_eq!((v.van.as_str(), v.seq, v.head_hash, v.time_us), (ack.van, ack.seq, ack.head_hash, ack.time_us));
            }
        }
    }
}

#[cfg(test)]
mod worked_example {
    //! The worked examples of docs/sync.md: the document must show exactly these values.
    use super::*;

    #[test]
    fn document_shows_the_real_values() {
        let van_key = SigningKey::from_bytes(&[0x4d; 32]);
        let body = br#"{"van":"MTU-CAI-0001","seq":2,"head_hash":"abababababababababababababababababababababababababababababababab","time":"2026-12-01T10:00:00.000000Z"}"#;
        assert_eq!(checkpoint_body("MTU-CAI-0001", 2, &[0xab; 32], 1_796_119_200_000_000), body.to_vec());
        let nonce: [u8; 16] = core::array::from_fn(|i| i as u8);
        let time = "2026-12-01T10:00:00.000000Z";
        let mut req = REQUEST_DOMAIN.to_vec();
        req.extend(request_message("MTU-CAI-0001", "POST", PATH_CHECKPOINT, time, &nonce, body).unwrap());
        let req_sig = van_key.sign(&req);
        let headers = auth_headers("MTU-CAI-0001", time.into(), &nonce, &req_sig.to_bytes());
        assert!(verify_request(&van_key.verifying_key(), "POST", PATH_CHECKPOINT, &headers, body));
        let hq_key = SigningKey::from_bytes(&[0x48; 32]);
        let t = parse_utc("t", "2026-12-01T10:00:00.250000Z").unwrap();
        let ack = Ack { van: "MTU-CAI-0001", seq: 2, head_hash: [0xab; 32], time_us: t };
        let mut ack_bytes = ACK_DOMAIN.to_vec();
        ack_bytes.extend(ack_message(&ack));
        let ack_json = sign_ack(&hq_key, &ack);
        assert!(verify_ack(ack_json.as_bytes(), &hq_key.verifying_key()).is_ok());
        let want = [
            ("van public key", hex::encode(van_key.verifying_key().as_bytes())),
            ("request body", String::from_utf8(body.to_vec()).unwrap()),
            ("request signed bytes", hex::encode(&req)),
            ("X-MTU-Signature", headers.signature.clone()),
            ("HQ public key", hex::encode(hq_key.verifying_key().as_bytes())),
            ("ack signed bytes", hex::encode(&ack_bytes)),
            ("ack JSON", ack_json),
        ];
        check_document(&want);
    }

    #[test]
    fn down_sync_example_is_documented() {
        use crate::bundle::*;
        let hq_key = SigningKey::from_bytes(&[0x48; 32]);
        let roster = br#"{"bundle":"roster","version":3,"van_id":"MTU-CAI-0001","issued_at":"2026-12-01T08:00:00Z","officers":[]}"#;
        let mut signed = BUNDLE_DOMAIN.to_vec();
        signed.extend(bundle_message("MTU-CAI-0001", 7, "roster", 3, roster).unwrap());
        let entry = sign_bundle(&hq_key, "MTU-CAI-0001", 7, "roster", 3, roster).unwrap();
        let page = bundles_answer(vec![entry], false);
        assert!(verify_bundles(&page, &hq_key.verifying_key(), "MTU-CAI-0001", 6).is_ok());
        let query = DossierQuery { national_id: "29001011234567".into(), plate: None }.to_query();
        let dossier = r#"{"citizen":{"national_id":"29001011234567","name_ar":"منى حسن"},"as_of":"2026-12-01T08:00:00Z"}"#;
        let t = parse_utc("t", "2026-12-01T10:00:00.500000Z").unwrap();
        let mut dsigned = DOSSIER_DOMAIN.to_vec();
        dsigned.extend(dossier_message("MTU-CAI-0001", &query, t, dossier.as_bytes()).unwrap());
        let answer = sign_dossier(&hq_key, "MTU-CAI-0001", &query, t, dossier.as_bytes()).unwrap();
        assert!(verify_dossier(&answer, &hq_key.verifying_key(), "MTU-CAI-0001", &query, t).is_ok());
        check_document(&[
            ("bundle", String::from_utf8(roster.to_vec()).unwrap()),
            ("bundle signed bytes", hex::encode(&signed)),
            ("bundles answer", String::from_utf8(page).unwrap()),
            ("dossier query", query),
            ("dossier bytes", dossier.to_owned()),
            ("dossier signed bytes", hex::encode(&dsigned)),
            ("dossier answer", String::from_utf8(answer).unwrap()),
        ]);
    }

    /// Fails naming each value docs/sync.md does not show (white space ignored); prints them all
    /// with `PRINT_EXAMPLE=1`.
    pub(crate) fn check_document(want: &[(&str, String)]) {
        if std::env::var_os("PRINT_EXAMPLE").is_some() {
            for (w, v) in want {
                println!("{w}: {v}");
            }
        }
        let doc = include_str!("../../../docs/sync.md");
        let flat: String = doc.split_whitespace().collect();
        for (what, value) in want {
            let v: String = value.split_whitespace().collect();
            assert!(flat.contains(&v), "docs/sync.md lacks the example's {what}: {value}");
        }
    }
}
