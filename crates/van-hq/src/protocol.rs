//! Wire protocol v1: the bytes a van signs for each request, the bytes HQ signs for each
//! acknowledgement, and the JSON bodies. `docs/sync.md` specifies them byte for byte.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Domain prefix of a request signature: ASCII `mtu.sync.request.v1` then 0x00.
pub const REQUEST_DOMAIN: &[u8] = b"mtu.sync.request.v1\0";
/// Domain prefix of an acknowledgement signature: ASCII `mtu.sync.ack.v1` then 0x00.
pub const ACK_DOMAIN: &[u8] = b"mtu.sync.ack.v1\0";

/// Header naming the van.
pub const HEADER_VAN: &str = "x-mtu-van";
/// Header with the RFC 3339 UTC time of the request.
pub const HEADER_TIME: &str = "x-mtu-time";
/// Header with 16 random bytes as 32 lowercase hex digits.
pub const HEADER_NONCE: &str = "x-mtu-nonce";
/// Header with the Ed25519 request signature as 128 lowercase hex digits.
pub const HEADER_SIGNATURE: &str = "x-mtu-signature";

/// How far a request's time may be from HQ's clock, in seconds (either way).
pub const MAX_CLOCK_SKEW_S: i64 = 300;
/// Most records in one upload.
pub const MAX_BATCH_RECORDS: usize = 1000;
/// Most uncompressed bytes in one upload (1 MiB).
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// Upload path.
pub const PATH_RECORDS: &str = "/v1/records";
/// Checkpoint path.
pub const PATH_CHECKPOINT: &str = "/v1/checkpoint";
/// Acknowledgement path.
pub const PATH_ACK: &str = "/v1/ack";

/// A field too long for its length prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} is {len} bytes; at most {max} fit its length prefix")]
pub struct TooLong {
    /// Which field.
    pub field: &'static str,
    /// Its length.
    pub len: usize,
    /// The limit.
    pub max: usize,
}

fn push_u8_len(out: &mut Vec<u8>, field: &'static str, value: &[u8]) -> Result<(), TooLong> {
    let len = u8::try_from(value.len()).map_err(|_| TooLong { field, len: value.len(), max: 255 })?;
    out.push(len);
    out.extend_from_slice(value);
    Ok(())
}

/// The bytes a van signs for one request: domain, `u8 len + van`, `u8 len + method`,
/// `u16 BE len + path`, `u8 len + time text`, the 16 nonce bytes, SHA-256 of the body as sent.
pub fn request_signing_bytes(
    van: &str,
    method: &str,
    path: &str,
    time: &str,
    nonce: &[u8; 16],
    body: &[u8],
) -> Result<Vec<u8>, TooLong> {
    let mut out = Vec::with_capacity(REQUEST_DOMAIN.len() + 4 + van.len() + method.len() + path.len() + 120);
    out.extend_from_slice(REQUEST_DOMAIN);
    push_u8_len(&mut out, "van id", van.as_bytes())?;
    push_u8_len(&mut out, "method", method.as_bytes())?;
    let plen =
        u16::try_from(path.len()).map_err(|_| TooLong { field: "path", len: path.len(), max: 65535 })?;
    out.extend_from_slice(&plen.to_be_bytes());
    out.extend_from_slice(path.as_bytes());
    push_u8_len(&mut out, "time", time.as_bytes())?;
    out.extend_from_slice(nonce);
    out.extend_from_slice(&Sha256::digest(body));
    Ok(out)
}

/// The four authentication headers of a request, as (name, value) pairs (the van's side).
pub fn sign_request(
    key: &SigningKey,
    van: &str,
    method: &str,
    path: &str,
    time: &str,
    nonce: &[u8; 16],
    body: &[u8],
) -> Result<[(&'static str, String); 4], TooLong> {
    let msg = request_signing_bytes(van, method, path, time, nonce, body)?;
    let sig = key.sign(&msg);
    Ok([
        (HEADER_VAN, van.to_owned()),
        (HEADER_TIME, time.to_owned()),
        (HEADER_NONCE, hex::encode(nonce)),
        (HEADER_SIGNATURE, hex::encode(sig.to_bytes())),
    ])
}

/// What HQ acknowledges: its highest contiguous stored record of a van.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    /// The van.
    pub van: String,
    /// Highest contiguous seq HQ stores (0: none yet).
    pub seq: u64,
    /// Hash of that record, 64 lowercase hex digits (zeros when seq is 0).
    pub head_hash: String,
    /// When HQ signed, RFC 3339 UTC with microseconds.
    pub time: String,
}

/// An acknowledgement with HQ's signature: the 200 answer of every endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedAck {
    /// What is acknowledged.
    pub ack: Ack,
    /// Ed25519 over [`ack_signing_bytes`], 128 lowercase hex digits.
    pub sig: String,
}

/// Why an acknowledgement is not accepted (the van's check).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    #[error("acknowledgement field {field}: {detail}")]
    Field { field: &'static str, detail: String },
    #[error("acknowledgement signature does not verify with HQ's key")]
    BadSignature,
}

/// The bytes HQ signs: domain, `u8 len + van`, seq u64 BE, the 32-byte head hash, time as i64 BE
/// microseconds since the epoch.
pub fn ack_signing_bytes(
    van: &str,
    seq: u64,
    head_hash: &[u8; 32],
    time_us: i64,
) -> Result<Vec<u8>, TooLong> {
    let mut out = Vec::with_capacity(ACK_DOMAIN.len() + 1 + van.len() + 8 + 32 + 8);
    out.extend_from_slice(ACK_DOMAIN);
    push_u8_len(&mut out, "van id", van.as_bytes())?;
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(head_hash);
    out.extend_from_slice(&time_us.to_be_bytes());
    Ok(out)
}

/// Formats microseconds since the epoch as RFC 3339 UTC with six decimals.
pub fn format_time_us(us: i64) -> String {
    mtu_journal::export::format_utc_us(us)
}

/// Parses an RFC 3339 time to microseconds since the epoch (sub-microsecond digits refused).
pub fn parse_time_us(text: &str) -> Result<i64, String> {
    let t: jiff::Timestamp = text.parse().map_err(|e| format!("{text:?} is not an RFC 3339 time: {e}"))?;
    if t.subsec_nanosecond() % 1000 != 0 {
        return Err(format!("{text:?} has digits below the microsecond"));
    }
    Ok(t.as_microsecond())
}

/// Signs an acknowledgement with HQ's key.
pub fn sign_ack(
    key: &SigningKey,
    van: &str,
    seq: u64,
    head_hash: &[u8; 32],
    time_us: i64,
) -> Result<SignedAck, TooLong> {
    let msg = ack_signing_bytes(van, seq, head_hash, time_us)?;
    Ok(SignedAck {
        ack: Ack {
            van: van.to_owned(),
            seq,
            head_hash: hex::encode(head_hash),
            time: format_time_us(time_us),
        },
        sig: hex::encode(key.sign(&msg).to_bytes()),
    })
}

/// Decodes exactly `N` bytes of lowercase hex.
pub fn hex_array<const N: usize>(text: &str) -> Result<[u8; N], String> {
    if text.len() != 2 * N || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!("expected {} lowercase hex digits, got {} characters", 2 * N, text.len()));
    }
    let bytes = hex::decode(text).map_err(|e| e.to_string())?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| format!("expected {N} bytes"))
}

impl SignedAck {
    /// Checks HQ's signature (strict Ed25519) and returns (seq, head hash, time µs).
    pub fn verify(&self, hq: &VerifyingKey) -> Result<(u64, [u8; 32], i64), AckError> {
        let head: [u8; 32] = hex_array(&self.ack.head_hash)
            .map_err(|detail| AckError::Field { field: "head_hash", detail })?;
        let time_us =
            parse_time_us(&self.ack.time).map_err(|detail| AckError::Field { field: "time", detail })?;
        let sig: [u8; 64] =
            hex_array(&self.sig).map_err(|detail| AckError::Field { field: "sig", detail })?;
        let msg = ack_signing_bytes(&self.ack.van, self.ack.seq, &head, time_us)
            .map_err(|e| AckError::Field { field: "van", detail: e.to_string() })?;
        if !mtu_journal::keys::verify_strict(hq, &msg, &sig) {
            return Err(AckError::BadSignature);
        }
        Ok((self.ack.seq, head, time_us))
    }
}

/// The body of `POST /v1/checkpoint`: the van's journal head now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The van.
    pub van: String,
    /// Its last journal seq.
    pub seq: u64,
    /// Hash of that record (64 lowercase hex digits).
    pub head_hash: String,
    /// The van's clock, RFC 3339 UTC.
    pub time: String,
}

/// The body of every refusal: `{"error":{"code","message","details"?}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// One refusal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable code, e.g. `sync.gap`.
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
    /// Machine-readable facts (e.g. `expected_seq`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bytes_layout() {
        let nonce = [0xaa; 16];
        let b = request_signing_bytes("MTU-1", "POST", "/v1/records", "2026-12-01T10:00:00Z", &nonce, b"x")
            .unwrap();
        let mut want = b"mtu.sync.request.v1\0".to_vec();
        want.extend_from_slice(b"\x05MTU-1\x04POST\x00\x0b/v1/records\x142026-12-01T10:00:00Z");
        want.extend_from_slice(&nonce);
        // SHA-256("x"), the FIPS 180-2 style value any sha256sum prints.
        want.extend_from_slice(
            &hex::decode("2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881").unwrap(),
        );
        assert_eq!(b, want);
        assert!(request_signing_bytes(&"v".repeat(256), "GET", "/", "t", &nonce, b"").is_err());
    }

    #[test]
    fn ack_round_trip_and_tamper() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let ack = sign_ack(&key, "MTU-1", 7, &[3; 32], 1_795_000_000_123_456).unwrap();
        assert_eq!(ack.ack.time, "2026-11-18T11:06:40.123456Z");
        assert_eq!(ack.verify(&key.verifying_key()).unwrap(), (7, [3; 32], 1_795_000_000_123_456));
        let mut bad = ack.clone();
        bad.ack.seq = 8;
        assert_eq!(bad.verify(&key.verifying_key()), Err(AckError::BadSignature));
        let other = SigningKey::from_bytes(&[8; 32]);
        assert_eq!(ack.verify(&other.verifying_key()), Err(AckError::BadSignature));
    }

    #[test]
    fn times_parse_exactly() {
        assert_eq!(parse_time_us("1970-01-01T00:00:01.000002Z"), Ok(1_000_002));
        assert!(parse_time_us("1970-01-01T00:00:01.0000021Z").is_err());
        assert!(parse_time_us("yesterday").is_err());
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
        let nonce: [u8; 16] = core::array::from_fn(|i| i as u8);
        let time = "2026-12-01T10:00:00.000000Z";
        let req =
            request_signing_bytes("MTU-CAI-0001", "POST", "/v1/checkpoint", time, &nonce, body).unwrap();
        let req_sig = van_key.sign(&req);
        let hq_key = SigningKey::from_bytes(&[0x48; 32]);
        let t = parse_time_us("2026-12-01T10:00:00.250000Z").unwrap();
        let ack = sign_ack(&hq_key, "MTU-CAI-0001", 2, &[0xab; 32], t).unwrap();
        let ack_bytes = ack_signing_bytes("MTU-CAI-0001", 2, &[0xab; 32], t).unwrap();
        let want = [
            ("van public key", hex::encode(van_key.verifying_key().as_bytes())),
            ("request body", String::from_utf8(body.to_vec()).unwrap()),
            ("request signed bytes", hex::encode(&req)),
            ("X-MTU-Signature", hex::encode(req_sig.to_bytes())),
            ("HQ public key", hex::encode(hq_key.verifying_key().as_bytes())),
            ("ack signed bytes", hex::encode(&ack_bytes)),
            ("ack JSON", serde_json::to_string(&ack).unwrap()),
        ];
        if std::env::var_os("PRINT_EXAMPLE").is_some() {
            for (w, v) in &want {
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
