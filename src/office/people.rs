//! Officers: the roster, PIN checks with a persistent lockout, and login sessions.
//!
//! **PINs** are stored only as Argon2id PHC strings (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`),
//! made by [`hash_pin`] with [`PIN_PARAMS`]: 19 MiB of memory, 2 passes, 1 lane (the argon2
//! crate's defaults, OWASP's minimum for Argon2id), about 0.1 s on a Raspberry Pi 4. A PIN is never
//! logged. Verification costs the same: **async callers must run [`People::login`] on a blocking
//! thread** (`tokio::task::spawn_blocking`), never on the runtime.
//!
//! **Lockout**: after `max_failures` consecutive wrong PINs (default 5) the id is locked for
//! `lock_for` (default 15 minutes); the counter lives in `office.db`, so a restart does not reset
//! it. A correct PIN resets it.
//!
//! **What a login reveals.** Officer ids are badge numbers, not secrets, but the desk does not help
//! anyone find which ids exist: an unknown id and a wrong PIN get the same words, the same
//! attempts-left count and the same lockout (failures are counted per *typed* id, known or not),
//! and an unknown id still costs one Argon2 verification. Only the journal tells them apart
//! ([`LoginError::reason`]). "Inactive" is said only after a correct PIN.
//!
//! **Sessions** ([`Sessions`]) are random 32-byte tokens (base64url text), kept in memory only as
//! their SHA-256, with an idle expiry (default 30 minutes, refreshed on use) and an absolute one
//! (default 12 hours).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::{SignedDuration, Timestamp};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::model::{Actor, FieldError, Role};
use super::refdata::{LoginCounter, RefData, RefDataError};

/// Argon2id cost for PINs: m = 19 MiB, t = 2, p = 1 (see the module doc).
pub const PIN_PARAMS: (u32, u32, u32) =
    (Params::DEFAULT_M_COST, Params::DEFAULT_T_COST, Params::DEFAULT_P_COST);

/// Highest memory cost (KiB) a roster hash may ask for: a bad roster must not exhaust the van.
pub const MAX_M_COST: u32 = 256 * 1024;
/// Highest pass count a roster hash may ask for.
pub const MAX_T_COST: u32 = 16;
/// Highest lane count a roster hash may ask for.
pub const MAX_P_COST: u32 = 8;

/// An officer as the rest of the van sees them (no PIN hash).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Officer {
    /// Officer id (badge number).
    pub id: String,
    /// Name in Arabic.
    pub name_ar: String,
    /// Name in English.
    pub name_en: String,
    /// Role.
    pub role: Role,
    /// Whether they may log in.
    pub active: bool,
}

impl Officer {
    /// The actor records name.
    pub fn actor(&self) -> Actor {
        Actor { id: self.id.clone(), role: self.role }
    }
}

/// One officer in a roster bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterEntry {
    /// Officer id: 1–32 of `A–Z a–z 0–9 - _`.
    pub id: String,
    /// Name in Arabic.
    pub name_ar: String,
    /// Name in English.
    pub name_en: String,
    /// `officer` or `supervisor`.
    pub role: Role,
    /// Argon2id PHC string of the PIN.
    pub pin_hash: String,
    /// Whether they may log in.
    #[serde(default = "yes")]
    pub active: bool,
    /// A plain PIN: never accepted (present only so a roster carrying one is refused by name).
    #[serde(default, skip_serializing)]
    pub pin: Option<Value>,
}

fn yes() -> bool {
    true
}

impl RosterEntry {
    /// The officer without the hash.
    pub fn officer(&self) -> Officer {
        Officer {
            id: self.id.clone(),
            name_ar: self.name_ar.clone(),
            name_en: self.name_en.clone(),
            role: self.role,
            active: self.active,
        }
    }
}

/// Wire name of a role.
pub fn role_name(r: Role) -> &'static str {
    match r {
        Role::Officer => "officer",
        Role::Supervisor => "supervisor",
    }
}

/// A role from its wire name.
pub fn parse_role(s: &str) -> Option<Role> {
    match s {
        "officer" => Some(Role::Officer),
        "supervisor" => Some(Role::Supervisor),
        _ => None,
    }
}

fn id_ok(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Why a PIN hash is not acceptable, or `None`.
fn hash_problem(s: &str) -> Option<String> {
    if !s.starts_with('$')
        && !s.is_empty()
        && s.chars().all(|c| c.is_ascii_digit() || ('٠'..='٩').contains(&c))
    {
        return Some("pin_hash holds a plain PIN; send an Argon2id hash (vanctl officers hash-pin)".into());
    }
    let h = match PasswordHash::new(s) {
        Ok(h) => h,
        Err(e) => return Some(format!("pin_hash is not a PHC string ({e})")),
    };
    if h.algorithm.as_str() != "argon2id" {
        return Some(format!("pin_hash uses {}, not argon2id", h.algorithm.as_str()));
    }
    let params = match Params::try_from(&h) {
        Ok(p) => p,
        Err(e) => return Some(format!("pin_hash has bad Argon2 parameters ({e})")),
    };
    if params.m_cost() > MAX_M_COST || params.t_cost() > MAX_T_COST || params.p_cost() > MAX_P_COST {
        return Some(format!(
            "pin_hash costs too much (m={} KiB, t={}, p={}; at most m={MAX_M_COST}, t={MAX_T_COST}, p={MAX_P_COST})",
            params.m_cost(),
            params.t_cost(),
            params.p_cost()
        ));
    }
    if h.salt.is_none() || h.hash.is_none() {
        return Some("pin_hash lacks its salt or hash".into());
    }
    None
}

/// Checks a roster: ids well formed and unique, names present, hashes Argon2id PHC strings, no
/// plain PINs. Each problem names the officer (`officers[2]` and their id).
pub fn check_roster(officers: &[RosterEntry]) -> Vec<FieldError> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, o) in officers.iter().enumerate() {
        let at = |f: &str| format!("officers[{i}].{f}");
        let who = &o.id;
        if !id_ok(&o.id) {
            out.push(FieldError::new(
                at("id"),
                "roster.bad_id",
                format!("رقم الضابط {who:?} غير صالح"),
                format!("officer id {who:?} must be 1–32 of A–Z a–z 0–9 - _"),
            ));
        }
        if !seen.insert(o.id.as_str()) {
            out.push(FieldError::new(
                at("id"),
                "roster.duplicate",
                format!("الضابط {who} مكرر"),
                format!("officer {who} appears twice"),
            ));
        }
        if o.name_ar.trim().is_empty() || o.name_en.trim().is_empty() {
            out.push(FieldError::new(
                at("name_ar"),
                "roster.missing_name",
                format!("اسم الضابط {who} ناقص"),
                format!("officer {who}: name_ar and name_en are required"),
            ));
        }
        if o.pin.is_some() {
            out.push(FieldError::new(
                at("pin"),
                "roster.plain_pin",
                format!("الرقم السري للضابط {who} مرسل بدون تشفير"),
                format!("officer {who}: a plain \"pin\" is never accepted; send pin_hash (Argon2id)"),
            ));
        }
        if let Some(why) = hash_problem(&o.pin_hash) {
            let code = if why.contains("plain PIN") { "roster.plain_pin" } else { "roster.bad_pin_hash" };
            out.push(FieldError::new(
                at("pin_hash"),
                code,
                format!("الرقم السري المشفر للضابط {who} غير صالح"),
                format!("officer {who}: {why}"),
            ));
        }
    }
    out
}

/// Normalises Eastern Arabic (U+0660–0669) and Persian (U+06F0–06F9) digits to ASCII.
fn ascii_digits(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{0660}'..='\u{0669}' => char::from(b'0' + (c as u32 - 0x0660) as u8),
            '\u{06F0}'..='\u{06F9}' => char::from(b'0' + (c as u32 - 0x06F0) as u8),
            c => c,
        })
        .collect()
}

/// A PIN hashing failure.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// The PIN is not 4–12 digits.
    #[error("a PIN is 4 to 12 digits")]
    Format,
    /// Argon2 failed (parameters or randomness).
    #[error("cannot hash the PIN: {0}")]
    Hash(String),
}

/// Hashes a PIN (digits, Eastern Arabic allowed; 4–12 of them) to an Argon2id PHC string with
/// [`PIN_PARAMS`] and a random 16-byte salt.
pub fn hash_pin(pin: &str) -> Result<String, PinError> {
    let (m, t, p) = PIN_PARAMS;
    hash_pin_with(pin, m, t, p)
}

/// [`hash_pin`] with explicit Argon2 costs (memory KiB, passes, lanes); tests use small ones.
pub fn hash_pin_with(pin: &str, m_cost: u32, t_cost: u32, p_cost: u32) -> Result<String, PinError> {
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    hash_pin_salted(pin, &salt, m_cost, t_cost, p_cost)
}

/// [`hash_pin_with`] with a given salt (8–64 bytes): reproducible, for checking against other
/// Argon2 implementations. Real hashes use a random salt.
pub fn hash_pin_salted(
    pin: &str,
    salt: &[u8],
    m_cost: u32,
    t_cost: u32,
    p_cost: u32,
) -> Result<String, PinError> {
    let pin = Zeroizing::new(ascii_digits(pin.trim()));
    if !(4..=12).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PinError::Format);
    }
    let params = Params::new(m_cost, t_cost, p_cost, None).map_err(|e| PinError::Hash(e.to_string()))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_with_salt(pin.as_bytes(), salt)
        .map(|h| h.to_string())
        .map_err(|e| PinError::Hash(e.to_string()))
}

/// Whether `pin` matches the PHC string (false for a malformed hash).
pub fn verify_pin(pin: &str, phc: &str) -> bool {
    let pin = Zeroizing::new(ascii_digits(pin.trim()));
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default().verify_password(pin.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

/// Lockout policy (`max_failures` wrong PINs in a row lock the id for `lock_for`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Consecutive failures that lock (default 5).
    pub max_failures: u32,
    /// How long a lock lasts (default 15 minutes).
    pub lock_for: SignedDuration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy { max_failures: 5, lock_for: SignedDuration::from_mins(15) }
    }
}

/// Why a login failed. [`LoginError::field_error`] gives the words; [`LoginError::reason`] the
/// journal's `officer.login` reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// No such officer id (shown exactly as a wrong PIN).
    #[error("wrong officer number or PIN ({attempts_left} attempts left)")]
    UnknownOfficer {
        /// Attempts before the id is locked.
        attempts_left: u32,
    },
    /// Wrong PIN.
    #[error("wrong officer number or PIN ({attempts_left} attempts left)")]
    BadPin {
        /// Attempts before the id is locked.
        attempts_left: u32,
    },
    /// Too many wrong PINs: locked until then.
    #[error("locked after too many wrong PINs until {until}")]
    LockedOut {
        /// End of the lock (UTC).
        until: Timestamp,
    },
    /// Correct PIN, but the officer is not active on the roster.
    #[error("this officer is not active on the roster; ask the supervisor")]
    Inactive,
    /// The office database failed.
    #[error("cannot check the login: {0}")]
    Storage(String),
}

impl LoginError {
    /// Stable code (`auth.bad_credentials`, `auth.locked_out`, `auth.inactive`, `storage.office_db`):
    /// the same for an unknown id and a wrong PIN.
    pub fn code(&self) -> &'static str {
        match self {
            LoginError::UnknownOfficer { .. } | LoginError::BadPin { .. } => "auth.bad_credentials",
            LoginError::LockedOut { .. } => "auth.locked_out",
            LoginError::Inactive => "auth.inactive",
            LoginError::Storage(_) => "storage.office_db",
        }
    }

    /// What the journal records as `reason` (tells an unknown id from a wrong PIN).
    pub fn reason(&self) -> &'static str {
        match self {
            LoginError::UnknownOfficer { .. } => "unknown_officer",
            LoginError::BadPin { .. } => "bad_pin",
            LoginError::LockedOut { .. } => "locked_out",
            LoginError::Inactive => "inactive",
            LoginError::Storage(_) => "storage",
        }
    }

    /// The words for the officer; `tz` shows the lock's end in local time.
    pub fn field_error(&self, tz: &jiff::tz::TimeZone) -> FieldError {
        let (field, ar) = match self {
            LoginError::UnknownOfficer { attempts_left } | LoginError::BadPin { attempts_left } => {
                ("pin", format!("رقم الضابط أو الرقم السري غير صحيح (المحاولات المتبقية: {attempts_left})"))
            }
            LoginError::LockedOut { until } => {
                let local = until.to_zoned_datetime(tz.clone()).strftime("%H:%M").to_string();
                ("officer", format!("تم إيقاف الدخول بعد محاولات خاطئة كثيرة حتى الساعة {local}"))
            }
            LoginError::Inactive => ("officer", "هذا الضابط غير مفعل في الكشف؛ راجع المشرف".into()),
            LoginError::Storage(_) => ("", "تعذر التحقق من الدخول".into()),
        };
        let en = match self {
            LoginError::LockedOut { until } => format!(
                "locked after too many wrong PINs until {} local time",
                until.to_zoned_datetime(tz.clone()).strftime("%H:%M")
            ),
            other => other.to_string(),
        };
        FieldError::new(field, self.code(), ar, en)
    }
}

impl From<RefDataError> for LoginError {
    fn from(e: RefDataError) -> Self {
        LoginError::Storage(e.to_string())
    }
}

/// A fixed PHC string verified for unknown ids so they cost as much as known ones.
fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash_pin("000000").unwrap_or_default())
}

/// Officer logins against the roster in `office.db`.
#[derive(Debug, Clone)]
pub struct People {
    refdata: Arc<RefData>,
    /// Shared by the clones: [`People::set_policy`] (a configuration reload) reaches them all.
    policy: Arc<RwLock<LockoutPolicy>>,
}

impl People {
    /// Logins against `refdata`'s roster with a lockout policy.
    pub fn new(refdata: Arc<RefData>, policy: LockoutPolicy) -> People {
        People { refdata, policy: Arc::new(RwLock::new(policy)) }
    }

    /// The lockout policy in force.
    pub fn policy(&self) -> LockoutPolicy {
        *self.policy.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the lockout policy (a configuration reload). It applies from the next login
    /// attempt: a lock already set keeps the end it was given (it is stored in `office.db`), and
    /// the failures counted so far count against the new limit (with a lower limit, the next
    /// wrong PIN of an id already past it locks).
    pub fn set_policy(&self, policy: LockoutPolicy) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = policy;
    }

    /// Checks an officer id and PIN at `now`. Blocking (Argon2, about 0.1 s on a Pi): run it with
    /// `spawn_blocking` from async code. The caller journals `officer.login` {officer, ok,
    /// reason?} with [`LoginError::reason`]; never the PIN.
    pub fn login(&self, id: &str, pin: &str, now: Timestamp) -> Result<Officer, LoginError> {
        let id = ascii_digits(id.trim());
        // Ids that could never be on a roster are not counted (nothing to store for them).
        let entry = if id_ok(&id) { self.refdata.roster_entry(&id)? } else { None };
        let counter = if id_ok(&id) { self.refdata.login_counter(&id)? } else { LoginCounter::default() };
        if let Some(until) = counter.locked_until {
            if until > now {
                return Err(LoginError::LockedOut { until });
            }
        }
        // A lock that has run out starts a fresh count.
        let failures = if counter.locked_until.is_some() { 0 } else { counter.failures };
        let ok = match &entry {
            Some(e) => verify_pin(pin, &e.pin_hash),
            None => {
                let _ = verify_pin(pin, dummy_hash());
                false
            }
        };
        if ok {
            if counter != LoginCounter::default() {
                self.refdata.set_login_counter(&id, LoginCounter::default())?;
            }
            let officer = entry.map(|e| e.officer()).expect("ok implies an entry");
            if !officer.active {
                return Err(LoginError::Inactive);
            }
            return Ok(officer);
        }
        let failures = failures.saturating_add(1);
        // One read: a reload during this attempt cannot mix two policies.
        let policy = self.policy();
        let max = policy.max_failures.max(1);
        let next = if failures >= max {
            let until = now.checked_add(policy.lock_for).unwrap_or(Timestamp::MAX);
            LoginCounter { failures: 0, locked_until: Some(until) }
        } else {
            LoginCounter { failures, locked_until: None }
        };
        if id_ok(&id) {
            self.refdata.set_login_counter(&id, next)?;
        }
        if let Some(until) = next.locked_until {
            return Err(LoginError::LockedOut { until });
        }
        let attempts_left = max - failures;
        Err(match entry {
            Some(_) => LoginError::BadPin { attempts_left },
            None => LoginError::UnknownOfficer { attempts_left },
        })
    }
}

impl People {
    /// [`People::login`] on a blocking thread, for async callers (the HTTP API).
    pub async fn login_async(
        &self,
        id: String,
        pin: Zeroizing<String>,
        now: Timestamp,
    ) -> Result<Officer, LoginError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.login(&id, &pin, now))
            .await
            .unwrap_or_else(|e| Err(LoginError::Storage(format!("login task failed: {e}"))))
    }
}

/// The `officer.login` journal payload for a login attempt: `{officer, ok, reason?}` (never the
/// PIN). `officer` is the id as typed, digits normalised.
pub fn login_record(id: &str, result: &Result<Officer, LoginError>) -> Value {
    let mut v = serde_json::json!({"officer": ascii_digits(id.trim()), "ok": result.is_ok()});
    if let Err(e) = result {
        v["reason"] = Value::String(e.reason().to_owned());
    }
    v
}

/// Session expiry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session unused this long ends (default 30 minutes).
    pub idle: SignedDuration,
    /// A session ends this long after login whatever happens (default 12 hours).
    pub absolute: SignedDuration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy { idle: SignedDuration::from_mins(30), absolute: SignedDuration::from_hours(12) }
    }
}

#[derive(Debug, Clone)]
struct Session {
    officer: Officer,
    /// Login time: the absolute limit in force counts from here.
    since: Timestamp,
    /// The end of the idle window given at the last use (what the client was told).
    idle_until: Timestamp,
}

impl Session {
    fn absolute_until(&self, policy: &SessionPolicy) -> Timestamp {
        self.since.checked_add(policy.absolute).unwrap_or(Timestamp::MAX)
    }

    fn live(&self, policy: &SessionPolicy, now: Timestamp) -> bool {
        now < self.idle_until && now < self.absolute_until(policy)
    }
}

/// Login sessions, in memory. Tokens are kept only as SHA-256 digests, so the map (or a memory
/// dump of it) holds nothing that authenticates.
///
/// The policy can change while sessions run ([`Sessions::set_policy`], a configuration reload):
/// the idle window a session was given at its last use (the `expires_at` its client was told)
/// ends as told, and its next use opens a window of the new idle limit; the absolute limit in
/// force counts from each session's login, so a shorter one ends sessions already older than it
/// at their next use.
#[derive(Debug, Default)]
pub struct Sessions {
    policy: RwLock<SessionPolicy>,
    map: Mutex<HashMap<[u8; 32], Session>>,
}

fn digest(token: &str) -> Option<[u8; 32]> {
    let raw = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
    (raw.len() == 32).then(|| Sha256::digest(&raw).into())
}

impl Sessions {
    /// Sessions with an expiry policy.
    pub fn new(policy: SessionPolicy) -> Sessions {
        Sessions { policy: RwLock::new(policy), map: Mutex::new(HashMap::new()) }
    }

    /// The expiry policy in force.
    pub fn policy(&self) -> SessionPolicy {
        *self.policy.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the expiry policy (a configuration reload); see [`Sessions`] for what it does to
    /// the sessions already running.
    pub fn set_policy(&self, policy: SessionPolicy) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = policy;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a session for `officer` at `now`: the token (43 characters of base64url; give it to
    /// the client, never log it) and when it expires if unused.
    pub fn create(&self, officer: Officer, now: Timestamp) -> (String, Timestamp) {
        let mut raw = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(raw.as_mut());
        let token = URL_SAFE_NO_PAD.encode(raw.as_ref());
        let key: [u8; 32] = Sha256::digest(raw.as_ref()).into();
        let policy = self.policy();
        let absolute_until = now.checked_add(policy.absolute).unwrap_or(Timestamp::MAX);
        let idle_until = now.checked_add(policy.idle).unwrap_or(Timestamp::MAX).min(absolute_until);
        let mut map = self.lock();
        map.retain(|_, s| s.live(&policy, now));
        map.insert(key, Session { officer, since: now, idle_until });
        (token, idle_until)
    }

    /// The officer of a live token at `now` (and pushes its idle expiry on); `None` for an
    /// unknown, malformed or expired token (an expired one is forgotten).
    pub fn check(&self, token: &str, now: Timestamp) -> Option<Officer> {
        let key = digest(token)?;
        let policy = self.policy();
        let mut map = self.lock();
        let s = map.get_mut(&key)?;
        if !s.live(&policy, now) {
            map.remove(&key);
            return None;
        }
        s.idle_until = now.checked_add(policy.idle).unwrap_or(Timestamp::MAX).min(s.absolute_until(&policy));
        Some(s.officer.clone())
    }

    /// When a live token expires if unused from now on (`None` if not live).
    pub fn expires_at(&self, token: &str) -> Option<Timestamp> {
        let key = digest(token)?;
        let policy = self.policy();
        self.lock().get(&key).map(|s| s.idle_until.min(s.absolute_until(&policy)))
    }

    /// Ends a session (logout); whether it existed.
    pub fn end(&self, token: &str) -> bool {
        digest(token).is_some_and(|k| self.lock().remove(&k).is_some())
    }

    /// Ends every session of an officer (roster change, deactivation); how many.
    pub fn end_all_for(&self, officer_id: &str) -> usize {
        let mut map = self.lock();
        let before = map.len();
        map.retain(|_, s| s.officer.id != officer_id);
        before - map.len()
    }

    /// Ends the sessions of officers no longer on `roster` as they were logged in (removed,
    /// deactivated, or with another role); call after a roster import. How many ended.
    pub fn retain_roster(&self, roster: &[Officer]) -> usize {
        let mut map = self.lock();
        let before = map.len();
        map.retain(|_, s| {
            roster.iter().any(|o| o.active && o.id == s.officer.id && o.role == s.officer.role)
        });
        before - map.len()
    }

    /// Live sessions at `now` (for status displays).
    pub fn count(&self, now: Timestamp) -> usize {
        let policy = self.policy();
        self.lock().values().filter(|s| s.live(&policy, now)).count()
    }
}
