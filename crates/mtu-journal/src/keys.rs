//! Key ids, the strict public-key rule and the signer a writer seals with.
//!
//! Only public-key material and a signing trait live here; reading and writing the van's key file
//! is the van's business, not the format's.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Length of a key id in bytes.
pub const KEY_ID_LEN: usize = 8;

/// Key id of a public key: the first 8 bytes of SHA-256 over its 32 bytes.
pub fn key_id_of(public: &VerifyingKey) -> [u8; KEY_ID_LEN] {
    let digest = Sha256::digest(public.as_bytes());
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&digest[..KEY_ID_LEN]);
    id
}

/// Why 32 bytes are not acceptable as a journal public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PublicKeyError {
    /// Not the encoding of a point on the curve.
    #[error("not a point on the Ed25519 curve")]
    NotOnCurve,
    /// The y coordinate is not reduced below 2^255 − 19 (another encoding of some point).
    #[error("non-canonical point encoding (y is not below 2^255 - 19)")]
    NonCanonical,
    /// One of the 8 points of small order: signatures under it can be forged for any message.
    #[error("a small-order (weak) point: any signature could be forged under it")]
    SmallOrder,
}

/// Decodes a journal public key under the strict rule of docs/journal-format.md: a canonical
/// encoding of a curve point that is not of small order.
pub fn strict_public_key(bytes: &[u8; 32]) -> Result<VerifyingKey, PublicKeyError> {
    let key = VerifyingKey::from_bytes(bytes).map_err(|_| PublicKeyError::NotOnCurve)?;
    if key.to_edwards().compress().to_bytes() != *bytes {
        return Err(PublicKeyError::NonCanonical);
    }
    if key.is_weak() {
        return Err(PublicKeyError::SmallOrder);
    }
    Ok(key)
}

/// Strict Ed25519 verification (docs/journal-format.md, "Strict signatures"): the key must pass
/// [`strict_public_key`]; R must be a canonical, not small-order point; S must be below the group
/// order L; and [S]B = R + [k]A must hold exactly.
pub fn verify_strict(key: &VerifyingKey, message: &[u8], sig: &[u8; 64]) -> bool {
    if strict_public_key(key.as_bytes()).is_err() {
        return false;
    }
    key.verify_strict(message, &Signature::from_bytes(sig)).is_ok()
}

/// What seals records: the holder of a signing key. The van implements it for its key file's key;
/// tests and tools can use an [`ed25519_dalek::SigningKey`] directly.
pub trait SealingKey {
    /// The public half (what HQ enrolls).
    fn public_key(&self) -> VerifyingKey;
    /// Pure Ed25519 (RFC 8032) signature over `message`.
    fn sign_bytes(&self, message: &[u8]) -> Signature;
    /// This key's id (see [`key_id_of`]).
    fn id(&self) -> [u8; KEY_ID_LEN] {
        key_id_of(&self.public_key())
    }
}

impl SealingKey for SigningKey {
    fn public_key(&self) -> VerifyingKey {
        self.verifying_key()
    }
    fn sign_bytes(&self, message: &[u8]) -> Signature {
        self.sign(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The canonical encodings of the 8 points of small order (orders 1, 2, 4, 4, 8, 8, 8, 8).
    pub const SMALL_ORDER: [&str; 8] = [
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    ];

    #[test]
    fn strict_key_rules() {
        // The identity point (0, 1): small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(strict_public_key(&identity), Err(PublicKeyError::SmallOrder));
        // y = p + 1 (≡ 1): a non-canonical encoding of the identity.
        let mut non_canonical = [0xffu8; 32];
        non_canonical[0] = 0xee;
        non_canonical[31] = 0x7f;
        assert_eq!(strict_public_key(&non_canonical), Err(PublicKeyError::NonCanonical));
        for hex_point in SMALL_ORDER {
            let bytes: [u8; 32] = hex::decode(hex_point).unwrap().try_into().unwrap();
            assert_eq!(strict_public_key(&bytes), Err(PublicKeyError::SmallOrder), "{hex_point}");
        }
        let good = SigningKey::from_bytes(&[7; 32]).verifying_key();
        assert_eq!(strict_public_key(good.as_bytes()), Ok(good));
    }
}
