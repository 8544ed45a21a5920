//! Streaming verification of a record chain: gapless sequence, chain links, hashes, signatures
//! and key rotations. Pure (no I/O), constant memory; HQ reuses it for uploaded records.

use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};

use crate::keys::{KEY_ID_LEN, key_id_of, strict_public_key, verify_strict};
use crate::kinds;
use crate::record::{Record, rotation_proof_bytes};
use crate::rules::{self, RuleError};

/// Why a record failed verification. `seq` is the record's own position in the stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("record {seq}: sequence gap: expected {expected}")]
    Gap { seq: u64, expected: u64 },
    #[error("record {seq}: sequence goes backwards or repeats: expected {expected}")]
    Reorder { seq: u64, expected: u64 },
    #[error("record {seq}: belongs to van {found:?}, journal is van {expected:?}")]
    ForeignVan { seq: u64, expected: String, found: String },
    #[error("record {seq}: chain broken: prev_hash does not match the hash of record {}", seq - 1)]
    ChainBroken { seq: u64 },
    #[error("record {seq}: stored hash does not match its contents (altered record)")]
    HashMismatch { seq: u64 },
    #[error("record {seq}: signed by key {found} but the current key is {expected}")]
    WrongKey { seq: u64, expected: String, found: String },
    #[error("record {seq}: signature does not verify (altered record or wrong key)")]
    BadSignature { seq: u64 },
    #[error("record {seq}: {error}")]
    Rule { seq: u64, error: RuleError },
    #[error("record {seq}: {what}")]
    Malformed { seq: u64, what: String },
}

impl VerifyError {
    /// The sequence number of the first bad record.
    pub fn seq(&self) -> u64 {
        match self {
            VerifyError::Gap { seq, .. }
            | VerifyError::Reorder { seq, .. }
            | VerifyError::ForeignVan { seq, .. }
            | VerifyError::ChainBroken { seq }
            | VerifyError::HashMismatch { seq }
            | VerifyError::WrongKey { seq, .. }
            | VerifyError::BadSignature { seq }
            | VerifyError::Rule { seq, .. }
            | VerifyError::Malformed { seq, .. } => *seq,
        }
    }
}

/// Where a verifier stands: enough to resume from a checkpoint without re-reading history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainState {
    /// Van id (empty before the genesis record).
    pub van_id: String,
    /// Sequence number of the last verified record (0 before any).
    pub seq: u64,
    /// Hash of the last verified record (zeros before any).
    pub hash: [u8; 32],
    /// The key that signs the next record.
    pub key: Option<VerifyingKey>,
}

impl ChainState {
    /// The state before record 1.
    pub fn empty() -> Self {
        ChainState { van_id: String::new(), seq: 0, hash: [0; 32], key: None }
    }
}

/// Checks records one by one in sequence order.
#[derive(Debug)]
pub struct ChainVerifier {
    state: ChainState,
    trusted: Option<VerifyingKey>,
    buf: Vec<u8>,
}

impl ChainVerifier {
    /// Verifies from record 1. With `trusted` (the key HQ enrolled), the genesis record must name
    /// that key; without it, the genesis key is taken on trust (a self-consistency check only).
    pub fn from_genesis(trusted: Option<VerifyingKey>) -> Self {
        ChainVerifier { state: ChainState::empty(), trusted, buf: Vec::with_capacity(512) }
    }

    /// Resumes after a verified state (a checkpoint).
    pub fn resume(state: ChainState) -> Self {
        ChainVerifier { state, trusted: None, buf: Vec::with_capacity(512) }
    }

    /// The state after the last record that passed.
    pub fn state(&self) -> &ChainState {
        &self.state
    }

    /// Checks the next record; on success the verifier advances past it.
    pub fn check(&mut self, rec: &Record) -> Result<(), VerifyError> {
        let seq = rec.seq;
        let expected = self.state.seq + 1;
        if seq > expected {
            return Err(VerifyError::Gap { seq, expected });
        }
        if seq < expected {
            return Err(VerifyError::Reorder { seq, expected });
        }
        if seq > 1 && rec.van_id != self.state.van_id {
            return Err(VerifyError::ForeignVan {
                seq,
                expected: self.state.van_id.clone(),
                found: rec.van_id.clone(),
            });
        }
        if rec.prev_hash != self.state.hash {
            return Err(VerifyError::ChainBroken { seq });
        }
        rec.write_signed_bytes(&mut self.buf);
        if <[u8; 32]>::from(Sha256::digest(&self.buf)) != rec.hash {
            return Err(VerifyError::HashMismatch { seq });
        }
        rules::check_record(seq, &rec.van_id, &rec.kind, &rec.payload)
            .map_err(|error| VerifyError::Rule { seq, error })?;
        let malformed = |what: String| VerifyError::Malformed { seq, what };
        let payload: serde_json::Value = serde_json::from_slice(&rec.payload)
            .map_err(|e| malformed(format!("payload is not JSON: {e}")))?;

        let key = if seq == 1 {
            let key = key_from_payload(&payload, "public_key").map_err(malformed)?;
            if let Some(trusted) = &self.trusted
                && trusted != &key
            {
                return Err(VerifyError::WrongKey {
                    seq,
                    expected: hex::encode(key_id_of(trusted)),
                    found: hex::encode(key_id_of(&key)),
                });
            }
            if payload.get("van_id").and_then(|v| v.as_str()) != Some(rec.van_id.as_str()) {
                return Err(malformed("genesis payload van_id differs from the record's van id".into()));
            }
            key
        } else {
            match &self.state.key {
                Some(k) => *k,
                None => return Err(malformed("no signing key known before this record".into())),
            }
        };
        let key_id = key_id_of(&key);
        if rec.key_id != key_id {
            return Err(VerifyError::WrongKey {
                seq,
                expected: hex::encode(key_id),
                found: hex::encode(rec.key_id),
            });
        }
        if !verify_strict(&key, &self.buf, &rec.sig) {
            return Err(VerifyError::BadSignature { seq });
        }

        let mut next_key = key;
        if rec.kind == kinds::KEY_ROTATE {
            let new_key = key_from_payload(&payload, "new_public_key").map_err(malformed)?;
            let proof = payload
                .get("proof")
                .and_then(|v| v.as_str())
                .and_then(|h| hex::decode(h).ok())
                .and_then(|b| <[u8; 64]>::try_from(b).ok())
                .ok_or_else(|| malformed("key.rotate payload lacks a 64-byte hex proof".into()))?;
            let ids = (payload.get("old_key_id"), payload.get("new_key_id"));
            if ids.0.and_then(|v| v.as_str()) != Some(hex::encode(key_id).as_str())
                || ids.1.and_then(|v| v.as_str()) != Some(hex::encode(key_id_of(&new_key)).as_str())
            {
                return Err(malformed("key.rotate key ids do not match the old and new public keys".into()));
            }
            let msg = rotation_proof_bytes(&rec.van_id, seq, &key_id, &new_key);
            if !verify_strict(&new_key, &msg, &proof) {
                return Err(malformed("key.rotate proof is not signed by the new key".into()));
            }
            next_key = new_key;
        }
        self.state = ChainState { van_id: rec.van_id.clone(), seq, hash: rec.hash, key: Some(next_key) };
        Ok(())
    }
}

fn key_from_payload(payload: &serde_json::Value, field: &str) -> Result<VerifyingKey, String> {
    let bytes = payload
        .get(field)
        .and_then(|v| v.as_str())
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| format!("payload field {field:?} is not a 32-byte hex public key"))?;
    strict_public_key(&bytes).map_err(|e| format!("payload field {field:?}: public key refused: {e}"))
}

/// Key id as lowercase hex.
pub fn key_id_hex(id: &[u8; KEY_ID_LEN]) -> String {
    hex::encode(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Draft;
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;

    fn chain(n: u64) -> Vec<Record> {
        let key = SigningKey::from_bytes(&[5; 32]);
        let genesis = serde_json::json!({"format": 1, "public_key": hex::encode(key.verifying_key().as_bytes()), "van_id": "V"});
        let mut prev = [0u8; 32];
        (1..=n)
            .map(|seq| {
                let payload = if seq == 1 { genesis.to_string() } else { format!("{{\"n\":{seq}}}") };
                let kind = if seq == 1 { kinds::GENESIS } else { "test.append" };
                let r = Draft {
                    seq,
                    van_id: "V",
                    time_us: 0,
                    boot_id: [0; 16],
                    boot_us: 0,
                    kind,
                    payload: payload.as_bytes(),
                    prev_hash: prev,
                }
                .seal(&key)
                .unwrap();
                prev = r.hash;
                r
            })
            .collect()
    }

    #[test]
    fn gap_reorder_and_foreign_van_are_named() {
        let recs = chain(4);
        let mut v = ChainVerifier::from_genesis(None);
        v.check(&recs[0]).unwrap();
        v.check(&recs[1]).unwrap();
        assert_eq!(v.check(&recs[3]), Err(VerifyError::Gap { seq: 4, expected: 3 }));
        assert_eq!(v.check(&recs[1]), Err(VerifyError::Reorder { seq: 2, expected: 3 }));
        let mut other = recs[2].clone();
        other.van_id = "W".into();
        assert!(matches!(v.check(&other), Err(VerifyError::ForeignVan { seq: 3, .. })));
        v.check(&recs[2]).unwrap();
    }

    #[test]
    fn record_one_must_be_genesis() {
        let mut rec = chain(1).remove(0);
        rec.kind = "test.append".into();
        rec.hash = Sha256::digest(rec.signed_bytes()).into();
        assert_eq!(
            ChainVerifier::from_genesis(None).check(&rec),
            Err(VerifyError::Rule { seq: 1, error: RuleError::FirstNotGenesis("test.append".into()) })
        );
    }

    proptest! {
        /// Arbitrary field values never panic the verifier; they are rejected.
        #[test]
        fn arbitrary_records_are_rejected_not_panicking(seq in 0u64..4, van in "[A-Z]{0,40}", kind in ".{0,70}",
                payload in proptest::collection::vec(any::<u8>(), 0..64), sig in proptest::collection::vec(any::<u8>(), 64)) {
            let rec = Record { seq, van_id: van, key_id: [0; 8], time_us: 0, boot_id: [0; 16], boot_us: 0, kind,
                payload, prev_hash: [0; 32], hash: [0; 32], sig: sig.try_into().unwrap() };
            prop_assert!(ChainVerifier::from_genesis(None).check(&rec).is_err());
        }
    }
}
