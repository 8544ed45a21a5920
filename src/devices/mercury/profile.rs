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
    fn from_name(name: &str) -> Option<LockTarget> {
        match name {
            "epc" => Some(LockTarget::Epc),
            "user" => Some(LockTarget::User),
            "tid" => Some(LockTarget::Tid),
            "access" => Some(LockTarget::Access),
            "kill" => Some(LockTarget::Kill),
            _ => None,
        }
    }

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
    DeviceError::Config { device: "rfid".into(), key: key.into(), message: message.into() }
}

fn int_option(
    options: &toml::Table,
    key: &str,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, DeviceError> {
    match options.get(key) {
        None => Ok(default),
        Some(toml::Value::Integer(v)) if (min..=max).contains(v) => Ok(*v),
        Some(toml::Value::Integer(v)) => Err(config_err(key, format!("{v} is outside {min}..={max}"))),
        Some(other) => Err(config_err(key, format!("expected an integer, found {}", other.type_str()))),
    }
}

impl TagProfile {
    /// Reads and checks the profile from the driver options; a bad value names its key.
    pub fn from_options(options: &toml::Table) -> Result<TagProfile, DeviceError> {
        const KNOWN: &[&str] = &[
            "region",
            "read_power_cdbm",
            "write_power_cdbm",
            "epc_bytes",
            "user_words",
            "tid_words",
            "lock",
            "permalock",
            "password_file",
            "tag_op_timeout_ms",
            "inventory_ms",
        ];
        if let Some(unknown) = options.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(config_err(unknown, format!("unknown option; known: {}", KNOWN.join(", "))));
        }
        let region = match options.get("region") {
            None => DEFAULT_REGION,
            Some(toml::Value::String(name)) => Region::from_name(name)
                .ok_or_else(|| config_err("region", format!("unknown region {name:?} (e.g. eu3, na, in)")))?,
            Some(toml::Value::Integer(v)) => Region(
                u8::try_from(*v)
                    .map_err(|_| config_err("region", format!("{v} is not a region number 0..=255")))?,
            ),
            Some(other) => {
                return Err(config_err(
                    "region",
                    format!("expected a name or number, found {}", other.type_str()),
                ));
            }
        };
        let read_power_cdbm = int_option(options, "read_power_cdbm", 2000, 0, 3200)? as u16;
        let write_power_cdbm = int_option(options, "write_power_cdbm", 2000, 0, 3200)? as u16;
        let epc_bytes = int_option(options, "epc_bytes", 12, 2, 62)? as usize;
        if epc_bytes % 2 != 0 {
            return Err(config_err("epc_bytes", "must be even (the EPC is written in 16-bit words)"));
        }
        let user_words = int_option(options, "user_words", 32, 0, 512)? as usize;
        let tid_words = int_option(options, "tid_words", 6, 2, 32)? as u8;
        let lock = match options.get("lock") {
            None => vec![LockTarget::Epc, LockTarget::User, LockTarget::Access, LockTarget::Kill],
            Some(toml::Value::Array(items)) => {
                let mut out = Vec::new();
                for item in items {
                    let name =
                        item.as_str().ok_or_else(|| config_err("lock", "expected a list of bank names"))?;
                    let target = LockTarget::from_name(name).ok_or_else(|| {
                        config_err("lock", format!("unknown bank {name:?}; use epc, user, tid, access, kill"))
                    })?;
                    if !out.contains(&target) {
                        out.push(target);
                    }
                }
                out
            }
            Some(other) => {
                return Err(config_err("lock", format!("expected a list, found {}", other.type_str())));
            }
        };
        let permalock = match options.get("permalock") {
            None => false,
            Some(toml::Value::Boolean(b)) => *b,
            Some(other) => {
                return Err(config_err(
                    "permalock",
                    format!("expected true or false, found {}", other.type_str()),
                ));
            }
        };
        let password_file = match options.get("password_file") {
            Some(toml::Value::String(p)) if !p.is_empty() => PathBuf::from(p),
            Some(_) => return Err(config_err("password_file", "expected a file path")),
            None => {
                return Err(config_err(
                    "password_file",
                    "missing: the tag secret file (hex, mode 0600) is needed to set tag passwords",
                ));
            }
        };
        let tag_op_timeout_ms = int_option(options, "tag_op_timeout_ms", 1000, 50, 65535)? as u16;
        let inventory_ms = int_option(options, "inventory_ms", 300, 20, 65535)? as u16;
        Ok(TagProfile {
            region,
            read_power_cdbm,
            write_power_cdbm,
            epc_bytes,
            user_words,
            tid_words,
            lock,
            permalock,
            password_file,
            tag_op_timeout_ms,
            inventory_ms,
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
                Err(DeviceError::Config { key: k, .. }) => assert_eq!(k, key, "{text}"),
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
