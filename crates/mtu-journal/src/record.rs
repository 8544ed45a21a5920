//! One journal record: its fields, the exact bytes that are hashed and signed, and sealing.
//!
//! Pure (no I/O); the van, HQ and auditors share it. The byte layout is
//! specified in `docs/journal-format.md`; change it only with a new domain tag.

use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::keys::{KEY_ID_LEN, SealingKey};
use crate::rules;

/// Domain-separation prefix of the signed bytes: ASCII `mtu.journal.record.v1` then one 0x00.
pub const RECORD_DOMAIN: &[u8; 22] = b"mtu.journal.record.v1\0";
/// Domain prefix of a key-rotation proof (signed by the new key).
pub const ROTATION_DOMAIN: &[u8; 28] = b"mtu.journal.key-rotation.v1\0";

pub use crate::kinds;
pub use crate::rules::{MAX_KIND, MAX_PAYLOAD, MAX_VAN_ID, check_kind, check_payload, check_van_id};

/// A field or record that breaks a format rule (the name this module has always used).
pub type FieldError = crate::rules::RuleError;

/// A sealed record as stored and exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1, 2, 3 … with no gaps, per van.
    pub seq: u64,
    /// The van's id.
    pub van_id: String,
    /// Id of the key that signed this record (first 8 bytes of SHA-256 of its public key).
    pub key_id: [u8; KEY_ID_LEN],
    /// Wall-clock time, microseconds since the Unix epoch, UTC.
    pub time_us: i64,
    /// Kernel boot id of the boot this record was written in.
    pub boot_id: [u8; 16],
    /// Microseconds since that boot (monotonic, includes suspend).
    pub boot_us: u64,
    /// What happened, e.g. `daemon.start`.
    pub kind: String,
    /// Compact UTF-8 JSON describing it.
    pub payload: Vec<u8>,
    /// `hash` of record `seq - 1`; 32 zero bytes for record 1.
    pub prev_hash: [u8; 32],
    /// SHA-256 of [`Record::signed_bytes`].
    pub hash: [u8; 32],
    /// Ed25519 signature over [`Record::signed_bytes`].
    pub sig: [u8; 64],
}

/// The fields a writer supplies; sealing adds the key id, hash and signature.
#[derive(Debug, Clone)]
pub struct Draft<'a> {
    /// Sequence number (1 for the genesis record).
    pub seq: u64,
    /// The van's id.
    pub van_id: &'a str,
    /// Wall-clock time, microseconds since the Unix epoch, UTC.
    pub time_us: i64,
    /// Kernel boot id.
    pub boot_id: [u8; 16],
    /// Microseconds since that boot.
    pub boot_us: u64,
    /// What happened.
    pub kind: &'a str,
    /// Compact UTF-8 JSON.
    pub payload: &'a [u8],
    /// Hash of the previous record (zeros for record 1).
    pub prev_hash: [u8; 32],
}

/// Appends the signed-bytes layout of the given fields to `out` (see docs/journal-format.md).
#[allow(clippy::too_many_arguments)]
fn encode_body(
    out: &mut Vec<u8>,
    seq: u64,
    van_id: &str,
    key_id: &[u8; KEY_ID_LEN],
    time_us: i64,
    boot_id: &[u8; 16],
    boot_us: u64,
    kind: &str,
    payload: &[u8],
    prev_hash: &[u8; 32],
) {
    out.reserve(
        RECORD_DOMAIN.len() + 8 + 1 + van_id.len() + 8 + 8 + 16 + 8 + 1 + kind.len() + 4 + payload.len() + 32,
    );
    out.extend_from_slice(RECORD_DOMAIN);
    out.extend_from_slice(&seq.to_be_bytes());
    out.push(van_id.len() as u8);
    out.extend_from_slice(van_id.as_bytes());
    out.extend_from_slice(key_id);
    out.extend_from_slice(&time_us.to_be_bytes());
    out.extend_from_slice(boot_id);
    out.extend_from_slice(&boot_us.to_be_bytes());
    out.push(kind.len() as u8);
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(prev_hash);
}

impl Draft<'_> {
    /// Checks the format rules ([`rules::check_record`]), then hashes and signs with `key`.
    pub fn seal<K: SealingKey + ?Sized>(&self, key: &K) -> Result<Record, FieldError> {
        rules::check_record(self.seq, self.van_id, self.kind, self.payload)?;
        let key_id = key.id();
        let mut body = Vec::new();
        encode_body(
            &mut body,
            self.seq,
            self.van_id,
            &key_id,
            self.time_us,
            &self.boot_id,
            self.boot_us,
            self.kind,
            self.payload,
            &self.prev_hash,
        );
        let hash: [u8; 32] = Sha256::digest(&body).into();
        let sig = key.sign_bytes(&body).to_bytes();
        Ok(Record {
            seq: self.seq,
            van_id: self.van_id.to_owned(),
            key_id,
            time_us: self.time_us,
            boot_id: self.boot_id,
            boot_us: self.boot_us,
            kind: self.kind.to_owned(),
            payload: self.payload.to_vec(),
            prev_hash: self.prev_hash,
            hash,
            sig,
        })
    }
}

impl Record {
    /// The exact bytes that are hashed (SHA-256 → `hash`) and signed (Ed25519 → `sig`).
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut body = Vec::new();
        self.write_signed_bytes(&mut body);
        body
    }

    /// Like [`Record::signed_bytes`], reusing a buffer (verification of millions of records).
    pub fn write_signed_bytes(&self, out: &mut Vec<u8>) {
        out.clear();
        encode_body(
            out,
            self.seq,
            &self.van_id,
            &self.key_id,
            self.time_us,
            &self.boot_id,
            self.boot_us,
            &self.kind,
            &self.payload,
            &self.prev_hash,
        );
    }

    /// The payload parsed as JSON (`Null` if it is not JSON, which verification reports).
    pub fn payload_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap_or(serde_json::Value::Null)
    }

    /// The payload as its catalogue type `T` (e.g. [`kinds::DaemonStart`]).
    pub fn payload_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }

    /// Signature as an ed25519-dalek value.
    pub fn signature(&self) -> Signature {
        Signature::from_bytes(&self.sig)
    }
}

/// Bytes a new key signs to prove it accepts the chain at a rotation record (docs/journal-format.md).
pub fn rotation_proof_bytes(
    van_id: &str,
    seq: u64,
    old_key_id: &[u8; KEY_ID_LEN],
    new_key: &VerifyingKey,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(ROTATION_DOMAIN.len() + 1 + van_id.len() + 8 + KEY_ID_LEN + 32);
    out.extend_from_slice(ROTATION_DOMAIN);
    out.push(van_id.len() as u8);
    out.extend_from_slice(van_id.as_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(old_key_id);
    out.extend_from_slice(new_key.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    const GENESIS_PAYLOAD: &[u8] =
        br#"{"format":1,"public_key":"0000000000000000000000000000000000000000000000000000000000000000","van_id":"MTU-TEST-1"}"#;

    pub(crate) fn draft(payload: &[u8]) -> Draft<'_> {
        Draft {
            seq: 1,
            van_id: "MTU-TEST-1",
            time_us: 1_795_000_000_000_000,
            boot_id: [0x11; 16],
            boot_us: 42,
            kind: kinds::GENESIS,
            payload,
            prev_hash: [0; 32],
        }
    }

    #[test]
    fn layout_is_as_documented() {
        let key = SigningKey::from_bytes(&[1u8; 32]);
        let rec = draft(GENESIS_PAYLOAD).seal(&key).unwrap();
        let body = rec.signed_bytes();
        assert_eq!(&body[..22], RECORD_DOMAIN);
        assert_eq!(&body[22..30], &1u64.to_be_bytes());
        assert_eq!(body[30] as usize, "MTU-TEST-1".len());
        let len =
            22 + 8 + 1 + 10 + 8 + 8 + 16 + 8 + 1 + kinds::GENESIS.len() + 4 + GENESIS_PAYLOAD.len() + 32;
        assert_eq!(body.len(), len);
        assert_eq!(rec.hash, <[u8; 32]>::from(Sha256::digest(&body)));
        key.verifying_key().verify_strict(&body, &rec.signature()).unwrap();
    }

    #[test]
    fn bad_fields_are_refused() {
        let key = SigningKey::from_bytes(&[1u8; 32]);
        assert!(matches!(draft(b"{").seal(&key), Err(FieldError::PayloadJson(_))));
        let mut d = draft(b"{}");
        d.kind = "Daemon Start";
        assert!(matches!(d.seal(&key), Err(FieldError::Kind(_))));
        let mut d = draft(GENESIS_PAYLOAD);
        d.van_id = "";
        assert!(matches!(d.seal(&key), Err(FieldError::VanId(_))));
    }
}

#[cfg(test)]
mod worked_example {
    //! The worked example of docs/journal-format.md: the document must show exactly these values.
    use super::*;

    pub(crate) fn example() -> (ed25519_dalek::SigningKey, Record) {
        let key = ed25519_dalek::SigningKey::from_bytes(&[0x4d; 32]);
        let rec = Draft {
            seq: 2,
            van_id: "MTU-CAI-0001",
            time_us: 1_795_464_000_000_000,
            boot_id: *b"\x93\x55\x33\x7b\x13\x00\x43\x28\x8e\x5b\xe4\xf2\x72\xa8\xdd\x7b",
            boot_us: 1_384_654_357,
            kind: kinds::DAEMON_START,
            payload: br#"{"config":"/etc/mtu/vand.toml","mode":"production","open_ms":41,"previous_stop":"clean","records_verified_at_open":12,"version":"0.1.0"}"#,
            prev_hash: [0xab; 32],
        }
        .seal(&key)
        .unwrap();
        (key, rec)
    }

    #[test]
    fn document_shows_the_real_values() {
        let (key, rec) = example();
        let doc = include_str!("../../../docs/journal-format.md");
        let body = hex::encode(rec.signed_bytes());
        let want = [
            ("public key", hex::encode(key.verifying_key().as_bytes())),
            ("key id", hex::encode(rec.key_id)),
            ("signed bytes", body),
            ("hash", hex::encode(rec.hash)),
            ("signature", hex::encode(rec.sig)),
        ];
        if std::env::var_os("PRINT_EXAMPLE").is_some() {
            for (w, v) in &want {
                println!("{w}: {v}");
            }
        }
        let flat: String = doc.split_whitespace().collect();
        for (what, value) in want {
            assert!(flat.contains(&value), "docs/journal-format.md lacks the example's {what}: {value}");
        }
    }
}
