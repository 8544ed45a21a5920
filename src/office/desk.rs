//! The shell around the workflow: it journals each step's intent, runs the device, journals the
//! result, folds both into the transaction ([`Txn`]) and asks the machine what comes next. It is
//! the only code that writes service records; the local API calls it and nothing else.
//!
//! Concurrency: one driver per transaction at a time (a second `proceed` on a running one is
//! refused with `state.busy`); the transaction map is behind a short lock that is never held
//! across I/O. Recovery after a crash ([`Desk::recover`]) folds every unfinished transaction
//! from the journal and resolves what a crash can leave open: a purchase is asked about (repeat
//! receipt), a card/tag/label intent is recorded as `unknown` (counted spoiled), a reversal is
//! recorded as unknown (for reconciliation). Physical steps never restart on their own: the
//! officer proceeds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::json;
use tokio::sync::broadcast;

use super::model::{Actor, CardDoc, Dossier, Role, ServiceKind, VehicleCategory};
use super::records::{
    self, FeeLine, PayOutcome, PaymentHold, PaymentIntent, PaymentRecovery, PaymentResult, Recovered,
    Refusal, ReversalIntent, ReversalResult, ServiceComplete, ServiceEnd, ServiceInspection, ServiceOpen,
    ServiceOverride, ServiceQuote, ServiceRefusal, ServiceReprint, ServiceRequest, Step, StepIntent,
    StepOutcome, StepResult, Stock, kind,
};
use super::workflow::{Next, Payment, State, Txn};
use crate::devices::card::{CardJob, CardSide, ColourPlanes, Plane8};
use crate::devices::manager::{JobError, Manager, Outcome};
use crate::devices::payment::{Approval, PaymentOutcome};
use crate::devices::rfid::{EncodedTag, TagData};
use crate::devices::sticker::{LabelElement, MonoBitmap, StickerLabel as ZplLabel};
use crate::devices::{DeviceId, Fault, Lang};
use crate::journal::Journal;
use crate::journal::store::Appended;
use crate::render::documents::{self, DocOptions, Issuer, JournalRef, Plate};
use crate::render::photo::Photo;
use crate::render::raster;
use crate::render::scene::Rgb;

/// What the desk needs to know about the van.
#[derive(Debug, Clone)]
pub struct DeskConfig {
    /// Printed and signed on documents.
    pub issuer: Issuer,
    /// Document options (digits, sticker dpi, roll printer).
    pub doc: DocOptions,
    /// EPC length of the tag profile, bytes.
    pub epc_bytes: usize,
    /// User memory words of the tag profile.
    pub user_words: usize,
    /// Print licence cards in colour (YMCKO ribbon); false for a K-only ribbon.
    pub card_colour: bool,
    /// Crash-test hook (simulation only, set by `MTU_TEST_KILL_AFTER`): the process kills itself
    /// with SIGKILL right after its n-th transaction record is durable, as a power cut would.
    pub kill_after: Option<u64>,
    /// Crash-test hook (simulation only, `MTU_TEST_KILL_IN_PAYMENT`): SIGKILL at the terminal's
    /// first status message of a purchase journaled as the n-th record, i.e. while the terminal
    /// holds the purchase and its answer can only be lost.
    pub kill_in_payment: Option<u64>,
}

/// What the desk tells listeners (the API's event stream).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DeskEvent {
    /// A step's progress text (the terminal's prompts, printing, encoding).
    Progress {
        /// Transaction.
        txn: String,
        /// `payment`, `card`, `tag`, `label`, `reversal`.
        step: String,
        /// What is happening.
        text: String,
    },
    /// A transaction's state changed.
    Txn {
        /// Transaction.
        txn: String,
        /// New state.
        state: State,
    },
}

/// Why a desk action was refused or failed. `code` is stable; `ar`/`en` are for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code}: {en}")]
pub struct DeskError {
    /// What kind of failure (the API maps it to an HTTP status).
    pub class: ErrorClass,
    /// Stable code, e.g. `state.busy`, `device.card.ribbon_ended`.
    pub code: String,
    /// The field concerned, if any.
    pub field: Option<String>,
    /// Arabic.
    pub ar: String,
    /// English.
    pub en: String,
}

/// Classes of desk errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Bad input (field errors, refusals).
    Invalid,
    /// No such transaction, booking, …
    NotFound,
    /// Not allowed in the current state.
    State,
    /// Needs a supervisor.
    Role,
    /// A device could not do it (nothing charged/printed unless the transaction says so).
    Device,
    /// The journal could not record it: nothing was done.
    Storage,
}

impl DeskError {
    /// A new error.
    pub fn new(
        class: ErrorClass,
        code: impl Into<String>,
        ar: impl Into<String>,
        en: impl Into<String>,
    ) -> Self {
        DeskError { class, code: code.into(), field: None, ar: ar.into(), en: en.into() }
    }

    fn storage(e: impl std::fmt::Display) -> Self {
        DeskError::new(
            ErrorClass::Storage,
            "journal.append_failed",
            format!("تعذر تسجيل الخطوة في السجل؛ لم يتم تنفيذ شيء: {e}"),
            format!("the step could not be recorded in the journal; nothing was done: {e}"),
        )
    }

    fn not_found(txn: &str) -> Self {
        DeskError::new(
            ErrorClass::NotFound,
            "not_found.txn",
            format!("لا توجد معاملة برقم {txn}"),
            format!("no transaction {txn}"),
        )
    }

    fn state(txn: &Txn, action: &str) -> Self {
        let s = serde_json::to_value(txn.state())
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        DeskError::new(
            ErrorClass::State,
            format!("state.{action}_not_allowed"),
            format!("لا يمكن تنفيذ هذا الإجراء والمعاملة في حالة {s}"),
            format!("{action} is not allowed while the transaction is {s}"),
        )
    }

    fn supervisor(what_ar: &str, what_en: &str) -> Self {
        DeskError::new(
            ErrorClass::Role,
            "auth.role",
            format!("{what_ar} يحتاج إلى مشرف"),
            format!("{what_en} needs a supervisor"),
        )
    }

    fn device(device: DeviceId, e: &JobError) -> Self {
        let fault = e.fault();
        let code = fault.map_or_else(|| "device.unavailable".to_owned(), |f| format!("device.{}", f.code()));
        let (ar, en) = match fault {
            Some(f) => (
                format!("{}: {} — {}", device.label(Lang::Ar), f.text(Lang::Ar), f.action(Lang::Ar)),
                format!("{}: {} — {}", device.label(Lang::En), f.text(Lang::En), f.action(Lang::En)),
            ),
            None => (format!("{}: {e}", device.label(Lang::Ar)), format!("{}: {e}", device.label(Lang::En))),
        };
        DeskError::new(ErrorClass::Device, code, ar, en)
    }
}

/// Everything a service transaction is opened with, after validation, prerequisites and the quote.
#[derive(Debug, Clone)]
pub struct OpenPlan {
    /// The request as entered.
    pub request: ServiceRequest,
    /// The dossier used, and where it came from (`booking`, `hq`, `none`).
    pub dossier: Option<Dossier>,
    /// `booking`, `hq` or `none`.
    pub dossier_source: String,
    /// Failed prerequisites.
    pub refusals: Vec<Refusal>,
    /// Fee schedule version.
    pub schedule_version: u64,
    /// Fee lines.
    pub lines: Vec<FeeLine>,
    /// Expiry of the document issued.
    pub expires: Option<jiff::civil::Date>,
}

/// The service desk's shell.
pub struct Desk {
    journal: Journal,
    manager: Arc<Manager>,
    cfg: DeskConfig,
    txns: Mutex<BTreeMap<String, Txn>>,
    running: Mutex<BTreeSet<String>>,
    /// Stopping or on UPS power: no new physical step starts (see [`Desk::set_draining`]).
    draining: AtomicBool,
    serial: AtomicU64,
    recorded: AtomicU64,
    open_lock: tokio::sync::Mutex<()>,
    events: broadcast::Sender<DeskEvent>,
}

/// Releases a transaction's driver claim.
struct Claim<'a> {
    desk: &'a Desk,
    txn: String,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        lock(&self.desk.running).remove(&self.txn);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Desk {
    /// A desk over `journal` and `manager`; loads the transactions the journal holds (call
    /// [`Desk::recover`] next to resolve what a crash left open).
    pub fn new(journal: Journal, manager: Arc<Manager>, cfg: DeskConfig) -> Result<Arc<Desk>, DeskError> {
        let prefix = txn_prefix(&cfg.issuer.van_id);
        let ids = journal.txn_ids(&prefix, 0).map_err(DeskError::storage)?;
        let mut txns = BTreeMap::new();
        for id in &ids {
            let recs = journal.txn_records(id).map_err(DeskError::storage)?;
            let txn =
                Txn::fold(recs.iter().map(|r| (r.seq, r.time_us, r.kind.as_str(), r.payload.as_slice())))
                    .map_err(|e| DeskError::storage(format!("reloading {id}: {e}")))?;
            txns.insert(id.clone(), txn);
        }
        let (events, _) = broadcast::channel(256);
        Ok(Arc::new(Desk {
            journal,
            manager,
            cfg,
            txns: Mutex::new(txns),
            running: Mutex::new(BTreeSet::new()),
            draining: AtomicBool::new(false),
            serial: AtomicU64::new(ids.len() as u64),
            recorded: AtomicU64::new(0),
            open_lock: tokio::sync::Mutex::new(()),
            events,
        }))
    }

    /// Listens to progress and state changes.
    pub fn subscribe(&self) -> broadcast::Receiver<DeskEvent> {
        self.events.subscribe()
    }

    /// The device manager (for device views).
    pub fn manager(&self) -> &Arc<Manager> {
        &self.manager
    }

    /// The journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The van's configuration for documents.
    pub fn config(&self) -> &DeskConfig {
        &self.cfg
    }

    /// A snapshot of one transaction.
    pub fn txn(&self, id: &str) -> Result<Txn, DeskError> {
        lock(&self.txns).get(id).cloned().ok_or_else(|| DeskError::not_found(id))
    }

    /// Snapshots of every transaction matching `f`.
    pub fn txns(&self, f: impl Fn(&Txn) -> bool) -> Vec<Txn> {
        lock(&self.txns).values().filter(|t| f(t)).cloned().collect()
    }

    /// Whether a driver is working on `id` now.
    pub fn is_running(&self, id: &str) -> bool {
        lock(&self.running).contains(id)
    }

    /// Drains the desk (`true`): a step under way goes on to its end and is journaled, but no
    /// transaction starts another device step (payment, card, tag, label, reversal, or a
    /// recovery query) until draining ends; `proceed` stops where it is and the officer (or
    /// the next start) proceeds again. Set on a power failure and when vand stops.
    pub fn set_draining(&self, on: bool) {
        self.draining.store(on, Ordering::SeqCst);
    }

    /// Whether the desk is draining.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Whether no transaction is running a step.
    pub fn idle(&self) -> bool {
        lock(&self.running).is_empty()
    }

    /// Waits until no transaction runs a step, at most `within`; whether it is idle.
    pub async fn wait_idle(&self, within: std::time::Duration) -> bool {
        let until = tokio::time::Instant::now() + within;
        while !self.idle() {
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        true
    }

    /// Journals a record of `txn` and folds it in. The record is durable when this returns.
    async fn record(&self, txn: &str, k: &str, payload: &impl Serialize) -> Result<Appended, DeskError> {
        let mut v = serde_json::to_value(payload).map_err(DeskError::storage)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("txn".into(), json!(txn));
        }
        let bytes = v.to_string();
        let appended = self.journal.append_async(k, &v).await.map_err(DeskError::storage)?;
        let state = {
            let mut map = lock(&self.txns);
            let t = map.get_mut(txn).ok_or_else(|| DeskError::not_found(txn))?;
            t.apply(appended.seq, k, bytes.as_bytes())
                .map_err(|e| DeskError::storage(format!("fold: {e}")))?;
            t.state()
        };
        let _ = self.events.send(DeskEvent::Txn { txn: txn.into(), state });
        self.crash_point();
        Ok(appended)
    }

    /// The crash-test hook: SIGKILL after the configured number of transaction records.
    fn crash_point(&self) {
        let n = self.recorded.fetch_add(1, Ordering::SeqCst) + 1;
        if self.cfg.kill_after == Some(n) {
            tracing::warn!(records = n, "crash test: killing vand now (MTU_TEST_KILL_AFTER)");
            // SAFETY: kill(2) on our own pid; nothing after it runs.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
    }

    fn progress(&self, txn: &str, step: &str, text: impl Into<String>) {
        let _ =
            self.events.send(DeskEvent::Progress { txn: txn.into(), step: step.into(), text: text.into() });
    }

    /// Opens a transaction from a checked plan: `service.open`, the refusals if any, the quote.
    pub async fn open(&self, plan: OpenPlan, actor: &Actor) -> Result<Txn, DeskError> {
        let _g = self.open_lock.lock().await;
        let n = self.serial.load(Ordering::SeqCst) + 1;
        let id = format!("{}{n:06}", txn_prefix(&self.cfg.issuer.van_id));
        let open = ServiceOpen {
            txn: id.clone(),
            officer: actor.id.clone(),
            request: plan.request,
            dossier_source: plan.dossier_source,
            dossier: plan.dossier,
        };
        let v = serde_json::to_value(&open).map_err(DeskError::storage)?;
        let a = self.journal.append_async(kind::SERVICE_OPEN, &v).await.map_err(DeskError::storage)?;
        self.serial.store(n, Ordering::SeqCst);
        lock(&self.txns).insert(id.clone(), Txn::new(open, a.seq, crate::clock::now_utc_us()));
        self.crash_point();
        if !plan.refusals.is_empty() {
            let r = ServiceRefusal { txn: id.clone(), officer: actor.id.clone(), refusals: plan.refusals };
            self.record(&id, kind::SERVICE_REFUSAL, &r).await?;
        }
        let total = plan.lines.iter().try_fold(0u64, |a, l| a.checked_add(l.amount)).ok_or_else(|| {
            DeskError::new(
                ErrorClass::Invalid,
                "quote.overflow",
                "مجموع الرسوم غير صالح",
                "fee total overflows",
            )
        })?;
        let q = ServiceQuote {
            txn: id.clone(),
            officer: actor.id.clone(),
            schedule_version: plan.schedule_version,
            lines: plan.lines,
            total,
            expires: plan.expires,
        };
        self.record(&id, kind::SERVICE_QUOTE, &q).await?;
        self.txn(&id)
    }

    fn claim(&self, id: &str) -> Result<Claim<'_>, DeskError> {
        if !lock(&self.txns).contains_key(id) {
            return Err(DeskError::not_found(id));
        }
        if !lock(&self.running).insert(id.to_owned()) {
            return Err(DeskError::new(
                ErrorClass::State,
                "state.busy",
                "المعاملة قيد التنفيذ الآن؛ انتظر انتهاء الخطوة الحالية",
                "the transaction is running a step now; wait for it to finish",
            ));
        }
        Ok(Claim { desk: self, txn: id.to_owned() })
    }

    /// Records the technical inspection (inspection services, before payment).
    pub async fn inspect(
        &self,
        id: &str,
        actor: &Actor,
        vin_matches: bool,
        engine_matches: bool,
        checklist: BTreeMap<String, bool>,
        notes: String,
    ) -> Result<Txn, DeskError> {
        let _c = self.claim(id)?;
        let t = self.txn(id)?;
        if t.service() != ServiceKind::Inspection || t.inspection.is_some() || t.payment_started() {
            return Err(DeskError::state(&t, "inspect"));
        }
        let mut reasons = Vec::new();
        if !vin_matches {
            reasons.push("vin_mismatch".to_owned());
        }
        if !engine_matches {
            reasons.push("engine_mismatch".to_owned());
        }
        reasons.extend(checklist.iter().filter(|(_, ok)| !**ok).map(|(c, _)| format!("checklist.{c}")));
        let rec = ServiceInspection {
            txn: id.into(),
            officer: actor.id.clone(),
            vin_matches,
            engine_matches,
            passed: reasons.is_empty(),
            checklist,
            reasons,
            notes,
        };
        self.record(id, kind::SERVICE_INSPECTION, &rec).await?;
        self.txn(id)
    }

    /// A supervisor overrides a failed prerequisite, with a reason.
    pub async fn override_refusal(
        &self,
        id: &str,
        actor: &Actor,
        code: &str,
        reason: &str,
    ) -> Result<Txn, DeskError> {
        if actor.role != Role::Supervisor {
            return Err(DeskError::supervisor("تجاوز شرط غير مستوفى", "overriding a failed prerequisite"));
        }
        let reason = reason_required(reason)?;
        let _c = self.claim(id)?;
        let t = self.txn(id)?;
        let Some(r) = t.refusals.iter().find(|r| r.refusal.code == code) else {
            return Err(DeskError {
                field: Some("code".into()),
                ..DeskError::new(
                    ErrorClass::NotFound,
                    "not_found.refusal",
                    format!("لا يوجد شرط مرفوض بالرمز {code}"),
                    format!("no refusal {code} in this transaction"),
                )
            });
        };
        if !r.refusal.overridable {
            return Err(DeskError::new(
                ErrorClass::State,
                "state.not_overridable",
                format!("لا يمكن تجاوز هذا الشرط: {}", r.refusal.ar),
                format!("this refusal cannot be overridden: {}", r.refusal.en),
            ));
        }
        if r.overridden.is_some() || t.payment_started() {
            return Err(DeskError::state(&t, "override"));
        }
        let rec = ServiceOverride { txn: id.into(), officer: actor.id.clone(), code: code.into(), reason };
        self.record(id, kind::SERVICE_OVERRIDE, &rec).await?;
        self.txn(id)
    }

    /// Cancels a transaction whose payment never started.
    pub async fn cancel(&self, id: &str, actor: &Actor, reason: &str) -> Result<Txn, DeskError> {
        let reason = reason_required(reason)?;
        let _c = self.claim(id)?;
        let t = self.txn(id)?;
        if t.payment_started() || t.is_final() {
            return Err(DeskError::state(&t, "cancel"));
        }
        let rec = ServiceEnd { txn: id.into(), officer: actor.id.clone(), reason };
        self.record(id, kind::SERVICE_CANCEL, &rec).await?;
        self.txn(id)
    }

    /// A supervisor voids a transaction: items issued are taken back as spoiled stock and an
    /// approved payment is reversed (by the next proceed, which this starts).
    pub async fn void(self: &Arc<Self>, id: &str, actor: &Actor, reason: &str) -> Result<Txn, DeskError> {
        if actor.role != Role::Supervisor {
            return Err(DeskError::supervisor("إلغاء المعاملة", "voiding a transaction"));
        }
        let reason = reason_required(reason)?;
        {
            let _c = self.claim(id)?;
            let t = self.txn(id)?;
            if t.void.is_some() || t.cancelled.is_some() {
                return Err(DeskError::state(&t, "void"));
            }
            let rec = ServiceEnd { txn: id.into(), officer: actor.id.clone(), reason: reason.clone() };
            self.record(id, kind::SERVICE_VOID, &rec).await?;
            for (step, issued, _) in t.stock() {
                for _ in 0..issued {
                    let s = records::StockSpoiled {
                        txn: id.into(),
                        officer: actor.id.clone(),
                        item: step,
                        reason: format!("void: {reason}"),
                    };
                    self.record(id, kind::STOCK_SPOILED, &s).await?;
                }
            }
        }
        self.proceed(id, actor).await
    }

    /// Asks for a reprint of the card or label (or a receipt copy). The first reprint of an item
    /// may be asked by an officer; any later one needs a supervisor. The item printed before is
    /// recorded as spoiled stock; the new print runs on the next proceed (started here).
    pub async fn reprint(
        self: &Arc<Self>,
        id: &str,
        actor: &Actor,
        what: &str,
        reason: &str,
    ) -> Result<Txn, DeskError> {
        let reason = reason_required(reason)?;
        let step = match what {
            "card" => Some(Step::Card),
            "label" => Some(Step::Label),
            "receipt" => None,
            other => {
                return Err(DeskError {
                    field: Some("what".into()),
                    ..DeskError::new(
                        ErrorClass::Invalid,
                        "reprint.what",
                        format!("لا يمكن إعادة طباعة {other}؛ المسموح: card, label, receipt"),
                        format!("cannot reprint {other:?}; one of card, label, receipt"),
                    )
                });
            }
        };
        {
            let _c = self.claim(id)?;
            let t = self.txn(id)?;
            let number = t.reprints.get(what).copied().unwrap_or(0) + 1;
            if number > 1 && actor.role != Role::Supervisor {
                return Err(DeskError::supervisor(
                    "إعادة الطباعة بعد المرة الأولى",
                    "a reprint after the first",
                ));
            }
            let ok = t.complete.is_some()
                && t.void.is_none()
                && step.is_none_or(|s| t.steps.get(&s).is_some_and(|st| st.issued > 0));
            if !ok {
                return Err(DeskError::state(&t, "reprint"));
            }
            let rec = ServiceReprint {
                txn: id.into(),
                officer: actor.id.clone(),
                what: what.into(),
                reason,
                number,
                spoils_previous: step.is_some(),
            };
            self.record(id, kind::SERVICE_REPRINT, &rec).await?;
        }
        if step.is_some() { self.proceed(id, actor).await } else { self.txn(id) }
    }

    /// Runs the transaction as far as it goes: pay → card → tag → label → complete, or a void's
    /// reversal. Stops at the first failure (journaled; proceeding again retries that step, never
    /// re-charging) or where a person must act.
    pub async fn proceed(self: &Arc<Self>, id: &str, actor: &Actor) -> Result<Txn, DeskError> {
        let _c = self.claim(id)?;
        loop {
            let t = self.txn(id)?;
            if self.draining()
                && !matches!(t.next(), Next::Wait(_) | Next::Inspect | Next::Abandon | Next::Complete)
            {
                // The step before this one is journaled (a payment's result included): a safe point.
                tracing::info!(txn = %id, "draining: the next step waits");
                break;
            }
            let go_on = match t.next() {
                Next::Wait(_) | Next::Inspect => break,
                Next::Pay { attempt, amount } => self.pay(&t, actor, attempt, amount).await?,
                Next::RecoverPayment { attempt, amount, receipt_before } => {
                    self.recover_payment(&t, attempt, amount, receipt_before).await?
                }
                Next::ResolveStep { step, attempt } => {
                    self.resolve_step(id, step, attempt).await?;
                    true
                }
                Next::Do { step, attempt } => self.do_step(&t, actor, step, attempt).await?,
                Next::Reverse { attempt, receipt_no, amount } => {
                    self.reverse(&t, actor, attempt, receipt_no, amount).await?
                }
                Next::ResolveReversal { attempt, amount, receipt_before } => {
                    // Reversed, or not (then the loop reverses it now), or unknown (it waits).
                    self.recover_reversal(id, attempt, amount, receipt_before).await?;
                    true
                }
                Next::Abandon => {
                    self.abandon(id).await?;
                    false
                }
                Next::Complete => {
                    let c = ServiceComplete {
                        txn: id.into(),
                        officer: actor.id.clone(),
                        service: t.service(),
                        total: t.total(),
                        receipt_no: id.into(),
                        passed: t.inspection.as_ref().map(|i| i.passed),
                        expires: t.quote.as_ref().and_then(|q| q.expires),
                        replaces_tid: (t.service() == ServiceKind::EStickerReplacement)
                            .then(|| t.open.dossier.as_ref().and_then(|d| d.sticker_tid.clone()))
                            .flatten(),
                    };
                    self.record(id, kind::SERVICE_COMPLETE, &c).await?;
                    true
                }
            };
            if !go_on {
                break;
            }
        }
        self.txn(id)
    }

    /// At start: resolves what a crash left open in every unfinished transaction (payments by
    /// repeat receipt, step intents as unknown), without starting any physical step.
    pub async fn recover(self: &Arc<Self>) -> Vec<(String, Result<State, DeskError>)> {
        let open: Vec<Txn> = self.txns(|t| {
            matches!(
                t.next(),
                Next::RecoverPayment { .. }
                    | Next::ResolveStep { .. }
                    | Next::ResolveReversal { .. }
                    | Next::Abandon
            )
        });
        let mut out = Vec::new();
        for t in open {
            let id = t.id().to_owned();
            let r = self.recover_one(&id).await;
            out.push((id, r));
        }
        out
    }

    async fn recover_one(&self, id: &str) -> Result<State, DeskError> {
        let _c = self.claim(id)?;
        loop {
            let t = self.txn(id)?;
            match t.next() {
                Next::RecoverPayment { attempt, amount, receipt_before } => {
                    if !self.recover_payment(&t, attempt, amount, receipt_before).await? {
                        break;
                    }
                    // Approved or not charged: the rest waits for the officer.
                    if !matches!(self.txn(id)?.next(), Next::ResolveStep { .. }) {
                        break;
                    }
                }
                Next::ResolveStep { step, attempt } => self.resolve_step(id, step, attempt).await?,
                Next::Abandon => {
                    self.abandon(id).await?;
                    break;
                }
                Next::ResolveReversal { attempt, amount, receipt_before } => {
                    self.recover_reversal(id, attempt, amount, receipt_before).await?;
                    break;
                }
                _ => break,
            }
        }
        Ok(self.txn(id)?.state())
    }

    async fn abandon(&self, id: &str) -> Result<(), DeskError> {
        let t = self.txn(id)?;
        let rec = ServiceEnd {
            txn: id.into(),
            officer: t.open.officer.clone(),
            reason: "the daemon stopped while the service was being opened; nothing was charged".into(),
        };
        self.record(id, kind::SERVICE_CANCEL, &rec).await?;
        Ok(())
    }

    /// A reversal a crash left without its answer: the terminal's last transaction is it (a new
    /// receipt of the same amount after `receipt_before`) or not (retried by the next proceed);
    /// if the terminal cannot be asked, it stays unknown, for reconciliation.
    async fn recover_reversal(
        &self,
        id: &str,
        attempt: u32,
        amount: u64,
        receipt_before: Option<u32>,
    ) -> Result<bool, DeskError> {
        let answer = self.last_receipt_patiently().await;
        let mut r = ReversalResult {
            txn: id.into(),
            attempt,
            outcome: PayOutcome::Unknown,
            approval: None,
            reason: None,
        };
        match answer {
            Ok(Some(a)) if a.matches_unknown_purchase(amount, receipt_before) => {
                r.outcome = PayOutcome::Approved;
                r.reason = Some("recovered from the terminal's repeat receipt after a restart".into());
                r.approval = Some(a);
            }
            Ok(last) => {
                r.outcome = PayOutcome::Failed;
                r.reason = Some(match last.and_then(|a| a.receipt_no) {
                    Some(n) => format!("not reversed: the terminal's last transaction is receipt {n}"),
                    None => "not reversed: the terminal has no transaction".into(),
                });
            }
            Err(e) => {
                r.reason = Some(format!(
                    "the daemon stopped during the reversal and the terminal cannot be asked: {e}"
                ))
            }
        }
        let ok = r.outcome == PayOutcome::Approved;
        self.record(id, kind::PAYMENT_REVERSAL, &r).await?;
        Ok(ok)
    }

    /// The terminal's last transaction, asked again for [`RECOVERY_PATIENCE`] while the terminal
    /// cannot answer: the link that lost an answer is often being reopened, and asking is safe
    /// (a repeat receipt never charges).
    async fn last_receipt_patiently(&self) -> Result<Option<Approval>, JobError> {
        let deadline = tokio::time::Instant::now() + RECOVERY_PATIENCE;
        loop {
            match self.last_receipt().await {
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
                other => return other,
            }
        }
    }

    async fn last_receipt(&self) -> Result<Option<Approval>, JobError> {
        let handle = self.device(DeviceId::Payment)?;
        let job = handle.submit("repeat receipt", |d, _| match d {
            crate::devices::manager::Driver::Payment(p) => p.repeat_last(),
            _ => Err(crate::devices::DeviceError::Unsupported {
                device: "payment".into(),
                what: "not a terminal".into(),
            }),
        });
        job.outcome().await.into_result(DeviceId::Payment, "repeat receipt")
    }

    fn device(&self, id: DeviceId) -> Result<&crate::devices::manager::DeviceHandle, JobError> {
        self.manager.device(id).ok_or_else(|| JobError::Absent { device: id.name().into() })
    }

    async fn pay(&self, t: &Txn, actor: &Actor, attempt: u32, amount: u64) -> Result<bool, DeskError> {
        let id = t.id().to_owned();
        self.progress(&id, "payment", "asking the terminal for its last receipt");
        // The terminal's last receipt number before this purchase: a lost answer is matched
        // against it. Nothing is charged and nothing journaled if the terminal cannot answer.
        let before = self.last_receipt().await.map_err(|e| DeskError::device(DeviceId::Payment, &e))?;
        let intent = PaymentIntent {
            txn: id.clone(),
            officer: actor.id.clone(),
            amount,
            receipt_before: before.and_then(|a| a.receipt_no),
            attempt,
        };
        self.record(&id, kind::PAYMENT_INTENT, &intent).await?;
        let events = self.events.clone();
        let txn = id.clone();
        let kill = self.cfg.kill_in_payment.is_some()
            && self.cfg.kill_in_payment == Some(self.recorded.load(Ordering::SeqCst));
        let handle = self.device(DeviceId::Payment).map_err(|e| DeskError::device(DeviceId::Payment, &e));
        let outcome = match handle {
            Ok(h) => {
                h.purchase(amount, move |text| {
                    if kill {
                        tracing::warn!("crash test: killing vand with the purchase at the terminal (MTU_TEST_KILL_IN_PAYMENT)");
                        // SAFETY: kill(2) on our own pid; nothing after it runs.
                        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
                    }
                    let _ = events.send(DeskEvent::Progress {
                        txn: txn.clone(),
                        step: "payment".into(),
                        text: text.into(),
                    });
                })
                .outcome()
                .await
            }
            Err(_) => Outcome::Failed(JobError::Absent { device: "payment".into() }),
        };
        let (outcome, approval, reason, fault) = terminal_answer(outcome, amount);
        let r = PaymentResult { txn: id.clone(), attempt, outcome, amount, approval, reason, fault };
        let go_on = matches!(r.outcome, PayOutcome::Approved | PayOutcome::Unknown);
        self.record(&id, kind::PAYMENT_RESULT, &r).await?;
        Ok(go_on)
    }

    async fn recover_payment(
        &self,
        t: &Txn,
        attempt: u32,
        amount: u64,
        receipt_before: Option<u32>,
    ) -> Result<bool, DeskError> {
        let id = t.id().to_owned();
        self.progress(&id, "payment", "asking the terminal what happened to the payment");
        let mut rec = PaymentRecovery {
            txn: id.clone(),
            attempt,
            outcome: Recovered::Unknown,
            approval: None,
            detail: None,
        };
        let answer = self.last_receipt_patiently().await;
        match answer {
            Ok(Some(a)) if a.matches_unknown_purchase(amount, receipt_before) => {
                rec.outcome = Recovered::Approved;
                rec.approval = Some(a);
            }
            Ok(last) => {
                rec.outcome = Recovered::NotCharged;
                rec.detail = Some(match last.and_then(|a| a.receipt_no) {
                    Some(n) => format!("the terminal's last transaction is receipt {n}, not this purchase"),
                    None => "the terminal has no transaction".into(),
                });
            }
            Err(e) => rec.detail = Some(e.to_string()),
        }
        let outcome = rec.outcome;
        let detail = rec.detail.clone().unwrap_or_default();
        self.record(&id, kind::PAYMENT_RECOVERY, &rec).await?;
        match outcome {
            Recovered::Approved => Ok(true),
            // Not charged: the officer decides whether to try the card again.
            Recovered::NotCharged => Ok(false),
            Recovered::Unknown => {
                if !matches!(t.payment, Payment::Held { .. }) {
                    let h = PaymentHold {
                        txn: id.clone(),
                        reason: format!(
                            "payment outcome unknown and the terminal could not be asked: {detail}"
                        ),
                        amount,
                    };
                    self.record(&id, kind::PAYMENT_HOLD, &h).await?;
                }
                Ok(false)
            }
        }
    }

    async fn resolve_step(&self, id: &str, step: Step, attempt: u32) -> Result<(), DeskError> {
        let r = StepResult {
            txn: id.into(),
            attempt,
            outcome: StepOutcome::Unknown,
            stock: Stock::Spoiled,
            fault: None,
            detail: Some(
                "the daemon stopped before the result was recorded; the item is counted as spoiled".into(),
            ),
            tid: None,
            epc: None,
            recovered: true,
        };
        self.record(id, step.kinds().1, &r).await?;
        Ok(())
    }

    async fn do_step(&self, t: &Txn, actor: &Actor, step: Step, attempt: u32) -> Result<bool, DeskError> {
        let id = t.id().to_owned();
        let intent = StepIntent { txn: id.clone(), officer: actor.id.clone(), attempt };
        let a = self.record(&id, step.kinds().0, &intent).await?;
        let jref = JournalRef { seq: a.seq, hash: short_hash_of(&a) };
        let mut r = StepResult {
            txn: id.clone(),
            attempt,
            outcome: StepOutcome::Failed,
            stock: Stock::None,
            fault: None,
            detail: None,
            tid: None,
            epc: None,
            recovered: false,
        };
        let (device, outcome): (DeviceId, Outcome<Option<EncodedTag>>) = match step {
            Step::Card => {
                self.progress(&id, "card", "rendering the card");
                (DeviceId::Card, self.print_card(t, jref).await)
            }
            Step::Tag => {
                self.progress(&id, "tag", "encoding the e-sticker");
                (DeviceId::Rfid, self.encode_tag(t, jref).await)
            }
            Step::Label => {
                self.progress(&id, "label", "printing the sticker label");
                (DeviceId::Sticker, self.print_label(t, jref).await)
            }
        };
        let _ = device;
        match outcome {
            Outcome::Done(tag) => {
                r.outcome = StepOutcome::Done;
                r.stock = Stock::Issued;
                if let Some(tag) = tag {
                    r.tid = Some(hex::encode(&tag.tid));
                    r.epc = Some(hex::encode(&tag.epc));
                }
            }
            Outcome::Failed(e) => {
                r.fault = e.fault().map(Fault::code);
                r.detail = Some(e.to_string());
            }
            Outcome::Cancelled => r.detail = Some("cancelled".into()),
            Outcome::Unknown(e) => {
                r.outcome = StepOutcome::Unknown;
                r.stock = Stock::Spoiled;
                r.fault = e.fault().map(Fault::code);
                r.detail = Some(e.to_string());
            }
        }
        let done = r.outcome == StepOutcome::Done;
        self.progress(&id, step.name(), if done { "done" } else { "failed" });
        self.record(&id, step.kinds().1, &r).await?;
        Ok(done)
    }

    async fn print_card(&self, t: &Txn, jref: JournalRef) -> Outcome<Option<EncodedTag>> {
        let job = match self.card_job(t, jref).await {
            Ok(j) => j,
            Err(e) => return Outcome::Failed(render_failed(DeviceId::Card, e)),
        };
        let Ok(h) = self.device(DeviceId::Card) else {
            return Outcome::Failed(JobError::Absent { device: "card".into() });
        };
        match h
            .submit("print card", move |d, _| match d {
                // A K-only ribbon refuses colour before anything is sent: print black only.
                crate::devices::manager::Driver::Card(p) => match p.print(&job) {
                    Err(crate::devices::DeviceError::Unsupported { .. }) if job.front.ymc.is_some() => {
                        let mut k_only = job.clone();
                        k_only.front.ymc = None;
                        p.print(&k_only)
                    }
                    other => other,
                },
                _ => Err(crate::devices::DeviceError::Unsupported {
                    device: "card".into(),
                    what: "not a card printer".into(),
                }),
            })
            .outcome()
            .await
        {
            Outcome::Done(_) => Outcome::Done(None),
            Outcome::Failed(e) => Outcome::Failed(e),
            Outcome::Unknown(e) => Outcome::Unknown(e),
            Outcome::Cancelled => Outcome::Cancelled,
        }
    }

    async fn encode_tag(&self, t: &Txn, jref: JournalRef) -> Outcome<Option<EncodedTag>> {
        let data = tag_data(t, &self.cfg, jref);
        let Ok(h) = self.device(DeviceId::Rfid) else {
            return Outcome::Failed(JobError::Absent { device: "rfid".into() });
        };
        match h
            .submit("encode e-sticker", move |d, _| match d {
                crate::devices::manager::Driver::Rfid(e) => e.encode(&data),
                _ => Err(crate::devices::DeviceError::Unsupported {
                    device: "rfid".into(),
                    what: "not an encoder".into(),
                }),
            })
            .outcome()
            .await
        {
            Outcome::Done(tag) => Outcome::Done(Some(tag)),
            Outcome::Failed(e) => Outcome::Failed(e),
            Outcome::Unknown(e) => Outcome::Unknown(e),
            Outcome::Cancelled => Outcome::Cancelled,
        }
    }

    async fn print_label(&self, t: &Txn, jref: JournalRef) -> Outcome<Option<EncodedTag>> {
        let label = match self.label(t, jref).await {
            Ok(l) => l,
            Err(e) => return Outcome::Failed(render_failed(DeviceId::Sticker, e)),
        };
        let Ok(h) = self.device(DeviceId::Sticker) else {
            return Outcome::Failed(JobError::Absent { device: "sticker".into() });
        };
        match h
            .submit("print label", move |d, _| match d {
                crate::devices::manager::Driver::Sticker(p) => p.print_label(&label),
                _ => Err(crate::devices::DeviceError::Unsupported {
                    device: "sticker".into(),
                    what: "not a label printer".into(),
                }),
            })
            .outcome()
            .await
        {
            Outcome::Done(()) => Outcome::Done(None),
            Outcome::Failed(e) => Outcome::Failed(e),
            Outcome::Unknown(e) => Outcome::Unknown(e),
            Outcome::Cancelled => Outcome::Cancelled,
        }
    }

    async fn card_job(&self, t: &Txn, jref: JournalRef) -> Result<CardJob, String> {
        let doc = t.service().steps().card.ok_or("this service prints no card")?;
        let issuer = self.cfg.issuer.clone();
        let opts = self.cfg.doc;
        let colour = self.cfg.card_colour;
        let today = cairo_today();
        let expires = t.quote.as_ref().and_then(|q| q.expires).unwrap_or(today);
        let req = t.open.request.clone();
        let dossier = t.open.dossier.clone();
        let journal = self.journal.clone();
        tokio::task::spawn_blocking(move || -> Result<CardJob, String> {
            let e = |e: crate::render::RenderError| e.to_string();
            let (front, back) = match doc {
                CardDoc::DrivingLicence => {
                    let dl = dossier.as_ref().and_then(|d| d.driving_licence.clone());
                    let mut d = documents::DrivingLicence {
                        name_ar: req.citizen.name_ar.clone(),
                        name_en: req.citizen.name_en.clone().unwrap_or_default(),
                        national_id: req.citizen.national_id.clone(),
                        grade_ar: req
                            .grade
                            .or(dl.as_ref().map(|l| l.grade))
                            .map_or("", |g| g.name_ar())
                            .into(),
                        licence_number: dl.as_ref().map_or_else(String::new, |l| l.number.clone()),
                        issued: today,
                        expires,
                        restrictions: Vec::new(),
                        photo: Arc::new(Photo::placeholder(120, 160)),
                        issuer,
                        journal: jref,
                        qr: String::new(),
                    };
                    d.qr = d.qr_payload().sign(&journal).map_err(|x| x.to_string())?;
                    (
                        documents::driving_licence_front(&d, opts).map_err(e)?,
                        Some(documents::driving_licence_back(&d, opts).map_err(e)?),
                    )
                }
                CardDoc::VehicleLicence => {
                    let v = req.vehicle.clone().ok_or("no vehicle in the request")?;
                    let last_inspection = dossier
                        .as_ref()
                        .and_then(|d| d.last_inspection.as_ref().filter(|i| i.passed).map(|i| i.date))
                        .unwrap_or(today);
                    let mut l = documents::VehicleLicence {
                        owner_ar: req.citizen.name_ar.clone(),
                        owner_national_id: v.owner_national_id.clone(),
                        plate: Plate { letters: v.plate.letters.clone(), digits: v.plate.digits.clone() },
                        make_model: v.make_model.clone(),
                        chassis: v.vin.clone(),
                        engine: v.engine_no.clone(),
                        category_ar: v.category.name_ar().into(),
                        band: band(v.category),
                        colour_ar: v.colour_ar.clone(),
                        expires,
                        last_inspection,
                        issuer,
                        journal: jref,
                        qr: String::new(),
                    };
                    l.qr = l.qr_payload().sign(&journal).map_err(|x| x.to_string())?;
                    (documents::vehicle_licence(&l, opts).map_err(e)?, None)
                }
            };
            let side = |scene: &crate::render::scene::Scene, colour: bool| -> Result<CardSide, String> {
                let p = raster::card_panels(scene).map_err(e)?;
                let plane = |q: raster::Plane8| Plane8 { width: q.width, height: q.height, data: q.data };
                Ok(CardSide {
                    k: Some(p.k),
                    ymc: colour.then(|| ColourPlanes { y: plane(p.y), m: plane(p.m), c: plane(p.c) }),
                    overlay: false,
                })
            };
            Ok(CardJob {
                front: side(&front, colour)?,
                back: back.as_ref().map(|b| side(b, false)).transpose()?,
            })
        })
        .await
        .map_err(|e| e.to_string())?
    }

    async fn label(&self, t: &Txn, jref: JournalRef) -> Result<ZplLabel, String> {
        let v = t.open.request.vehicle.clone().ok_or("no vehicle in the request")?;
        let expires = t.quote.as_ref().and_then(|q| q.expires).unwrap_or_else(cairo_today);
        let issuer = self.cfg.issuer.clone();
        let opts = self.cfg.doc;
        let journal = self.journal.clone();
        tokio::task::spawn_blocking(move || -> Result<ZplLabel, String> {
            let mut l = documents::StickerLabel {
                plate: Plate { letters: v.plate.letters.clone(), digits: v.plate.digits.clone() },
                expires,
                issuer,
                journal: jref,
                qr: String::new(),
            };
            l.qr = l.qr_payload().sign(&journal).map_err(|x| x.to_string())?;
            let scene = documents::sticker(&l, opts).map_err(|e| e.to_string())?;
            let bmp = raster::to_bitmap1(
                &raster::rasterize(&scene, opts.sticker_dpi as f32, None).map_err(|e| e.to_string())?,
            );
            let (w, h) = (bmp.width, bmp.height);
            let mono = MonoBitmap::from_packed(w, h, bmp.data).map_err(|e| e.to_string())?;
            Ok(ZplLabel {
                dpi: opts.sticker_dpi,
                width: w,
                height: h,
                elements: vec![LabelElement::Bitmap { x: 0, y: 0, bitmap: mono }],
                copies: 1,
            })
        })
        .await
        .map_err(|e| e.to_string())?
    }

    async fn reverse(
        &self,
        t: &Txn,
        actor: &Actor,
        attempt: u32,
        receipt_no: u32,
        amount: u64,
    ) -> Result<bool, DeskError> {
        let id = t.id().to_owned();
        let officer = t.void.as_ref().map_or_else(|| actor.id.clone(), |v| v.void.officer.clone());
        // As for a purchase: the terminal's last receipt before the reversal, so a lost answer
        // can be resolved. Nothing is journaled or sent if the terminal cannot answer.
        let before = self.last_receipt().await.map_err(|e| DeskError::device(DeviceId::Payment, &e))?;
        let i = ReversalIntent {
            txn: id.clone(),
            officer,
            receipt_no,
            amount,
            attempt,
            receipt_before: before.and_then(|a| a.receipt_no),
        };
        self.record(&id, kind::PAYMENT_REVERSAL_INTENT, &i).await?;
        self.progress(&id, "reversal", "reversing the payment at the terminal");
        let outcome = match self.device(DeviceId::Payment) {
            Ok(h) => {
                h.submit("reversal", move |d, _| match d {
                    crate::devices::manager::Driver::Payment(p) => p.reversal(receipt_no),
                    _ => Err(crate::devices::DeviceError::Unsupported {
                        device: "payment".into(),
                        what: "not a terminal".into(),
                    }),
                })
                .outcome()
                .await
            }
            Err(e) => Outcome::Failed(e),
        };
        let (outcome, approval, reason, _) = terminal_answer(outcome, amount);
        let r = ReversalResult { txn: id.clone(), attempt, outcome, approval, reason };
        let ok = r.outcome == PayOutcome::Approved;
        self.record(&id, kind::PAYMENT_REVERSAL, &r).await?;
        Ok(ok)
    }

    /// The e-receipt of a paid transaction (PDF: A4, A6 or the 80 mm roll), built from its
    /// journal records with the signed QR; each copy is journaled (`receipt.print`). The first two
    /// copies may be taken by an officer; later ones need a supervisor.
    pub async fn receipt(
        &self,
        id: &str,
        actor: &Actor,
        format: documents::ReceiptFormat,
    ) -> Result<Vec<u8>, DeskError> {
        let t = self.txn(id)?;
        let Some(seq) = t.payment_seq else {
            return Err(DeskError::state(&t, "receipt"));
        };
        let copy = t.receipt_copies + 1;
        if copy > 2 && actor.role != Role::Supervisor {
            return Err(DeskError::supervisor("نسخة إضافية من الإيصال", "a further receipt copy"));
        }
        let approval = match &t.payment {
            Payment::Approved(a) | Payment::Reversed { purchase: a, .. } => a.clone(),
            _ => return Err(DeskError::state(&t, "receipt")),
        };
        let rec = self
            .journal
            .txn_records(id)
            .map_err(DeskError::storage)?
            .into_iter()
            .find(|r| r.seq == seq)
            .ok_or_else(|| DeskError::storage(format!("payment record {seq} of {id} not found")))?;
        let mut hash = [0u8; 8];
        hash.copy_from_slice(&rec.hash[..8]);
        let tz = jiff::tz::TimeZone::get("Africa/Cairo").unwrap_or(jiff::tz::TimeZone::UTC);
        let at = jiff::Timestamp::from_microsecond(rec.time_us)
            .unwrap_or_default()
            .to_zoned_datetime(tz)
            .datetime();
        let mut r = documents::Receipt {
            number: id.to_owned(),
            at,
            service_ar: t.service().name_ar().to_owned(),
            lines: quote_lines(&t)
                .iter()
                .map(|l| documents::FeeLine { label_ar: l.label_ar.clone(), piastres: l.amount })
                .collect(),
            payment: documents::CardPayment {
                scheme: approval.card_name.clone().unwrap_or_default(),
                masked_pan: approval.masked_pan.clone().unwrap_or_default(),
                terminal_id: approval.terminal_id.map(|n| n.to_string()).unwrap_or_default(),
                trace: approval.trace.unwrap_or(0),
                terminal_receipt: approval.receipt_no.unwrap_or(0),
                auth_code: approval.aid.clone().unwrap_or_default(),
            },
            journal: JournalRef { seq, hash },
            issuer: self.cfg.issuer.clone(),
            qr: String::new(),
        };
        let journal = self.journal.clone();
        let opts = self.cfg.doc;
        let pdf = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
            r.qr = r.qr_payload().sign(&journal).map_err(|e| e.to_string())?;
            let scene = documents::receipt(&r, format, opts).map_err(|e| e.to_string())?;
            let kind = match format {
                documents::ReceiptFormat::A4 => crate::render::output::DocKind::ReceiptA4,
                documents::ReceiptFormat::A6 => crate::render::output::DocKind::ReceiptA6,
                documents::ReceiptFormat::Roll80 => crate::render::output::DocKind::Receipt80,
            };
            crate::render::output::pdf_of(kind, &[scene], "vand", jiff::Timestamp::now())
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(DeskError::storage)?
        .map_err(|e| {
            DeskError::new(
                ErrorClass::Storage,
                "receipt.render",
                format!("تعذر إنشاء الإيصال: {e}"),
                format!("the receipt could not be made: {e}"),
            )
        })?;
        let name = match format {
            documents::ReceiptFormat::A4 => "a4",
            documents::ReceiptFormat::A6 => "a6",
            documents::ReceiptFormat::Roll80 => "roll80",
        };
        let p =
            records::ReceiptPrint { txn: id.into(), officer: actor.id.clone(), format: name.into(), copy };
        self.record(id, kind::RECEIPT_PRINT, &p).await?;
        Ok(pdf)
    }
}

/// What the terminal answered to a purchase or a reversal, as recorded: outcome, approval,
/// reason for people, device fault code.
fn terminal_answer(
    outcome: Outcome<PaymentOutcome>,
    amount: u64,
) -> (PayOutcome, Option<Approval>, Option<String>, Option<String>) {
    match outcome {
        Outcome::Done(PaymentOutcome::Approved(a)) => {
            let reason = (a.amount != amount)
                .then(|| format!("terminal approved {} piastres for {amount} asked", a.amount));
            (PayOutcome::Approved, Some(a), reason, None)
        }
        Outcome::Done(PaymentOutcome::Declined { result_code, text }) => {
            (PayOutcome::Declined, None, Some(format!("{text} (result code {result_code})")), None)
        }
        Outcome::Done(PaymentOutcome::Aborted) | Outcome::Cancelled => {
            (PayOutcome::Aborted, None, Some("cancelled at the terminal".into()), None)
        }
        Outcome::Done(PaymentOutcome::Unknown { reason }) => (PayOutcome::Unknown, None, Some(reason), None),
        Outcome::Failed(e) => (PayOutcome::Failed, None, Some(e.to_string()), e.fault().map(Fault::code)),
        Outcome::Unknown(e) => (PayOutcome::Unknown, None, Some(e.to_string()), e.fault().map(Fault::code)),
    }
}

/// How long a lost payment answer is asked about (repeat receipt, every 250 ms) before the case
/// is held for reconciliation: long enough for a dropped serial link to be reopened.
pub const RECOVERY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(15);

/// Transaction ids: `<van id>-T000001`, numbered per van (at most 64 bytes with a 50-byte van id).
pub fn txn_prefix(van_id: &str) -> String {
    format!("{van_id}-T")
}

fn short_hash_of(a: &Appended) -> [u8; 8] {
    let mut h = [0u8; 8];
    h.copy_from_slice(&a.hash[..8]);
    h
}

fn render_failed(device: DeviceId, e: String) -> JobError {
    JobError::NotConnected {
        device: device.name().into(),
        why: format!("document could not be rendered: {e}"),
    }
}

fn reason_required(reason: &str) -> Result<String, DeskError> {
    let r = reason.trim();
    if r.is_empty() || r.chars().count() > 500 {
        return Err(DeskError {
            field: Some("reason".into()),
            ..DeskError::new(
                ErrorClass::Invalid,
                "reason.required",
                "اكتب السبب (حتى ٥٠٠ حرف)",
                "a reason is required (up to 500 characters)",
            )
        });
    }
    Ok(r.to_owned())
}

/// Today in Africa/Cairo.
pub fn cairo_today() -> jiff::civil::Date {
    let tz = jiff::tz::TimeZone::get("Africa/Cairo").unwrap_or(jiff::tz::TimeZone::UTC);
    jiff::Timestamp::now().to_zoned_datetime(tz).date()
}

/// The plate colour band of each category (printed on the vehicle licence's colour panel).
fn band(c: VehicleCategory) -> Rgb {
    match c {
        VehicleCategory::Private => Rgb(110, 170, 230),
        VehicleCategory::LightTransport => Rgb(230, 60, 50),
        VehicleCategory::Taxi => Rgb(240, 150, 40),
        VehicleCategory::Transport => Rgb(220, 40, 40),
        VehicleCategory::Motorcycle => Rgb(150, 150, 150),
    }
}

/// What goes on an e-sticker (docs/api.md, "E-sticker data"):
/// - EPC: the first `epc_bytes` bytes of SHA-256(`mtu-epc-v1` ‖ van id ‖ 0 ‖ txn): an opaque,
///   unique number that HQ maps to the vehicle through the `tag.result` record (TID ↔ vehicle);
/// - user memory: `MTU1|<plate letters>|<plate digits>|<VIN>|<expiry YYYYMMDD>|<journal seq>`,
///   UTF-8, zero-padded to the profile's user words (truncated at a character boundary if longer).
pub fn tag_data(t: &Txn, cfg: &DeskConfig, jref: JournalRef) -> TagData {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"mtu-epc-v1");
    h.update(cfg.issuer.van_id.as_bytes());
    h.update([0]);
    h.update(t.id().as_bytes());
    let digest = h.finalize();
    let n = cfg.epc_bytes.clamp(2, 32) & !1;
    let mut epc: Vec<u8> = digest.iter().copied().cycle().take(n).collect();
    epc.truncate(n);
    let (letters, digits, vin) =
        t.open.request.vehicle.as_ref().map_or_else(Default::default, |v| {
            (v.plate.letters.clone(), v.plate.digits.clone(), v.vin.clone())
        });
    let expires = t
        .quote
        .as_ref()
        .and_then(|q| q.expires)
        .map_or_else(String::new, |d| d.strftime("%Y%m%d").to_string());
    let text = format!("MTU1|{letters}|{digits}|{vin}|{expires}|{}", jref.seq);
    let cap = cfg.user_words * 2;
    let mut user = Vec::with_capacity(cap);
    for ch in text.chars() {
        let mut b = [0u8; 4];
        let s = ch.encode_utf8(&mut b);
        if user.len() + s.len() > cap {
            break;
        }
        user.extend_from_slice(s.as_bytes());
    }
    user.resize(cap, 0);
    TagData { epc, user }
}

/// Fee total of a transaction's quote and its lines, for receipts and reports.
pub fn quote_lines(t: &Txn) -> &[FeeLine] {
    t.quote.as_ref().map_or(&[], |q| q.lines.as_slice())
}
