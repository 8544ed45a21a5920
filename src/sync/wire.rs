//! Wire protocol v1 (docs/sync.md) lives in the shared `mtu-sync` crate, which HQ uses too; this
//! module re-exports it and adds what only the van does: signing a request with the journal
//! writer's key.

pub use mtu_sync::*;

use crate::keys::DomainSigner;

/// Signs one request with the van's current key and returns its authentication headers.
pub fn sign_request(
    signer: &(impl DomainSigner + ?Sized),
    van: &str,
    method: &str,
    path: &str,
    utc_us: i64,
    nonce: &[u8; NONCE_LEN],
    body: &[u8],
) -> Result<AuthHeaders, WireError> {
    let time = request_time_text(utc_us);
    let message = request_message(van, method, path, &time, nonce, body)?;
    let signed = signer.sign_domain(REQUEST_DOMAIN, &message).map_err(|e| WireError::Sign(e.to_string()))?;
    Ok(auth_headers(van, time, nonce, &signed.signature.to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::VanKey;

    #[test]
    fn request_domain_is_accepted_by_the_signer_rules() {
        crate::keys::check_domain(REQUEST_DOMAIN).unwrap();
        crate::keys::check_domain(ACK_DOMAIN).unwrap();
    }

    #[test]
    fn signed_request_verifies_and_any_change_breaks_it() {
        let key = VanKey::from_seed(&[9u8; 32]);
        let nonce = [3u8; 16];
        let h = sign_request(&key, "MTU-1", "POST", PATH_RECORDS, 1_764_588_180_123_456, &nonce, b"body")
            .unwrap();
        assert_eq!(h.time, "2025-12-01T11:23:00Z");
        assert_eq!(h.nonce, "03".repeat(16));
        assert_eq!(h.signature.len(), 128);
        let pk = key.verifying_key();
        assert!(verify_request(&pk, "POST", PATH_RECORDS, &h, b"body"));
        assert!(!verify_request(&pk, "POST", PATH_RECORDS, &h, b"bodY"));
        assert!(!verify_request(&pk, "GET", PATH_RECORDS, &h, b"body"));
        assert!(!verify_request(&pk, "POST", PATH_ACK, &h, b"body"));
        let mut other = h.clone();
        other.time = "2025-12-01T11:23:01Z".into();
        assert!(!verify_request(&pk, "POST", PATH_RECORDS, &other, b"body"));
        let mut upper = h.clone();
        upper.signature = upper.signature.to_uppercase();
        assert!(!verify_request(&pk, "POST", PATH_RECORDS, &upper, b"body"));
    }
}
