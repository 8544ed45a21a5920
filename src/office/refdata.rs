//! `office.db`: the reference data the van receives from HQ (bookings with dossiers, the fee
//! schedule, the officer roster, the block list) and the van's own derived state for it (booking
//! states, login failure counters).
//!
//! Reference data arrives as **bundles**, JSON files with a common header:
//! `{"bundle": "bookings"|"roster"|"schedule"|"blocklist", "version": <u64>, "van_id": "…",
//! "issued_at": "<RFC 3339>", …}` and a body: `"items": [Booking…]` (bookings), `"officers":
//! [RosterEntry…]` (roster), `"schedule": {…}` / `"blocklist": {…}` (kept as JSON here; typed by
//! `office::schedule`), `"settings": {…}` (the few settings HQ may change, [`Settings`]).
//!
//! Rules, all checked before anything is written (a refused bundle changes nothing):
//! - a bundle for another van is refused (`bundle.wrong_van`);
//! - roster, schedule, block list and settings: a version lower than or equal to the one applied is refused
//!   (`bundle.stale_version`);
//! - bookings: each booking has its own version. A booking with a higher version than the stored
//!   one replaces its data but keeps the van's state and transaction for it; a lower or equal one
//!   is skipped and counted. Every booking's slot must lie inside service hours on one local day,
//!   and ids must be unique in the bundle: otherwise the whole bundle is refused with every bad
//!   booking named (`bundle.bad_bookings`).
//!
//! The journal stays the truth: the caller journals `refdata.applied` {bundle, version, sha256,
//! items} and only then writes here ([`RefData::prepare`], journal, [`RefData::commit`]; or
//! [`RefData::apply`] when nothing is journaled, e.g. in tests).
//!
//! One owner: [`RefData`] holds the only connection behind a mutex; every operation is one short
//! transaction. The database is created mode 0600 (it holds PIN hashes).

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use rusqlite::{Connection, OptionalExtension, params};
use rusqlite_migration::{M, Migrations};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::model::{Booking, BookingState, FieldError};
use super::people::{self, Officer, RosterEntry};
use crate::config::ServiceConfig;

/// The kinds of bundle HQ sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BundleKind {
    /// Bookings with their dossiers (`"items"`).
    Bookings,
    /// The officer roster (`"officers"`).
    Roster,
    /// The fee schedule (`"schedule"`).
    Schedule,
    /// The block list (`"blocklist"`).
    Blocklist,
    /// Settings HQ may change on a van (`"settings"`, [`Settings`]).
    Settings,
}

impl BundleKind {
    /// Wire name.
    pub fn name(self) -> &'static str {
        match self {
            BundleKind::Bookings => "bookings",
            BundleKind::Roster => "roster",
            BundleKind::Schedule => "schedule",
            BundleKind::Blocklist => "blocklist",
            BundleKind::Settings => "settings",
        }
    }

    /// The kind of a wire name.
    pub fn parse(s: &str) -> Option<BundleKind> {
        [
            BundleKind::Bookings,
            BundleKind::Roster,
            BundleKind::Schedule,
            BundleKind::Blocklist,
            BundleKind::Settings,
        ]
        .into_iter()
        .find(|k| k.name() == s)
    }
}

impl std::fmt::Display for BundleKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Service hours: bookings must lie inside them (local time of `tz`).
#[derive(Debug, Clone)]
pub struct ServiceHours {
    /// Time zone of the hours (Africa/Cairo).
    pub tz: TimeZone,
    /// Opening, minutes after local midnight.
    pub opens_min: u32,
    /// Closing, minutes after local midnight.
    pub closes_min: u32,
}

impl ServiceHours {
    /// From the `[service]` configuration (already validated at load; an invalid one is an error
    /// naming the key).
    pub fn from_config(c: &ServiceConfig) -> Result<ServiceHours, String> {
        let tz = TimeZone::get(&c.timezone)
            .map_err(|e| format!("service.timezone: {:?} is not in the tz database: {e}", c.timezone))?;
        let opens_min = crate::config::parse_hhmm(&c.opens)
            .ok_or_else(|| format!("service.opens: {:?} is not a time HH:MM", c.opens))?;
        let closes_min = crate::config::parse_hhmm(&c.closes)
            .ok_or_else(|| format!("service.closes: {:?} is not a time HH:MM", c.closes))?;
        if closes_min <= opens_min {
            return Err("service.closes: must be later than service.opens".into());
        }
        Ok(ServiceHours { tz, opens_min, closes_min })
    }

    /// The defaults: 10:00–22:00 Africa/Cairo.
    pub fn cairo_default() -> ServiceHours {
        ServiceHours::from_config(&ServiceConfig::default()).expect("default service hours are valid")
    }

    /// Why a slot is not inside service hours, or `None` if it is.
    fn slot_problem(&self, start: Timestamp, end: Timestamp) -> Option<String> {
        if end <= start {
            return Some(format!("slot ends ({end}) before it starts ({start})"));
        }
        let s = start.to_zoned_datetime(self.tz.clone());
        let e = end.to_zoned_datetime(self.tz.clone());
        let hhmm = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
        let minutes = |z: &jiff::ZonedDateTime| {
            u32::from(z.hour().unsigned_abs()) * 60 + u32::from(z.minute().unsigned_abs())
        };
        let (sm, em) = (minutes(&s), minutes(&e));
        let local = |z: &jiff::ZonedDateTime| z.strftime("%Y-%m-%d %H:%M").to_string();
        if s.date() != e.date()
            || sm < self.opens_min
            || em > self.closes_min
            || (em == self.closes_min && e.second() > 0)
        {
            return Some(format!(
                "slot {}–{} local time is outside service hours {}–{}",
                local(&s),
                local(&e),
                hhmm(self.opens_min),
                hhmm(self.closes_min)
            ));
        }
        None
    }
}

/// What applying a bundle did (the caller journals it as `refdata.applied`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// Bundle kind.
    pub bundle: BundleKind,
    /// The bundle's version.
    pub version: u64,
    /// SHA-256 of the file bytes, hex.
    pub sha256: String,
    /// Items written (bookings new or replaced, officers, 1 for a schedule or block list).
    pub items: usize,
    /// Bookings skipped because the van already holds an equal or newer version.
    pub skipped: usize,
}

/// One booking a bundle was refused for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BookingRefusal {
    /// The booking's id.
    pub booking: String,
    /// What is wrong with it.
    pub error: FieldError,
}

/// A booking as the van holds it: HQ's data and the van's state for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BookingView {
    /// HQ's booking (latest version received).
    pub booking: Booking,
    /// The van's state for it.
    pub state: BookingState,
    /// The transaction running or run for it, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txn: Option<String>,
    /// When the state last changed (the import time for a new booking).
    pub state_changed_at: Timestamp,
}

/// A reference data failure. [`RefDataError::code`] is the stable code, [`RefDataError::field_errors`]
/// the words for the officer.
#[derive(Debug, thiserror::Error)]
pub enum RefDataError {
    /// The bundle is not valid JSON of the expected shape.
    #[error("bundle: {path}: {detail}{}", booking.as_ref().map(|b| format!(" (booking {b})")).unwrap_or_default())]
    Malformed {
        /// JSON path of the problem (`items[3].slot.start`), empty for the whole file.
        path: String,
        /// What is wrong.
        detail: String,
        /// The id of the booking the path is in, if known.
        booking: Option<String>,
    },
    /// The bundle is addressed to another van.
    #[error("bundle is for van {got:?}, this van is {expected:?}")]
    WrongVan {
        /// This van's id.
        expected: String,
        /// The bundle's van id.
        got: String,
    },
    /// The bundle's version is not newer than the one applied.
    #[error("{bundle} bundle version {version} is not newer than the applied version {current}")]
    StaleVersion {
        /// Bundle kind.
        bundle: BundleKind,
        /// The refused version.
        version: u64,
        /// The version applied.
        current: u64,
    },
    /// Bookings in the bundle are unacceptable; nothing was applied.
    #[error("bookings bundle refused: {}", .0.iter().map(|r| format!("{}: {}", r.booking, r.error)).collect::<Vec<_>>().join("; "))]
    BadBookings(Vec<BookingRefusal>),
    /// Officers in a roster are unacceptable; nothing was applied.
    #[error("roster refused: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    BadRoster(Vec<FieldError>),
    /// Values in a settings bundle are unacceptable; nothing was applied.
    #[error("settings refused: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    BadSettings(Vec<FieldError>),
    /// No such booking.
    #[error("no booking {0:?}")]
    UnknownBooking(String),
    /// The booking is not in the state the caller expected.
    #[error("booking {id} is {actual:?}, not {expected:?}")]
    WrongState {
        /// Booking id.
        id: String,
        /// What the caller expected.
        expected: BookingState,
        /// What it is.
        actual: BookingState,
    },
    /// The transition is not allowed.
    #[error("booking {id} cannot go from {from:?} to {to:?}")]
    NotAllowed {
        /// Booking id.
        id: String,
        /// Its state.
        from: BookingState,
        /// Asked state.
        to: BookingState,
    },
    /// Bookings changed between prepare and commit (another import ran): prepare again.
    #[error("reference data changed since the bundle was checked; import it again")]
    Changed,
    /// The journal hook refused or failed: nothing was written.
    #[error("not applied: the journal record failed: {0}")]
    NotJournaled(String),
    /// The database failed.
    #[error("office database {path}: {detail}")]
    Storage {
        /// Database path.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
}

impl RefDataError {
    /// Stable dotted code.
    pub fn code(&self) -> &'static str {
        match self {
            RefDataError::Malformed { .. } => "bundle.malformed",
            RefDataError::WrongVan { .. } => "bundle.wrong_van",
            RefDataError::StaleVersion { .. } => "bundle.stale_version",
            RefDataError::BadBookings(_) => "bundle.bad_bookings",
            RefDataError::BadRoster(_) => "bundle.bad_roster",
            RefDataError::BadSettings(_) => "bundle.bad_settings",
            RefDataError::UnknownBooking(_) => "not_found.booking",
            RefDataError::WrongState { .. } => "state.booking_changed",
            RefDataError::NotAllowed { .. } => "state.booking_transition",
            RefDataError::Changed => "bundle.changed",
            RefDataError::NotJournaled(_) => "storage.journal",
            RefDataError::Storage { .. } => "storage.office_db",
        }
    }

    /// The error as field errors with Arabic and English words (one per bad booking or officer).
    pub fn field_errors(&self) -> Vec<FieldError> {
        let one = |field: &str, ar: String| vec![FieldError::new(field, self.code(), ar, self.to_string())];
        match self {
            RefDataError::Malformed { path, detail, booking } => {
                let b = booking.as_ref().map(|b| format!(" (الحجز {b})")).unwrap_or_default();
                one(path, format!("ملف البيانات غير صالح عند {path}: {detail}{b}"))
            }
            RefDataError::WrongVan { got, .. } => one("van_id", format!("الملف مرسل لوحدة أخرى ({got})")),
            RefDataError::StaleVersion { version, current, .. } => {
                one("version", format!("إصدار الملف {version} ليس أحدث من الإصدار المطبق {current}"))
            }
            RefDataError::BadBookings(v) => v.iter().map(|r| r.error.clone()).collect(),
            RefDataError::BadRoster(v) | RefDataError::BadSettings(v) => v.clone(),
            RefDataError::UnknownBooking(id) => one("booking", format!("لا يوجد حجز رقم {id}")),
            RefDataError::WrongState { id, actual, .. } => {
                one("booking", format!("تغيرت حالة الحجز {id} (الحالة الآن: {})", state_ar(*actual)))
            }
            RefDataError::NotAllowed { id, from, to } => one(
                "to",
                format!("لا يمكن نقل الحجز {id} من حالة «{}» إلى «{}»", state_ar(*from), state_ar(*to)),
            ),
            RefDataError::Changed => one("", "تغيرت البيانات أثناء الاستيراد؛ أعد المحاولة".into()),
            RefDataError::NotJournaled(_) => one("", "تعذر تسجيل الاستيراد في السجل؛ لم يتغير شيء".into()),
            RefDataError::Storage { .. } => one("", "تعذر حفظ البيانات في قاعدة بيانات الوحدة".into()),
        }
    }
}

/// Arabic name of a booking state.
pub fn state_ar(s: BookingState) -> &'static str {
    match s {
        BookingState::Assigned => "مخصص للوحدة",
        BookingState::Arrived => "حضر",
        BookingState::InService => "قيد الخدمة",
        BookingState::Done => "تمت الخدمة",
        BookingState::NoShow => "لم يحضر",
        BookingState::Cancelled => "ملغى",
    }
}

fn state_name(s: BookingState) -> String {
    match serde_json::to_value(s) {
        Ok(Value::String(s)) => s,
        _ => unreachable!("BookingState serialises to a string"),
    }
}

fn parse_state(s: &str) -> Option<BookingState> {
    serde_json::from_value(Value::String(s.to_owned())).ok()
}

/// The failure counter of an officer id (see `people`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoginCounter {
    /// Consecutive failed logins since the last success or lockout.
    pub failures: u32,
    /// Locked until this instant, if locked.
    pub locked_until: Option<Timestamp>,
}

/// A checked bundle, ready to be journaled and committed.
#[derive(Debug, Clone)]
pub struct Prepared {
    applied: Applied,
    raw: String,
    issued_at: Timestamp,
    body: Body,
}

impl Prepared {
    /// What committing it will do (the `refdata.applied` record's content).
    pub fn applied(&self) -> &Applied {
        &self.applied
    }

    /// When HQ issued it.
    pub fn issued_at(&self) -> Timestamp {
        self.issued_at
    }
}

#[derive(Debug, Clone)]
enum Body {
    /// New or replacing bookings, with the stored version each replaces (for the commit check).
    Bookings(Vec<(Booking, Option<u32>)>),
    Roster(Vec<RosterEntry>),
    Raw(String),
}

#[derive(Deserialize)]
struct Header {
    bundle: String,
    version: u64,
    van_id: String,
    issued_at: Timestamp,
}

#[derive(Deserialize)]
struct BookingsBody {
    items: Vec<Booking>,
}

#[derive(Deserialize)]
struct RosterBody {
    officers: Vec<RosterEntry>,
}

#[derive(Deserialize)]
struct SettingsBody {
    settings: Settings,
}

/// The settings HQ may change on a van (a `settings` bundle's body). A whitelist: nothing secret
/// (no tag passwords, no keys) and nothing about the devices' ports; any other field is refused.
/// Every field is optional; one absent keeps the configuration's value. They take effect at the
/// next start of vand (docs/reference-data.md, "Settings"), which reads the applied ones from
/// office.db and puts them over the configuration ([`crate::office::boot::apply_settings`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// E-sticker profile: EPC length in bytes (even, 2 … 62, as `[devices.rfid.options]
    /// epc_bytes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epc_bytes: Option<i64>,
    /// E-sticker profile: user memory words written (0 … 512, as `[devices.rfid.options]
    /// user_words`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_words: Option<i64>,
    /// Print licence cards in colour (YMCKO ribbon); false for black only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_colour: Option<bool>,
    /// Service hours: opening, local `HH:MM` in the service time zone (Africa/Cairo). Given
    /// together with `closes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opens: Option<String>,
    /// Service hours: closing, local `HH:MM`, later than `opens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closes: Option<String>,
}

impl Settings {
    /// Every problem with the values, each naming its JSON path (`settings.epc_bytes`).
    pub fn problems(&self) -> Vec<FieldError> {
        let mut bad = Vec::new();
        if self == &Settings::default() {
            bad.push(FieldError::new(
                "settings",
                "settings.empty",
                "ملف الإعدادات لا يحتوي على أي إعداد",
                "the settings object names no setting",
            ));
        }
        let mut push = |field: &str, ar: String, en: String| {
            bad.push(FieldError::new(format!("settings.{field}"), "settings.bad_value", ar, en));
        };
        if let Some(v) = self.epc_bytes
            && !((2..=62).contains(&v) && v % 2 == 0)
        {
            push(
                "epc_bytes",
                format!("طول EPC ‏{v} غير مقبول (عدد زوجي من ٢ إلى ٦٢)"),
                format!("{v}: must be an even number from 2 to 62 (the EPC is written in 16-bit words)"),
            );
        }
        if let Some(v) = self.user_words
            && !(0..=512).contains(&v)
        {
            push(
                "user_words",
                format!("عدد كلمات ذاكرة المستخدم {v} غير مقبول (من ٠ إلى ٥١٢)"),
                format!("{v} is outside 0 … 512"),
            );
        }
        fn time(v: Option<&str>) -> Option<(&str, Option<u32>)> {
            v.map(|t| (t, crate::config::parse_hhmm(t)))
        }
        let (opens, closes) = (time(self.opens.as_deref()), time(self.closes.as_deref()));
        for (field, v) in [("opens", opens), ("closes", closes)] {
            if let Some((t, None)) = v {
                push(field, format!("الوقت {t:?} ليس بصيغة HH:MM"), format!("{t:?} is not a time HH:MM"));
            }
        }
        match (opens, closes) {
            (Some((_, Some(o))), Some((_, Some(c)))) if c <= o => push(
                "closes",
                "وقت الإغلاق يجب أن يكون بعد وقت الفتح".into(),
                "must be later than settings.opens".into(),
            ),
            (Some(_), None) => push(
                "closes",
                "يجب إرسال وقت الإغلاق مع وقت الفتح".into(),
                "missing: opens and closes are given together".into(),
            ),
            (None, Some(_)) => push(
                "opens",
                "يجب إرسال وقت الفتح مع وقت الإغلاق".into(),
                "missing: opens and closes are given together".into(),
            ),
            _ => {}
        }
        bad
    }
}

/// The settings bundle applied last (kept in office.db).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedSettings {
    /// The bundle's version.
    pub version: u64,
    /// SHA-256 of the bundle file, hex.
    pub sha256: String,
    /// When it was applied (RFC 3339).
    pub applied_at: String,
    /// The settings.
    pub settings: Settings,
}

fn from_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, RefDataError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        RefDataError::Malformed { detail: e.inner().to_string(), path, booking: None }
    })
}

/// The id of `items[i]` when a path points inside it.
fn booking_at(bytes: &[u8], path: &str) -> Option<String> {
    let rest = path.strip_prefix("items[")?;
    let i: usize = rest[..rest.find(']')?].parse().ok()?;
    let v: Value = serde_json::from_slice(bytes).ok()?;
    v.get("items")?.get(i)?.get("id")?.as_str().map(str::to_owned)
}

/// A bundle checked on its own (no stored data needed): its header, its file's SHA-256 and its
/// typed body.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Kind.
    pub kind: BundleKind,
    /// Version.
    pub version: u64,
    /// When HQ issued it.
    pub issued_at: Timestamp,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// The file's text.
    pub raw: String,
    /// The body.
    pub body: BundleBody,
}

/// A bundle's body.
#[derive(Debug, Clone)]
pub enum BundleBody {
    /// Bookings, each inside service hours, ids unique.
    Bookings(Vec<Booking>),
    /// Officers, checked by `people::check_roster`.
    Roster(Vec<RosterEntry>),
    /// The schedule or block list object, as compact JSON.
    Raw(String),
    /// Settings, checked by [`Settings::problems`].
    Settings(Settings),
}

/// Parses and checks a bundle for van `van_id` on its own: the header, the van, the body's shape
/// (errors name the JSON path and the booking), bookings inside `hours` with unique ids, rosters
/// without plain or malformed PINs. Never panics, whatever the bytes.
pub fn parse_bundle(bytes: &[u8], van_id: &str, hours: &ServiceHours) -> Result<Bundle, RefDataError> {
    let header: Header = from_json(bytes)?;
    let Some(kind) = BundleKind::parse(&header.bundle) else {
        return Err(RefDataError::Malformed {
            path: "bundle".into(),
            detail: format!(
                "unknown bundle {:?} (known: bookings, roster, schedule, blocklist, settings)",
                header.bundle
            ),
            booking: None,
        });
    };
    if i64::try_from(header.version).is_err() {
        return Err(RefDataError::Malformed {
            path: "version".into(),
            detail: format!("version {} is larger than {}", header.version, i64::MAX),
            booking: None,
        });
    }
    if header.van_id != van_id {
        return Err(RefDataError::WrongVan { expected: van_id.to_owned(), got: header.van_id });
    }
    let issued_at = header.issued_at;
    let raw = std::str::from_utf8(bytes)
        .map_err(|e| RefDataError::Malformed { path: String::new(), detail: e.to_string(), booking: None })?
        .to_owned();
    let sha256 = hex::encode(Sha256::digest(bytes));
    let body = match kind {
        BundleKind::Bookings => {
            let parsed: BookingsBody = from_json(bytes).map_err(|e| match e {
                RefDataError::Malformed { path, detail, .. } => {
                    let booking = booking_at(bytes, &path);
                    RefDataError::Malformed { path, detail, booking }
                }
                other => other,
            })?;
            let bad = check_bookings(&parsed.items, hours);
            if !bad.is_empty() {
                return Err(RefDataError::BadBookings(bad));
            }
            BundleBody::Bookings(parsed.items)
        }
        BundleKind::Roster => {
            let parsed: RosterBody = from_json(bytes)?;
            let bad = people::check_roster(&parsed.officers);
            if !bad.is_empty() {
                return Err(RefDataError::BadRoster(bad));
            }
            BundleBody::Roster(parsed.officers)
        }
        BundleKind::Settings => {
            let parsed: SettingsBody = from_json(bytes)?;
            let bad = parsed.settings.problems();
            if !bad.is_empty() {
                return Err(RefDataError::BadSettings(bad));
            }
            BundleBody::Settings(parsed.settings)
        }
        BundleKind::Schedule | BundleKind::Blocklist => {
            let v: Value = from_json(bytes)?;
            let field = kind.name();
            let Some(body) = v.get(field).filter(|b| b.is_object()) else {
                return Err(RefDataError::Malformed {
                    path: field.into(),
                    detail: format!("missing object field \"{field}\""),
                    booking: None,
                });
            };
            BundleBody::Raw(body.to_string())
        }
    };
    Ok(Bundle { kind, version: header.version, issued_at, sha256, raw, body })
}

/// Every problem with a bundle's bookings (ids, duplicates, slots outside service hours).
fn check_bookings(items: &[Booking], hours: &ServiceHours) -> Vec<BookingRefusal> {
    let mut bad = Vec::new();
    let mut seen = HashSet::new();
    for (i, b) in items.iter().enumerate() {
        let at = |f: &str| format!("items[{i}].{f}");
        if b.id.trim().is_empty() || b.id.len() > 64 {
            bad.push(BookingRefusal {
                booking: b.id.clone(),
                error: FieldError::new(
                    at("id"),
                    "booking.bad_id",
                    "رقم الحجز فارغ أو أطول من ٦٤ حرفًا",
                    "booking id is empty or longer than 64 characters",
                ),
            });
        }
        if !seen.insert(b.id.as_str()) {
            bad.push(BookingRefusal {
                booking: b.id.clone(),
                error: FieldError::new(
                    at("id"),
                    "booking.duplicate",
                    format!("الحجز {} مكرر في الملف", b.id),
                    format!("booking {} appears twice in the bundle", b.id),
                ),
            });
        }
        if let Some(why) = hours.slot_problem(b.slot.start, b.slot.end) {
            bad.push(BookingRefusal {
                booking: b.id.clone(),
                error: FieldError::new(
                    at("slot"),
                    "booking.outside_hours",
                    format!("موعد الحجز {} خارج ساعات عمل الوحدة", b.id),
                    format!("booking {}: {why}", b.id),
                ),
            });
        }
    }
    bad
}

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(
            r#"
        CREATE TABLE bundles (
            kind       TEXT    NOT NULL,
            version    INTEGER NOT NULL,
            sha256     TEXT    NOT NULL,
            issued_at  TEXT    NOT NULL,
            applied_at TEXT    NOT NULL,
            items      INTEGER NOT NULL,
            skipped    INTEGER NOT NULL,
            raw        TEXT    NOT NULL
        ) STRICT;
        CREATE INDEX bundles_kind ON bundles (kind, version);
        CREATE TABLE current (
            kind    TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            body    TEXT    NOT NULL
        ) STRICT;
        CREATE TABLE bookings (
            id               TEXT PRIMARY KEY,
            version          INTEGER NOT NULL,
            data             TEXT    NOT NULL,
            day              TEXT    NOT NULL,
            slot_start       INTEGER NOT NULL,
            state            TEXT    NOT NULL,
            txn              TEXT,
            state_changed_at TEXT    NOT NULL
        ) STRICT;
        CREATE INDEX bookings_day ON bookings (day, slot_start);
        CREATE TABLE officers (
            id      TEXT PRIMARY KEY,
            name_ar TEXT    NOT NULL,
            name_en TEXT    NOT NULL,
            role    TEXT    NOT NULL,
            pin_hash TEXT   NOT NULL,
            active  INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE login_failures (
            officer      TEXT PRIMARY KEY,
            failures     INTEGER NOT NULL,
            locked_until INTEGER
        ) STRICT;
        "#,
        ),
        // Down-sync: the id of the last HQ bundle the van dealt with (applied or refused).
        M::up("CREATE TABLE down_sync (name TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;"),
        // Latched alarms (the tamper alarm): a row while latched, removed when a supervisor clears it.
        M::up(
            "CREATE TABLE alarms (name TEXT PRIMARY KEY, since TEXT NOT NULL, seq INTEGER NOT NULL) STRICT;",
        ),
    ])
}

/// The office database: the one owner of `office.db`.
pub struct RefData {
    conn: Mutex<Connection>,
    /// Serialises prepare → journal → commit of imports.
    import: Mutex<()>,
    path: PathBuf,
    van_id: String,
    /// Replaced by [`RefData::set_hours`] (a configuration reload); read once per import.
    hours: std::sync::RwLock<ServiceHours>,
}

impl std::fmt::Debug for RefData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefData").field("path", &self.path).field("van_id", &self.van_id).finish()
    }
}

impl RefData {
    /// Opens (creating, mode 0600) the office database at `path` for van `van_id`, with the
    /// service hours bookings must fall in. WAL, synchronous=FULL, foreign keys on.
    pub fn open(path: &Path, van_id: &str, hours: ServiceHours) -> Result<RefData, RefDataError> {
        let storage = |detail: String| RefDataError::Storage { path: path.to_owned(), detail };
        // Create it private before SQLite does (its -wal and -shm files take the same mode).
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| storage(format!("cannot create: {e}")))?;
        let mut conn = Connection::open(path).map_err(|e| storage(e.to_string()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| storage(e.to_string()))?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(|e| storage(e.to_string()))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(storage(format!("cannot enable WAL (got {mode})")));
        }
        conn.pragma_update(None, "synchronous", "FULL").map_err(|e| storage(e.to_string()))?;
        conn.pragma_update(None, "foreign_keys", true).map_err(|e| storage(e.to_string()))?;
        migrations().to_latest(&mut conn).map_err(|e| storage(e.to_string()))?;
        Ok(RefData {
            conn: Mutex::new(conn),
            import: Mutex::new(()),
            path: path.to_owned(),
            van_id: van_id.to_owned(),
            hours: std::sync::RwLock::new(hours),
        })
    }

    /// The service hours bookings are checked against.
    pub fn hours(&self) -> ServiceHours {
        self.hours.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the opening and closing times (minutes after local midnight, `closes_min` later;
    /// a configuration reload). The time zone stays. Only the checks of bundles imported from
    /// now on use them: bookings already stored are not checked again.
    pub fn set_hours(&self, opens_min: u32, closes_min: u32) {
        let mut h = self.hours.write().unwrap_or_else(|p| p.into_inner());
        h.opens_min = opens_min;
        h.closes_min = closes_min;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back).
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn storage(&self, e: impl std::fmt::Display) -> RefDataError {
        RefDataError::Storage { path: self.path.clone(), detail: e.to_string() }
    }

    /// Merges the write-ahead log into the database and empties it (`wal_checkpoint(TRUNCATE)`),
    /// so a power loss right after leaves nothing in the `-wal` file.
    pub fn checkpoint_wal(&self) -> Result<(), RefDataError> {
        let conn = self.lock();
        let busy: i64 = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .map_err(|e| self.storage(e))?;
        if busy != 0 {
            return Err(self.storage("the WAL checkpoint was blocked by a reader"));
        }
        Ok(())
    }

    /// A latched alarm: when it was raised and the journal record that raised it.
    pub fn alarm(&self, name: &str) -> Result<Option<(String, u64)>, RefDataError> {
        self.lock()
            .query_row("SELECT since, seq FROM alarms WHERE name = ?1", [name], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .optional()
            .map_err(|e| self.storage(e))
    }

    /// Latches alarm `name` (kept if already latched: the first raise counts).
    pub fn latch_alarm(&self, name: &str, since: &str, seq: u64) -> Result<(), RefDataError> {
        self.lock()
            .execute(
                "INSERT INTO alarms (name, since, seq) VALUES (?1, ?2, ?3) ON CONFLICT (name) DO NOTHING",
                params![name, since, seq as i64],
            )
            .map(drop)
            .map_err(|e| self.storage(e))
    }

    /// Clears alarm `name`; whether it was latched.
    pub fn clear_alarm(&self, name: &str) -> Result<bool, RefDataError> {
        self.lock()
            .execute("DELETE FROM alarms WHERE name = ?1", [name])
            .map(|n| n > 0)
            .map_err(|e| self.storage(e))
    }

    /// Checks a bundle (the file's bytes) against the rules and the stored data, without writing.
    pub fn prepare(&self, bytes: &[u8]) -> Result<Prepared, RefDataError> {
        let parsed = parse_bundle(bytes, &self.van_id, &self.hours())?;
        let conn = self.lock();
        let kind = parsed.kind;
        if kind != BundleKind::Bookings {
            let current: Option<i64> = conn
                .query_row("SELECT version FROM current WHERE kind = ?1", [kind.name()], |r| r.get(0))
                .optional()
                .map_err(|e| self.storage(e))?;
            let current = current.map(|c| c as u64);
            if let Some(current) = current.filter(|&c| parsed.version <= c) {
                return Err(RefDataError::StaleVersion { bundle: kind, version: parsed.version, current });
            }
        }
        let (body, items, skipped) = match parsed.body {
            BundleBody::Bookings(list) => {
                let mut keep = Vec::new();
                let mut skipped = 0;
                for b in list {
                    let stored: Option<u32> = conn
                        .query_row("SELECT version FROM bookings WHERE id = ?1", [&b.id], |r| r.get(0))
                        .optional()
                        .map_err(|e| self.storage(e))?;
                    match stored {
                        Some(v) if v >= b.version => skipped += 1,
                        _ => keep.push((b, stored)),
                    }
                }
                let n = keep.len();
                (Body::Bookings(keep), n, skipped)
            }
            BundleBody::Roster(officers) => {
                let n = officers.len();
                (Body::Roster(officers), n, 0)
            }
            BundleBody::Raw(body) => (Body::Raw(body), 1, 0),
            BundleBody::Settings(s) => {
                (Body::Raw(serde_json::to_string(&s).map_err(|e| self.storage(e))?), 1, 0)
            }
        };
        Ok(Prepared {
            applied: Applied { bundle: kind, version: parsed.version, sha256: parsed.sha256, items, skipped },
            raw: parsed.raw,
            issued_at: parsed.issued_at,
            body,
        })
    }

    /// Writes a prepared bundle in one transaction. Refuses with [`RefDataError::Changed`] (and
    /// writes nothing) if the stored data moved since [`RefData::prepare`].
    pub fn commit(&self, prepared: &Prepared, now: Timestamp) -> Result<Applied, RefDataError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(|e| self.storage(e))?;
        let a = &prepared.applied;
        let kind = a.bundle.name();
        match &prepared.body {
            Body::Bookings(items) => {
                let tz = self.hours().tz;
                for (b, was) in items {
                    let stored: Option<u32> = tx
                        .query_row("SELECT version FROM bookings WHERE id = ?1", [&b.id], |r| r.get(0))
                        .optional()
                        .map_err(|e| self.storage(e))?;
                    if stored != *was {
                        return Err(RefDataError::Changed);
                    }
                    let data = serde_json::to_string(b).map_err(|e| self.storage(e))?;
                    let day = b.slot.start.to_zoned_datetime(tz.clone()).date().to_string();
                    let start = b.slot.start.as_second();
                    if stored.is_some() {
                        tx.execute(
                            "UPDATE bookings SET version = ?2, data = ?3, day = ?4, slot_start = ?5 WHERE id = ?1",
                            params![b.id, b.version, data, day, start],
                        )
                    } else {
                        tx.execute(
                            "INSERT INTO bookings (id, version, data, day, slot_start, state, txn, state_changed_at)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7)",
                            params![b.id, b.version, data, day, start, state_name(BookingState::Assigned), now.to_string()],
                        )
                    }
                    .map_err(|e| self.storage(e))?;
                }
            }
            Body::Roster(officers) => {
                check_version(&tx, kind, a.version).map_err(|e| e.unwrap_or_else(|e| self.storage(e)))?;
                tx.execute("DELETE FROM officers", []).map_err(|e| self.storage(e))?;
                for o in officers {
                    tx.execute(
                        "INSERT INTO officers (id, name_ar, name_en, role, pin_hash, active) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![o.id, o.name_ar, o.name_en, people::role_name(o.role), o.pin_hash, o.active],
                    )
                    .map_err(|e| self.storage(e))?;
                }
                let summary =
                    serde_json::to_string(&officers.iter().map(|o| o.officer()).collect::<Vec<Officer>>())
                        .map_err(|e| self.storage(e))?;
                set_current(&tx, kind, a.version, &summary).map_err(|e| self.storage(e))?;
            }
            Body::Raw(body) => {
                check_version(&tx, kind, a.version).map_err(|e| e.unwrap_or_else(|e| self.storage(e)))?;
                set_current(&tx, kind, a.version, body).map_err(|e| self.storage(e))?;
            }
        }
        tx.execute(
            "INSERT INTO bundles (kind, version, sha256, issued_at, applied_at, items, skipped, raw)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                kind,
                a.version as i64,
                a.sha256,
                prepared.issued_at.to_string(),
                now.to_string(),
                a.items as i64,
                a.skipped as i64,
                prepared.raw
            ],
        )
        .map_err(|e| self.storage(e))?;
        tx.commit().map_err(|e| self.storage(e))?;
        Ok(a.clone())
    }

    /// [`RefData::import`] without a journal record (tests, tools).
    pub fn apply(&self, bytes: &[u8], now: Timestamp) -> Result<Applied, RefDataError> {
        self.import(bytes, now, |_| Ok(()))
    }

    /// Imports a bundle the way the van must: checks it ([`RefData::prepare`]), lets `journal`
    /// write the `refdata.applied` record (an error refuses the import and nothing is written),
    /// then writes it ([`RefData::commit`]). Imports run one at a time, so a bundle checked is the
    /// bundle written. Blocking (SQLite): call it from `spawn_blocking` in async code.
    pub fn import(
        &self,
        bytes: &[u8],
        now: Timestamp,
        journal: impl FnOnce(&Applied) -> Result<(), String>,
    ) -> Result<Applied, RefDataError> {
        let _one = self.import.lock().unwrap_or_else(|p| p.into_inner());
        let p = self.prepare(bytes)?;
        journal(p.applied()).map_err(RefDataError::NotJournaled)?;
        self.commit(&p, now)
    }

    /// The down-sync cursor: the id of the last HQ bundle dealt with (0: none yet).
    pub fn down_cursor(&self) -> Result<u64, RefDataError> {
        self.lock()
            .query_row("SELECT value FROM down_sync WHERE name = 'bundles'", [], |r| r.get::<_, i64>(0))
            .optional()
            .map(|v| v.unwrap_or(0) as u64)
            .map_err(|e| self.storage(e))
    }

    /// Moves the down-sync cursor to `id` (after the bundle was applied or its refusal journaled).
    pub fn set_down_cursor(&self, id: u64) -> Result<(), RefDataError> {
        let id = i64::try_from(id).map_err(|_| RefDataError::Malformed {
            path: "id".into(),
            detail: format!("HQ bundle id {id} is larger than {}", i64::MAX),
            booking: None,
        })?;
        self.lock()
            .execute(
                "INSERT INTO down_sync (name, value) VALUES ('bundles', ?1) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                [id],
            )
            .map_err(|e| self.storage(e))?;
        Ok(())
    }

    /// Whether exactly these bytes (by SHA-256) were applied as `kind` version `version`.
    pub fn was_applied(&self, kind: BundleKind, version: u64, sha256: &str) -> Result<bool, RefDataError> {
        let n: i64 = self
            .lock()
            .query_row(
                "SELECT count(*) FROM bundles WHERE kind = ?1 AND version = ?2 AND sha256 = ?3",
                params![kind.name(), version as i64, sha256],
                |r| r.get(0),
            )
            .map_err(|e| self.storage(e))?;
        Ok(n > 0)
    }

    /// The version applied of a bundle kind (`None`: never). For bookings: the last bundle's.
    pub fn version(&self, kind: BundleKind) -> Result<Option<u64>, RefDataError> {
        self.lock()
            .query_row("SELECT max(version) FROM bundles WHERE kind = ?1", [kind.name()], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .map(|v| v.map(|v| v as u64))
            .map_err(|e| self.storage(e))
    }

    /// The current fee schedule JSON (the body of the last schedule bundle) and its version.
    pub fn schedule_json(&self) -> Result<Option<(u64, String)>, RefDataError> {
        self.current(BundleKind::Schedule)
    }

    /// The current block list JSON and its version.
    pub fn blocklist_json(&self) -> Result<Option<(u64, String)>, RefDataError> {
        self.current(BundleKind::Blocklist)
    }

    /// The settings bundle applied last (`None`: never), read back and checked again.
    pub fn settings(&self) -> Result<Option<AppliedSettings>, RefDataError> {
        let Some((version, body)) = self.current(BundleKind::Settings)? else {
            return Ok(None);
        };
        let settings: Settings =
            serde_json::from_str(&body).map_err(|e| self.storage(format!("stored settings: {e}")))?;
        if let Some(p) = settings.problems().first() {
            return Err(self.storage(format!("stored settings: {p}")));
        }
        let (sha256, applied_at): (String, String) = self
            .lock()
            .query_row(
                "SELECT sha256, applied_at FROM bundles WHERE kind = ?1 AND version = ?2 ORDER BY rowid DESC LIMIT 1",
                params![BundleKind::Settings.name(), version as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.storage(e))?;
        Ok(Some(AppliedSettings { version, sha256, applied_at, settings }))
    }

    fn current(&self, kind: BundleKind) -> Result<Option<(u64, String)>, RefDataError> {
        self.lock()
            .query_row("SELECT version, body FROM current WHERE kind = ?1", [kind.name()], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
            })
            .optional()
            .map_err(|e| self.storage(e))
    }

    fn view(&self, row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<BookingView, RefDataError>> {
        let data: String = row.get(0)?;
        let state: String = row.get(1)?;
        let txn: Option<String> = row.get(2)?;
        let changed: String = row.get(3)?;
        Ok((|| {
            let booking =
                serde_json::from_str(&data).map_err(|e| self.storage(format!("stored booking: {e}")))?;
            let state = parse_state(&state).ok_or_else(|| self.storage(format!("stored state {state:?}")))?;
            let state_changed_at = changed.parse().map_err(|e| self.storage(format!("stored time: {e}")))?;
            Ok(BookingView { booking, state, txn, state_changed_at })
        })())
    }

    /// Bookings whose slot starts on `date` (local date in the service time zone), by start time.
    pub fn bookings_on(&self, date: Date) -> Result<Vec<BookingView>, RefDataError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare("SELECT data, state, txn, state_changed_at FROM bookings WHERE day = ?1 ORDER BY slot_start, id")
            .map_err(|e| self.storage(e))?;
        let rows = stmt.query_map([date.to_string()], |r| self.view(r)).map_err(|e| self.storage(e))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r.map_err(|e| self.storage(e))??);
        }
        Ok(out)
    }

    /// One booking.
    pub fn booking(&self, id: &str) -> Result<Option<BookingView>, RefDataError> {
        let conn = self.lock();
        conn.query_row("SELECT data, state, txn, state_changed_at FROM bookings WHERE id = ?1", [id], |r| {
            self.view(r)
        })
        .optional()
        .map_err(|e| self.storage(e))?
        .transpose()
    }

    /// Moves a booking from `from` to `to` (after the caller journaled `booking.state`).
    /// Refuses if the booking is not in `from` or the transition is not allowed. `txn`, when
    /// given, becomes the booking's transaction; leaving `in_service` for `arrived` clears it.
    pub fn set_booking_state(
        &self,
        id: &str,
        from: BookingState,
        to: BookingState,
        txn: Option<&str>,
        now: Timestamp,
    ) -> Result<BookingView, RefDataError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(|e| self.storage(e))?;
        let state: Option<String> = tx
            .query_row("SELECT state FROM bookings WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .map_err(|e| self.storage(e))?;
        let Some(state) = state else {
            return Err(RefDataError::UnknownBooking(id.to_owned()));
        };
        let actual = parse_state(&state).ok_or_else(|| self.storage(format!("stored state {state:?}")))?;
        if actual != from {
            return Err(RefDataError::WrongState { id: id.to_owned(), expected: from, actual });
        }
        if !from.can_become(to) {
            return Err(RefDataError::NotAllowed { id: id.to_owned(), from, to });
        }
        let clear = from == BookingState::InService && to == BookingState::Arrived;
        tx.execute(
            "UPDATE bookings SET state = ?2, state_changed_at = ?3,
                txn = CASE WHEN ?4 IS NOT NULL THEN ?4 WHEN ?5 THEN NULL ELSE txn END
             WHERE id = ?1",
            params![id, state_name(to), now.to_string(), txn, clear],
        )
        .map_err(|e| self.storage(e))?;
        let view = tx
            .query_row("SELECT data, state, txn, state_changed_at FROM bookings WHERE id = ?1", [id], |r| {
                self.view(r)
            })
            .map_err(|e| self.storage(e))??;
        tx.commit().map_err(|e| self.storage(e))?;
        Ok(view)
    }

    /// The roster entry of an officer (with the PIN hash; for `people` only).
    pub(crate) fn roster_entry(&self, id: &str) -> Result<Option<RosterEntry>, RefDataError> {
        let conn = self.lock();
        conn.query_row(
            "SELECT id, name_ar, name_en, role, pin_hash, active FROM officers WHERE id = ?1",
            [id],
            |r| {
                let role: String = r.get(3)?;
                Ok(RosterEntry {
                    id: r.get(0)?,
                    name_ar: r.get(1)?,
                    name_en: r.get(2)?,
                    role: people::parse_role(&role).unwrap_or(super::model::Role::Officer),
                    pin_hash: r.get(4)?,
                    active: r.get(5)?,
                    pin: None,
                })
            },
        )
        .optional()
        .map_err(|e| self.storage(e))
    }

    /// The roster (without PIN hashes), by id.
    pub fn officers(&self) -> Result<Vec<Officer>, RefDataError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare("SELECT id, name_ar, name_en, role, active FROM officers ORDER BY id")
            .map_err(|e| self.storage(e))?;
        let rows = stmt
            .query_map([], |r| {
                let role: String = r.get(3)?;
                Ok(Officer {
                    id: r.get(0)?,
                    name_ar: r.get(1)?,
                    name_en: r.get(2)?,
                    role: people::parse_role(&role).unwrap_or(super::model::Role::Officer),
                    active: r.get(4)?,
                })
            })
            .map_err(|e| self.storage(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.storage(e))
    }

    /// The login failure counter of an id (typed ids that are not on the roster count too).
    pub fn login_counter(&self, officer: &str) -> Result<LoginCounter, RefDataError> {
        let conn = self.lock();
        let row: Option<(u32, Option<i64>)> = conn
            .query_row(
                "SELECT failures, locked_until FROM login_failures WHERE officer = ?1",
                [officer],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.storage(e))?;
        Ok(match row {
            None => LoginCounter::default(),
            Some((failures, until)) => {
                LoginCounter { failures, locked_until: until.and_then(|s| Timestamp::from_second(s).ok()) }
            }
        })
    }

    /// Stores an id's login failure counter (a default counter removes the row).
    pub fn set_login_counter(&self, officer: &str, c: LoginCounter) -> Result<(), RefDataError> {
        let conn = self.lock();
        if c == LoginCounter::default() {
            conn.execute("DELETE FROM login_failures WHERE officer = ?1", [officer])
        } else {
            conn.execute(
                "INSERT INTO login_failures (officer, failures, locked_until) VALUES (?1, ?2, ?3)
                 ON CONFLICT (officer) DO UPDATE SET failures = ?2, locked_until = ?3",
                params![officer, c.failures, c.locked_until.map(|t| t.as_second())],
            )
        }
        .map_err(|e| self.storage(e))?;
        Ok(())
    }

    /// Applied bundles, oldest first: (kind, version, sha256, applied_at).
    pub fn history(&self) -> Result<Vec<(String, u64, String, String)>, RefDataError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare("SELECT kind, version, sha256, applied_at FROM bundles ORDER BY rowid")
            .map_err(|e| self.storage(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get(2)?, r.get(3)?)))
            .map_err(|e| self.storage(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.storage(e))
    }

    /// Number of bookings per state on a date (for status displays).
    pub fn booking_counts(&self, date: Date) -> Result<BTreeMap<String, u64>, RefDataError> {
        let mut out = BTreeMap::new();
        for v in self.bookings_on(date)? {
            *out.entry(state_name(v.state)).or_insert(0) += 1;
        }
        Ok(out)
    }
}

/// Inside a transaction: refuses a version not newer than the current one.
fn check_version(
    tx: &rusqlite::Transaction<'_>,
    kind: &str,
    version: u64,
) -> Result<(), Result<RefDataError, rusqlite::Error>> {
    let current: Option<i64> = tx
        .query_row("SELECT version FROM current WHERE kind = ?1", [kind], |r| r.get(0))
        .optional()
        .map_err(Err)?;
    match current {
        Some(c) if version <= c as u64 => Err(Ok(RefDataError::Changed)),
        _ => Ok(()),
    }
}

fn set_current(tx: &rusqlite::Transaction<'_>, kind: &str, version: u64, body: &str) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO current (kind, version, body) VALUES (?1, ?2, ?3)
         ON CONFLICT (kind) DO UPDATE SET version = ?2, body = ?3",
        params![kind, version as i64, body],
    )?;
    Ok(())
}

/// Writes the `refdata.applied` journal record for an import (see [`RefData::import`]).
pub type JournalHook = Arc<dyn Fn(&Applied) -> Result<(), String> + Send + Sync>;

/// The journal payload of `refdata.applied` for an import by `officer` (`None`: from the
/// technician's command line).
pub fn applied_record(a: &Applied, officer: Option<&str>) -> Value {
    let mut v = serde_json::json!({
        "bundle": a.bundle.name(), "version": a.version, "sha256": a.sha256, "items": a.items, "skipped": a.skipped,
    });
    if let Some(o) = officer {
        v["officer"] = Value::String(o.to_owned());
    }
    v
}

/// The service desk's control socket commands (install with `control::serve_with_extra`):
/// - `{"cmd":"import","bundle_text":"<the file>"}` (the file's exact text, so its SHA-256 is the
///   file's) or `{"cmd":"import","bundle":{…}}` (hashed as compact JSON) →
///   `{"import":{"bundle","version","sha256","items","skipped"}}`;
/// - `{"cmd":"bookings","date":"YYYY-MM-DD"}` (date optional: today in the service time zone) →
///   `{"bookings":[{"booking":…,"state":…,"txn"?:…,"state_changed_at":…}]}`;
/// - `{"cmd":"officers"}` → `{"officers":[{"id","name_ar","name_en","role","active"}]}`.
///
/// Errors answer `{"error": "…"}` with every bad booking or officer named.
pub struct OfficeControl {
    refdata: Arc<RefData>,
    journal: JournalHook,
}

impl OfficeControl {
    /// Commands over `refdata`; `journal` writes `refdata.applied` before an import is written.
    pub fn new(refdata: Arc<RefData>, journal: JournalHook) -> OfficeControl {
        OfficeControl { refdata, journal }
    }

    fn answer(refdata: &RefData, journal: &JournalHook, request: Value) -> Result<Value, String> {
        match request.get("cmd").and_then(Value::as_str) {
            Some("import") => {
                let bytes = match (request.get("bundle_text"), request.get("bundle")) {
                    (Some(Value::String(t)), _) => t.clone().into_bytes(),
                    (_, Some(b @ Value::Object(_))) => b.to_string().into_bytes(),
                    _ => {
                        return Err(
                            "cmd \"import\" needs \"bundle_text\" (the file as a string) or \"bundle\" (an object)"
                                .into(),
                        );
                    }
                };
                let a =
                    refdata.import(&bytes, Timestamp::now(), |a| journal(a)).map_err(|e| e.to_string())?;
                Ok(serde_json::json!({ "import": a }))
            }
            Some("bookings") => {
                let date = match request.get("date") {
                    None | Some(Value::Null) => Timestamp::now().to_zoned_datetime(refdata.hours().tz).date(),
                    Some(Value::String(d)) => {
                        d.parse::<Date>().map_err(|e| format!("date {d:?} is not YYYY-MM-DD: {e}"))?
                    }
                    Some(other) => return Err(format!("date must be a string YYYY-MM-DD, not {other}")),
                };
                let list = refdata.bookings_on(date).map_err(|e| e.to_string())?;
                Ok(serde_json::json!({ "date": date.to_string(), "bookings": list }))
            }
            Some("officers") => {
                let list = refdata.officers().map_err(|e| e.to_string())?;
                Ok(serde_json::json!({ "officers": list }))
            }
            other => Err(format!("unknown office command {other:?}")),
        }
    }
}

impl crate::control::ControlExtra for OfficeControl {
    fn commands(&self) -> &[&'static str] {
        &["import", "bookings", "officers"]
    }

    fn handle(&self, request: Value) -> crate::control::ExtraFuture<'_> {
        let refdata = self.refdata.clone();
        let journal = self.journal.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || OfficeControl::answer(&refdata, &journal, request))
                .await
                .map_err(|e| format!("office command failed: {e}"))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VAN: &str = "MTU-T";

    fn settings_bundle(version: u64, settings: Value) -> Vec<u8> {
        serde_json::json!({"bundle": "settings", "version": version, "van_id": VAN,
                           "issued_at": "2026-12-01T05:00:00Z", "settings": settings})
        .to_string()
        .into_bytes()
    }

    fn parse(bytes: &[u8]) -> Result<Bundle, RefDataError> {
        parse_bundle(bytes, VAN, &ServiceHours::cairo_default())
    }

    #[test]
    fn a_settings_bundle_parses_into_its_whitelist() {
        let b = parse(&settings_bundle(
            3,
            serde_json::json!({"epc_bytes": 16, "user_words": 0, "card_colour": false,
                               "opens": "09:00", "closes": "17:30"}),
        ))
        .unwrap();
        assert_eq!(b.kind, BundleKind::Settings);
        assert_eq!(b.version, 3);
        let BundleBody::Settings(s) = b.body else { panic!("{:?}", b.body) };
        assert_eq!(
            s,
            Settings {
                epc_bytes: Some(16),
                user_words: Some(0),
                card_colour: Some(false),
                opens: Some("09:00".into()),
                closes: Some("17:30".into()),
            }
        );
        // Each field is optional.
        assert!(parse(&settings_bundle(1, serde_json::json!({"card_colour": true}))).is_ok());
    }

    #[test]
    fn an_unknown_or_secret_field_is_refused_by_name() {
        for field in ["tag_password", "password_file", "path", "baud"] {
            let e = parse(&settings_bundle(1, serde_json::json!({"epc_bytes": 12, field: "x"}))).unwrap_err();
            assert_eq!(e.code(), "bundle.malformed", "{field}");
            assert!(e.to_string().contains(field), "{field}: {e}");
            assert!(e.to_string().contains("settings"), "{field}: {e}");
        }
        // A wrong type names its path.
        let e = parse(&settings_bundle(1, serde_json::json!({"epc_bytes": "twelve"}))).unwrap_err();
        assert!(matches!(&e, RefDataError::Malformed { path, .. } if path == "settings.epc_bytes"), "{e:?}");
        // No body, or an empty one.
        let mut no_body: Value = serde_json::from_slice(&settings_bundle(1, Value::Null)).unwrap();
        no_body.as_object_mut().unwrap().remove("settings");
        assert_eq!(parse(no_body.to_string().as_bytes()).unwrap_err().code(), "bundle.malformed");
        let e = parse(&settings_bundle(1, serde_json::json!({}))).unwrap_err();
        assert_eq!(e.code(), "bundle.bad_settings");
    }

    #[test]
    fn out_of_range_values_are_each_named_with_their_path() {
        let e = parse(&settings_bundle(
            1,
            serde_json::json!({"epc_bytes": 13, "user_words": 513, "opens": "25:00", "closes": "10:00"}),
        ))
        .unwrap_err();
        let RefDataError::BadSettings(bad) = &e else { panic!("{e:?}") };
        let fields: Vec<&str> = bad.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["settings.epc_bytes", "settings.user_words", "settings.opens"], "{e}");
        assert_eq!(e.code(), "bundle.bad_settings");
        for (v, ok) in [(0, false), (2, true), (62, true), (64, false), (-2, false), (12, true)] {
            let r = parse(&settings_bundle(1, serde_json::json!({"epc_bytes": v})));
            assert_eq!(r.is_ok(), ok, "epc_bytes {v}: {r:?}");
        }
        for (v, ok) in [(0, true), (512, true), (-1, false), (513, false)] {
            let r = parse(&settings_bundle(1, serde_json::json!({"user_words": v})));
            assert_eq!(r.is_ok(), ok, "user_words {v}: {r:?}");
        }
        let e =
            parse(&settings_bundle(1, serde_json::json!({"opens": "18:00", "closes": "09:00"}))).unwrap_err();
        assert!(e.to_string().contains("settings.closes"), "{e}");
        let e = parse(&settings_bundle(1, serde_json::json!({"opens": "09:00"}))).unwrap_err();
        assert!(e.to_string().contains("settings.closes"), "{e}");
    }

    proptest::proptest! {
        /// Any values: an answer, never a panic; accepted exactly when each is in its range.
        #[test]
        fn any_settings_values_are_judged_by_their_ranges(
            epc in proptest::option::of(-3i64..70),
            words in proptest::option::of(-3i64..520),
            hours in proptest::option::of(("[0-9:]{0,6}", "[0-9:]{0,6}")),
        ) {
            let mut body = serde_json::json!({"card_colour": true});
            if let Some(e) = epc { body["epc_bytes"] = e.into(); }
            if let Some(w) = words { body["user_words"] = w.into(); }
            if let Some((o, c)) = &hours { body["opens"] = o.as_str().into(); body["closes"] = c.as_str().into(); }
            let hours_ok = hours.as_ref().is_none_or(|(o, c)| {
                matches!((crate::config::parse_hhmm(o), crate::config::parse_hhmm(c)), (Some(o), Some(c)) if c > o)
            });
            let ok = epc.is_none_or(|e| (2..=62).contains(&e) && e % 2 == 0)
                && words.is_none_or(|w| (0..=512).contains(&w))
                && hours_ok;
            let r = parse(&settings_bundle(1, body));
            proptest::prop_assert_eq!(r.is_ok(), ok, "{:?}", r.err());
        }
    }

    #[test]
    fn settings_are_stored_versioned_and_a_stale_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = RefData::open(&dir.path().join("office.db"), VAN, ServiceHours::cairo_default()).unwrap();
        assert_eq!(db.settings().unwrap(), None);
        let bytes = settings_bundle(5, serde_json::json!({"epc_bytes": 16, "card_colour": false}));
        let a = db.apply(&bytes, Timestamp::UNIX_EPOCH).unwrap();
        assert_eq!((a.bundle, a.version, a.items), (BundleKind::Settings, 5, 1));
        let s = db.settings().unwrap().unwrap();
        assert_eq!(s.version, 5);
        assert_eq!(s.sha256, hex::encode(Sha256::digest(&bytes)));
        assert_eq!(s.settings.epc_bytes, Some(16));
        assert_eq!(s.settings.card_colour, Some(false));
        for stale in [5, 4] {
            let e = db
                .apply(&settings_bundle(stale, serde_json::json!({"epc_bytes": 12})), Timestamp::UNIX_EPOCH);
            assert!(
                matches!(e, Err(RefDataError::StaleVersion { version, current: 5, .. }) if version == stale),
                "{e:?}"
            );
        }
        assert_eq!(db.settings().unwrap().unwrap().settings.epc_bytes, Some(16));
        // A newer one replaces the old one wholly.
        db.apply(&settings_bundle(6, serde_json::json!({"user_words": 8})), Timestamp::UNIX_EPOCH).unwrap();
        let s = db.settings().unwrap().unwrap();
        assert_eq!((s.version, s.settings.epc_bytes, s.settings.user_words), (6, None, Some(8)));
    }
}
