//! HQ's signing key (it signs acknowledgements and, later, down-sync bundles).
//!
//! Same file format as the van's key: PKCS#8 v1 PEM (`-----BEGIN PRIVATE KEY-----`, RFC 8410,
//! the form `openssl genpkey -algorithm ed25519` writes), mode 0600, never overwritten; a file
//! that group or others may access is refused. The secret is wiped from memory on drop.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, KeypairBytes, spki::der::pem::LineEnding};
use zeroize::Zeroizing;

/// Why HQ's key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HqKeyError {
    #[error("HQ key {path}: not found (create it with `van-hq keygen --key {path}`)")]
    Missing { path: PathBuf },
    #[error("HQ key {path}: mode {mode:04o} lets others read it; it must be 0600 (chmod 600 {path})")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("HQ key {path}: not a regular file")]
    NotAFile { path: PathBuf },
    #[error("HQ key {path}: cannot read: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("HQ key {path}: not a PKCS#8 Ed25519 private key in PEM form")]
    Malformed { path: PathBuf },
    #[error("HQ key {path}: already exists; refusing to overwrite it")]
    Exists { path: PathBuf },
    #[error("HQ key {path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Creates a new key at `path` (mode 0600, never overwriting) and returns it.
pub fn generate(path: &Path) -> Result<SigningKey, HqKeyError> {
    let key = SigningKey::generate(&mut rand_core::OsRng);
    save_new(&key, path)?;
    Ok(key)
}

/// Writes `key` to a new file with mode 0600, syncing it.
pub fn save_new(key: &SigningKey, path: &Path) -> Result<(), HqKeyError> {
    let werr = |source| HqKeyError::Write { path: path.to_owned(), source };
    // v1 (seed only), as OpenSSL writes it.
    let pem = KeypairBytes { secret_key: key.to_bytes(), public_key: None }
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| werr(std::io::Error::other(e.to_string())))?;
    let mut file = match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(HqKeyError::Exists { path: path.to_owned() });
        }
        Err(e) => return Err(werr(e)),
    };
    file.set_permissions(fs::Permissions::from_mode(0o600)).map_err(werr)?;
    file.write_all(pem.as_bytes()).map_err(werr)?;
    file.sync_all().map_err(werr)
}

/// Loads HQ's key, refusing a file that group or others may access.
pub fn load(path: &Path) -> Result<SigningKey, HqKeyError> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(HqKeyError::Missing { path: path.to_owned() });
        }
        Err(source) => return Err(HqKeyError::Unreadable { path: path.to_owned(), source }),
    };
    if !meta.is_file() {
        return Err(HqKeyError::NotAFile { path: path.to_owned() });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(HqKeyError::Permissions { path: path.to_owned(), mode });
    }
    let text = Zeroizing::new(
        fs::read_to_string(path)
            .map_err(|source| HqKeyError::Unreadable { path: path.to_owned(), source })?,
    );
    SigningKey::from_pkcs8_pem(&text).map_err(|_| HqKeyError::Malformed { path: path.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_mode_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hq.key");
        let key = generate(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(load(&path).unwrap().verifying_key(), key.verifying_key());
        assert!(fs::read_to_string(&path).unwrap().starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(matches!(generate(&path), Err(HqKeyError::Exists { .. })));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(load(&path), Err(HqKeyError::Permissions { mode: 0o644, .. })));
        assert!(matches!(load(&dir.path().join("none")), Err(HqKeyError::Missing { .. })));
    }

    /// The key file is what OpenSSL 3 reads and writes (PKCS#8 v1 Ed25519).
    #[test]
    fn openssl_reads_and_writes_the_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().join("hq.key");
        let key = generate(&ours).unwrap();
        let pubout = |path: &Path| {
            let out = std::process::Command::new("openssl")
                .args(["pkey", "-pubout", "-outform", "DER", "-in"])
                .arg(path)
                .output()
                .unwrap_or_else(|e| {
                    panic!("openssl not runnable ({e}): run tools/test, which installs openssl")
                });
            assert!(
                out.status.success(),
                "openssl refused {}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            // SubjectPublicKeyInfo of Ed25519: a 12-byte header, then the 32-byte key.
            out.stdout[12..].to_vec()
        };
        assert_eq!(pubout(&ours), key.verifying_key().as_bytes());
        let theirs = dir.path().join("openssl.key");
        let made = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "ed25519", "-out"])
            .arg(&theirs)
            .output()
            .unwrap();
        assert!(made.status.success());
        fs::set_permissions(&theirs, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(pubout(&theirs), load(&theirs).unwrap().verifying_key().as_bytes());
    }
}
