//! The format rules of docs/journal-format.md ("Format rules"), in one place: the van's writer
//! refuses a record that breaks one, `vanctl journal verify` and HQ report it.

use crate::kinds;

/// Longest van id, in bytes.
pub const MAX_VAN_ID: usize = 32;
/// Longest kind, in bytes.
pub const MAX_KIND: usize = 64;
/// Largest payload, in bytes (records are events, not files).
pub const MAX_PAYLOAD: usize = 256 * 1024;

/// A record (or a field of one) that breaks a format rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// Rule 1: the van id's length or characters.
    #[error("van id {0:?} must be 1–32 bytes of A–Z a–z 0–9 - _ .")]
    VanId(String),
    /// Rule 2: the kind's length or characters.
    #[error("kind {0:?} must be 1–64 bytes of a–z 0–9 . _ -")]
    Kind(String),
    /// Rule 3: the payload limit.
    #[error("payload is {0} bytes; the limit is 262144")]
    PayloadSize(usize),
    /// Rule 4: the payload is UTF-8 JSON text.
    #[error("payload is not valid UTF-8 JSON: {0}")]
    PayloadJson(String),
    /// Rule 5: sequence numbers start at 1.
    #[error("sequence number 0: records are numbered from 1")]
    SeqZero,
    /// Rule 6: record 1 is `journal.genesis`.
    #[error("record 1 must be \"journal.genesis\", found {0:?}")]
    FirstNotGenesis(String),
    /// Rule 6: `journal.genesis` only at record 1.
    #[error("\"journal.genesis\" is allowed only as record 1")]
    SecondGenesis,
    /// Rule 7: a catalogued kind's payload must be of its type.
    #[error("{kind} payload does not match the catalogue: {detail}")]
    Payload { kind: String, detail: String },
}

/// Rule 1: a van id is 1–32 bytes of `A–Z a–z 0–9 - _ .`.
pub fn check_van_id(id: &str) -> Result<(), RuleError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_VAN_ID
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok { Ok(()) } else { Err(RuleError::VanId(id.to_owned())) }
}

/// Rule 2: a kind is 1–64 bytes of `a–z 0–9 . _ -`.
pub fn check_kind(kind: &str) -> Result<(), RuleError> {
    let ok = !kind.is_empty()
        && kind.len() <= MAX_KIND
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if ok { Ok(()) } else { Err(RuleError::Kind(kind.to_owned())) }
}

/// Rules 3 and 4: at most 262144 bytes of UTF-8 JSON text.
pub fn check_payload(payload: &[u8]) -> Result<(), RuleError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(RuleError::PayloadSize(payload.len()));
    }
    // Checked first and separately: skipping over a JSON string does not validate its UTF-8.
    let text = std::str::from_utf8(payload)
        .map_err(|e| RuleError::PayloadJson(format!("not UTF-8 at byte {}", e.valid_up_to())))?;
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(|e| RuleError::PayloadJson(e.to_string()))
}

/// Rules 5 and 6: numbering from 1; `journal.genesis` is record 1 and no other.
pub fn check_position(seq: u64, kind: &str) -> Result<(), RuleError> {
    match (seq, kind == kinds::GENESIS) {
        (0, _) => Err(RuleError::SeqZero),
        (1, true) => Ok(()),
        (1, false) => Err(RuleError::FirstNotGenesis(kind.to_owned())),
        (_, true) => Err(RuleError::SecondGenesis),
        (_, false) => Ok(()),
    }
}

/// Rule 7: a record of a catalogued kind carries a payload of that kind's type.
pub fn check_catalogue(kind: &str, payload: &[u8]) -> Result<(), RuleError> {
    match kinds::lookup(kind) {
        Some(spec) => {
            (spec.check)(payload).map_err(|detail| RuleError::Payload { kind: kind.to_owned(), detail })
        }
        None => Ok(()),
    }
}

/// Every rule that concerns one record on its own (all but the chain, which
/// [`crate::verify::ChainVerifier`] checks). The writer calls this before sealing.
pub fn check_record(seq: u64, van_id: &str, kind: &str, payload: &[u8]) -> Result<(), RuleError> {
    check_van_id(van_id)?;
    check_kind(kind)?;
    check_payload(payload)?;
    check_position(seq, kind)?;
    check_catalogue(kind, payload)
}

/// The rules for a record that will follow record 1 (its number is not known yet): what a writer
/// checks when a caller asks to append, so a bad request is refused before it reaches storage.
pub fn check_appended(kind: &str, payload: &[u8]) -> Result<(), RuleError> {
    check_kind(kind)?;
    check_payload(payload)?;
    check_position(u64::MAX, kind)?;
    check_catalogue(kind, payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Any bytes in any field give a verdict, never a panic.
        #[test]
        fn arbitrary_records_never_panic(seq in 0u64..4, van in ".{0,40}", kind in ".{0,70}",
                payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128),
                catalogued in 0usize..kinds::CATALOGUE.len()) {
            let _ = check_record(seq, &van, &kind, &payload);
            let _ = check_catalogue(kinds::CATALOGUE[catalogued].kind, &payload);
        }
    }

    #[test]
    fn each_rule_refuses_what_it_should() {
        assert!(check_van_id("MTU-CAI-0001").is_ok());
        assert!(check_van_id(&"V".repeat(33)).is_err());
        assert!(check_van_id("MTU CAI").is_err());
        assert!(check_kind(&"a".repeat(64)).is_ok());
        assert!(check_kind(&"a".repeat(65)).is_err());
        assert!(check_kind("Daemon.Start").is_err());
        assert!(check_kind("").is_err());
        let big = format!("\"{}\"", "x".repeat(MAX_PAYLOAD - 2));
        assert!(check_payload(big.as_bytes()).is_ok());
        let too_big = format!("\"{}\"", "x".repeat(MAX_PAYLOAD - 1));
        assert_eq!(check_payload(too_big.as_bytes()), Err(RuleError::PayloadSize(MAX_PAYLOAD + 1)));
        assert!(matches!(check_payload(b"{\"a\":"), Err(RuleError::PayloadJson(_))));
        assert!(matches!(check_payload(b"\"\xff\""), Err(RuleError::PayloadJson(_))));
        assert_eq!(check_position(0, "x"), Err(RuleError::SeqZero));
        assert_eq!(check_position(1, "daemon.start"), Err(RuleError::FirstNotGenesis("daemon.start".into())));
        assert_eq!(check_position(7, kinds::GENESIS), Err(RuleError::SecondGenesis));
        assert_eq!(check_appended("journal.genesis", b"{}"), Err(RuleError::SecondGenesis));
        assert!(check_appended("service.issue", b"{}").is_ok());
        assert!(check_position(7, "service.issue").is_ok());
        assert!(check_catalogue("power.fail", br#"{"active":true}"#).is_ok());
        assert!(check_catalogue("power.fail", br#"{"active":"yes"}"#).is_err());
        assert!(check_catalogue("power.fail", br#"{"on":true}"#).is_err());
        assert!(check_catalogue("service.issue", br#"[1]"#).is_ok());
    }
}
