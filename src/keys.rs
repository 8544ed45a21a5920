//! The van's Ed25519 signing key: created once with mode 0600, refused if anyone but the owner can
//! read it, wiped from memory on drop.
//!
//! The key file is PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), so `openssl pkey` can read it too.
//! The public key is what HQ enrolls (`vanctl pubkey`); the key id used in records is the first
//! 8 bytes of SHA-256 of the 32-byte public key.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

// Key ids are part of the shared journal format.
pub use mtu_journal::keys::{KEY_ID_LEN, key_id_of};

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
}

impl std::fmt::Debug for VanKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VanKey(key_id={})", hex::encode(self.key_id()))
    }
}

impl VanKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        VanKey { signing: SigningKey::generate(&mut rand_core::OsRng) }
    }

    /// A key from a 32-byte seed (tests and the documented worked example only).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        VanKey { signing: SigningKey::from_bytes(seed) }
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
        Ok(VanKey { signing })
    }

    /// Writes this key to a new file with mode 0600 (never overwrites), syncing file and folder.
    pub fn save_new(&self, path: &Path) -> Result<(), KeyError> {
        let werr = |source| KeyError::Write { path: path.to_owned(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(werr)?;
        }
        let pem = self
            .signing
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|e| werr(std::io::Error::other(e.to_string())))?;
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

    /// Loads the key at `path`, or creates it if it does not exist (simulation mode only).
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), KeyError> {
        match Self::load(path) {
            Ok(k) => Ok((k, false)),
            Err(KeyError::Missing { .. }) => {
                let key = Self::generate();
                key.save_new(path)?;
                Ok((key, true))
            }
            Err(e) => Err(e),
        }
    }

    /// The public half, as HQ enrolls it.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// This key's id (see [`key_id_of`]).
    pub fn key_id(&self) -> [u8; KEY_ID_LEN] {
        key_id_of(&self.verifying_key())
    }

    /// Signs `message` (Ed25519, RFC 8032, pure: the message itself, not a pre-hash).
    pub fn sign(&self, message: &[u8]) -> Signature {
        self.signing.sign(message)
    }
}

/// The journal writer seals records with the van's key.
impl mtu_journal::SealingKey for VanKey {
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

    #[test]
    fn debug_never_shows_secret() {
        let key = VanKey::from_seed(&[7u8; 32]);
        let shown = format!("{key:?}");
        assert!(!shown.contains(&hex::encode([7u8; 32])));
        assert!(shown.contains(&hex::encode(key.key_id())));
    }
}
