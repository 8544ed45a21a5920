//! The catalogue of record kinds the van writes, with their typed payloads.
//!
//! Each kind in [`CATALOGUE`] has a serde type; the writer builds payloads from these types and
//! the format rules ([`crate::rules`]) check that a record of a catalogued kind carries a payload
//! of its type. docs/journal-format.md has the same catalogue as a table (a test compares them).
//! Kinds not in the catalogue (later capabilities: `service.*`, `payment.*`, test records) only
//! need to follow the general rules.
//!
//! Payload types accept fields they do not know (a later van version may add one); a field they
//! do know must be present and well-formed.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Record 1 of every journal: names the van and its first public key.
pub const GENESIS: &str = "journal.genesis";
/// The daemon started (payload says whether the previous run stopped cleanly).
pub const DAEMON_START: &str = "daemon.start";
/// The daemon stopped cleanly.
pub const DAEMON_STOP: &str = "daemon.stop";
/// A new signing key takes over after this record; signed by the old key.
pub const KEY_ROTATE: &str = "key.rotate";
/// Appends failed (disk full, I/O error) before this record; how many and why.
pub const FAULT_STORAGE: &str = "fault.storage";
/// One device's health changed (fault, disconnect, recovery).
pub const DEVICE_HEALTH: &str = "device.health";
/// A device job ended (done, failed, unknown, cancelled, interrupted).
pub const DEVICE_JOB: &str = "device.job";
/// Every device's health at start-up.
pub const DEVICES_HEALTH: &str = "devices.health";
/// The tamper input changed.
pub const GPIO_TAMPER: &str = "gpio.tamper";
/// The UPS power-fail input changed.
pub const POWER_FAIL: &str = "power.fail";
/// Mains came back within the ride-through time: the van takes services again.
pub const POWER_RESTORED: &str = "power.restored";
/// A supervisor cleared the latched tamper alarm.
pub const TAMPER_CLEARED: &str = "tamper.cleared";

/// `journal.genesis`: always record 1, and only record 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// Format version: 1.
    #[serde(deserialize_with = "format_one")]
    pub format: u32,
    /// The first signing key, 64 lowercase hex digits.
    #[serde(deserialize_with = "hex_digits::<_, 64>")]
    pub public_key: String,
    /// Same as the record's van id.
    pub van_id: String,
}

/// How the run before a `daemon.start` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PreviousStop {
    /// The journal was just created: there was no previous run.
    None,
    /// The previous run recorded its `daemon.stop`.
    Clean,
    /// The previous run was killed or lost power: the gap in operation is itself on record.
    Unclean,
}

impl PreviousStop {
    /// Every value, for documentation checks.
    pub const ALL: [PreviousStop; 3] = [PreviousStop::None, PreviousStop::Clean, PreviousStop::Unclean];
}

/// Whether the van ran on real devices or simulated ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    /// Real devices.
    Production,
    /// Simulated devices (records are not citizen transactions).
    Simulation,
}

/// `daemon.start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonStart {
    /// Configuration file the daemon read (or the embedded simulation configuration's name).
    pub config: String,
    /// Production or simulation.
    pub mode: RunMode,
    /// Milliseconds the journal took to open and verify.
    pub open_ms: u64,
    /// How the previous run ended.
    pub previous_stop: PreviousStop,
    /// Records verified at open (those after the last checkpoint).
    pub records_verified_at_open: u64,
    /// The daemon's version.
    pub version: String,
}

/// Why the daemon stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    /// systemd (or a person) asked it to stop.
    #[serde(rename = "SIGTERM")]
    Sigterm,
    /// Ctrl-C in a terminal.
    #[serde(rename = "SIGINT")]
    Sigint,
    /// The UPS signalled a power failure; the daemon stopped while the UPS still held.
    #[serde(rename = "power-fail")]
    PowerFail,
}

impl StopReason {
    /// Every value, for documentation checks.
    pub const ALL: [StopReason; 3] = [StopReason::Sigterm, StopReason::Sigint, StopReason::PowerFail];

    /// The recorded text (`SIGTERM`, `SIGINT`, `power-fail`).
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Sigterm => "SIGTERM",
            StopReason::Sigint => "SIGINT",
            StopReason::PowerFail => "power-fail",
        }
    }
}

/// `daemon.stop`: written after every device job's outcome is on record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonStop {
    /// Why it stopped.
    pub reason: StopReason,
    /// Device jobs that were still running and are recorded as `interrupted`.
    pub interrupted_jobs: u64,
    /// Milliseconds from the stop request to this record.
    pub stop_ms: u64,
}

/// `key.rotate`: signed by the old key; the records after it are signed by the new one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRotate {
    /// The new key's id, 16 hex digits.
    #[serde(deserialize_with = "hex_digits::<_, 16>")]
    pub new_key_id: String,
    /// The new public key, 64 hex digits.
    #[serde(deserialize_with = "hex_digits::<_, 64>")]
    pub new_public_key: String,
    /// The old key's id, 16 hex digits.
    #[serde(deserialize_with = "hex_digits::<_, 16>")]
    pub old_key_id: String,
    /// The new key's signature over the rotation proof bytes, 128 hex digits.
    #[serde(deserialize_with = "hex_digits::<_, 128>")]
    pub proof: String,
}

/// A string of exactly `N` lowercase hex digits.
fn hex_digits<'de, D: serde::Deserializer<'de>, const N: usize>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.len() == N && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(s)
    } else {
        Err(serde::de::Error::custom(format!("expected {N} lowercase hex digits, found {s:?}")))
    }
}

/// The format version, which is 1.
fn format_one<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    match u32::deserialize(d)? {
        1 => Ok(1),
        n => Err(serde::de::Error::custom(format!("format {n}: this is format 1"))),
    }
}

/// `fault.storage`: appends that failed before this record; none of them was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultStorage {
    /// How many appends failed.
    pub failed_appends: u64,
    /// How many failed, by record kind (a bounded number of kinds; the rest under `other`).
    #[serde(default)]
    pub failed_kinds: BTreeMap<String, u64>,
    /// The first failure's error message.
    pub first_error: String,
    /// When the first failure happened (RFC 3339, UTC).
    pub since: String,
}

/// A device's connection state as recorded (the same shape the daemon reports to officers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum HealthState {
    /// Not configured in this van.
    Absent,
    /// Port open, idle, last exchange fine.
    Connected,
    /// Working on a job.
    Busy {
        /// What job.
        what: String,
    },
    /// Cannot be used until a person acts.
    Fault {
        /// The fault's code, e.g. `card.ribbon_ended`.
        fault: String,
        /// What the device or driver said, for a technician (may be empty).
        detail: String,
    },
    /// Port not open (unplugged or not found); retrying.
    Disconnected {
        /// Why.
        why: String,
    },
}

/// `device.health`: one device's health changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceHealth {
    /// Device name (`payment`, `card`, `sticker`, `rfid`, `gpio`).
    pub device: String,
    /// Its new state.
    pub health: HealthState,
    /// State changes since the previous record of this device (more than 1: intermediate
    /// states passed between two looks).
    pub changes: u64,
}

/// How a device job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobOutcome {
    /// It did what was asked.
    Done,
    /// It failed; the device did not act.
    Failed,
    /// The result is not known and the device may have acted (never repeat it blindly).
    Unknown,
    /// Cancelled before the device acted.
    Cancelled,
    /// The daemon stopped while it ran.
    Interrupted,
}

impl JobOutcome {
    /// Every value, for documentation checks.
    pub const ALL: [JobOutcome; 5] = [
        JobOutcome::Done,
        JobOutcome::Failed,
        JobOutcome::Unknown,
        JobOutcome::Cancelled,
        JobOutcome::Interrupted,
    ];
}

/// `device.job`: a device job's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceJob {
    /// The job's number.
    pub job: u64,
    /// Device name.
    pub device: String,
    /// What the job did (`print card`, `purchase`, `self-test`).
    pub what: String,
    /// How it ended.
    pub outcome: JobOutcome,
    /// The fault's code, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// Whether the device may have acted without the result being known.
    pub may_have_acted: bool,
    /// The error, for a technician.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// What the device reported (for `done`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// How long the job ran, in milliseconds.
    pub ms: u64,
}

/// `devices.health`: every device's state at start-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevicesHealth {
    /// State per device name.
    pub devices: BTreeMap<String, HealthState>,
}

/// `gpio.tamper` and `power.fail`: a digital input changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputChange {
    /// Whether the input is now active (case opened; mains lost).
    pub active: bool,
}

/// `power.restored`: mains came back before the ride-through time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerRestored {
    /// How long mains was away, in milliseconds.
    pub away_ms: u64,
}

/// `tamper.cleared`: a supervisor cleared the tamper alarm (the switch was closed again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TamperCleared {
    /// The supervisor's officer id.
    pub officer: String,
    /// Why it is safe (what was found), as typed.
    pub reason: String,
    /// The sequence number of the `gpio.tamper` record that raised the alarm.
    pub raised_seq: u64,
}

/// A typed payload of a catalogued kind.
pub trait Payload: Serialize + DeserializeOwned {
    /// The kind this payload goes with.
    const KIND: &'static str;
}

impl Payload for Genesis {
    const KIND: &'static str = GENESIS;
}
impl Payload for DaemonStart {
    const KIND: &'static str = DAEMON_START;
}
impl Payload for DaemonStop {
    const KIND: &'static str = DAEMON_STOP;
}
impl Payload for KeyRotate {
    const KIND: &'static str = KEY_ROTATE;
}
impl Payload for FaultStorage {
    const KIND: &'static str = FAULT_STORAGE;
}
impl Payload for DeviceHealth {
    const KIND: &'static str = DEVICE_HEALTH;
}
impl Payload for DevicesHealth {
    const KIND: &'static str = DEVICES_HEALTH;
}
impl Payload for DeviceJob {
    const KIND: &'static str = DEVICE_JOB;
}
impl Payload for PowerRestored {
    const KIND: &'static str = POWER_RESTORED;
}
impl Payload for TamperCleared {
    const KIND: &'static str = TAMPER_CLEARED;
}

/// One catalogued kind.
#[derive(Clone, Copy)]
pub struct KindSpec {
    /// The kind, e.g. `daemon.start`.
    pub kind: &'static str,
    /// Top-level payload field names, from the payload type itself.
    pub fields: fn() -> &'static [&'static str],
    /// Checks that a payload (JSON text) is of this kind's type; the error says what is wrong.
    pub check: fn(&[u8]) -> Result<(), String>,
}

impl std::fmt::Debug for KindSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KindSpec").field("kind", &self.kind).field("fields", &(self.fields)()).finish()
    }
}

fn check_as<T: DeserializeOwned>(payload: &[u8]) -> Result<(), String> {
    serde_json::from_slice::<T>(payload).map(|_| ()).map_err(|e| e.to_string())
}

const fn spec<T: DeserializeOwned>(kind: &'static str) -> KindSpec {
    KindSpec { kind, fields: field_names::<T>, check: check_as::<T> }
}

/// Every kind the van writes today, in the order of the documentation's table.
pub const CATALOGUE: &[KindSpec] = &[
    spec::<Genesis>(GENESIS),
    spec::<DaemonStart>(DAEMON_START),
    spec::<DaemonStop>(DAEMON_STOP),
    spec::<KeyRotate>(KEY_ROTATE),
    spec::<FaultStorage>(FAULT_STORAGE),
    spec::<DeviceHealth>(DEVICE_HEALTH),
    spec::<DevicesHealth>(DEVICES_HEALTH),
    spec::<DeviceJob>(DEVICE_JOB),
    spec::<InputChange>(GPIO_TAMPER),
    spec::<InputChange>(POWER_FAIL),
    spec::<PowerRestored>(POWER_RESTORED),
    spec::<TamperCleared>(TAMPER_CLEARED),
];

/// The catalogue entry of `kind`, if it is catalogued.
pub fn lookup(kind: &str) -> Option<&'static KindSpec> {
    CATALOGUE.iter().find(|s| s.kind == kind)
}

/// The field names a serde-derived struct declares, read from its `Deserialize` impl (so they
/// cannot drift from the type).
fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut names: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames(&mut names));
    names
}

/// A deserializer that only records the field list `deserialize_struct` is given.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names recorded")
    }
}
impl std::error::Error for Stop {}
impl serde::de::Error for Stop {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Stop
    }
}

impl<'de> serde::Deserializer<'de> for FieldNames<'_> {
    type Error = Stop;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        *self.0 = fields;
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// Encodes a typed payload as the compact JSON text a record carries.
pub fn to_payload<T: Serialize>(payload: &T) -> Vec<u8> {
    // Serialising these plain structs (strings, integers, enums, string-keyed maps) cannot fail.
    serde_json::to_vec(payload).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_come_from_the_types() {
        assert_eq!((lookup(DAEMON_STOP).unwrap().fields)(), ["reason", "interrupted_jobs", "stop_ms"]);
        assert_eq!((lookup(POWER_FAIL).unwrap().fields)(), ["active"]);
        assert_eq!((lookup(GENESIS).unwrap().fields)(), ["format", "public_key", "van_id"]);
        assert!(lookup("test.append").is_none());
    }

    #[test]
    fn catalogue_kinds_are_unique_and_typed_payloads_pass_their_check() {
        let mut kinds: Vec<_> = CATALOGUE.iter().map(|s| s.kind).collect();
        kinds.sort();
        kinds.dedup();
        assert_eq!(kinds.len(), CATALOGUE.len());
        let stop =
            to_payload(&DaemonStop { reason: StopReason::PowerFail, interrupted_jobs: 1, stop_ms: 80 });
        assert_eq!(stop, br#"{"reason":"power-fail","interrupted_jobs":1,"stop_ms":80}"#);
        (lookup(DAEMON_STOP).unwrap().check)(&stop).unwrap();
        let kill = br#"{"reason":"SIGKILL","interrupted_jobs":0,"stop_ms":1}"#;
        assert!((lookup(DAEMON_STOP).unwrap().check)(kill).is_err());
        let health = DeviceHealth {
            device: "card".into(),
            health: HealthState::Fault { fault: "card.ribbon_ended".into(), detail: String::new() },
            changes: 1,
        };
        assert_eq!(
            String::from_utf8(to_payload(&health)).unwrap(),
            r#"{"device":"card","health":{"state":"fault","fault":"card.ribbon_ended","detail":""},"changes":1}"#
        );
        // Optional fields of device.job may be left out.
        let job = br#"{"job":7,"device":"payment","what":"purchase","outcome":"unknown","may_have_acted":true,"ms":900}"#;
        (lookup(DEVICE_JOB).unwrap().check)(job).unwrap();
    }
}
