//! Typed driver options: the `[devices.<device>.options]` table of each driver, as serde structs.
//!
//! One struct per driver ([`ZvtOptions`], [`EvolisOptions`], [`ZplOptions`], [`MercuryOptions`]),
//! each with `deny_unknown_fields` and value types that check themselves while they are read (a
//! ZVT password is 6 digits, a region is a known name, a number is in its range). The same
//! structs are read twice:
//! - by `vand check-config` (and at every start), from the file's text, so an error names the
//!   file, the line and the full key (`devices.rfid.options.region`): see [`crate::config`];
//! - by each driver when its port opens, from the parsed table ([`ZvtOptions::from_table`] …), so a
//!   driver can never run with options the configuration check did not accept.
//!
//! Secrets (the ZVT password) never appear in an error message.

use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, de::DeserializeOwned};

use super::DeviceError;
use super::evolis::job::{Insertion, Ribbon};
use super::mercury::codec::Region;
use super::mercury::profile::LockTarget;
use super::zpl::label::GfEncoding;
use super::zvt::codec::Password;

/// A driver option that is wrong: `key` is the full dotted key (`devices.payment.options.password`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct OptionError {
    /// Device name (`payment`, `card`, `sticker`, `rfid`).
    pub device: &'static str,
    /// Full dotted key, from the top of the configuration file.
    pub key: String,
    /// What is wrong (never the value of a secret).
    pub message: String,
}

impl From<OptionError> for DeviceError {
    fn from(e: OptionError) -> Self {
        DeviceError::Config { device: e.device.into(), key: e.key, message: e.message }
    }
}

/// What every driver's options struct provides to the readers above.
pub trait DriverOptions: DeserializeOwned + Default + fmt::Debug {
    /// Device name the options belong to (`payment` …).
    const DEVICE: &'static str;
    /// Checks that need more than one key (or a key that must be present); returns the key
    /// (relative to the options table) and what is wrong.
    fn check(&self) -> Result<(), (&'static str, String)> {
        Ok(())
    }
}

/// The dotted prefix of a device's options (`devices.rfid.options`).
pub fn options_prefix(device: &str) -> String {
    format!("devices.{device}.options")
}

/// Reads a driver's options from its parsed table (what the drivers get from [`crate::config`]).
pub fn from_table<T: DriverOptions>(table: &toml::Table) -> Result<T, OptionError> {
    let prefix = options_prefix(T::DEVICE);
    let value = toml::Value::Table(table.clone());
    let options: T = serde_path_to_error::deserialize(value).map_err(|e| {
        let (key, message) = error_key(&prefix, &e.path().to_string(), &e.inner().to_string());
        OptionError { device: T::DEVICE, key, message }
    })?;
    options.check().map_err(|(key, message)| OptionError {
        device: T::DEVICE,
        key: format!("{prefix}.{key}"),
        message,
    })?;
    Ok(options)
}

/// Builds the full key and a clean message from a serde path inside an options table and the
/// deserializer's message. An unknown field is reported at its own key, not at its table.
pub fn error_key(prefix: &str, path: &str, message: &str) -> (String, String) {
    let message = message.lines().next().unwrap_or_default().trim().to_owned();
    let mut key = prefix.to_owned();
    // A TOML key, not a serde path: `lock[1]` is reported as `lock` (the message names the value).
    let mut path = path.trim_matches('.').to_owned();
    while let (Some(open), Some(close)) = (path.find('['), path.find(']')) {
        if close < open {
            break;
        }
        path.replace_range(open..=close, "");
    }
    if !path.is_empty() {
        key.push('.');
        key.push_str(&path);
    }
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some(end) = rest.find('`')
    {
        let field = &rest[..end];
        if !key.ends_with(&format!(".{field}")) {
            key.push('.');
            key.push_str(field);
        }
    }
    (key, message)
}

// ---------------------------------------------------------------- value types

/// An integer option within `MIN..=MAX` (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ranged<const MIN: i64, const MAX: i64>(pub i64);

impl<const MIN: i64, const MAX: i64> Ranged<MIN, MAX> {
    /// The value as milliseconds.
    pub fn millis(self) -> Duration {
        Duration::from_millis(self.0.max(0) as u64)
    }
}

impl<'de, const MIN: i64, const MAX: i64> Deserialize<'de> for Ranged<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        if (MIN..=MAX).contains(&v) {
            Ok(Ranged(v))
        } else {
            Err(de::Error::custom(format!("{v} is outside {MIN} … {MAX}")))
        }
    }
}

/// The ZVT terminal password: exactly 6 decimal digits, as a string. A secret: neither `Debug`
/// nor any error shows it.
#[derive(Clone)]
pub struct ZvtPassword(pub Password);

impl fmt::Debug for ZvtPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ZvtPassword(******)")
    }
}

impl Default for ZvtPassword {
    fn default() -> Self {
        ZvtPassword(Password::parse("000000").unwrap_or_else(|_| unreachable!("literal is valid")))
    }
}

/// Reads a secret string; any other TOML type is refused without echoing the value.
struct SecretVisitor;

const PASSWORD_HINT: &str = "must be a quoted string of exactly 6 decimal digits";

impl<'de> Visitor<'de> for SecretVisitor {
    type Value = ZvtPassword;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PASSWORD_HINT)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<ZvtPassword, E> {
        Password::parse(v).map(ZvtPassword).map_err(E::custom)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<ZvtPassword, E> {
        Err(E::custom(PASSWORD_HINT))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<ZvtPassword, E> {
        Err(E::custom(PASSWORD_HINT))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<ZvtPassword, E> {
        Err(E::custom(PASSWORD_HINT))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<ZvtPassword, E> {
        Err(E::custom(PASSWORD_HINT))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<ZvtPassword, A::Error> {
        Err(de::Error::custom(PASSWORD_HINT))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<ZvtPassword, A::Error> {
        Err(de::Error::custom(PASSWORD_HINT))
    }
}

impl<'de> Deserialize<'de> for ZvtPassword {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SecretVisitor)
    }
}

/// Deserializes a value from a string through a parser; the error lists what is accepted.
struct Named<T> {
    parse: fn(&str) -> Option<T>,
    accepted: &'static str,
    _t: PhantomData<T>,
}

impl<T> Named<T> {
    fn read<'de, D: Deserializer<'de>>(
        d: D,
        parse: fn(&str) -> Option<T>,
        accepted: &'static str,
    ) -> Result<T, D::Error> {
        let s = String::deserialize(d)?;
        (Named { parse, accepted, _t: PhantomData }).apply(&s)
    }

    fn apply<E: de::Error>(&self, s: &str) -> Result<T, E> {
        (self.parse)(s).ok_or_else(|| E::custom(format!("{s:?} is not one of {}", self.accepted)))
    }
}

/// Installed Evolis ribbon (`k`, `ko`, `ymcko`, `ymckok`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RibbonOption(pub Ribbon);

impl<'de> Deserialize<'de> for RibbonOption {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Named::read(d, Ribbon::parse, "k, ko, ymcko, ymckok").map(RibbonOption)
    }
}

/// Evolis card insertion (`printer`: the printer's own setting, `feeder`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InsertionOption(pub Insertion);

impl<'de> Deserialize<'de> for InsertionOption {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Named::read(d, Insertion::parse, "printer, feeder").map(InsertionOption)
    }
}

/// ZPL `^GF` graphics encoding (`auto`, `hex`, `compressed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphicsOption(pub GfEncoding);

impl<'de> Deserialize<'de> for GraphicsOption {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let parse = |s: &str| match s {
            "auto" => Some(GfEncoding::Auto),
            "hex" => Some(GfEncoding::Hex),
            "compressed" => Some(GfEncoding::Compressed),
            _ => None,
        };
        Named::read(d, parse, "auto, hex, compressed").map(GraphicsOption)
    }
}

/// Sticker printer resolution: 203 or 300 dpi.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dpi(pub u32);

impl Default for Dpi {
    fn default() -> Self {
        Dpi(203)
    }
}

impl<'de> Deserialize<'de> for Dpi {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match i64::deserialize(d)? {
            203 => Ok(Dpi(203)),
            300 => Ok(Dpi(300)),
            v => Err(de::Error::custom(format!("{v} dpi: must be 203 or 300"))),
        }
    }
}

/// RF region of the Mercury module: a `tmr_region.h` name (`eu3`, `na`, …) or its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionOption(pub Region);

impl Default for RegionOption {
    fn default() -> Self {
        RegionOption(super::mercury::profile::DEFAULT_REGION)
    }
}

struct RegionVisitor;

impl<'de> Visitor<'de> for RegionVisitor {
    type Value = RegionOption;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a region name (e.g. \"eu3\", \"na\", \"in\") or number 0 … 255")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<RegionOption, E> {
        Region::from_name(v)
            .map(RegionOption)
            .ok_or_else(|| E::custom(format!("unknown region {v:?} (e.g. eu3, na, in; see docs/config.md)")))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RegionOption, E> {
        u8::try_from(v)
            .map(|n| RegionOption(Region(n)))
            .map_err(|_| E::custom(format!("{v} is not a region number 0 … 255")))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RegionOption, E> {
        self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl<'de> Deserialize<'de> for RegionOption {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RegionVisitor)
    }
}

/// A memory bank the e-sticker profile locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockName {
    /// EPC bank.
    Epc,
    /// User bank.
    User,
    /// TID bank.
    Tid,
    /// Access password.
    Access,
    /// Kill password.
    Kill,
}

impl From<LockName> for LockTarget {
    fn from(n: LockName) -> Self {
        match n {
            LockName::Epc => LockTarget::Epc,
            LockName::User => LockTarget::User,
            LockName::Tid => LockTarget::Tid,
            LockName::Access => LockTarget::Access,
            LockName::Kill => LockTarget::Kill,
        }
    }
}

/// An even byte count from 2 to 62 (the EPC is written in 16-bit words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpcBytes(pub usize);

impl<'de> Deserialize<'de> for EpcBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        if (2..=62).contains(&v) && v % 2 == 0 {
            Ok(EpcBytes(v as usize))
        } else {
            Err(de::Error::custom(format!(
                "{v}: must be an even number from 2 to 62 (the EPC is written in 16-bit words)"
            )))
        }
    }
}

// ---------------------------------------------------------------- the drivers' tables

/// `[devices.payment.options]` of the `zvt` driver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZvtOptions {
    /// Terminal password, 6 digits (secret).
    pub password: ZvtPassword,
    /// Send BMP 49 (currency) with amounts and in the registration.
    pub currency: bool,
    /// ISO 4217 numeric currency code (818 = EGP).
    pub currency_code: Ranged<0, 999>,
    /// Registration config byte.
    pub config_byte: Ranged<0, 255>,
    /// Serial ACK/NAK wait, ms.
    pub ack_timeout_ms: Ranged<1, 600_000>,
    /// T3, ms.
    pub t3_ms: Ranged<1, 600_000>,
    /// T4, ms.
    pub t4_ms: Ranged<1, 3_600_000>,
}

impl Default for ZvtOptions {
    fn default() -> Self {
        use super::zvt::machine::{SERIAL_ACK_TIMEOUT, T3, T4};
        let ms = |d: Duration| d.as_millis() as i64;
        ZvtOptions {
            password: ZvtPassword::default(),
            currency: true,
            currency_code: Ranged(i64::from(super::zvt::codec::EGP)),
            config_byte: Ranged(i64::from(super::zvt::DEFAULT_CONFIG_BYTE)),
            ack_timeout_ms: Ranged(ms(SERIAL_ACK_TIMEOUT)),
            t3_ms: Ranged(ms(T3)),
            t4_ms: Ranged(ms(T4)),
        }
    }
}

impl DriverOptions for ZvtOptions {
    const DEVICE: &'static str = "payment";
}

impl ZvtOptions {
    /// Reads and checks the `zvt` options table; errors name the full key, never the password.
    pub fn from_table(table: &toml::Table) -> Result<Self, OptionError> {
        from_table(table)
    }
}

/// `[devices.card.options]` of the `evolis` driver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvolisOptions {
    /// Installed ribbon.
    pub ribbon: RibbonOption,
    /// Card insertion.
    pub insertion: InsertionOption,
    /// Black contrast, 0–20.
    pub contrast: Ranged<0, 20>,
    /// `Dbc` compressed upload of K/O panels.
    pub compression: bool,
    /// A card's whole job, ms.
    pub print_timeout_ms: Ranged<1000, 600_000>,
}

impl Default for EvolisOptions {
    fn default() -> Self {
        let s = super::evolis::job::JobSettings::default();
        EvolisOptions {
            ribbon: RibbonOption(s.ribbon),
            insertion: InsertionOption(s.insertion),
            contrast: Ranged(i64::from(s.contrast_k)),
            compression: s.compress,
            print_timeout_ms: Ranged(120_000),
        }
    }
}

impl DriverOptions for EvolisOptions {
    const DEVICE: &'static str = "card";
}

impl EvolisOptions {
    /// Reads and checks the `evolis` options table; errors name the full key.
    pub fn from_table(table: &toml::Table) -> Result<Self, OptionError> {
        from_table(table)
    }
}

/// `[devices.sticker.options]` of the `zpl` driver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZplOptions {
    /// Printer resolution; must equal `documents.sticker_dpi`.
    pub dpi: Dpi,
    /// RFID-capable model.
    pub rfid: bool,
    /// Time for a label to leave the printer, per copy, ms.
    pub print_timeout_ms: Ranged<100, 600_000>,
    /// `^GF` graphics encoding.
    pub graphics: GraphicsOption,
}

impl Default for ZplOptions {
    fn default() -> Self {
        ZplOptions {
            dpi: Dpi::default(),
            rfid: false,
            print_timeout_ms: Ranged(20_000),
            graphics: GraphicsOption(GfEncoding::Auto),
        }
    }
}

impl DriverOptions for ZplOptions {
    const DEVICE: &'static str = "sticker";
}

impl ZplOptions {
    /// Reads and checks the `zpl` options table; errors name the full key.
    pub fn from_table(table: &toml::Table) -> Result<Self, OptionError> {
        from_table(table)
    }
}

/// `[devices.rfid.options]` of the `mercury` driver: the tag profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MercuryOptions {
    /// RF region.
    pub region: RegionOption,
    /// Read power, centi-dBm.
    pub read_power_cdbm: Ranged<0, 3200>,
    /// Write power, centi-dBm.
    pub write_power_cdbm: Ranged<0, 3200>,
    /// EPC length in bytes.
    pub epc_bytes: EpcBytes,
    /// User memory words written.
    pub user_words: Ranged<0, 512>,
    /// TID words read.
    pub tid_words: Ranged<2, 32>,
    /// Banks locked after writing.
    pub lock: Vec<LockName>,
    /// Permanent locks.
    pub permalock: bool,
    /// Tag secret file (hex, mode 0600); required.
    pub password_file: Option<PathBuf>,
    /// Module timeout of one tag operation, ms.
    pub tag_op_timeout_ms: Ranged<50, 65535>,
    /// Inventory duration, ms.
    pub inventory_ms: Ranged<20, 65535>,
}

impl Default for MercuryOptions {
    fn default() -> Self {
        MercuryOptions {
            region: RegionOption::default(),
            read_power_cdbm: Ranged(2000),
            write_power_cdbm: Ranged(2000),
            epc_bytes: EpcBytes(12),
            user_words: Ranged(32),
            tid_words: Ranged(6),
            lock: vec![LockName::Epc, LockName::User, LockName::Access, LockName::Kill],
            permalock: false,
            password_file: None,
            tag_op_timeout_ms: Ranged(1000),
            inventory_ms: Ranged(300),
        }
    }
}

impl DriverOptions for MercuryOptions {
    const DEVICE: &'static str = "rfid";
    fn check(&self) -> Result<(), (&'static str, String)> {
        match &self.password_file {
            Some(p) if !p.as_os_str().is_empty() => Ok(()),
            Some(_) => Err(("password_file", "must not be empty".into())),
            None => Err((
                "password_file",
                "missing: the tag secret file (hex, mode 0600) is needed to set tag passwords".into(),
            )),
        }
    }
}

impl MercuryOptions {
    /// Reads and checks the `mercury` options table; errors name the full key.
    pub fn from_table(table: &toml::Table) -> Result<Self, OptionError> {
        from_table(table)
    }

    /// The banks to lock, without repeats, in the order written.
    pub fn lock_targets(&self) -> Vec<LockTarget> {
        let mut out: Vec<LockTarget> = Vec::new();
        for n in &self.lock {
            let t = LockTarget::from(*n);
            if !out.contains(&t) {
                out.push(t);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn table(s: &str) -> toml::Table {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_are_what_the_drivers_used_before() {
        let z = ZvtOptions::from_table(&toml::Table::new()).unwrap();
        assert!(z.currency);
        assert_eq!((z.currency_code.0, z.config_byte.0), (818, 0x0E));
        assert_eq!((z.ack_timeout_ms.0, z.t3_ms.0, z.t4_ms.0), (5000, 5000, 180_000));
        let e = EvolisOptions::from_table(&toml::Table::new()).unwrap();
        assert_eq!((e.contrast.0, e.print_timeout_ms.0, e.compression), (10, 120_000, false));
        let s = ZplOptions::from_table(&toml::Table::new()).unwrap();
        assert_eq!((s.dpi.0, s.rfid, s.print_timeout_ms.0), (203, false, 20_000));
        let m = MercuryOptions::from_table(&table("password_file = \"/x\"")).unwrap();
        assert_eq!(m.region.0, Region::EU3);
        assert_eq!(m.lock_targets().len(), 4);
    }

    #[test]
    fn errors_carry_the_full_key_and_hide_the_password() {
        let e = ZvtOptions::from_table(&table("password = \"98765\"")).unwrap_err();
        assert_eq!(e.key, "devices.payment.options.password");
        assert!(!e.message.contains("98765") && !format!("{e}").contains("98765"), "{e}");
        let e = ZvtOptions::from_table(&table("password = 987654")).unwrap_err();
        assert!(!format!("{e}").contains("987654"), "{e}");
        let e = ZvtOptions::from_table(&table("password = [\"987654\"]")).unwrap_err();
        assert!(!format!("{e}").contains("987654"), "{e}");
        let z = ZvtOptions::from_table(&table("password = \"987654\"")).unwrap();
        assert!(!format!("{z:?}").contains("987654"));
        let e = MercuryOptions::from_table(&table("password_file = \"/x\"\nregoin = \"eu3\"")).unwrap_err();
        assert_eq!(e.key, "devices.rfid.options.regoin");
        assert!(e.message.contains("region"), "{e}");
        let e = MercuryOptions::from_table(&table("region = \"eu3\"")).unwrap_err();
        assert_eq!(e.key, "devices.rfid.options.password_file");
        let e =
            MercuryOptions::from_table(&table("password_file = \"/x\"\nlock = [\"epc\", 3]")).unwrap_err();
        assert_eq!(e.key, "devices.rfid.options.lock");
        let e = ZplOptions::from_table(&table("dpi = 600")).unwrap_err();
        assert_eq!((e.device, e.key.as_str()), ("sticker", "devices.sticker.options.dpi"));
        let e = EvolisOptions::from_table(&table("insertion = \"manual\"")).unwrap_err();
        assert_eq!(e.key, "devices.card.options.insertion");
        assert!(e.message.contains("printer, feeder"), "{e}");
    }

    #[test]
    fn regions_by_name_any_case_or_number() {
        for (text, want) in [("\"na\"", Region::NA), ("\"EU3\"", Region::EU3), ("255", Region::OPEN)] {
            let m = MercuryOptions::from_table(&table(&format!("password_file = \"/x\"\nregion = {text}")))
                .unwrap();
            assert_eq!(m.region.0, want, "{text}");
        }
        for bad in ["\"mars\"", "256", "-1", "1.5", "true"] {
            let e = MercuryOptions::from_table(&table(&format!("password_file = \"/x\"\nregion = {bad}")))
                .unwrap_err();
            assert_eq!(e.key, "devices.rfid.options.region", "{bad}");
        }
    }

    /// Any TOML value under a known or unknown key.
    fn value() -> impl Strategy<Value = toml::Value> {
        prop_oneof![
            any::<i64>().prop_map(toml::Value::Integer),
            (-2000i64..200_000).prop_map(toml::Value::Integer),
            any::<bool>().prop_map(toml::Value::Boolean),
            any::<f64>().prop_map(toml::Value::Float),
            "[a-zA-Z0-9 ]{0,8}".prop_map(toml::Value::String),
            proptest::collection::vec("[a-z]{0,6}", 0..4)
                .prop_map(|v| toml::Value::Array(v.into_iter().map(toml::Value::String).collect())),
        ]
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(vec![
                "password",
                "currency",
                "currency_code",
                "config_byte",
                "ack_timeout_ms",
                "t3_ms",
                "t4_ms",
                "ribbon",
                "insertion",
                "contrast",
                "compression",
                "print_timeout_ms",
                "dpi",
                "rfid",
                "graphics",
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
            ])
            .prop_map(str::to_owned),
            "[a-z_]{1,10}",
        ]
    }

    proptest! {
        #[test]
        fn any_table_is_read_or_refused_with_a_key_never_a_panic(
            entries in proptest::collection::vec((key(), value()), 0..6)
        ) {
            let t: toml::Table = entries.into_iter().collect();
            let results = [
                ZvtOptions::from_table(&t).err(),
                EvolisOptions::from_table(&t).err(),
                ZplOptions::from_table(&t).err(),
                MercuryOptions::from_table(&t).err(),
            ];
            for e in results.into_iter().flatten() {
                prop_assert!(e.key.starts_with(&format!("devices.{}.options.", e.device)), "{e}");
                let k = e.key.rsplit('.').next().unwrap_or_default();
                prop_assert!(t.contains_key(k) || k == "password_file", "{e}");
            }
        }
    }
}
