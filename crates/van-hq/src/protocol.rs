//! Wire protocol v1 as HQ uses it. Every byte layout (request signatures, acknowledgements,
//! checkpoints, error bodies, batches) lives in the shared crate `mtu-sync`, which the van uses
//! too; this module re-exports it and adds only HQ's view of an acknowledgement it signed.

use ed25519_dalek::{SigningKey, VerifyingKey};

pub use mtu_sync::{
    ACK_DOMAIN, AckError, AuthHeaders, CheckpointJson, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIME,
    HEADER_VAN, MAX_BATCH_BYTES, MAX_BATCH_RECORDS, MAX_CLOCK_SKEW_S, PATH_ACK, PATH_CHECKPOINT,
    PATH_RECORDS, REQUEST_DOMAIN, VerifiedAck, error_body, parse_utc, verify_ack, verify_request,
};

/// An acknowledgement HQ signed: what it states and the JSON answer as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedAck {
    /// What is acknowledged.
    pub ack: VerifiedAck,
    /// `{"ack":{…},"sig":"…"}` exactly as sent.
    pub json: String,
}

impl SignedAck {
    /// Signs that HQ holds `van`'s records up to `seq` (head `head_hash`) as of `time_us`.
    pub fn sign(key: &SigningKey, van: &str, seq: u64, head_hash: &[u8; 32], time_us: i64) -> Self {
        let json = mtu_sync::sign_ack(key, &mtu_sync::Ack { van, seq, head_hash: *head_hash, time_us });
        SignedAck { ack: VerifiedAck { van: van.to_owned(), seq, head_hash: *head_hash, time_us }, json }
    }

    /// Checks the answer as a van does (strict signature with HQ's public key).
    pub fn verify(&self, hq: &VerifyingKey) -> Result<VerifiedAck, AckError> {
        verify_ack(self.json.as_bytes(), hq)
    }
}

/// `N` bytes from exactly `2N` lowercase hex digits, or what is wrong.
pub fn hex_array<const N: usize>(text: &str) -> Result<[u8; N], String> {
    mtu_sync::lower_hex(text)
        .ok_or_else(|| format!("expected {} lowercase hex digits, got {} characters", 2 * N, text.len()))
}

/// Formats microseconds since the epoch as RFC 3339 UTC with six decimals.
pub use mtu_journal::export::format_utc_us as format_time_us;
