//! The verifiable QR payload printed on documents: a fixed binary layout signed with the van key
//! (Ed25519), encoded as base45 (RFC 9285) so the QR code uses its compact alphanumeric mode.
//! Byte-exact specification: `docs/qr-payload.md`.

use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::keys::{DomainSigner, KEY_ID_LEN, key_id_of};

/// Text prefix of every payload (also tells a scanner app which verifier to use).
pub const PREFIX: &str = "MTU1:";
/// Domain-separation prefix of the signed message, so no other signed van record can pass as a QR.
pub const DOMAIN: &[u8] = b"EG-MTU-QR\x00";
/// Layout version.
pub const VERSION: u8 = 1;
/// Longest van id, bytes.
pub const MAX_VAN_ID: usize = 32;
/// Longest key field (licence or plate number), bytes of UTF-8.
pub const MAX_KEY_FIELD: usize = 64;

const ALPHABET: &[u8; 45] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

/// Public key of the public test seed (32 bytes of `0x42`): it signs only specimens (samples), and
/// a verifier reports a code signed with it as a SPECIMEN, never as a valid document.
pub const SPECIMEN_PUBLIC_KEY: [u8; 32] = [
    0x21, 0x52, 0xf8, 0xd1, 0x9b, 0x79, 0x1d, 0x24, 0x45, 0x32, 0x42, 0xe1, 0x5f, 0x2e, 0xab, 0x6c, 0xb7,
    0xcf, 0xfa, 0x7b, 0x6a, 0x5e, 0xd3, 0x00, 0x97, 0x96, 0x0e, 0x06, 0x98, 0x81, 0xdb, 0x12,
];

/// Key id of [`SPECIMEN_PUBLIC_KEY`].
pub const SPECIMEN_KEY_ID: [u8; KEY_ID_LEN] = [0x30, 0x97, 0xe2, 0xde, 0xe2, 0xcb, 0x4a, 0x34];

/// What the document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocType {
    /// Driving licence card (key field: licence number).
    DrivingLicence = 1,
    /// Vehicle licence card (key field: plate).
    VehicleLicence = 2,
    /// Windscreen sticker label (key field: plate).
    Sticker = 3,
    /// Payment receipt (key field: receipt number; expiry absent).
    Receipt = 4,
}

impl DocType {
    fn from_u8(v: u8) -> Option<DocType> {
        Some(match v {
            1 => DocType::DrivingLicence,
            2 => DocType::VehicleLicence,
            3 => DocType::Sticker,
            4 => DocType::Receipt,
            _ => return None,
        })
    }
    /// English name shown by `vanctl verify-qr`.
    pub fn name(self) -> &'static str {
        match self {
            DocType::DrivingLicence => "driving licence",
            DocType::VehicleLicence => "vehicle licence",
            DocType::Sticker => "windscreen sticker",
            DocType::Receipt => "receipt",
        }
    }
}

/// The signed fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrPayload {
    /// Document type.
    pub doc_type: DocType,
    /// Key id of the signing van key (first 8 bytes of SHA-256 of the public key).
    pub key_id: [u8; KEY_ID_LEN],
    /// Journal sequence number of the record that issued the document.
    pub journal_seq: u64,
    /// Van id as enrolled at HQ.
    pub van_id: String,
    /// Licence number, plate or receipt number.
    pub key_field: String,
    /// Expiry date, if the document has one.
    pub expiry: Option<jiff::civil::Date>,
    /// First 8 bytes of SHA-256 of the issuing journal record (see [`short_hash`]).
    pub short_hash: [u8; 8],
}

/// Why a payload could not be built or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("not a van document QR (expected the prefix {PREFIX:?})")]
    Prefix,
    #[error("base45 text invalid at character {0}")]
    Base45(usize),
    #[error("payload is {0} bytes, too short for the layout")]
    Truncated(usize),
    #[error("layout version {0} is not known (this verifier reads version {VERSION})")]
    Version(u8),
    #[error("document type {0} is not known")]
    DocType(u8),
    #[error("van id must be 1–{MAX_VAN_ID} characters of A–Z a–z 0–9 - _ .")]
    VanId,
    #[error("key field must be 0–{MAX_KEY_FIELD} bytes of UTF-8")]
    KeyField,
    #[error("expiry {0} is not a calendar date")]
    Date(u32),
    #[error("{0} bytes after the signature")]
    Trailing(usize),
    #[error("cannot sign: {0}")]
    Sign(crate::keys::SignError),
}

/// Why a well-formed payload is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("signed by key {payload}, but the key given is {given}")]
    KeyMismatch { payload: String, given: String },
    #[error("signature does not match the fields (altered or forged)")]
    BadSignature,
}

/// First 8 bytes of SHA-256 of `record`: ties the QR to the journal record that issued it.
pub fn short_hash(record: &[u8]) -> [u8; 8] {
    let d = Sha256::digest(record);
    let mut h = [0u8; 8];
    h.copy_from_slice(&d[..8]);
    h
}

/// RFC 9285 base45 encoding.
pub fn base45_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() * 3 / 2 + 2);
    for chunk in data.chunks(2) {
        let (mut n, digits) = match chunk {
            [a, b] => (usize::from(*a) * 256 + usize::from(*b), 3),
            [a] => (usize::from(*a), 2),
            _ => continue,
        };
        for _ in 0..digits {
            out.push(char::from(ALPHABET[n % 45]));
            n /= 45;
        }
    }
    out
}

/// RFC 9285 base45 decoding; rejects characters outside the alphabet and out-of-range groups.
pub fn base45_decode(text: &str) -> Result<Vec<u8>, PayloadError> {
    let vals: Vec<usize> = text
        .bytes()
        .enumerate()
        .map(|(i, c)| ALPHABET.iter().position(|&a| a == c).ok_or(PayloadError::Base45(i)))
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(vals.len() * 2 / 3);
    for (k, g) in vals.chunks(3).enumerate() {
        match g {
            [c, d, e] => {
                let n = c + d * 45 + e * 45 * 45;
                if n > 0xFFFF {
                    return Err(PayloadError::Base45(k * 3));
                }
                out.extend_from_slice(&[(n >> 8) as u8, n as u8]);
            }
            [c, d] => {
                let n = c + d * 45;
                if n > 0xFF {
                    return Err(PayloadError::Base45(k * 3));
                }
                out.push(n as u8);
            }
            _ => return Err(PayloadError::Base45(k * 3)),
        }
    }
    Ok(out)
}

fn van_id_ok(s: &str) -> bool {
    (1..=MAX_VAN_ID).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn date_u32(d: Option<jiff::civil::Date>) -> u32 {
    d.map_or(0, |d| d.year() as u32 * 10_000 + d.month() as u32 * 100 + d.day() as u32)
}

impl QrPayload {
    /// The signed body (everything but the signature), big-endian.
    pub fn body(&self) -> Result<Vec<u8>, PayloadError> {
        if !van_id_ok(&self.van_id) {
            return Err(PayloadError::VanId);
        }
        if self.key_field.len() > MAX_KEY_FIELD {
            return Err(PayloadError::KeyField);
        }
        let mut b = Vec::with_capacity(40 + self.van_id.len() + self.key_field.len());
        b.push(VERSION);
        b.push(self.doc_type as u8);
        b.extend_from_slice(&self.key_id);
        b.extend_from_slice(&self.journal_seq.to_be_bytes());
        b.push(self.van_id.len() as u8);
        b.extend_from_slice(self.van_id.as_bytes());
        b.push(self.key_field.len() as u8);
        b.extend_from_slice(self.key_field.as_bytes());
        b.extend_from_slice(&date_u32(self.expiry).to_be_bytes());
        b.extend_from_slice(&self.short_hash);
        Ok(b)
    }

    /// Signs through the van's signer (the journal's, while vand runs; a [`VanKey`] in tools) and
    /// returns the QR text (`MTU1:` + base45(body ‖ signature)). The payload's key id, which is
    /// part of what is signed, is the signer's current key; a key rotation between the two steps
    /// is noticed and the body signed again.
    pub fn sign<S: DomainSigner + ?Sized>(mut self, signer: &S) -> Result<String, PayloadError> {
        for _ in 0..3 {
            self.key_id = signer.current_key_id().map_err(PayloadError::Sign)?;
            let body = self.body()?;
            let sig = signer.sign_domain(DOMAIN, &body).map_err(PayloadError::Sign)?;
            if sig.key_id != self.key_id {
                continue;
            }
            let mut all = body;
            all.extend_from_slice(&sig.signature.to_bytes());
            return Ok(format!("{PREFIX}{}", base45_encode(&all)));
        }
        Err(PayloadError::Sign(crate::keys::SignError::Closed))
    }

    /// Reads a QR text into its fields and signature, without checking the signature.
    pub fn parse(text: &str) -> Result<(QrPayload, Signature, Vec<u8>), PayloadError> {
        let b45 = text.trim().strip_prefix(PREFIX).ok_or(PayloadError::Prefix)?;
        let all = base45_decode(b45)?;
        let short = || PayloadError::Truncated(all.len());
        let mut r = Reader { buf: &all, pos: 0 };
        let version = r.u8().ok_or_else(short)?;
        if version != VERSION {
            return Err(PayloadError::Version(version));
        }
        let t = r.u8().ok_or_else(short)?;
        let doc_type = DocType::from_u8(t).ok_or(PayloadError::DocType(t))?;
        let key_id: [u8; KEY_ID_LEN] =
            r.take(KEY_ID_LEN).and_then(|s| s.try_into().ok()).ok_or_else(short)?;
        let journal_seq = u64::from_be_bytes(r.take(8).and_then(|s| s.try_into().ok()).ok_or_else(short)?);
        let n = usize::from(r.u8().ok_or_else(short)?);
        let van_id =
            std::str::from_utf8(r.take(n).ok_or_else(short)?).map_err(|_| PayloadError::VanId)?.to_owned();
        if !van_id_ok(&van_id) {
            return Err(PayloadError::VanId);
        }
        let n = usize::from(r.u8().ok_or_else(short)?);
        if n > MAX_KEY_FIELD {
            return Err(PayloadError::KeyField);
        }
        let key_field =
            std::str::from_utf8(r.take(n).ok_or_else(short)?).map_err(|_| PayloadError::KeyField)?.to_owned();
        let d = u32::from_be_bytes(r.take(4).and_then(|s| s.try_into().ok()).ok_or_else(short)?);
        let expiry = if d == 0 {
            None
        } else {
            let (y, m, day) = (d / 10_000, (d / 100) % 100, d % 100);
            let date = i16::try_from(y)
                .ok()
                .and_then(|y| jiff::civil::Date::new(y, m as i8, day as i8).ok())
                .ok_or(PayloadError::Date(d))?;
            Some(date)
        };
        let short_hash: [u8; 8] = r.take(8).and_then(|s| s.try_into().ok()).ok_or_else(short)?;
        let body_len = r.pos;
        let sig: [u8; 64] = r.take(64).and_then(|s| s.try_into().ok()).ok_or_else(short)?;
        if r.pos != all.len() {
            return Err(PayloadError::Trailing(all.len() - r.pos));
        }
        let payload = QrPayload { doc_type, key_id, journal_seq, van_id, key_field, expiry, short_hash };
        Ok((payload, Signature::from_bytes(&sig), all[..body_len].to_vec()))
    }

    /// Whether the payload names the public test key: a specimen, whatever its signature.
    pub fn is_specimen(&self) -> bool {
        self.key_id == SPECIMEN_KEY_ID
    }

    /// Checks the signature of a parsed payload against `key` (strict Ed25519).
    pub fn verify(&self, body: &[u8], sig: &Signature, key: &VerifyingKey) -> Result<(), VerifyError> {
        let given = key_id_of(key);
        if given != self.key_id {
            return Err(VerifyError::KeyMismatch {
                payload: hex::encode(self.key_id),
                given: hex::encode(given),
            });
        }
        let mut msg = DOMAIN.to_vec();
        msg.extend_from_slice(body);
        key.verify_strict(&msg, sig).map_err(|_| VerifyError::BadSignature)
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::VanKey;
    use proptest::prelude::*;

    fn sample() -> QrPayload {
        QrPayload {
            doc_type: DocType::VehicleLicence,
            key_id: [0; 8],
            journal_seq: 4711,
            van_id: "CAI-07".into(),
            key_field: "أ ب ج 1234".into(),
            expiry: Some(jiff::civil::date(2027, 11, 30)),
            short_hash: short_hash(b"record"),
        }
    }

    #[test]
    fn base45_rfc9285_vectors() {
        assert_eq!(base45_encode(b"AB"), "BB8");
        assert_eq!(base45_encode(b"Hello!!"), "%69 VD92EX0");
        assert_eq!(base45_encode(b"base-45"), "UJCLQE7W581");
        assert_eq!(base45_decode("QED8WEX0").unwrap(), b"ietf!");
        assert!(base45_decode("GGW").is_err()); // 65536 is out of range
        assert!(base45_decode("A").is_err());
        assert!(base45_decode("ab").is_err());
    }

    #[test]
    fn sign_verify_round_trip_and_tamper() {
        let key = VanKey::from_seed(&[0x42; 32]);
        let text = sample().sign(&key).unwrap();
        assert!(text.starts_with(PREFIX));
        let (p, sig, body) = QrPayload::parse(&text).unwrap();
        assert_eq!(p.key_field, "أ ب ج 1234");
        assert_eq!(p.key_id, key.key_id());
        p.verify(&body, &sig, &key.verifying_key()).unwrap();

        // Change one field: the signature no longer matches.
        let mut bad = p.clone();
        bad.journal_seq += 1;
        let bad_body = bad.body().unwrap();
        assert_eq!(bad.verify(&bad_body, &sig, &key.verifying_key()), Err(VerifyError::BadSignature));
        // Flip one base45 character somewhere in the text.
        let mut chars: Vec<char> = text.chars().collect();
        let i = PREFIX.len() + 40;
        chars[i] = if chars[i] == '0' { '1' } else { '0' };
        let flipped: String = chars.into_iter().collect();
        if let Ok((p2, s2, b2)) = QrPayload::parse(&flipped) {
            assert!(p2.verify(&b2, &s2, &key.verifying_key()).is_err());
        }
        // Another van's key.
        let other = VanKey::from_seed(&[0x43; 32]);
        assert!(matches!(
            p.verify(&body, &sig, &other.verifying_key()),
            Err(VerifyError::KeyMismatch { .. })
        ));
    }

    #[test]
    fn layout_is_byte_exact() {
        let key = VanKey::from_seed(&[0x42; 32]);
        let mut p = sample();
        p.key_id = key.key_id();
        let body = p.body().unwrap();
        assert_eq!(body[0], 1);
        assert_eq!(body[1], 2);
        assert_eq!(&body[2..10], &key.key_id());
        assert_eq!(&body[10..18], &4711u64.to_be_bytes());
        assert_eq!(body[18], 6);
        assert_eq!(&body[19..25], b"CAI-07");
        let kf = "أ ب ج 1234".as_bytes();
        assert_eq!(body[25] as usize, kf.len());
        let after = 26 + kf.len();
        assert_eq!(&body[after..after + 4], &20271130u32.to_be_bytes());
        assert_eq!(body.len(), after + 4 + 8);
    }

    /// The worked example of docs/qr-payload.md, byte for byte (public test seed 0x42 × 32).
    #[test]
    fn documented_worked_example() {
        let key = VanKey::from_seed(&[0x42; 32]);
        assert_eq!(
            hex::encode(key.verifying_key().as_bytes()),
            "2152f8d19b791d24453242e15f2eab6cb7cffa7b6a5ed30097960e069881db12"
        );
        assert_eq!(key.verifying_key().as_bytes(), &SPECIMEN_PUBLIC_KEY);
        assert_eq!(key.key_id(), SPECIMEN_KEY_ID);
        let p = QrPayload {
            doc_type: DocType::VehicleLicence,
            key_id: key.key_id(),
            journal_seq: 4710,
            van_id: "CAI-07".into(),
            key_field: "أ ب ج 1234".into(),
            expiry: Some(jiff::civil::date(2029, 11, 22)),
            short_hash: short_hash(b"sample record 4710"),
        };
        assert_eq!(
            hex::encode(p.body().unwrap()),
            "01023097e2dee2cb4a340000000000001266064341492d30370dd8a320d8a820d8ac203132333401359e32e861292974dc3ef1"
        );
        let text = p.sign(&key).unwrap();
        assert_eq!(
            text,
            "MTU1:X50J66SUS9US6H9000000000UE2SZ0IB83W58/6JHR%64KBLSHR634QF6%P61Z6RJ6XCC$A5.$RFOUAXBAA59TLTKO:\
             OTBLNAN8.MMPAKJ$0QLR:4GZ3CPK2AMV5BS HLV9008J$NJF9I X545QPY4GWFQ+OBLPR%LNX8%O4-2LC0"
        );
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(QrPayload::parse("HELLO").unwrap_err(), PayloadError::Prefix);
        assert!(matches!(QrPayload::parse("MTU1:00").unwrap_err(), PayloadError::Version(0)));
        let key = VanKey::from_seed(&[1; 32]);
        let text = sample().sign(&key).unwrap();
        let mut raw = base45_decode(&text[PREFIX.len()..]).unwrap();
        raw.push(0);
        let long = format!("{PREFIX}{}", base45_encode(&raw));
        assert_eq!(QrPayload::parse(&long).unwrap_err(), PayloadError::Trailing(1));
        raw.truncate(raw.len() - 10);
        let short = format!("{PREFIX}{}", base45_encode(&raw));
        assert!(matches!(QrPayload::parse(&short).unwrap_err(), PayloadError::Truncated(_)));
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in ".{0,300}") {
            let _ = QrPayload::parse(&s);
            let _ = QrPayload::parse(&format!("{PREFIX}{s}"));
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = QrPayload::parse(&format!("{PREFIX}{}", base45_encode(&b)));
        }
    }
}
