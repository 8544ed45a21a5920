//! The service desk as the local API sees it: [`Office`] implements [`api::desk::Desk`] over the
//! workflow shell ([`super::desk`]), shifts, reference data, officers and sessions.
//!
//! It turns requests into checked plans (validation, prerequisites, the quote) for the shell,
//! keeps bookings in step with their transactions (`booking.state` records), journals logins
//! and reference-data imports, and maps the shell's transactions and errors to the API's views.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::json;
use sha2::Digest as _;
use tokio::sync::broadcast;

use super::desk::{self as shell, Desk as Shell, ErrorClass, OpenPlan};
use super::model::{Actor, BookingState, Dossier, FieldError, InspectionRecord, Role, ServiceKind};
use super::people::{LockoutPolicy, Officer, People, SessionPolicy, Sessions};
use super::records::{self, Step, StepOutcome};
use super::refdata::{BundleKind as RdBundle, RefData, RefDataError};
use super::schedule::{BlockList, PrereqContext, QuoteRequest, Schedule, SupplyRequest};
use super::shift::{OpenShift, ShiftClose, Shifts};
use super::validate;
use super::workflow::{Payment, State, Txn, Uncharged};
use crate::api::desk::{
    self as api, Action, BookingStateRequest, BookingView, DeskError, DeskEvent, DeviceView, DossierQuery,
    ErrorKind, FaultView, ImportReport, InspectionRequest, LoginRequest, Normalised, OfficerView,
    OverrideRequest, Problem, ReasonRequest, ReceiptFormat, ReprintRequest, ReprintWhat, ServiceFilter,
    ServiceRequest, Session, SessionGrant, ShiftCloseRequest, ShiftOpenRequest, ShiftReportView, ShiftView,
    StepKind, Token, TxnState, TxnView, ValidateRequest, Validated,
};
use crate::devices::Fault;
use crate::journal::Journal;

/// Reference data in force, parsed.
#[derive(Debug, Default)]
struct Rules {
    schedule: Option<Schedule>,
    blocklist: BlockList,
}

/// The service desk behind the API.
pub struct Office {
    shell: Arc<Shell>,
    shifts: Shifts,
    refdata: Arc<RefData>,
    people: People,
    sessions: Sessions,
    rules: RwLock<Rules>,
    tz: TimeZone,
    events: broadcast::Sender<DeskEvent>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    me: std::sync::Weak<Office>,
    live: std::sync::OnceLock<Arc<dyn LiveDossiers>>,
    /// The uplink's status for `GET /sync` (set once by vand; none: the van does not sync).
    sync_status: std::sync::OnceLock<Arc<dyn SyncStatus>>,
    /// A training van (simulation with the sample day): the console may show the sample officers.
    training: std::sync::atomic::AtomicBool,
    /// Whether the tamper switch is open now (the latch itself is in `office.db`).
    tamper_open: std::sync::atomic::AtomicBool,
}

/// The latched tamper alarm's name in `office.db`.
const TAMPER_ALARM: &str = "tamper";

/// How long a walk-up waits for HQ's live dossier answer before the desk says `hq.unreachable`.
pub const LIVE_LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// What a live dossier lookup answers.
pub type LiveFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Option<Dossier>, String>> + Send + 'a>>;

/// A live source of dossiers for walk-ups (HQ over the network: `sync::downlink`).
pub trait LiveDossiers: Send + Sync {
    /// The dossier of a citizen (and vehicle, with a plate): `Ok(None)` when the source answers
    /// that it holds none, `Err` when it cannot be asked or its answer cannot be trusted.
    fn lookup<'a>(&'a self, national_id: &'a str, plate: Option<(&'a str, &'a str)>) -> LiveFuture<'a>;
}

/// The uplink's status as JSON (`vanctl sync status --json`), for the API's `GET /sync`.
pub trait SyncStatus: Send + Sync {
    /// The status now.
    fn status(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = serde_json::Value> + Send + '_>>;
}

/// What became of a bundle HQ sent (see [`Office::apply_hq_bundle`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HqBundleOutcome {
    /// Applied and journaled (`refdata.applied` with `source: "hq"`).
    Applied(super::refdata::Applied),
    /// These exact bytes were applied before (a pull repeated after a crash): nothing done.
    AlreadyApplied,
    /// Refused and journaled (`refdata.refused`) with this code.
    Refused(String),
}

impl Drop for Office {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn lock_read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn internal(e: impl std::fmt::Display) -> DeskError {
    DeskError::internal(Problem::new(
        "internal",
        format!("خطأ داخلي؛ لم يتم تنفيذ شيء: {e}"),
        format!("internal error; nothing was done: {e}"),
    ))
}

/// The shell's errors as the API's.
fn from_shell(e: shell::DeskError) -> DeskError {
    DeskError::from(e)
}

fn from_refdata(e: RefDataError) -> DeskError {
    let problems: Vec<Problem> = e.field_errors().into_iter().map(Problem::from).collect();
    match e {
        RefDataError::UnknownBooking(id) => DeskError::not_found("booking", &id),
        RefDataError::WrongState { .. } | RefDataError::NotAllowed { .. } => DeskError::conflict(
            problems.into_iter().next().unwrap_or_else(|| Problem::new("state.booking", "", "")),
        ),
        RefDataError::Storage { .. } => DeskError::internal(
            problems
                .into_iter()
                .next()
                .unwrap_or_else(|| Problem::new("internal", "خطأ داخلي", "internal error")),
        ),
        _ => DeskError::invalid_problems(problems),
    }
}

fn officer_view(o: &Officer) -> OfficerView {
    OfficerView { id: o.id.clone(), name_ar: o.name_ar.clone(), name_en: o.name_en.clone(), role: o.role }
}

fn actor(who: &Session) -> Actor {
    Actor { id: who.officer.id.clone(), role: who.officer.role }
}

/// The state a client sees.
pub fn txn_state(t: &Txn) -> TxnState {
    match t.state() {
        State::Voided if matches!(t.payment, Payment::Reversed { .. }) => TxnState::Reversed,
        other => other.into(),
    }
}

fn fault_view(code: &str) -> Option<FaultView> {
    Fault::from_code(code).map(FaultView::from)
}

fn step_kind(s: Step) -> StepKind {
    match s {
        Step::Card => StepKind::Card,
        Step::Tag => StepKind::Tag,
        Step::Label => StepKind::Label,
    }
}

fn ts(us: i64) -> Timestamp {
    Timestamp::from_microsecond(us).unwrap_or_default()
}

/// A transaction as the calling officer sees it.
pub fn txn_view(t: &Txn, role: Role, running: bool) -> TxnView {
    let state = txn_state(t);
    let payment = match &t.payment {
        Payment::None { attempts: 0, .. } => None,
        Payment::None { ended, .. } => Some(api::PaymentView {
            outcome: match ended {
                Some(Uncharged::Declined) => api::PaymentOutcome::Declined,
                Some(Uncharged::Aborted) => api::PaymentOutcome::Aborted,
                // Never reached the terminal, or the terminal says it did not charge.
                Some(Uncharged::Failed | Uncharged::NotCharged) | None => api::PaymentOutcome::NotCharged,
            },
            amount: t.total(),
            receipt_no: None,
            masked_pan: None,
            card_name: None,
        }),
        Payment::Sent { amount, .. } | Payment::Unknown { amount, .. } | Payment::Held { amount, .. } => {
            Some(api::PaymentView {
                outcome: api::PaymentOutcome::Unknown,
                amount: *amount,
                receipt_no: None,
                masked_pan: None,
                card_name: None,
            })
        }
        Payment::Approved(a) | Payment::Reversed { purchase: a, .. } => Some(api::PaymentView {
            outcome: if matches!(t.payment, Payment::Reversed { .. }) {
                api::PaymentOutcome::Reversed
            } else {
                api::PaymentOutcome::Approved
            },
            amount: a.amount,
            receipt_no: a.receipt_no.map(|n| n.to_string()),
            masked_pan: a.masked_pan.clone(),
            card_name: a.card_name.clone(),
        }),
    };
    let pay_state = match &t.payment {
        Payment::None { attempts: 0, .. } => api::StepState::Pending,
        Payment::None { .. } => api::StepState::Failed,
        Payment::Sent { .. } => api::StepState::Running,
        Payment::Unknown { .. } | Payment::Held { .. } => api::StepState::Unknown,
        Payment::Approved(_) | Payment::Reversed { .. } => api::StepState::Done,
    };
    let pay_attempts = match &t.payment {
        Payment::None { attempts, .. } => *attempts,
        Payment::Sent { attempt, .. } | Payment::Unknown { attempt, .. } | Payment::Held { attempt, .. } => {
            *attempt
        }
        _ => 1,
    };
    let mut steps = vec![api::StepView {
        step: StepKind::Payment,
        state: pay_state,
        attempts: pay_attempts,
        fault: None,
    }];
    for (s, st) in &t.steps {
        let state = match (st.running, st.last) {
            (Some(_), _) => api::StepState::Running,
            (None, None) => api::StepState::Pending,
            (None, Some(StepOutcome::Done)) if st.reprint_pending => api::StepState::Pending,
            (None, Some(StepOutcome::Done)) => api::StepState::Done,
            (None, Some(StepOutcome::Failed)) => api::StepState::Failed,
            (None, Some(StepOutcome::Unknown)) => api::StepState::Spoiled,
        };
        steps.push(api::StepView {
            step: step_kind(*s),
            state,
            attempts: st.attempts,
            fault: st.fault.as_deref().and_then(fault_view),
        });
    }
    let supervisor = role == Role::Supervisor;
    let mut next = Vec::new();
    if !running {
        match state {
            TxnState::Open => next.push(Action::Inspect),
            TxnState::Refused
                if supervisor
                    && t.refusals.iter().any(|r| r.refusal.overridable && r.overridden.is_none()) =>
            {
                next.push(Action::Override)
            }
            TxnState::Quoted
            | TxnState::Paid
            | TxnState::Printing
            | TxnState::Encoding
            | TxnState::Labelling
            | TxnState::PaymentUnknown
            | TxnState::Held
            | TxnState::Paying => next.push(Action::Proceed),
            TxnState::Voiding
                if t.void.as_ref().is_some_and(|v| v.reversal_pending || v.reversal_running.is_some()) =>
            {
                next.push(Action::Proceed)
            }
            _ => {}
        }
        if !t.payment_started() && t.cancelled.is_none() && t.void.is_none() {
            next.push(Action::Cancel);
        }
        if supervisor
            && t.void.is_none()
            && t.cancelled.is_none()
            && !matches!(state, TxnState::Held | TxnState::PaymentUnknown | TxnState::Paying)
            && t.payment_started()
        {
            next.push(Action::Void);
        }
        if state == TxnState::Completed {
            next.push(Action::Reprint);
        }
    }
    let held = match &t.payment {
        Payment::Held { reason, .. } => Some(api::Held { reason: reason.clone() }),
        _ => None,
    };
    TxnView {
        txn: t.id().to_owned(),
        service: t.service(),
        state,
        officer: t.open.officer.clone(),
        opened_at: ts(t.opened_us),
        booking_id: t.open.request.booking_id.clone(),
        citizen: t.open.request.citizen.clone(),
        vehicle: t.open.request.vehicle.clone(),
        grade: t.open.request.grade,
        replacement: t.open.request.replacement,
        supplies: t.open.request.supplies.clone(),
        inspection: t.inspection.as_ref().map(|i| api::InspectionView {
            entered: InspectionRequest {
                vin_matches: i.vin_matches,
                engine_matches: i.engine_matches,
                checklist: i.checklist.clone(),
                notes: if i.notes.is_empty() { None } else { Some(i.notes.clone()) },
            },
            passed: i.passed,
            reasons: i.reasons.clone(),
        }),
        quote: t.quote.as_ref().map(|q| api::Quote {
            schedule_version: q.schedule_version,
            lines: q
                .lines
                .iter()
                .map(|l| api::QuoteLine {
                    code: l.code.clone(),
                    label_ar: l.label_ar.clone(),
                    label_en: l.label_en.clone(),
                    amount: l.amount,
                })
                .collect(),
            total: q.total,
        }),
        refusals: t
            .refusals
            .iter()
            .map(|r| api::Refusal {
                code: r.refusal.code.clone(),
                ar: r.refusal.ar.clone(),
                en: r.refusal.en.clone(),
                overridable: r.refusal.overridable,
                overridden: r
                    .overridden
                    .as_ref()
                    .map(|(by, reason)| api::Overridden { by: by.clone(), reason: reason.clone() }),
            })
            .collect(),
        payment,
        steps,
        next,
        completed_at: None,
        receipt_no: t.complete.as_ref().map(|(c, _)| c.receipt_no.clone()),
        held,
    }
}

/// What an [`Office`] is built from.
pub struct OfficeParts {
    /// The workflow shell.
    pub shell: Arc<Shell>,
    /// `office.db`.
    pub refdata: Arc<RefData>,
    /// Login lockout.
    pub lockout: LockoutPolicy,
    /// Session expiry.
    pub sessions: SessionPolicy,
    /// Service time zone (Africa/Cairo).
    pub tz: TimeZone,
}

impl Office {
    /// The office over its parts; parses the schedule and block list in force and starts
    /// forwarding the shell's and the devices' events. Call from a tokio runtime.
    pub fn new(parts: OfficeParts) -> Result<Arc<Office>, DeskError> {
        let shifts = Shifts::new(parts.shell.clone()).map_err(from_shell)?;
        let (events, _) = broadcast::channel(512);
        let mut tasks = Vec::new();
        let mut from_shell_rx = parts.shell.subscribe();
        let tx = events.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                match from_shell_rx.recv().await {
                    Ok(shell::DeskEvent::Progress { txn, step, text }) => {
                        let step = match step.as_str() {
                            "card" => StepKind::Card,
                            "tag" => StepKind::Tag,
                            "label" => StepKind::Label,
                            _ => StepKind::Payment,
                        };
                        let _ = tx.send(DeskEvent::Progress { txn, step, text });
                    }
                    Ok(shell::DeskEvent::Txn { txn, state }) => {
                        let _ = tx.send(DeskEvent::Txn { txn, state: state.into() });
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        }));
        let mut health = parts.shell.manager().watch_health();
        let tx = events.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = health.borrow_and_update().devices.clone();
            while health.changed().await.is_ok() {
                let now = health.borrow_and_update().devices.clone();
                for (d, h) in &now {
                    if seen.get(d) != Some(h) {
                        let _ = tx
                            .send(DeskEvent::Device { device: d.name().into(), health: DeviceView::from(h) });
                    }
                }
                seen = now;
            }
        }));
        let office = Arc::new_cyclic(|me| Office {
            me: me.clone(),
            shifts,
            people: People::new(parts.refdata.clone(), parts.lockout),
            sessions: Sessions::new(parts.sessions),
            refdata: parts.refdata,
            shell: parts.shell,
            rules: RwLock::new(Rules::default()),
            tz: parts.tz,
            events,
            tasks,
            live: std::sync::OnceLock::new(),
            sync_status: std::sync::OnceLock::new(),
            training: std::sync::atomic::AtomicBool::new(false),
            tamper_open: std::sync::atomic::AtomicBool::new(false),
        });
        office.reload_rules()?;
        Ok(office)
    }

    /// Mains lost (`true`, the UPS holds): new services and further steps are refused with 503
    /// `power.failing` and the desk drains; `false` when mains is back within the ride-through.
    pub fn set_power_failing(&self, on: bool) {
        self.shell.set_draining(on);
        let _ = self.events.send(DeskEvent::Alarm { alarm: self.alarm_view() });
    }

    /// Whether the van runs on its UPS (or is stopping) and takes no new service.
    pub fn power_failing(&self) -> bool {
        self.shell.draining()
    }

    /// The login lockout and session limits in force.
    pub fn limits(&self) -> (LockoutPolicy, SessionPolicy) {
        (self.people.policy(), self.sessions.policy())
    }

    /// Replaces the login lockout and session limits (a configuration reload of `[api]`). The
    /// next login attempt and the next request of each session use them; what they do to locks
    /// and sessions already running is in [`People::set_policy`] and [`Sessions`].
    pub fn set_limits(&self, lockout: LockoutPolicy, sessions: SessionPolicy) {
        self.people.set_policy(lockout);
        self.sessions.set_policy(sessions);
    }

    /// Checkpoints `office.db`'s write-ahead log into the database (before a power-fail stop).
    pub fn checkpoint_storage(&self) -> Result<(), String> {
        self.refdata.checkpoint_wal().map_err(|e| e.to_string())
    }

    /// Takes the desk's and `office.db`'s locks once (the daemon's watchdog probe: a desk stuck
    /// holding them stops the pings).
    pub async fn probe(&self) {
        let _ = self.shell.idle();
        let refdata = self.refdata.clone();
        let _ = tokio::task::spawn_blocking(move || refdata.alarm(TAMPER_ALARM)).await;
    }

    /// The tamper switch changed (`open`: the case was opened), journaled as record `seq`.
    /// Opening latches the tamper alarm in `office.db`; it stays latched (across restarts) until
    /// a supervisor clears it with the switch closed.
    pub async fn tamper_switch(&self, open: bool, seq: u64) {
        self.tamper_open.store(open, std::sync::atomic::Ordering::SeqCst);
        if open {
            let since = Timestamp::now().to_string();
            let refdata = self.refdata.clone();
            match tokio::task::spawn_blocking(move || refdata.latch_alarm(TAMPER_ALARM, &since, seq)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!("tamper alarm not latched in office.db: {e}"),
                Err(e) => tracing::error!("tamper alarm not latched in office.db: {e}"),
            }
        }
        let _ = self.events.send(DeskEvent::Alarm { alarm: self.alarm_view() });
    }

    /// The latched tamper alarm: when it was raised and by which record.
    pub fn tamper_latched(&self) -> Option<(String, u64)> {
        self.refdata.alarm(TAMPER_ALARM).unwrap_or_else(|e| {
            // Unreadable: count it as latched (fail closed).
            tracing::error!("reading the tamper alarm from office.db: {e}");
            Some((String::new(), 0))
        })
    }

    /// The alarms as the API shows them (`GET /alarms`, `GET /van`).
    pub fn alarm_view(&self) -> api::AlarmView {
        let latched = self.tamper_latched();
        api::AlarmView {
            power_failing: self.power_failing(),
            tamper: api::TamperView {
                latched: latched.is_some(),
                since: latched.as_ref().map(|l| l.0.clone()).filter(|s| !s.is_empty()),
                raised_seq: latched.map(|l| l.1),
                switch_open: self.tamper_open.load(std::sync::atomic::Ordering::SeqCst),
            },
        }
    }

    /// 409 `tamper.latched` while the tamper alarm is latched: supervisor functions wait for a
    /// supervisor to clear it.
    fn check_tamper(&self) -> Result<(), DeskError> {
        match self.tamper_latched() {
            None => Ok(()),
            Some((since, seq)) => Err(DeskError::conflict(
                Problem::new(
                    "tamper.latched",
                    "تم فتح صندوق الجهاز؛ وظائف المشرف موقوفة حتى يفحصه المشرف ويلغي الإنذار",
                    "the box was opened (tamper alarm); supervisor functions are blocked until a supervisor checks it and clears the alarm",
                )
                .with_details(json!({"since": since, "raised_seq": seq})),
            )),
        }
    }

    /// The workflow shell.
    pub fn shell(&self) -> &Arc<Shell> {
        &self.shell
    }

    /// Shifts.
    pub fn shifts(&self) -> &Shifts {
        &self.shifts
    }

    fn reload_rules(&self) -> Result<(), DeskError> {
        let schedule = match self.refdata.schedule_json().map_err(from_refdata)? {
            Some((_, text)) => Some(
                Schedule::from_json(text.as_bytes())
                    .map_err(|e| internal(format!("stored schedule: {e}")))?,
            ),
            None => None,
        };
        let blocklist = match self.refdata.blocklist_json().map_err(from_refdata)? {
            Some((_, text)) => BlockList::from_json(text.as_bytes())
                .map_err(|e| internal(format!("stored block list: {e}")))?,
            None => BlockList::default(),
        };
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = Rules { schedule, blocklist };
        Ok(())
    }

    fn journal(&self) -> &Journal {
        self.shell.journal()
    }

    fn today(&self) -> jiff::civil::Date {
        Timestamp::now().to_zoned_datetime(self.tz.clone()).date()
    }

    async fn append(&self, kind: &str, payload: serde_json::Value) -> Result<(), DeskError> {
        self.journal().append_async(kind, &payload).await.map(|_| ()).map_err(internal)
    }

    /// The office database.
    pub fn refdata(&self) -> &Arc<RefData> {
        &self.refdata
    }

    /// Sets the live dossier source walk-ups ask when the van holds no dossier (once, at start);
    /// false if one was set already.
    pub fn set_live_dossiers(&self, source: Arc<dyn LiveDossiers>) -> bool {
        self.live.set(source).is_ok()
    }

    /// Marks this office as the training van's (`GET /van` says so; the console then shows the
    /// sample officers on its login screen).
    pub fn mark_training(&self) {
        self.training.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Installs where `GET /sync` reads the uplink's status (once; false if already set).
    pub fn set_sync_status(&self, source: Arc<dyn SyncStatus>) -> bool {
        self.sync_status.set(source).is_ok()
    }

    /// Applies a bundle (from the API or the control socket): checked, journaled
    /// (`refdata.applied`), then stored. Nothing changes if any check fails.
    pub async fn apply_bundle(
        &self,
        officer: Option<&str>,
        bytes: &[u8],
    ) -> Result<super::refdata::Applied, DeskError> {
        self.apply_bundle_from(officer, None, bytes).await
    }

    /// Applies a bundle HQ sent under cursor `id` whose envelope verified as `kind` version
    /// `version` (docs/sync.md, "Down-sync"). The bundle's own header must say the same. The
    /// same bytes applied before: nothing done (a repeated pull). A bundle the van refuses (stale,
    /// another van's, bad bookings, envelope and header disagreeing) is journaled as
    /// `refdata.refused` and changes nothing else. `Err` only for what may succeed later
    /// (storage, journal, a concurrent import): the caller keeps its cursor and retries.
    pub async fn apply_hq_bundle(
        &self,
        id: u64,
        kind: &str,
        version: u64,
        bytes: &[u8],
    ) -> Result<HqBundleOutcome, DeskError> {
        let header: Option<(String, u64)> = serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|v| Some((v.get("bundle")?.as_str()?.to_owned(), v.get("version")?.as_u64()?)));
        let refusal = if header.as_ref().is_some_and(|(k, v)| (k.as_str(), *v) != (kind, version)) {
            Some((
                "bundle.envelope_mismatch".to_owned(),
                format!("HQ signed {kind} version {version} but the bundle says {header:?}"),
            ))
        } else {
            if let Some(k) = RdBundle::parse(kind) {
                let sha = hex::encode(sha2::Sha256::digest(bytes));
                if self.refdata.was_applied(k, version, &sha).map_err(from_refdata)? {
                    return Ok(HqBundleOutcome::AlreadyApplied);
                }
            }
            match self.apply_bundle_from(None, Some(id), bytes).await {
                Ok(a) => return Ok(HqBundleOutcome::Applied(a)),
                Err(e)
                    if e.kind == ErrorKind::Internal
                        || e.problems.iter().any(|p| p.code == "bundle.changed") =>
                {
                    return Err(e);
                }
                Err(e) => {
                    let code =
                        e.problems.first().map(|p| p.code.clone()).unwrap_or_else(|| "bundle.refused".into());
                    // Each problem with the JSON path it names, if any.
                    let message = e
                        .problems
                        .iter()
                        .map(|p| match p.field.as_deref() {
                            Some(f) if !f.is_empty() && !p.en.starts_with(f) => format!("{f}: {}", p.en),
                            _ => p.en.clone(),
                        })
                        .collect::<Vec<_>>()
                        .join("; ");
                    Some((code, message))
                }
            }
        };
        let (code, message) = refusal.unwrap_or_default();
        self.append(
            "refdata.refused",
            json!({"bundle": kind, "version": version, "source": "hq", "hq_id": id, "code": code,
                   "message": message, "sha256": hex::encode(sha2::Sha256::digest(bytes))}),
        )
        .await?;
        Ok(HqBundleOutcome::Refused(code))
    }

    async fn apply_bundle_from(
        &self,
        officer: Option<&str>,
        hq_id: Option<u64>,
        bytes: &[u8],
    ) -> Result<super::refdata::Applied, DeskError> {
        let prepared = self.refdata.prepare(bytes).map_err(from_refdata)?;
        let a = prepared.applied().clone();
        if officer.is_some() && a.bundle == RdBundle::Settings {
            // The tag profile, card colour and hours come from HQ or the technician, never the
            // officers' console.
            return Err(DeskError::invalid_problems(vec![
                Problem::new(
                    "bundle.not_allowed",
                    "ملف الإعدادات يأتي من الإدارة أو من الفني فقط",
                    "a settings bundle arrives from HQ or through vanctl, not through the officers' API",
                )
                .with_field("bundle"),
            ]));
        }
        // The typed parsers of schedule and block list check what refdata keeps as JSON.
        let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            DeskError::bad_request(Problem::new(
                "bundle.bad_json",
                "الملف ليس JSON صالحًا",
                format!("not JSON: {e}"),
            ))
        })?;
        let bad = |e: super::schedule::ScheduleError| {
            DeskError::invalid_problems(vec![
                Problem::new("bundle.invalid", format!("ملف غير صالح: {e}"), e.to_string())
                    .with_field(e.path().to_owned()),
            ])
        };
        match a.bundle {
            RdBundle::Schedule => {
                Schedule::from_json(v["schedule"].to_string().as_bytes()).map_err(bad)?;
            }
            RdBundle::Blocklist => {
                BlockList::from_json(v["blocklist"].to_string().as_bytes()).map_err(bad)?;
            }
            _ => {}
        }
        let mut record = json!({"bundle": a.bundle.name(), "version": a.version, "sha256": a.sha256,
                                "items": a.items, "skipped": a.skipped, "officer": officer});
        if let Some(id) = hq_id {
            record["source"] = json!("hq");
            record["hq_id"] = json!(id);
        }
        self.append("refdata.applied", record).await?;
        let applied = self.refdata.commit(&prepared, Timestamp::now()).map_err(from_refdata)?;
        if matches!(a.bundle, RdBundle::Schedule | RdBundle::Blocklist) {
            self.reload_rules()?;
        }
        if a.bundle == RdBundle::Settings {
            tracing::info!(
                version = a.version,
                "settings bundle applied to office.db; it takes effect at the next start of vand"
            );
        }
        if a.bundle == RdBundle::Roster {
            // Officers removed or deactivated lose their sessions at once.
            let roster = self.refdata.officers().map_err(from_refdata)?;
            self.sessions.retain_roster(&roster);
        }
        Ok(applied)
    }

    async fn move_booking(
        &self,
        id: &str,
        from: BookingState,
        to: BookingState,
        officer: &str,
        reason: Option<&str>,
        txn: Option<&str>,
    ) -> Result<super::refdata::BookingView, DeskError> {
        if !from.can_become(to) {
            return Err(DeskError::conflict(
                Problem::new(
                    "state.booking",
                    "لا يمكن نقل الحجز إلى هذه الحالة الآن",
                    format!("booking {id} cannot go from {from:?} to {to:?}"),
                )
                .with_details(json!({"state": from, "to": to})),
            ));
        }
        self.append(
            "booking.state",
            json!({"booking": id, "from": from, "to": to, "officer": officer, "reason": reason, "txn": txn}),
        )
        .await?;
        self.refdata.set_booking_state(id, from, to, txn, Timestamp::now()).map_err(from_refdata)
    }

    /// After a transaction of a booking ends, the booking follows it: done, or back to arrived
    /// (cancelled, voided). A booking a crash left behind its transaction catches up.
    async fn settle_booking(&self, t: &Txn, officer: &str) {
        let Some(b) = t.open.request.booking_id.as_deref() else { return };
        let Ok(Some(view)) = self.refdata.booking(b) else { return };
        let to = match t.state() {
            State::Completed => BookingState::Done,
            State::Cancelled | State::Voided => BookingState::Arrived,
            _ => return,
        };
        let mut from = view.state;
        let result = async {
            match from {
                BookingState::InService if view.txn.as_deref() == Some(t.id()) => {}
                BookingState::Done if to == BookingState::Arrived && view.txn.as_deref() == Some(t.id()) => {}
                BookingState::Assigned | BookingState::Arrived if to == BookingState::Done => {
                    if from == BookingState::Assigned {
                        self.move_booking(b, from, BookingState::Arrived, officer, None, None).await?;
                    }
                    self.move_booking(
                        b,
                        BookingState::Arrived,
                        BookingState::InService,
                        officer,
                        None,
                        Some(t.id()),
                    )
                    .await?;
                    from = BookingState::InService;
                }
                _ => return Ok(()),
            }
            self.move_booking(b, from, to, officer, None, Some(t.id())).await.map(|_| ())
        };
        if let Err(e) = result.await {
            tracing::warn!(booking = b, "booking state not updated: {e}");
        }
    }

    /// At start: resolves what a crash left open in the transactions (see
    /// [`shell::Desk::recover`]), then brings bookings in line with their transactions.
    pub async fn recover(&self) {
        for (txn, r) in self.shell.recover().await {
            match r {
                Ok(state) => tracing::info!(%txn, ?state, "transaction resolved after restart"),
                Err(e) => tracing::error!(%txn, "transaction not resolved after restart: {e}"),
            }
        }
        self.settle_bookings().await;
    }

    /// Brings every booking in line with its finished transaction (a crash between a
    /// transaction's last record and its booking's leaves them apart). Quick: no device.
    pub async fn settle_bookings(&self) {
        for t in self.shell.txns(|t| t.open.request.booking_id.is_some() && t.is_final()) {
            self.settle_booking(&t, &t.open.officer.clone()).await;
        }
    }

    fn view(&self, t: &Txn, who: &Session) -> TxnView {
        txn_view(t, who.officer.role, self.shell.is_running(t.id()))
    }

    fn dossier_for(&self, national_id: &str, plate: Option<(&str, &str)>) -> Option<Dossier> {
        let today = self.today();
        let mut found = None;
        for day in [today, today.yesterday().unwrap_or(today)] {
            for b in self.refdata.bookings_on(day).unwrap_or_default() {
                if let Some(d) = b.booking.dossier
                    && d.citizen.national_id == national_id
                    && plate.is_none_or(|(l, n)| {
                        d.vehicle.as_ref().is_some_and(|v| v.plate.letters == l && v.plate.digits == n)
                    })
                {
                    found = Some(d);
                }
            }
        }
        found
    }

    /// A passed inspection made in this van for this VIN counts as the dossier's last one.
    /// Asks the live source (HQ) for a walk-up's dossier: `Ok(None)` when HQ holds none (or none
    /// for that plate), `hq.unreachable` when there is no source or it fails or is slow.
    async fn live_dossier(
        &self,
        national_id: &str,
        plate: Option<(&str, &str)>,
    ) -> Result<Option<Dossier>, DeskError> {
        let Some(live) = self.live.get() else { return Err(hq_unreachable()) };
        match tokio::time::timeout(LIVE_LOOKUP_TIMEOUT, live.lookup(national_id, plate)).await {
            Ok(Ok(Some(d))) => {
                let same_person = d.citizen.national_id == national_id;
                let same_plate = plate.is_none_or(|(l, n)| {
                    d.vehicle.as_ref().is_some_and(|v| v.plate.letters == l && v.plate.digits == n)
                });
                Ok((same_person && same_plate).then_some(d))
            }
            Ok(Ok(None)) => Ok(None),
            Ok(Err(e)) => {
                tracing::warn!("live dossier lookup failed: {e}");
                Err(hq_unreachable())
            }
            Err(_) => {
                tracing::warn!("live dossier lookup: no answer within {LIVE_LOOKUP_TIMEOUT:?}");
                Err(hq_unreachable())
            }
        }
    }

    fn with_van_inspections(&self, mut d: Dossier) -> Dossier {
        let Some(vin) = d.vehicle.as_ref().map(|v| v.vin.clone()) else { return d };
        for t in self.shell.txns(|t| t.service() == ServiceKind::Inspection && t.complete.is_some()) {
            let same = t.open.request.vehicle.as_ref().is_some_and(|v| v.vin == vin);
            if let (true, Some(i)) = (same, &t.inspection) {
                let date = ts(t.opened_us).to_zoned_datetime(self.tz.clone()).date();
                if d.last_inspection.as_ref().is_none_or(|l| l.date <= date) {
                    d.last_inspection = Some(InspectionRecord { date, passed: i.passed });
                }
            }
        }
        d
    }

    fn shift_view(&self, s: &OpenShift) -> ShiftView {
        let txns = self.shell.txns(|t| t.opened_seq > s.seq);
        let mut issued = api::StockCounts::default();
        let mut spoiled = api::StockCounts::default();
        let mut payments = api::Totals::default();
        let mut completed = 0;
        for t in &txns {
            for (item, i, sp) in t.stock() {
                let (a, b) = match item {
                    Step::Card => (&mut issued.cards, &mut spoiled.cards),
                    Step::Label => (&mut issued.labels, &mut spoiled.labels),
                    Step::Tag => (&mut issued.tags, &mut spoiled.tags),
                };
                *a += i;
                *b += sp;
            }
            if let Payment::Approved(a) = &t.payment {
                payments.count += 1;
                payments.amount += a.amount;
            }
            if t.complete.is_some() {
                completed += 1;
            }
        }
        ShiftView {
            id: s.open.txn.clone(),
            opened_by: s.open.officer.clone(),
            opened_at: ts(s.time_us),
            stock_open: api::StockCounts {
                cards: s.open.stock.cards,
                labels: s.open.stock.labels,
                tags: s.open.stock.tags,
            },
            issued,
            spoiled,
            completed,
            payments,
            self_test: s
                .open
                .self_test
                .iter()
                .map(|l| api::SelfTestView { device: l.device.clone(), ok: l.ok, lines: Vec::new() })
                .collect(),
        }
    }

    fn report_view(&self, c: &ShiftClose, open: &OpenShift) -> ShiftReportView {
        ShiftReportView {
            shift: self.shift_view(open),
            closed_by: c.officer.clone(),
            closed_at: Timestamp::now(),
            terminal: c.terminal.as_ref().map(|t| api::Totals { count: t.count, amount: t.total }),
            by_service: c.by_service.clone(),
            by_payment: c.by_payment.clone(),
            terminal_error: c.terminal_error.clone(),
            unfinished: c.unfinished.clone(),
            mismatches: c.mismatches.clone(),
            journal: api::Totals { count: c.journal.count, amount: c.journal.amount },
            payments_match: !c.mismatches.iter().any(|m| m.starts_with("totals.")),
            held: c.held.clone(),
            stock: c
                .stock
                .iter()
                .map(|s| api::StockLine {
                    item: match s.item {
                        Step::Card => api::StockItem::Card,
                        Step::Label => api::StockItem::Label,
                        Step::Tag => api::StockItem::Tag,
                    },
                    opening: s.opening,
                    issued: s.issued,
                    spoiled: s.spoiled,
                    expected: s.expected,
                    counted: s.counted,
                    difference: s.difference,
                    flagged: s.difference != 0,
                })
                .collect(),
        }
    }

    fn officer_name(&self, id: &str) -> String {
        self.refdata
            .officers()
            .ok()
            .and_then(|os| os.into_iter().find(|o| o.id == id))
            .map_or_else(|| id.to_owned(), |o| o.name_ar)
    }
}

fn booking_view(b: super::refdata::BookingView) -> BookingView {
    BookingView { booking: b.booking, state: b.state, txn: b.txn }
}

impl api::Desk for Office {
    async fn login(&self, req: LoginRequest) -> Result<SessionGrant, DeskError> {
        let pin = zeroize::Zeroizing::new(req.pin.expose().to_owned());
        let result = self.people.login_async(req.officer_id.clone(), pin, Timestamp::now()).await;
        // The record names the id as typed (digits normalised), never the PIN.
        let mut record = super::people::login_record(&req.officer_id, &result);
        if let Some(id) = record["officer"].as_str() {
            record["officer"] = json!(id.chars().take(32).collect::<String>());
        }
        self.append("officer.login", record).await?;
        match result {
            Ok(o) => {
                let (token, expires_at) = self.sessions.create(o.clone(), Timestamp::now());
                Ok(SessionGrant { token: Token(token), officer: officer_view(&o), expires_at })
            }
            Err(e) => {
                let p = Problem::from(e.field_error(&self.tz));
                Err(match e {
                    super::people::LoginError::LockedOut { until } => {
                        DeskError::locked_out(p.with_details(json!({"until": until})))
                    }
                    super::people::LoginError::Storage(_) => DeskError::internal(p),
                    _ => DeskError::unauthenticated(p),
                })
            }
        }
    }

    async fn session(&self, token: &Token) -> Result<Session, DeskError> {
        let now = Timestamp::now();
        let o = self.sessions.check(token.expose(), now).ok_or_else(DeskError::bad_token)?;
        let expires_at = self.sessions.expires_at(token.expose()).unwrap_or(now);
        Ok(Session { officer: officer_view(&o), expires_at, token: token.clone() })
    }

    async fn session_valid(&self, token: &Token) -> bool {
        self.sessions.expires_at(token.expose()).is_some_and(|e| e > Timestamp::now())
    }

    async fn logout(&self, who: &Session) -> Result<(), DeskError> {
        self.sessions.end(who.token.expose());
        self.append("officer.logout", json!({"officer": who.officer.id})).await
    }

    async fn bookings(
        &self,
        _who: &Session,
        date: Option<jiff::civil::Date>,
    ) -> Result<Vec<BookingView>, DeskError> {
        let date = date.unwrap_or_else(|| self.today());
        Ok(self.refdata.bookings_on(date).map_err(from_refdata)?.into_iter().map(booking_view).collect())
    }

    async fn booking(&self, _who: &Session, id: &str) -> Result<BookingView, DeskError> {
        self.refdata
            .booking(id)
            .map_err(from_refdata)?
            .map(booking_view)
            .ok_or_else(|| DeskError::not_found("booking", id))
    }

    async fn booking_state(
        &self,
        who: &Session,
        id: &str,
        req: BookingStateRequest,
    ) -> Result<BookingView, DeskError> {
        let b = self
            .refdata
            .booking(id)
            .map_err(from_refdata)?
            .ok_or_else(|| DeskError::not_found("booking", id))?;
        let to: BookingState = req.to.into();
        let reason = req.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
        if matches!(to, BookingState::Cancelled | BookingState::NoShow) && reason.is_none() {
            return Err(DeskError::invalid_problems(vec![
                Problem::new(
                    "booking.reason_required",
                    "اكتب سبب الإلغاء أو عدم الحضور",
                    "a reason is required to cancel a booking or mark a no-show",
                )
                .with_field("reason"),
            ]));
        }
        Ok(booking_view(self.move_booking(id, b.state, to, &who.officer.id, reason, None).await?))
    }

    async fn import(&self, who: &Session, bytes: Vec<u8>) -> Result<ImportReport, DeskError> {
        if !who.is_supervisor() {
            return Err(DeskError::supervisor_only("import reference data"));
        }
        self.check_tamper()?;
        let a = self.apply_bundle(Some(&who.officer.id), &bytes).await?;
        Ok(ImportReport {
            bundle: match a.bundle {
                RdBundle::Bookings => api::BundleKind::Bookings,
                RdBundle::Schedule => api::BundleKind::Schedule,
                RdBundle::Roster => api::BundleKind::Roster,
                RdBundle::Blocklist => api::BundleKind::Blocklist,
                // Refused above for officers (apply_bundle_from).
                RdBundle::Settings => return Err(internal("a settings bundle was imported through the API")),
            },
            version: a.version,
            items: a.items as u32,
            skipped: a.skipped as u32,
        })
    }

    async fn validate(&self, _who: &Session, req: ValidateRequest) -> Result<Validated, DeskError> {
        let mut info = BTreeMap::new();
        let normalised = match req {
            ValidateRequest::NationalId { value } => {
                let id = validate::NationalId::parse(&value, self.today())
                    .map_err(|e| DeskError::invalid(vec![e]))?;
                let g = id.governorate();
                info.insert("birth_date".into(), json!(id.birth_date()));
                info.insert("sex".into(), json!(id.sex()));
                info.insert("governorate".into(), json!(g.code));
                info.insert("governorate_ar".into(), json!(g.name_ar));
                info.insert("governorate_en".into(), json!(g.name_en));
                info.insert("age".into(), json!(id.age_on(self.today())));
                Normalised::Text(id.as_str().to_owned())
            }
            ValidateRequest::Plate { letters, digits } => {
                let rules = lock_read(&self.rules);
                let pr = rules.schedule.as_ref().map(|s| s.plate.clone()).unwrap_or_default();
                Normalised::Plate(pr.parse(&letters, &digits).map_err(|e| DeskError::invalid(vec![e]))?)
            }
            ValidateRequest::Vin { value } => {
                Normalised::Text(validate::parse_vin(&value).map_err(|e| DeskError::invalid(vec![e]))?)
            }
            ValidateRequest::EngineNo { value } => {
                Normalised::Text(validate::parse_engine_no(&value).map_err(|e| DeskError::invalid(vec![e]))?)
            }
            ValidateRequest::Phone { value } => {
                Normalised::Text(validate::parse_phone(&value).map_err(|e| DeskError::invalid(vec![e]))?)
            }
        };
        Ok(Validated { ok: true, normalised, info })
    }

    async fn schedule(&self, _who: &Session) -> Result<serde_json::Value, DeskError> {
        let (_, text) = self
            .refdata
            .schedule_json()
            .map_err(from_refdata)?
            .ok_or_else(|| DeskError::not_found("schedule", "current"))?;
        serde_json::from_str(&text).map_err(internal)
    }

    async fn dossier(&self, _who: &Session, q: DossierQuery) -> Result<Dossier, DeskError> {
        let id = validate::NationalId::parse(&q.national_id, self.today())
            .map_err(|e| DeskError::invalid(vec![e]))?;
        let plate = match (&q.plate_letters, &q.plate_digits) {
            (Some(l), Some(d)) => {
                let rules = lock_read(&self.rules);
                let pr = rules.schedule.as_ref().map(|s| s.plate.clone()).unwrap_or_default();
                Some(pr.parse(l, d).map_err(|e| DeskError::invalid(vec![e]))?)
            }
            _ => None,
        };
        let plate = plate.as_ref().map(|p| (p.letters.as_str(), p.digits.as_str()));
        if let Some(d) = self.dossier_for(id.as_str(), plate) {
            return Ok(d);
        }
        self.live_dossier(id.as_str(), plate)
            .await?
            .ok_or_else(|| DeskError::not_found("dossier", id.as_str()))
    }

    async fn open_service(&self, who: &Session, req: ServiceRequest) -> Result<TxnView, DeskError> {
        if self.power_failing() {
            return Err(power_failing());
        }
        if self.shifts.current().is_none() {
            return Err(DeskError::conflict(Problem::new(
                "state.no_shift",
                "لا توجد وردية مفتوحة؛ افتح الوردية أولًا",
                "no shift is open; open the shift first",
            )));
        }
        let today = self.today();
        let mut errors = Vec::new();
        let (citizen, nid) = match validate::citizen(&req.citizen, today) {
            Ok(c) => (Some(c.0), Some(c.1)),
            Err(e) => {
                errors.extend(e.into_iter().map(|e| e.under("citizen")));
                (None, None)
            }
        };
        let (schedule, blocklist) = {
            let r = lock_read(&self.rules);
            (r.schedule.clone(), r.blocklist.clone())
        };
        let Some(schedule) = schedule else {
            return Err(DeskError::unavailable(Problem::new(
                "schedule.missing",
                "لا توجد لائحة رسوم مطبقة؛ استورد لائحة الرسوم",
                "no fee schedule is applied; import one",
            )));
        };
        let vehicle = match (&req.vehicle, req.service.is_vehicle() && req.service != ServiceKind::Supplies) {
            (Some(v), _) => match validate::vehicle(v, &schedule.plate, today) {
                Ok(v) => Some(v),
                Err(e) => {
                    errors.extend(e.into_iter().map(|e| e.under("vehicle")));
                    None
                }
            },
            (None, true) => {
                errors.push(FieldError::new(
                    "vehicle",
                    "vehicle.required",
                    "بيانات المركبة مطلوبة لهذه الخدمة",
                    "this service needs the vehicle",
                ));
                None
            }
            (None, false) => None,
        };
        if !errors.is_empty() {
            return Err(DeskError::invalid(errors));
        }
        let (citizen, nid) = (citizen.expect("checked"), nid.expect("checked"));
        // The dossier: the booking's, or (walk-up) one the van holds for today, or none.
        let mut booking = None;
        let dossier = match &req.booking_id {
            Some(bid) => {
                let b = self
                    .refdata
                    .booking(bid)
                    .map_err(from_refdata)?
                    .ok_or_else(|| DeskError::not_found("booking", bid))?;
                if !matches!(b.state, BookingState::Assigned | BookingState::Arrived) {
                    return Err(DeskError::conflict(
                        Problem::new(
                            "state.booking",
                            "لا يمكن خدمة هذا الحجز في حالته الحالية",
                            format!("booking {bid} is {:?} and cannot be served now", b.state),
                        )
                        .with_details(json!({"state": b.state})),
                    ));
                }
                if b.booking.citizen.national_id != citizen.national_id {
                    return Err(DeskError::invalid(vec![FieldError::new(
                        "citizen.national_id",
                        "booking.other_citizen",
                        "الرقم القومي لا يطابق صاحب الحجز",
                        "the national ID is not the booking's citizen",
                    )]));
                }
                let d = b.booking.dossier.clone();
                booking = Some(b);
                d
            }
            None => self.dossier_for(
                &citizen.national_id,
                vehicle.as_ref().map(|v| (v.plate.letters.as_str(), v.plate.digits.as_str())),
            ),
        };
        let mut dossier_source = if dossier.is_none() {
            "none"
        } else if booking.is_some() {
            "booking"
        } else {
            "van"
        };
        let dossier = match dossier {
            None if req.service != ServiceKind::Supplies => {
                let plate = vehicle.as_ref().map(|v| (v.plate.letters.as_str(), v.plate.digits.as_str()));
                let d = self
                    .live_dossier(&citizen.national_id, plate)
                    .await?
                    .ok_or_else(|| DeskError::not_found("dossier", &citizen.national_id))?;
                dossier_source = "hq";
                Some(d)
            }
            d => d,
        };
        let dossier = dossier.map(|d| self.with_van_inspections(d));
        // The vehicle entered must be the dossier's (same VIN), for vehicle services.
        if let (Some(v), Some(dv)) = (&vehicle, dossier.as_ref().and_then(|d| d.vehicle.as_ref()))
            && v.vin != dv.vin
        {
            return Err(DeskError::invalid(vec![FieldError::new(
                "vehicle.vin",
                "vehicle.not_in_dossier",
                "رقم الشاسيه لا يطابق سجل المركبة",
                "the VIN is not the one on the vehicle's record",
            )]));
        }
        let category = vehicle.as_ref().map(|v| v.category);
        let grade =
            req.grade.or_else(|| dossier.as_ref().and_then(|d| d.driving_licence.as_ref().map(|l| l.grade)));
        let supplies: Vec<SupplyRequest> =
            req.supplies.iter().map(|s| SupplyRequest { code: s.code.clone(), qty: s.qty }).collect();
        let quote = schedule
            .quote(&QuoteRequest {
                service: req.service,
                category,
                grade,
                replacement: req.replacement,
                supplies,
            })
            .map_err(|e| DeskError::invalid(vec![e]))?;
        let refusals = if req.service == ServiceKind::Supplies {
            Vec::new()
        } else {
            schedule.check(&PrereqContext {
                service: req.service,
                today,
                citizen: &nid,
                dossier: dossier.as_ref(),
                grade,
                blocklist: &blocklist,
            })
        };
        let expires = schedule
            .expiry(req.service, category, grade, today)
            .map_err(|e| DeskError::invalid(vec![e]))?
            .or_else(|| {
                // Replacements keep the document's expiry.
                dossier.as_ref().and_then(|d| match req.service {
                    ServiceKind::DrivingLicenceReplacement | ServiceKind::DrivingLicenceUpdate => {
                        d.driving_licence.as_ref().map(|l| l.expires)
                    }
                    _ => d.vehicle_licence.as_ref().map(|l| l.expires),
                })
            });
        let changes = req.changes.clone();
        let plan = OpenPlan {
            request: records::ServiceRequest {
                service: req.service,
                booking_id: req.booking_id.clone(),
                citizen,
                vehicle,
                grade,
                replacement: req.replacement,
                supplies: req
                    .supplies
                    .iter()
                    .map(|s| records::SupplyQty { code: s.code.clone(), qty: s.qty })
                    .collect(),
                changes,
            },
            dossier,
            dossier_source: dossier_source.into(),
            refusals: refusals
                .iter()
                .map(|r| records::Refusal {
                    code: r.code.code().to_owned(),
                    ar: r.ar.clone(),
                    en: r.en.clone(),
                    overridable: r.overridable,
                })
                .collect(),
            schedule_version: quote.schedule_version,
            lines: quote
                .lines
                .iter()
                .map(|l| records::FeeLine {
                    code: l.code.clone(),
                    label_ar: l.label_ar.clone(),
                    label_en: l.label_en.clone(),
                    amount: l.amount,
                })
                .collect(),
            expires,
        };
        let a = actor(who);
        let t = self.shell.open(plan, &a).await.map_err(from_shell)?;
        if let Some(b) = booking {
            let mut from = b.state;
            if from == BookingState::Assigned {
                self.move_booking(&b.booking.id, from, BookingState::Arrived, &a.id, None, None).await?;
                from = BookingState::Arrived;
            }
            self.move_booking(&b.booking.id, from, BookingState::InService, &a.id, None, Some(t.id()))
                .await?;
        }
        Ok(self.view(&t, who))
    }

    async fn services(&self, who: &Session, filter: ServiceFilter) -> Result<Vec<TxnView>, DeskError> {
        let today = self.today();
        let tz = self.tz.clone();
        let mut list = match filter {
            ServiceFilter::Today => {
                self.shell.txns(|t| ts(t.opened_us).to_zoned_datetime(tz.clone()).date() == today)
            }
            ServiceFilter::Open => self.shell.txns(|t| !txn_state(t).is_final()),
        };
        list.sort_by_key(|t| std::cmp::Reverse(t.opened_seq));
        Ok(list.iter().map(|t| self.view(t, who)).collect())
    }

    async fn service(&self, who: &Session, txn: &str) -> Result<TxnView, DeskError> {
        Ok(self.view(&self.shell.txn(txn).map_err(from_shell)?, who))
    }

    async fn inspect(&self, who: &Session, txn: &str, req: InspectionRequest) -> Result<TxnView, DeskError> {
        if let Some(s) = lock_read(&self.rules).schedule.as_ref() {
            let unknown: Vec<FieldError> = req
                .checklist
                .keys()
                .filter(|k| !s.inspection_checklist.iter().any(|c| &c.code == *k))
                .map(|k| {
                    FieldError::new(
                        format!("checklist.{k}"),
                        "inspection.unknown_item",
                        format!("البند {k} ليس في قائمة الفحص"),
                        format!("{k} is not an item of the inspection checklist"),
                    )
                })
                .collect();
            let missing: Vec<FieldError> = s
                .inspection_checklist
                .iter()
                .filter(|c| !req.checklist.contains_key(&c.code))
                .map(|c| {
                    FieldError::new(
                        format!("checklist.{}", c.code),
                        "inspection.missing_item",
                        format!("لم يُسجل بند الفحص: {}", c.label_ar),
                        format!("checklist item not recorded: {}", c.label_en),
                    )
                })
                .collect();
            if !unknown.is_empty() || !missing.is_empty() {
                return Err(DeskError::invalid(unknown.into_iter().chain(missing)));
            }
        }
        let t = self
            .shell
            .inspect(
                txn,
                &actor(who),
                req.vin_matches,
                req.engine_matches,
                req.checklist,
                req.notes.unwrap_or_default(),
            )
            .await
            .map_err(from_shell)?;
        Ok(self.view(&t, who))
    }

    async fn override_refusal(
        &self,
        who: &Session,
        txn: &str,
        req: OverrideRequest,
    ) -> Result<TxnView, DeskError> {
        self.check_tamper()?;
        let t = self
            .shell
            .override_refusal(txn, &actor(who), &req.code, &req.reason)
            .await
            .map_err(from_shell)?;
        Ok(self.view(&t, who))
    }

    async fn proceed(&self, who: &Session, txn: &str) -> Result<TxnView, DeskError> {
        if self.power_failing() {
            return Err(power_failing());
        }
        let t = self.shell.txn(txn).map_err(from_shell)?;
        let state = txn_state(&t);
        let view = self.view(&t, who);
        if self.shell.is_running(txn) {
            return Err(from_shell(shell::DeskError::new(
                ErrorClass::State,
                "state.busy",
                "المعاملة قيد التنفيذ الآن",
                "the transaction is running a step now",
            )));
        }
        if !view.next.contains(&Action::Proceed) {
            let allowed = view.next.clone();
            return Err(DeskError::wrong_txn_state(Action::Proceed, state, &allowed));
        }
        let shell = self.shell.clone();
        let a = actor(who);
        let id = txn.to_owned();
        let me = self.me.clone();
        let mut started = self.shell.subscribe();
        tokio::spawn(async move {
            match shell.proceed(&id, &a).await {
                Ok(t) => {
                    if let Some(office) = me.upgrade() {
                        office.settle_booking(&t, &a.id).await;
                    }
                }
                Err(e) => tracing::warn!(txn = %id, "proceed: {e}"),
            }
        });
        // Answer once the first step is under way (its first event), or after 200 ms at most.
        let first = async {
            loop {
                match started.recv().await {
                    Ok(shell::DeskEvent::Txn { txn: t, .. } | shell::DeskEvent::Progress { txn: t, .. })
                        if t == txn =>
                    {
                        break;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                    _ => {}
                }
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_millis(200), first).await;
        Ok(self.view(&self.shell.txn(txn).map_err(from_shell)?, who))
    }

    async fn cancel(&self, who: &Session, txn: &str, req: ReasonRequest) -> Result<TxnView, DeskError> {
        let t = self.shell.cancel(txn, &actor(who), &req.reason).await.map_err(from_shell)?;
        self.settle_booking(&t, &who.officer.id).await;
        Ok(self.view(&t, who))
    }

    async fn void(&self, who: &Session, txn: &str, req: ReasonRequest) -> Result<TxnView, DeskError> {
        if !who.is_supervisor() {
            return Err(DeskError::supervisor_only("void a transaction"));
        }
        self.check_tamper()?;
        let t = self.shell.void(txn, &actor(who), &req.reason).await.map_err(from_shell)?;
        self.settle_booking(&t, &who.officer.id).await;
        Ok(self.view(&t, who))
    }

    async fn reprint(&self, who: &Session, txn: &str, req: ReprintRequest) -> Result<TxnView, DeskError> {
        let a = actor(who);
        match req.what {
            ReprintWhat::Receipt => {
                self.shell
                    .receipt(txn, &a, crate::render::documents::ReceiptFormat::A4)
                    .await
                    .map_err(from_shell)?;
                Ok(self.view(&self.shell.txn(txn).map_err(from_shell)?, who))
            }
            ReprintWhat::Card | ReprintWhat::Label => {
                self.check_tamper()?;
                let what = if req.what == ReprintWhat::Card { "card" } else { "label" };
                let t = self.shell.reprint(txn, &a, what, &req.reason).await.map_err(from_shell)?;
                Ok(self.view(&t, who))
            }
        }
    }

    async fn receipt_pdf(
        &self,
        who: &Session,
        txn: &str,
        format: ReceiptFormat,
    ) -> Result<Vec<u8>, DeskError> {
        let f = match format {
            ReceiptFormat::A4 => crate::render::documents::ReceiptFormat::A4,
            ReceiptFormat::Roll80 => crate::render::documents::ReceiptFormat::Roll80,
        };
        self.shell.receipt(txn, &actor(who), f).await.map_err(from_shell)
    }

    async fn records(&self, _who: &Session, txn: &str) -> Result<Vec<serde_json::Value>, DeskError> {
        self.shell.txn(txn).map_err(from_shell)?;
        let recs = self.journal().txn_records(txn).map_err(internal)?;
        recs.iter()
            .map(|r| {
                let mut line = Vec::new();
                crate::journal::export::write_line(&mut line, r).map_err(internal)?;
                serde_json::from_slice(&line).map_err(internal)
            })
            .collect()
    }

    async fn shift(&self, _who: &Session) -> Result<Option<ShiftView>, DeskError> {
        Ok(self.shifts.current().map(|s| self.shift_view(&s)))
    }

    async fn open_shift(&self, who: &Session, req: ShiftOpenRequest) -> Result<ShiftView, DeskError> {
        let stock = super::shift::StockCounts {
            cards: req.stock.cards,
            labels: req.stock.labels,
            tags: req.stock.tags,
        };
        let s = self.shifts.open(&actor(who), stock).await.map_err(from_shell)?;
        Ok(self.shift_view(&s))
    }

    async fn close_shift(&self, who: &Session, req: ShiftCloseRequest) -> Result<ShiftReportView, DeskError> {
        if who.is_supervisor() {
            self.check_tamper()?;
        }
        let counted = super::shift::StockCounts {
            cards: req.counted.cards,
            labels: req.counted.labels,
            tags: req.counted.tags,
        };
        let open = self.shifts.current();
        let c = self.shifts.close(&actor(who), counted).await.map_err(from_shell)?;
        let open = open.ok_or_else(|| internal("shift vanished"))?;
        Ok(self.report_view(&c, &open))
    }

    async fn shift_report_pdf(&self, _who: &Session, id: &str) -> Result<Vec<u8>, DeskError> {
        match self.shifts.last_closed() {
            Some(c) if c.txn == id => {}
            _ => return Err(DeskError::not_found("shift", id)),
        }
        self.shifts.report_pdf(&|o| self.officer_name(o)).map_err(from_shell)
    }

    fn van(&self) -> serde_json::Value {
        serde_json::json!({
            "van_id": self.shell.config().issuer.van_id,
            "training": self.training.load(std::sync::atomic::Ordering::Relaxed),
            "power_failing": self.power_failing(),
            "tamper_latched": self.tamper_latched().is_some(),
        })
    }

    async fn sync(&self, _who: &Session) -> Result<serde_json::Value, DeskError> {
        Ok(match self.sync_status.get() {
            Some(s) => s.status().await,
            None => serde_json::json!({"enabled": false, "why": "sync with HQ is not configured"}),
        })
    }

    async fn devices(&self, _who: &Session) -> Result<BTreeMap<String, DeviceView>, DeskError> {
        Ok(self
            .shell
            .manager()
            .health()
            .iter()
            .map(|(d, h)| (d.name().to_owned(), DeviceView::from(h)))
            .collect())
    }

    async fn alarms(&self, _who: &Session) -> Result<api::AlarmView, DeskError> {
        Ok(self.alarm_view())
    }

    async fn clear_tamper(&self, who: &Session, req: ReasonRequest) -> Result<api::AlarmView, DeskError> {
        if !who.is_supervisor() {
            return Err(DeskError::supervisor_only("clear the tamper alarm"));
        }
        let reason = req.reason.trim();
        if reason.is_empty() {
            return Err(DeskError::invalid_problems(vec![
                Problem::new(
                    "tamper.reason_required",
                    "اكتب ما وجدته عند فحص الصندوق",
                    "a reason (what the check of the box found) is required",
                )
                .with_field("reason"),
            ]));
        }
        let Some((_, raised_seq)) = self.tamper_latched() else {
            return Err(DeskError::conflict(Problem::new(
                "tamper.not_latched",
                "لا يوجد إنذار فتح صندوق لإلغائه",
                "no tamper alarm is latched",
            )));
        };
        if self.tamper_open.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(DeskError::conflict(Problem::new(
                "tamper.switch_open",
                "الصندوق ما زال مفتوحًا؛ أغلقه ثم ألغِ الإنذار",
                "the tamper switch is still open; close the box, then clear the alarm",
            )));
        }
        let record = crate::journal::kinds::TamperCleared {
            officer: who.officer.id.clone(),
            reason: reason.chars().take(500).collect(),
            raised_seq,
        };
        let payload = serde_json::to_value(&record).map_err(internal)?;
        self.append(crate::journal::kinds::TAMPER_CLEARED, payload).await?;
        let refdata = self.refdata.clone();
        tokio::task::spawn_blocking(move || refdata.clear_alarm(TAMPER_ALARM))
            .await
            .map_err(internal)?
            .map_err(from_refdata)?;
        crate::app::tamper_outputs(self.shell.manager(), false);
        let view = self.alarm_view();
        let _ = self.events.send(DeskEvent::Alarm { alarm: view.clone() });
        Ok(view)
    }

    fn events(&self) -> broadcast::Receiver<DeskEvent> {
        self.events.subscribe()
    }

    async fn ops(&self) -> Option<crate::api::ops::OpsSnapshot> {
        let sync = match self.sync_status.get() {
            Some(s) => s.status().await,
            None => serde_json::json!({"enabled": false}),
        };
        let devices = self
            .shell
            .manager()
            .health()
            .iter()
            .map(|(d, h)| (d.name().to_owned(), h.state_name().to_owned()))
            .collect();
        let (mut services, mut outcomes) = (BTreeMap::new(), BTreeMap::new());
        for t in self.shell.txns(|_| true) {
            let kind = serde_json::to_value(t.service()).ok().and_then(|v| v.as_str().map(str::to_owned));
            let kind = kind.unwrap_or_else(|| "unknown".into());
            *services.entry((kind.clone(), txn_state(&t).name().to_owned())).or_insert(0u64) += 1;
            let reached = [
                ("completed", t.complete.is_some()),
                ("cancelled", t.cancelled.is_some()),
                ("voided", t.void.is_some()),
            ];
            for (outcome, _) in reached.into_iter().filter(|(_, r)| *r) {
                *outcomes.entry((kind.clone(), outcome.to_owned())).or_insert(0u64) += 1;
            }
        }
        Some(crate::api::ops::OpsSnapshot {
            journal: self.shell.journal().writer_health(),
            sync,
            devices,
            services,
            outcomes,
        })
    }
}

/// 503 `power.failing`: the van runs on its UPS; nothing new starts until mains is back.
fn power_failing() -> DeskError {
    DeskError::unavailable(Problem::new(
        "power.failing",
        "انقطعت الكهرباء والوحدة تعمل على البطارية؛ لا تبدأ خدمة جديدة حتى تعود الكهرباء",
        "mains power is lost and the van runs on its UPS; no new service or step starts until mains returns",
    ))
}

fn hq_unreachable() -> DeskError {
    DeskError::unavailable(Problem::new(
        "hq.unreachable",
        "لا يوجد ملف لهذا المواطن في الوحدة ولا يمكن الاستعلام من الإدارة الآن؛ لا يمكن خدمة طلب بدون حجز إلا باستعلام مباشر",
        "the van holds no record for this citizen and HQ cannot be asked now; a walk-up needs a live HQ lookup",
    ))
}

/// The control socket's office commands (`vanctl bookings|officers|schedule|blocklist import`,
/// `vanctl bookings list`, `vanctl officers`): imports go through [`Office::apply_bundle`] (checked,
/// journaled, then stored, the rules reloaded); lists are answered from `office.db`.
pub struct OfficeExtra {
    office: Arc<Office>,
    lists: super::refdata::OfficeControl,
    in_effect: Option<serde_json::Value>,
}

impl OfficeExtra {
    /// The commands of `office`.
    pub fn new(office: Arc<Office>) -> OfficeExtra {
        let refusing: super::refdata::JournalHook =
            Arc::new(|_| Err("imports go through the office, not this hook".to_owned()));
        let lists = super::refdata::OfficeControl::new(office.refdata.clone(), refusing);
        OfficeExtra { office, lists, in_effect: None }
    }

    /// The settings bundle this run of vand took at start (the `settings.effective` record's
    /// payload; `None`: the configuration's values), for `{"cmd":"settings"}`.
    pub fn with_settings_in_effect(mut self, record: Option<serde_json::Value>) -> OfficeExtra {
        self.in_effect = record;
        self
    }

    /// `{"settings": {"applied", "in_effect", "pending"}}`: the settings bundle applied last
    /// (office.db), the one in effect since vand started, and whether a restart is needed to
    /// take the applied one.
    fn settings(&self) -> Result<serde_json::Value, String> {
        let applied = self.office.refdata.settings().map_err(|e| e.to_string())?;
        let in_effect_version = self.in_effect.as_ref().and_then(|r| r["version"].as_u64());
        let pending = applied.as_ref().is_some_and(|a| Some(a.version) != in_effect_version);
        Ok(json!({"settings": {"applied": applied, "in_effect": self.in_effect, "pending": pending}}))
    }
}

impl crate::control::ControlExtra for OfficeExtra {
    fn commands(&self) -> &[&'static str] {
        &["import", "bookings", "officers", "settings", "alarms"]
    }

    fn handle(&self, request: serde_json::Value) -> crate::control::ExtraFuture<'_> {
        if request.get("cmd").and_then(serde_json::Value::as_str) == Some("settings") {
            return Box::pin(async move { self.settings() });
        }
        if request.get("cmd").and_then(serde_json::Value::as_str) == Some("alarms") {
            return Box::pin(async move {
                serde_json::to_value(self.office.alarm_view())
                    .map(|a| json!({ "alarms": a }))
                    .map_err(|e| e.to_string())
            });
        }
        if request.get("cmd").and_then(serde_json::Value::as_str) != Some("import") {
            return self.lists.handle(request);
        }
        Box::pin(async move {
            let bytes = match (request.get("bundle_text"), request.get("bundle")) {
                (Some(serde_json::Value::String(t)), _) => t.clone().into_bytes(),
                (_, Some(b @ serde_json::Value::Object(_))) => b.to_string().into_bytes(),
                _ => return Err(
                    "cmd \"import\" needs \"bundle_text\" (the file as a string) or \"bundle\" (an object)"
                        .into(),
                ),
            };
            match self.office.apply_bundle(None, &bytes).await {
                Ok(a) => Ok(json!({ "import": a })),
                Err(e) => Err(e.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; ")),
            }
        })
    }
}
