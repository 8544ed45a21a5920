//! The van's Ed25519 signing key: created once with mode 0600, refused if anyone but the owner can
//! read it, wiped from memory on drop.
//!
//! The key file is PKCS#8 v1 PEM (`-----BEGIN PRIVATE KEY-----`, RFC 8410 `PrivateKeyInfo` holding
//! the 32-byte seed, the form `openssl genpkey -algorithm ed25519` writes), so OpenSSL 3 loads it.
//! Older v2 files (with the public key appended) are still read.
//! HQ enrolls the van's genesis key (`vanctl pubkey`) and follows `key.rotate` records from there;
//! the key id used in records is the first 8 bytes of SHA-256 of the 32-byte public key.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

// Key ids are part of the shared journal format.
pub use mtu_journal::keys::{KEY_ID_LEN, key_id_of};

/// DER prefix of an Ed25519 PKCS#8 v1 `PrivateKeyInfo` (RFC 8410 section 7): SEQUENCE, version 0,
/// AlgorithmIdentifier id-Ed25519 (1.3.101.112), OCTET STRING wrapping the 32-byte seed.
const PKCS8_V1_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

/// Where a key rotation (or a van's first start) stages the new key, `<key>.new`, until the record
/// that hands over to it is committed.
pub fn staged_key_path(key_path: &Path) -> PathBuf {
    let mut staged = key_path.as_os_str().to_owned();
    staged.push(".new");
    PathBuf::from(staged)
}

/// Something that signs domain-separated bytes with the van's key: the journal writer while vand
/// runs (the key file is loaded once), or a [`VanKey`] in tools and tests.
pub trait DomainSigner {
    /// Signs `domain || message`. `domain` must end with one 0x00 byte and contain no other, so
    /// that no two domains can produce the same signed bytes; the journal's own domains are
    /// refused. Returns the signature and the id and public half of the key that made it.
    fn sign_domain(&self, domain: &[u8], message: &[u8]) -> Result<DomainSignature, SignError>;

    /// Id of the key that signs now (signed formats that name their key, such as the documents'
    /// QR codes, put it inside what is signed).
    fn current_key_id(&self) -> Result<[u8; KEY_ID_LEN], SignError>;
}

/// A signature made by a [`DomainSigner`] and the key that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainSignature {
    /// Ed25519 signature over `domain || message`.
    pub signature: Signature,
    /// Id of the signing key.
    pub key_id: [u8; KEY_ID_LEN],
    /// Public half of the signing key.
    pub public_key: VerifyingKey,
}

/// Why bytes were not signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("signing domain {0:?} must be 2–64 bytes ending in one 0x00 byte and contain no other 0x00")]
    BadDomain(String),
    #[error("signing domain {0:?} is reserved for journal records and key rotations")]
    Reserved(String),
    #[error("the journal writer (which holds the van's key) has stopped")]
    Closed,
}

/// Domains the journal signs with; [`DomainSigner`] refuses them.
pub const RESERVED_DOMAINS: [&[u8]; 2] =
    [crate::journal::record::RECORD_DOMAIN, crate::journal::record::ROTATION_DOMAIN];

/// Checks a signing domain (see [`DomainSigner::sign_domain`]).
pub fn check_domain(domain: &[u8]) -> Result<(), SignError> {
    let shown = || String::from_utf8_lossy(domain).into_owned();
    let ok = (2..=64).contains(&domain.len())
        && domain.last() == Some(&0)
        && !domain[..domain.len() - 1].contains(&0);
    if !ok {
        return Err(SignError::BadDomain(shown()));
    }
    if RESERVED_DOMAINS.contains(&domain) {
        return Err(SignError::Reserved(shown()));
    }
    Ok(())
}

/// Why a key could not be created or loaded. Messages name the file; none contains key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing key {path}: file does not exist (create it with `vanctl keygen`)")]
    Missing { path: PathBuf },
    #[error(
        "signing key {path}: permissions {mode:04o} let group or others access it; \
         run `chmod 600 {path}` (and check who may have copied it)"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("signing key {path}: not a regular file")]
    NotAFile { path: PathBuf },
    #[error("signing key {path}: cannot read: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("signing key {path}: not a PKCS#8 Ed25519 private key in PEM form")]
    Malformed { path: PathBuf },
    #[error("signing key {path}: already exists; refusing to overwrite a van key")]
    Exists { path: PathBuf },
    #[error("signing key {path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The van's signing key. `SigningKey` zeroizes its secret on drop; the PEM text we read or write
/// is held in `Zeroizing` buffers. `Debug` prints only the key id.
pub struct VanKey {
    signing: SigningKey,
    /// [`key_id_of`] the public half, computed once (every record carries it).
    key_id: [u8; KEY_ID_LEN],
}

impl std::fmt::Debug for VanKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VanKey(key_id={})", hex::encode(self.key_id()))
    }
}

impl VanKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        Self::from_signing(SigningKey::generate(&mut rand_core::OsRng))
    }

    /// A key from a 32-byte seed (tests and the documented worked example only).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self::from_signing(SigningKey::from_bytes(seed))
    }

    /// Loads a key file, refusing one that group or others may access.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let meta = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeyError::Missing { path: path.to_owned() });
            }
            Err(source) => return Err(KeyError::Unreadable { path: path.to_owned(), source }),
        };
        if !meta.is_file() {
            return Err(KeyError::NotAFile { path: path.to_owned() });
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions { path: path.to_owned(), mode });
        }
        let text = Zeroizing::new(
            fs::read_to_string(path)
                .map_err(|source| KeyError::Unreadable { path: path.to_owned(), source })?,
        );
        let signing =
            SigningKey::from_pkcs8_pem(&text).map_err(|_| KeyError::Malformed { path: path.to_owned() })?;
        Ok(Self::from_signing(signing))
    }

    fn from_signing(signing: SigningKey) -> Self {
        let key_id = key_id_of(&signing.verifying_key());
        VanKey { signing, key_id }
    }

    /// Writes this key to a new file with mode 0600 (never overwrites), syncing file and folder.
    pub fn save_new(&self, path: &Path) -> Result<(), KeyError> {
        let werr = |source| KeyError::Write { path: path.to_owned(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir).map_err(werr)?;
        }
        let pem = self.to_pem();
        let mut file = match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(KeyError::Exists { path: path.to_owned() });
            }
            Err(e) => return Err(werr(e)),
        };
        // The umask can only remove bits; make sure nothing else was added either.
        file.set_permissions(fs::Permissions::from_mode(0o600)).map_err(werr)?;
        file.write_all(pem.as_bytes()).map_err(werr)?;
        file.sync_all().map_err(werr)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::File::open(dir).and_then(|d| d.sync_all()).map_err(werr)?;
        }
        Ok(())
    }

    /// The key as PKCS#8 v1 PEM (64-column base64 lines, LF), held in a wiped buffer.
    fn to_pem(&self) -> Zeroizing<String> {
        use base64::Engine;
        let mut der = Zeroizing::new([0u8; 48]);
        der[..16].copy_from_slice(&PKCS8_V1_PREFIX);
        der[16..].copy_from_slice(self.signing.as_bytes());
        let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der.as_ref()));
        let mut pem = Zeroizing::new(String::with_capacity(128));
        pem.push_str("-----BEGIN PRIVATE KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        pem
    }

    /// The public half, as HQ enrolls it.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// This key's id (see [`key_id_of`]).
    pub fn key_id(&self) -> [u8; KEY_ID_LEN] {
        self.key_id
    }

    /// Signs `message` (Ed25519, RFC 8032, pure: the message itself, not a pre-hash).
    pub fn sign(&self, message: &[u8]) -> Signature {
        self.signing.sign(message)
    }
}

impl DomainSigner for VanKey {
    fn sign_domain(&self, domain: &[u8], message: &[u8]) -> Result<DomainSignature, SignError> {
        check_domain(domain)?;
        let mut bytes = Vec::with_capacity(domain.len() + message.len());
        bytes.extend_from_slice(domain);
        bytes.extend_from_slice(message);
        Ok(DomainSignature {
            signature: self.sign(&bytes),
            key_id: self.key_id(),
            public_key: self.verifying_key(),
        })
    }

    fn current_key_id(&self) -> Result<[u8; KEY_ID_LEN], SignError> {
        Ok(self.key_id())
    }
}

/// Mode of the state folder: the owner (the `mtu` service user) writes; its group may read
/// (technicians verifying or exporting); others nothing. Journal files get 0640, the key 0600.
pub const STATE_DIR_MODE: u32 = 0o750;

/// Creates `dir` (and missing parents) with [`STATE_DIR_MODE`] whatever the process umask; an
/// existing folder is left as it is.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new().recursive(true).mode(STATE_DIR_MODE).create(dir)?;
    // The umask may have removed group bits; never add any beyond 0750.
    fs::set_permissions(dir, fs::Permissions::from_mode(STATE_DIR_MODE))
}

/// The journal writer seals records with the van's key.
impl mtu_journal::SealingKey for VanKey {
    fn public_key(&self) -> VerifyingKey {
        self.verifying_key()
    }
    fn sign_bytes(&self, message: &[u8]) -> Signature {
        self.sign(message)
    }
    fn id(&self) -> [u8; KEY_ID_LEN] {
        self.key_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_round_trip_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k/van.key");
        let key = VanKey::generate();
        key.save_new(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let back = VanKey::load(&path).unwrap();
        assert_eq!(back.verifying_key(), key.verifying_key());
        assert!(matches!(key.save_new(&path), Err(KeyError::Exists { .. })));
    }

    #[test]
    fn refuses_group_or_world_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("van.key");
        VanKey::generate().save_new(&path).unwrap();
        for mode in [0o640, 0o604, 0o660, 0o644] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = VanKey::load(&path).unwrap_err();
            assert!(matches!(err, KeyError::Permissions { .. }), "{mode:o}: {err}");
            assert!(err.to_string().contains("chmod 600"));
        }
    }

    #[test]
    fn missing_and_malformed_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("van.key");
        assert!(matches!(VanKey::load(&path), Err(KeyError::Missing { .. })));
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap()
            .write_all(b"not a key")
            .unwrap();
        let err = VanKey::load(&path).unwrap_err();
        assert!(matches!(err, KeyError::Malformed { .. }));
        assert!(err.to_string().contains(path.to_str().unwrap()));
    }

    /// The key file is what OpenSSL 3 writes and reads: `openssl pkey -pubout` gives our public key.
    #[test]
    fn openssl_loads_the_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("van.key");
        let key = VanKey::generate();
        key.save_new(&path).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-outform", "DER", "-in"])
            .arg(&path)
            .output()
            .unwrap_or_else(|e| {
                panic!("openssl not runnable ({e}): run tools/test, which installs the openssl package")
            });
        assert!(
            out.status.success(),
            "openssl pkey refused the key: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // SubjectPublicKeyInfo for Ed25519: 12-byte header, then the 32-byte public key.
        assert_eq!(out.stdout.len(), 44);
        assert_eq!(&out.stdout[12..], key.verifying_key().as_bytes());
        // And a key OpenSSL generated loads here with the same public key.
        let theirs = dir.path().join("openssl.key");
        let generated = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "ed25519", "-out"])
            .arg(&theirs)
            .output()
            .unwrap();
        assert!(generated.status.success());
        fs::set_permissions(&theirs, fs::Permissions::from_mode(0o600)).unwrap();
        let pubout = std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-outform", "DER", "-in"])
            .arg(&theirs)
            .output()
            .unwrap();
        assert_eq!(&pubout.stdout[12..], VanKey::load(&theirs).unwrap().verifying_key().as_bytes());
    }

    #[test]
    fn v2_key_files_still_load() {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("van.key");
        let key = VanKey::from_seed(&[3u8; 32]);
        let pem = key.signing.to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF).unwrap();
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap()
            .write_all(pem.as_bytes())
            .unwrap();
        assert_eq!(VanKey::load(&path).unwrap().verifying_key(), key.verifying_key());
    }

    #[test]
    fn domain_signing_refuses_journal_domains_and_ambiguous_ones() {
        let key = VanKey::from_seed(&[7u8; 32]);
        for bad in [&b"EG-MTU-QR"[..], b"\0", b"a\0b\0", b""] {
            assert!(matches!(key.sign_domain(bad, b"x"), Err(SignError::BadDomain(_))), "{bad:?}");
        }
        for reserved in RESERVED_DOMAINS {
            assert!(matches!(key.sign_domain(reserved, b"x"), Err(SignError::Reserved(_))));
        }
        let s = key.sign_domain(b"EG-MTU-QR\0", b"body").unwrap();
        assert_eq!(s.key_id, key.key_id());
        key.verifying_key().verify_strict(b"EG-MTU-QR\0body", &s.signature).unwrap();
    }

    #[test]
    fn private_dir_is_0750_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("a/state");
        create_private_dir(&state).unwrap();
        assert_eq!(fs::metadata(&state).unwrap().mode() & 0o777, 0o750);
    }

    #[test]
    fn debug_never_shows_secret() {
        let key = VanKey::from_seed(&[7u8; 32]);
        let shown = format!("{key:?}");
        assert!(!shown.contains(&hex::encode([7u8; 32])));
        assert!(shown.contains(&hex::encode(key.key_id())));
    }
}
