//! The service workflow as a pure state machine: a transaction's state is the fold of its journal
//! records, and [`Txn::next`] says what the shell must do now. It decides; it never charges,
//! prints or writes. The shell ([`super::desk`]) journals the intent, runs the device, journals the
//! result, folds both in and asks again; recovery after a crash is the same fold over the records
//! on disk, followed by the same question.
//!
//! Order: quote → payment → card → tag → label → complete, with only the steps a service needs
//! ([`super::model::ServiceKind::steps`]). Rules that keep money and stock safe:
//! - a purchase is sent only when no earlier purchase of the transaction may have been charged
//!   (an `unknown` result is resolved by the terminal's repeat receipt, never by sending again);
//! - once approved, no path leads to another purchase: failed steps are retried, reprinted
//!   (the spoiled item recorded) or the service is voided and the payment reversed;
//! - an intent without its result (a crash) is resolved before anything else: a purchase by repeat
//!   receipt, a card/tag/label as `unknown` (counted spoiled) and done again.

use std::collections::BTreeMap;

use serde::Serialize;

use super::model::{Piastres, ServiceKind, Steps};
use super::records::{
    self, PayOutcome, PaymentIntent, PaymentRecovery, PaymentResult, Recovered, ReversalIntent,
    ReversalResult, ServiceComplete, ServiceEnd, ServiceInspection, ServiceOpen, ServiceOverride,
    ServiceQuote, ServiceRefusal, ServiceReprint, Step, StepIntent, StepOutcome, StepResult, Stock, kind,
};
use crate::devices::payment::Approval;

/// Where the payment of a transaction stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Payment {
    /// No purchase sent, or the last one certainly charged nothing (declined, aborted, failed).
    None {
        /// Purchases tried so far.
        attempts: u32,
        /// How the last one ended without a charge.
        #[serde(skip_serializing_if = "Option::is_none")]
        ended: Option<Uncharged>,
        /// Why the last one did not go through.
        #[serde(skip_serializing_if = "Option::is_none")]
        last: Option<String>,
    },
    /// A purchase was journaled as about to be sent and has no result yet (running, or a crash).
    Sent {
        /// Attempt number.
        attempt: u32,
        /// Piastres.
        amount: Piastres,
        /// Terminal's last receipt number before it.
        receipt_before: Option<u32>,
    },
    /// The answer was lost: ask the terminal (repeat receipt) before anything else.
    Unknown {
        /// Attempt number.
        attempt: u32,
        /// Piastres.
        amount: Piastres,
        /// Terminal's last receipt number before it.
        receipt_before: Option<u32>,
        /// What happened.
        reason: String,
    },
    /// Still unknown after asking the terminal: held for reconciliation; never charged again.
    Held {
        /// Attempt number.
        attempt: u32,
        /// Piastres possibly charged.
        amount: Piastres,
        /// Terminal's last receipt number before it.
        receipt_before: Option<u32>,
        /// Why.
        reason: String,
    },
    /// Charged.
    Approved(Approval),
    /// Charged, then reversed (after a void).
    Reversed {
        /// The purchase.
        purchase: Approval,
        /// The reversal.
        reversal: Approval,
    },
}

/// How a purchase ended without charging anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Uncharged {
    /// The card or issuer said no.
    Declined,
    /// Cancelled at the terminal or by us.
    Aborted,
    /// It never reached the terminal.
    Failed,
    /// Its answer was lost, and the terminal's repeat receipt showed it was not charged.
    NotCharged,
}

/// Where one physical step stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StepState {
    /// Attempts journaled so far.
    pub attempts: u32,
    /// An intent without a result (running now, or a crash).
    pub running: Option<u32>,
    /// The last result.
    pub last: Option<StepOutcome>,
    /// Items issued (1 when done) and spoiled.
    pub issued: u32,
    /// Items spoiled.
    pub spoiled: u32,
    /// Last fault code.
    pub fault: Option<String>,
    /// Tag TID (hex) once encoded.
    pub tid: Option<String>,
    /// Tag EPC (hex) once encoded.
    pub epc: Option<String>,
    /// A reprint was asked for and not yet done.
    pub reprint_pending: bool,
}

impl StepState {
    /// Done, with nothing pending.
    pub fn is_done(&self) -> bool {
        self.last == Some(StepOutcome::Done) && self.running.is_none() && !self.reprint_pending
    }
}

/// A refusal and its override, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusalState {
    /// The refusal.
    #[serde(flatten)]
    pub refusal: records::Refusal,
    /// Who overrode it and why.
    pub overridden: Option<(String, String)>,
}

/// A void and its reversal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VoidState {
    /// The void record.
    pub void: ServiceEnd,
    /// Reversal attempts so far.
    pub reversal_attempts: u32,
    /// A reversal journaled without its result.
    pub reversal_running: Option<u32>,
    /// The terminal's last receipt number before the running reversal.
    pub reversal_receipt_before: Option<u32>,
    /// The last reversal failure.
    pub last_error: Option<String>,
    /// Whether a reversal is needed and not yet done (false once reversed or when nothing was paid).
    pub reversal_pending: bool,
    /// A reversal answer was lost: reconcile with the terminal's records (never reversed twice).
    pub reversal_unknown: bool,
}

/// A transaction: the fold of its records.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Txn {
    /// The open record.
    pub open: ServiceOpen,
    /// Sequence number of the open record.
    pub opened_seq: u64,
    /// UTC microseconds of the open record.
    pub opened_us: i64,
    /// Refusals with their overrides.
    pub refusals: Vec<RefusalState>,
    /// The inspection, for an inspection service.
    pub inspection: Option<ServiceInspection>,
    /// The quote.
    pub quote: Option<ServiceQuote>,
    /// The payment.
    pub payment: Payment,
    /// Card, tag and label.
    pub steps: BTreeMap<Step, StepState>,
    /// The completion record and its sequence number.
    pub complete: Option<(ServiceComplete, u64)>,
    /// Cancelled before payment.
    pub cancelled: Option<ServiceEnd>,
    /// Voided.
    pub void: Option<VoidState>,
    /// Reprints asked per item (`card`, `label`, `receipt`, …).
    pub reprints: BTreeMap<String, u32>,
    /// Receipt copies printed.
    pub receipt_copies: u32,
    /// Sequence number of the approval record (payment.result or payment.recovery), for receipts.
    pub payment_seq: Option<u64>,
    /// Sequence number of the last record folded in.
    pub last_seq: u64,
}

/// `booking.state`: the booking served by a transaction moved (indexed under the transaction).
pub const BOOKING_STATE: &str = "booking.state";

/// What the shell must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Nothing more can happen without a person (see the reason).
    Wait(Waiting),
    /// The inspection checklist is needed before the quote can be paid.
    Inspect,
    /// Send a purchase (journal `payment.intent` first).
    Pay {
        /// Attempt number.
        attempt: u32,
        /// Piastres.
        amount: Piastres,
    },
    /// Ask the terminal for its last transaction (repeat receipt).
    RecoverPayment {
        /// Attempt number recovered.
        attempt: u32,
        /// Piastres.
        amount: Piastres,
        /// Last receipt number known before the purchase.
        receipt_before: Option<u32>,
    },
    /// An intent without a result (crash): journal it as unknown (spoiled), then continue.
    ResolveStep {
        /// The step.
        step: Step,
        /// Attempt.
        attempt: u32,
    },
    /// Run a physical step (journal its intent first).
    Do {
        /// The step.
        step: Step,
        /// Attempt number.
        attempt: u32,
    },
    /// Reverse the approved payment (the service was voided).
    Reverse {
        /// Attempt number.
        attempt: u32,
        /// Terminal receipt number of the purchase.
        receipt_no: u32,
        /// Piastres.
        amount: Piastres,
    },
    /// A reversal journaled without result (crash): ask the terminal (repeat receipt) whether
    /// it happened; if it cannot be asked, record it as unknown, for reconciliation.
    ResolveReversal {
        /// Attempt.
        attempt: u32,
        /// Piastres reversed.
        amount: Piastres,
        /// The terminal's last receipt number before the reversal.
        receipt_before: Option<u32>,
    },
    /// Write `service.complete`.
    Complete,
    /// The daemon stopped while the transaction was being opened (no quote on record): cancel it
    /// (nothing was charged); the officer opens it again.
    Abandon,
}

/// Why a transaction waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Waiting {
    /// A prerequisite failed and is not overridden.
    Refused,
    /// Completed.
    Completed,
    /// Cancelled.
    Cancelled,
    /// Voided (and reversed if it was paid).
    Voided,
    /// A void's reversal answer was lost: reconcile with the terminal.
    ReversalUnknown,
    /// The inspection failed: the service ends with its result (completion records the failure).
    Nothing,
}

/// The state shown to people and the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting for the inspection checklist.
    Open,
    /// Quoted; ready to pay.
    Quoted,
    /// A prerequisite failed.
    Refused,
    /// A purchase is at the terminal.
    Paying,
    /// The payment's answer was lost: asking the terminal.
    PaymentUnknown,
    /// Held for reconciliation.
    Held,
    /// Paid; documents pending.
    Paid,
    /// Printing the card.
    Printing,
    /// Encoding the e-sticker.
    Encoding,
    /// Printing the sticker label.
    Labelling,
    /// Done.
    Completed,
    /// Cancelled before payment.
    Cancelled,
    /// Voided; the reversal is pending.
    Voiding,
    /// Voided (reversed if it was paid).
    Voided,
}

/// A record that does not fit the transaction (a bug or a tampered journal): folding stops.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transaction {txn}: record {seq} ({kind}): {why}")]
pub struct FoldError {
    /// Transaction.
    pub txn: String,
    /// Record.
    pub seq: u64,
    /// Its kind.
    pub kind: String,
    /// What does not fit.
    pub why: String,
}

impl Txn {
    /// A new transaction from its open record.
    pub fn new(open: ServiceOpen, seq: u64, time_us: i64) -> Txn {
        let steps = open.request.service.steps();
        let mut map = BTreeMap::new();
        for s in needed(steps) {
            map.insert(s, StepState::default());
        }
        Txn {
            open,
            opened_seq: seq,
            opened_us: time_us,
            refusals: Vec::new(),
            inspection: None,
            quote: None,
            payment: Payment::None { attempts: 0, ended: None, last: None },
            steps: map,
            complete: None,
            cancelled: None,
            void: None,
            reprints: BTreeMap::new(),
            receipt_copies: 0,
            payment_seq: None,
            last_seq: seq,
        }
    }

    /// The transaction id.
    pub fn id(&self) -> &str {
        &self.open.txn
    }

    /// The service.
    pub fn service(&self) -> ServiceKind {
        self.open.request.service
    }

    /// Folds a whole transaction from its records (in order).
    pub fn fold<'a>(
        records: impl IntoIterator<Item = (u64, i64, &'a str, &'a [u8])>,
    ) -> Result<Txn, FoldError> {
        let mut it = records.into_iter();
        let (seq, time, k, payload) = it.next().ok_or_else(|| FoldError {
            txn: String::new(),
            seq: 0,
            kind: String::new(),
            why: "no records".into(),
        })?;
        if k != kind::SERVICE_OPEN {
            return Err(FoldError {
                txn: String::new(),
                seq,
                kind: k.into(),
                why: "first record is not service.open".into(),
            });
        }
        let open: ServiceOpen = parse(seq, k, payload)?;
        let mut txn = Txn::new(open, seq, time);
        for (seq, _, k, payload) in it {
            txn.apply(seq, k, payload)?;
        }
        Ok(txn)
    }

    /// Folds one more record in.
    pub fn apply(&mut self, seq: u64, k: &str, payload: &[u8]) -> Result<(), FoldError> {
        let err = |why: String| FoldError { txn: self.open.txn.clone(), seq, kind: k.into(), why };
        match k {
            kind::SERVICE_REFUSAL => {
                let r: ServiceRefusal = parse(seq, k, payload)?;
                self.refusals
                    .extend(r.refusals.into_iter().map(|refusal| RefusalState { refusal, overridden: None }));
            }
            kind::SERVICE_OVERRIDE => {
                let o: ServiceOverride = parse(seq, k, payload)?;
                let r = self
                    .refusals
                    .iter_mut()
                    .find(|r| r.refusal.code == o.code)
                    .ok_or_else(|| err(format!("no refusal {:?} to override", o.code)))?;
                r.overridden = Some((o.officer, o.reason));
            }
            kind::SERVICE_INSPECTION => self.inspection = Some(parse(seq, k, payload)?),
            kind::SERVICE_QUOTE => self.quote = Some(parse(seq, k, payload)?),
            kind::PAYMENT_INTENT => {
                let p: PaymentIntent = parse(seq, k, payload)?;
                if !matches!(self.payment, Payment::None { .. }) {
                    return Err(err(format!("a purchase while the payment is {:?}", self.payment_name())));
                }
                self.payment =
                    Payment::Sent { attempt: p.attempt, amount: p.amount, receipt_before: p.receipt_before };
            }
            kind::PAYMENT_RESULT => {
                let r: PaymentResult = parse(seq, k, payload)?;
                let Payment::Sent { attempt, amount, receipt_before } = self.payment.clone() else {
                    return Err(err("a payment result without an intent".into()));
                };
                self.payment = match r.outcome {
                    PayOutcome::Approved => {
                        self.payment_seq = Some(seq);
                        Payment::Approved(
                            r.approval.ok_or_else(|| err("approved without an approval".into()))?,
                        )
                    }
                    PayOutcome::Unknown => Payment::Unknown {
                        attempt,
                        amount,
                        receipt_before,
                        reason: r.reason.unwrap_or_default(),
                    },
                    PayOutcome::Declined => {
                        Payment::None { attempts: attempt, ended: Some(Uncharged::Declined), last: r.reason }
                    }
                    PayOutcome::Aborted => {
                        Payment::None { attempts: attempt, ended: Some(Uncharged::Aborted), last: r.reason }
                    }
                    PayOutcome::Failed => {
                        Payment::None { attempts: attempt, ended: Some(Uncharged::Failed), last: r.reason }
                    }
                };
            }
            kind::PAYMENT_RECOVERY => {
                let r: PaymentRecovery = parse(seq, k, payload)?;
                let (attempt, amount, receipt_before) = match &self.payment {
                    Payment::Sent { attempt, amount, receipt_before }
                    | Payment::Unknown { attempt, amount, receipt_before, .. }
                    | Payment::Held { attempt, amount, receipt_before, .. } => {
                        (*attempt, *amount, *receipt_before)
                    }
                    _ => return Err(err("a recovery without an unknown payment".into())),
                };
                match r.outcome {
                    Recovered::Approved => {
                        self.payment_seq = Some(seq);
                        self.payment = Payment::Approved(
                            r.approval.ok_or_else(|| err("recovered without an approval".into()))?,
                        );
                    }
                    Recovered::NotCharged => {
                        self.payment = Payment::None {
                            attempts: attempt,
                            ended: Some(Uncharged::NotCharged),
                            last: r.detail,
                        };
                    }
                    Recovered::Unknown => {
                        if !matches!(self.payment, Payment::Held { .. }) {
                            self.payment = Payment::Unknown {
                                attempt,
                                amount,
                                receipt_before,
                                reason: r.detail.unwrap_or_default(),
                            };
                        }
                    }
                }
            }
            kind::PAYMENT_HOLD => {
                let h: records::PaymentHold = parse(seq, k, payload)?;
                let (attempt, receipt_before) = match &self.payment {
                    Payment::Sent { attempt, receipt_before, .. }
                    | Payment::Unknown { attempt, receipt_before, .. } => (*attempt, *receipt_before),
                    _ => return Err(err("a hold without an unknown payment".into())),
                };
                self.payment = Payment::Held { attempt, amount: h.amount, receipt_before, reason: h.reason };
            }
            kind::CARD_INTENT | kind::TAG_INTENT | kind::LABEL_INTENT => {
                let step = step_of(k);
                let i: StepIntent = parse(seq, k, payload)?;
                let s = self
                    .steps
                    .get_mut(&step)
                    .ok_or_else(|| err(format!("{} has no {k}", self.open.request.service.name())))?;
                if s.running.is_some() {
                    return Err(err("a second intent before the first one's result".into()));
                }
                s.attempts = i.attempt;
                s.running = Some(i.attempt);
                s.reprint_pending = false;
            }
            kind::CARD_RESULT | kind::TAG_RESULT | kind::LABEL_RESULT => {
                let step = step_of(k);
                let r: StepResult = parse(seq, k, payload)?;
                let s = self.steps.get_mut(&step).ok_or_else(|| err(format!("no {k} step")))?;
                if s.running != Some(r.attempt) {
                    return Err(err(format!("result of attempt {} without its intent", r.attempt)));
                }
                s.running = None;
                s.last = Some(r.outcome);
                s.fault = r.fault;
                match r.stock {
                    Stock::Issued => s.issued += 1,
                    Stock::Spoiled => s.spoiled += 1,
                    Stock::None => {}
                }
                if r.tid.is_some() {
                    s.tid = r.tid;
                    s.epc = r.epc;
                }
            }
            kind::SERVICE_REPRINT => {
                let r: ServiceReprint = parse(seq, k, payload)?;
                *self.reprints.entry(r.what.clone()).or_default() += 1;
                let step = match r.what.as_str() {
                    "card" => Some(Step::Card),
                    "label" => Some(Step::Label),
                    "tag" => Some(Step::Tag),
                    _ => None,
                };
                if let Some(step) = step {
                    let s =
                        self.steps.get_mut(&step).ok_or_else(|| err(format!("no {} to reprint", r.what)))?;
                    s.reprint_pending = true;
                    if r.spoils_previous && s.issued > 0 {
                        s.issued -= 1;
                        s.spoiled += 1;
                    }
                }
            }
            kind::STOCK_SPOILED => {
                let r: records::StockSpoiled = parse(seq, k, payload)?;
                if let Some(s) = self.steps.get_mut(&r.item)
                    && s.issued > 0
                {
                    s.issued -= 1;
                    s.spoiled += 1;
                }
            }
            kind::SERVICE_COMPLETE => {
                self.complete = Some((parse(seq, k, payload)?, seq));
            }
            kind::SERVICE_CANCEL => {
                if !matches!(self.payment, Payment::None { .. }) {
                    return Err(err("cancelled after a purchase was sent".into()));
                }
                self.cancelled = Some(parse(seq, k, payload)?);
            }
            kind::SERVICE_VOID => {
                let v: ServiceEnd = parse(seq, k, payload)?;
                let pending = matches!(self.payment, Payment::Approved(_));
                self.void = Some(VoidState {
                    void: v,
                    reversal_attempts: 0,
                    reversal_running: None,
                    reversal_receipt_before: None,
                    last_error: None,
                    reversal_pending: pending,
                    reversal_unknown: false,
                });
            }
            kind::PAYMENT_REVERSAL_INTENT => {
                let i: ReversalIntent = parse(seq, k, payload)?;
                let v = self.void.as_mut().ok_or_else(|| err("a reversal without a void".into()))?;
                v.reversal_attempts = i.attempt;
                v.reversal_running = Some(i.attempt);
                v.reversal_receipt_before = i.receipt_before;
            }
            kind::PAYMENT_REVERSAL => {
                let r: ReversalResult = parse(seq, k, payload)?;
                let purchase = match &self.payment {
                    Payment::Approved(a) => a.clone(),
                    _ => return Err(err("a reversal of a payment that is not approved".into())),
                };
                let v = self.void.as_mut().ok_or_else(|| err("a reversal without a void".into()))?;
                v.reversal_running = None;
                match r.outcome {
                    PayOutcome::Approved => {
                        v.reversal_pending = false;
                        let reversal =
                            r.approval.ok_or_else(|| err("reversed without an approval".into()))?;
                        self.payment = Payment::Reversed { purchase, reversal };
                    }
                    PayOutcome::Unknown => {
                        v.reversal_pending = false;
                        v.reversal_unknown = true;
                        v.last_error = r.reason;
                    }
                    _ => v.last_error = r.reason,
                }
            }
            kind::RECEIPT_PRINT => self.receipt_copies += 1,
            // A booking that follows its transaction names it; nothing of the workflow changes.
            BOOKING_STATE => {}
            other => return Err(err(format!("{other} is not a service record"))),
        }
        self.last_seq = seq;
        Ok(())
    }

    fn payment_name(&self) -> &'static str {
        match self.payment {
            Payment::None { .. } => "none",
            Payment::Sent { .. } => "sent",
            Payment::Unknown { .. } => "unknown",
            Payment::Held { .. } => "held",
            Payment::Approved(_) => "approved",
            Payment::Reversed { .. } => "reversed",
        }
    }

    /// Whether every refusal is overridden (or there is none).
    pub fn cleared(&self) -> bool {
        self.refusals.iter().all(|r| r.overridden.is_some())
    }

    /// The amount to charge (0 if nothing to pay).
    pub fn total(&self) -> Piastres {
        self.quote.as_ref().map_or(0, |q| q.total)
    }

    /// Whether the transaction needs nothing more from anyone.
    pub fn is_final(&self) -> bool {
        matches!(self.next(), Next::Wait(Waiting::Completed | Waiting::Cancelled | Waiting::Voided))
    }

    /// Whether a purchase was (or may have been) sent: from here on it can only be completed,
    /// held or voided with a reversal, never cancelled.
    pub fn payment_started(&self) -> bool {
        !matches!(self.payment, Payment::None { .. })
    }

    /// The inspection passed (only meaningful for inspection services).
    pub fn inspection_failed(&self) -> bool {
        self.inspection.as_ref().is_some_and(|i| !i.passed)
    }

    /// What the shell must do now.
    pub fn next(&self) -> Next {
        if let Some(v) = &self.void {
            if let Some(attempt) = v.reversal_running {
                let amount = match &self.payment {
                    Payment::Approved(a) => a.amount,
                    _ => 0,
                };
                return Next::ResolveReversal { attempt, amount, receipt_before: v.reversal_receipt_before };
            }
            if v.reversal_pending {
                if let Payment::Approved(a) = &self.payment
                    && let Some(receipt_no) = a.receipt_no
                {
                    return Next::Reverse { attempt: v.reversal_attempts + 1, receipt_no, amount: a.amount };
                }
                return Next::Wait(Waiting::ReversalUnknown);
            }
            if v.reversal_unknown {
                return Next::Wait(Waiting::ReversalUnknown);
            }
            // A purchase whose outcome is unknown is still resolved first: a void cannot reverse
            // what it does not know.
            if !matches!(self.payment, Payment::Sent { .. } | Payment::Unknown { .. }) {
                return Next::Wait(Waiting::Voided);
            }
        }
        if self.cancelled.is_some() {
            return Next::Wait(Waiting::Cancelled);
        }
        match &self.payment {
            // A held payment is asked about again whenever someone proceeds; never re-sent.
            Payment::Sent { attempt, amount, receipt_before }
            | Payment::Unknown { attempt, amount, receipt_before, .. }
            | Payment::Held { attempt, amount, receipt_before, .. } => {
                return Next::RecoverPayment {
                    attempt: *attempt,
                    amount: *amount,
                    receipt_before: *receipt_before,
                };
            }
            Payment::Reversed { .. } => return Next::Wait(Waiting::Voided),
            Payment::None { .. } | Payment::Approved(_) => {}
        }
        if self.void.is_some() {
            return Next::Wait(Waiting::Voided);
        }
        // Steps whose intent has no result come first (crash recovery), even after completion
        // (a reprint interrupted).
        for (step, s) in &self.steps {
            if let Some(attempt) = s.running {
                return Next::ResolveStep { step: *step, attempt };
            }
        }
        if self.complete.is_some() {
            for (step, s) in &self.steps {
                if s.reprint_pending {
                    return Next::Do { step: *step, attempt: s.attempts + 1 };
                }
            }
            return Next::Wait(Waiting::Completed);
        }
        if self.quote.is_none() {
            return Next::Abandon;
        }
        if !self.cleared() {
            return Next::Wait(Waiting::Refused);
        }
        if self.service() == ServiceKind::Inspection && self.inspection.is_none() {
            return Next::Inspect;
        }
        let Some(quote) = &self.quote else { return Next::Wait(Waiting::Refused) };
        if let Payment::None { attempts, .. } = &self.payment
            && quote.total > 0
        {
            return Next::Pay { attempt: attempts + 1, amount: quote.total };
        }
        if self.inspection_failed() {
            // Paid for the inspection; no documents to make.
            return Next::Complete;
        }
        for (step, s) in &self.steps {
            if !s.is_done() {
                return Next::Do { step: *step, attempt: s.attempts + 1 };
            }
        }
        Next::Complete
    }

    /// The state shown to people.
    pub fn state(&self) -> State {
        match self.next() {
            Next::Wait(Waiting::Completed) => State::Completed,
            Next::Wait(Waiting::Cancelled) => State::Cancelled,
            Next::Wait(Waiting::Voided) => State::Voided,
            Next::Wait(Waiting::ReversalUnknown) => State::Voiding,
            Next::Wait(Waiting::Refused) => State::Refused,
            Next::Wait(Waiting::Nothing) => State::Completed,
            Next::Inspect => State::Open,
            Next::Pay { .. } if matches!(self.payment, Payment::None { attempts: 0, .. }) => State::Quoted,
            Next::Pay { .. } => State::Quoted,
            Next::RecoverPayment { .. } => match self.payment {
                Payment::Sent { .. } => State::Paying,
                Payment::Held { .. } => State::Held,
                _ => State::PaymentUnknown,
            },
            Next::Reverse { .. } | Next::ResolveReversal { .. } => State::Voiding,
            // Waiting for the officer to proceed (first time, or a retry after a failure).
            Next::Do { .. } if self.complete.is_some() => State::Completed,
            Next::Do { .. } => State::Paid,
            // An intent without its result: the step is running (or a crash left it so).
            Next::ResolveStep { step, .. } => {
                if self.complete.is_some() {
                    return State::Completed;
                }
                match step {
                    Step::Card => State::Printing,
                    Step::Tag => State::Encoding,
                    Step::Label => State::Labelling,
                }
            }
            Next::Complete => State::Paid,
            Next::Abandon => State::Refused,
        }
    }

    /// Controlled stock this transaction used: (item, issued, spoiled).
    pub fn stock(&self) -> Vec<(Step, u32, u32)> {
        self.steps.iter().map(|(s, st)| (*s, st.issued, st.spoiled)).collect()
    }
}

fn needed(s: Steps) -> Vec<Step> {
    let mut v = Vec::new();
    if s.card.is_some() {
        v.push(Step::Card);
    }
    if s.tag {
        v.push(Step::Tag);
    }
    if s.label {
        v.push(Step::Label);
    }
    v
}

fn step_of(k: &str) -> Step {
    match k.split('.').next() {
        Some("card") => Step::Card,
        Some("tag") => Step::Tag,
        _ => Step::Label,
    }
}

fn parse<T: serde::de::DeserializeOwned>(seq: u64, k: &str, payload: &[u8]) -> Result<T, FoldError> {
    serde_json::from_slice(payload).map_err(|e| FoldError {
        txn: String::new(),
        seq,
        kind: k.into(),
        why: format!("payload: {e}"),
    })
}

#[cfg(test)]
mod tests;
