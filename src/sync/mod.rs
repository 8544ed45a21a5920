//! Sync with HQ, the van's side (docs/sync.md): the wire protocol ([`wire`]: request
//! signatures, zstd batches of export lines, HQ's signed acknowledgements and error answers)
//! and the uplink as a pure state machine ([`machine`]). The task in `vand` that drives it over
//! HTTP is a thin shell on top.

pub mod downlink;
pub mod machine;
pub mod wire;

pub use machine::{Event, JournalView, Request, RequestKind, Response, Uplink, UplinkConfig, UplinkError};
pub use wire::{Ack, AuthHeaders, Batch, HqError, HqErrorCode, VerifiedAck};

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
    let mut nonce = [0u8; wire::NONCE_LEN];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    wire::sign_request(signer, van, req.method, req.path, utc_us, &nonce, &req.body)
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

/// A chain of `n` well-formed signed records of one van for tests (key seed 7; `test.note`
/// payloads of about `payload_len` bytes). Record 1 is not a real genesis: the wire and the
/// machine do not look inside records.
#[cfg(test)]
pub(crate) fn test_chain(van: &str, n: u64, payload_len: usize) -> Vec<Record> {
    use ed25519_dalek::{Signer, SigningKey};
    use sha2::{Digest, Sha256};
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
}
