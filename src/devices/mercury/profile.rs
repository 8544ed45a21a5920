//! The tag profile (configuration, not code): region, power, EPC length, user memory, what to
//! lock, and where the tag secret lives. Parsed from the `options` table of `[devices.rfid]`.
//!
//! ```toml
//! [devices.rfid.options]
//! region = "eu3"              # tmr_region.h name or number; default eu3 (ETSI EN 302 208)
//! read_power_cdbm = 2000      # centi-dBm
//! write_power_cdbm = 2000
//! epc_bytes = 12              # 96-bit EPC
//! user_words = 32             # user memory the van writes (16-bit words)
//! tid_words = 6               # TID words read to identify the tag (96-bit serialised TID)
//! lock = ["epc", "user", "access", "kill"]
//! permalock = false           # true: the locks can never be undone
//! password_file = "/etc/mtu/rfid-tag-secret"   # hex, mode 0600
//! ```
//!
//! Passwords are derived per tag: `HMAC-SHA256(tag secret, "mtu-esticker-v1" || TID)`, bytes 0–3 the
//! access password and 4–7 the kill password (a zero result becomes 1, since zero means "no
//! password" in Gen2). A leaked password therefore opens one tag only, nothing is stored per tag,
//! and the authority can recompute the passwords of any sticker from its TID.

use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::codec::{Password, Region, lock_bits};
use crate::devices::DeviceError;

/// Default region: EU3, the ETSI EN 302 208 band (865.7–867.5 MHz). Egypt's regulator (NTRA) has
/// not been checked here: set `region` in the configuration once the permitted band is confirmed.
pub const DEFAULT_REGION: Region = Region::EU3;

/// Memory banks the profile can lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockTarget {
    /// EPC bank (write lock).
    Epc,
    /// User bank (write lock).
    User,
    /// TID bank (write lock; usually already permalocked by the chip maker).
    Tid,
    /// Access password (read/write lock).
    Access,
    /// Kill password (read/write lock).
    Kill,
}

impl LockTarget {
    /// (lock bit, permalock bit) of this target in the Gen2 lock payload.
    fn bits(self) -> (u16, u16) {
        match self {
            LockTarget::Epc => (lock_bits::EPC, lock_bits::EPC_PERM),
            LockTarget::User => (lock_bits::USER, lock_bits::USER_PERM),
            LockTarget::Tid => (lock_bits::TID, lock_bits::TID_PERM),
            LockTarget::Access => (lock_bits::ACCESS, lock_bits::ACCESS_PERM),
            LockTarget::Kill => (lock_bits::KILL, lock_bits::KILL_PERM),
        }
    }
}

/// Everything the driver needs to know about the tags it encodes.
#[derive(Debug, Clone)]
pub struct TagProfile {
    /// Regulatory region to set at start.
    pub region: Region,
    /// Read power, centi-dBm.
    pub read_power_cdbm: u16,
    /// Write power, centi-dBm.
    pub write_power_cdbm: u16,
    /// EPC length in bytes (even).
    pub epc_bytes: usize,
    /// User memory words the van writes.
    pub user_words: usize,
    /// TID words read to identify the tag.
    pub tid_words: u8,
    /// Banks to lock after writing.
    pub lock: Vec<LockTarget>,
    /// Permanent locks instead of password-protected ones.
    pub permalock: bool,
    /// Tag secret file (hex, mode 0600).
    pub password_file: PathBuf,
    /// Timeout the module gets for each tag operation, ms.
    pub tag_op_timeout_ms: u16,
    /// Inventory duration when counting tags in the field, ms.
    pub inventory_ms: u16,
}

fn config_err(key: &str, message: impl Into<String>) -> DeviceError {
    DeviceError::Config {
        device: "rfid".into(),
        key: format!("devices.rfid.options.{key}"),
        message: message.into(),
    }
}

impl TagProfile {
    /// Reads and checks the profile from the driver options (typed in
    /// [`crate::devices::options::MercuryOptions`], which `vand check-config` also uses); a bad
    /// value names its full key (`devices.rfid.options.region`).
    pub fn from_options(options: &toml::Table) -> Result<TagProfile, DeviceError> {
        let o = crate::devices::options::MercuryOptions::from_table(options)?;
        Ok(TagProfile {
            region: o.region.0,
            read_power_cdbm: o.read_power_cdbm.0 as u16,
            write_power_cdbm: o.write_power_cdbm.0 as u16,
            epc_bytes: o.epc_bytes.0,
            user_words: o.user_words.0 as usize,
            tid_words: o.tid_words.0 as u8,
            lock: o.lock_targets(),
            permalock: o.permalock,
            password_file: o.password_file.clone().unwrap_or_default(),
            tag_op_timeout_ms: o.tag_op_timeout_ms.0 as u16,
            inventory_ms: o.inventory_ms.0 as u16,
        })
    }

    /// Gen2 lock (mask, action) for this profile: every listed target gets its lock bit, and with
    /// `permalock` its permalock bit too; unlisted targets are left as they are (mask 0).
    pub fn lock_payload(&self) -> (u16, u16) {
        let mut mask = 0;
        let mut action = 0;
        for t in &self.lock {
            let (lock, perm) = t.bits();
            mask |= lock;
            action |= lock;
            if self.permalock {
                mask |= perm;
                action |= perm;
            }
        }
        (mask, action)
    }
}

/// The secret from which every tag's passwords are derived. Debug never shows it.
pub struct TagSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for TagSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TagSecret(<redacted>)")
    }
}

/// The two passwords of one tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagPasswords {
    /// Gen2 access password (reserved words 2–3).
    pub access: Password,
    /// Gen2 kill password (reserved words 0–1).
    pub kill: Password,
}

impl TagPasswords {
    /// Reserved bank words 0–3: kill password then access password, big-endian.
    pub fn reserved_bank(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(8));
        out.extend_from_slice(&self.kill.expose().to_be_bytes());
        out.extend_from_slice(&self.access.expose().to_be_bytes());
        out
    }
}

impl TagSecret {
    /// Wraps secret bytes (tests and tools); at least 16 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<TagSecret, String> {
        if bytes.len() < 16 {
            return Err(format!("the tag secret must be at least 16 bytes, found {}", bytes.len()));
        }
        Ok(TagSecret(Zeroizing::new(bytes.to_vec())))
    }

    /// Loads the secret from a hex file that only its owner may read (mode 0600 or stricter).
    pub fn load(path: &Path) -> Result<TagSecret, DeviceError> {
        use std::os::unix::fs::MetadataExt;
        let err = |m: String| config_err("password_file", format!("{}: {m}", path.display()));
        let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(err(format!(
                "permissions {mode:04o} let group or others read it; run chmod 600 on it"
            )));
        }
        let text =
            Zeroizing::new(std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?);
        let bytes = Zeroizing::new(
            hex::decode(text.trim()).map_err(|_| err("expected the secret as hexadecimal text".into()))?,
        );
        TagSecret::from_bytes(&bytes).map_err(err)
    }

    /// The passwords of the tag with this TID.
    pub fn passwords_for(&self, tid: &[u8]) -> TagPasswords {
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.0) {
            Ok(mac) => mac,
            // HMAC accepts keys of any length; this arm cannot be reached.
            Err(_) => return TagPasswords { access: Password::new(1), kill: Password::new(1) },
        };
        mac.update(b"mtu-esticker-v1");
        mac.update(tid);
        let out = Zeroizing::new(mac.finalize().into_bytes().to_vec());
        let word = |i: usize| u32::from_be_bytes([out[i], out[i + 1], out[i + 2], out[i + 3]]).max(1);
        TagPasswords { access: Password::new(word(0)), kill: Password::new(word(4)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn defaults_and_lock_payload() {
        let p = TagProfile::from_options(&table("password_file = \"/x\"")).unwrap();
        assert_eq!(p.region, Region::EU3);
        assert_eq!(p.epc_bytes, 12);
        let (mask, action) = p.lock_payload();
        let want = lock_bits::EPC | lock_bits::USER | lock_bits::ACCESS | lock_bits::KILL;
        assert_eq!((mask, action), (want, want));
        let p =
            TagProfile::from_options(&table("password_file = \"/x\"\nlock = [\"user\"]\npermalock = true"))
                .unwrap();
        assert_eq!(p.lock_payload(), (0b11, 0b11));
    }

    #[test]
    fn bad_options_name_their_key() {
        for (text, key) in [
            ("password_file = \"/x\"\nregion = \"mars\"", "region"),
            ("password_file = \"/x\"\nepc_bytes = 11", "epc_bytes"),
            ("password_file = \"/x\"\nread_power_cdbm = \"high\"", "read_power_cdbm"),
            ("password_file = \"/x\"\nlock = [\"everything\"]", "lock"),
            ("password_file = \"/x\"\ncolour = 1", "colour"),
            ("region = \"eu3\"", "password_file"),
        ] {
            match TagProfile::from_options(&table(text)) {
                Err(DeviceError::Config { key: k, .. }) => {
                    assert_eq!(k, format!("devices.rfid.options.{key}"), "{text}")
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn region_by_number() {
        let p = TagProfile::from_options(&table("password_file = \"/x\"\nregion = 1")).unwrap();
        assert_eq!(p.region, Region::NA);
    }

    #[test]
    fn secret_file_mode_is_checked_and_never_printed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "00112233445566778899aabbccddeeff\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = TagSecret::load(&path).unwrap_err().to_string();
        assert!(err.contains("0644"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let secret = TagSecret::load(&path).unwrap();
        assert_eq!(format!("{secret:?}"), "TagSecret(<redacted>)");
        let pw = secret.passwords_for(&[0xE2, 0x80, 0x11]);
        assert!(!format!("{pw:?}").contains(&pw.access.expose().to_string()));
        // Different TIDs give different passwords; the same TID the same ones.
        assert_ne!(pw, secret.passwords_for(&[0xE2, 0x80, 0x12]));
        assert_eq!(pw, secret.passwords_for(&[0xE2, 0x80, 0x11]));
        std::fs::write(&path, "0011").unwrap();
        assert!(TagSecret::load(&path).is_err());
    }

    #[test]
    fn derivation_matches_an_independent_hmac() {
        // Python: hmac.new(bytes(range(16)), b"mtu-esticker-v1" + bytes.fromhex("E28011"),
        //                  hashlib.sha256).hexdigest()[:16] == "d464e7678508c95a"
        let secret = TagSecret::from_bytes(&(0u8..16).collect::<Vec<_>>()).unwrap();
        let pw = secret.passwords_for(&[0xE2, 0x80, 0x11]);
        assert_eq!(pw.access.expose(), 0xd464e767);
        assert_eq!(pw.kill.expose(), 0x8508c95a);
        assert_eq!(&pw.reserved_bank()[..], &[0x85, 0x08, 0xc9, 0x5a, 0xd4, 0x64, 0xe7, 0x67]);
    }
}
