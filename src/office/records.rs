//! The journal records of a service transaction: their kinds and typed payloads.
//!
//! Every record of a transaction carries its id in the top-level `"txn"` field (so the journal's
//! transaction index finds it) and names the officer who acted. The workflow
//! ([`super::workflow`]) folds these records into a transaction's state; the shell
//! ([`super::desk`]) writes them, each durably, before the step it announces and after the
//! result it reports. `docs/journal-format.md` lists them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::{Citizen, LicenceGrade, Piastres, ReplacementReason, ServiceKind, Vehicle};
use crate::devices::payment::Approval;

/// Record kinds of the service desk.
pub mod kind {
    /// A transaction opened: who, what, for whom.
    pub const SERVICE_OPEN: &str = "service.open";
    /// Prerequisite failures found at open.
    pub const SERVICE_REFUSAL: &str = "service.refusal";
    /// A supervisor overrode a failed prerequisite, with a reason.
    pub const SERVICE_OVERRIDE: &str = "service.override";
    /// The technical inspection's identity checks and checklist.
    pub const SERVICE_INSPECTION: &str = "service.inspection";
    /// The fee lines and total the citizen pays.
    pub const SERVICE_QUOTE: &str = "service.quote";
    /// About to send a purchase to the terminal.
    pub const PAYMENT_INTENT: &str = "payment.intent";
    /// What the terminal answered (or that the answer was lost).
    pub const PAYMENT_RESULT: &str = "payment.result";
    /// What the terminal's repeat receipt said about a purchase whose answer was lost.
    pub const PAYMENT_RECOVERY: &str = "payment.recovery";
    /// A payment whose outcome stays unknown: held for reconciliation, never charged again.
    pub const PAYMENT_HOLD: &str = "payment.hold";
    /// About to reverse an approved payment (after a void).
    pub const PAYMENT_REVERSAL_INTENT: &str = "payment.reversal_intent";
    /// What the terminal answered to the reversal.
    pub const PAYMENT_REVERSAL: &str = "payment.reversal";
    /// About to print the card.
    pub const CARD_INTENT: &str = "card.intent";
    /// The card print's outcome and what it did to stock.
    pub const CARD_RESULT: &str = "card.result";
    /// About to encode an e-sticker tag.
    pub const TAG_INTENT: &str = "tag.intent";
    /// The encode's outcome, the tag's TID and EPC.
    pub const TAG_RESULT: &str = "tag.result";
    /// About to print the sticker label.
    pub const LABEL_INTENT: &str = "label.intent";
    /// The label print's outcome.
    pub const LABEL_RESULT: &str = "label.result";
    /// A reprint asked for (and by whom approved).
    pub const SERVICE_REPRINT: &str = "service.reprint";
    /// Controlled stock spoiled outside a device step (a void takes back an issued card).
    pub const STOCK_SPOILED: &str = "stock.spoiled";
    /// The service is complete: documents issued, receipt number.
    pub const SERVICE_COMPLETE: &str = "service.complete";
    /// Cancelled before payment.
    pub const SERVICE_CANCEL: &str = "service.cancel";
    /// Voided by a supervisor (the payment is reversed if one was approved).
    pub const SERVICE_VOID: &str = "service.void";
    /// A receipt was printed or reprinted.
    pub const RECEIPT_PRINT: &str = "receipt.print";

    /// Every kind a transaction's records may have (`booking.state`, `refdata.applied`,
    /// `officer.*` and `shift.*` are the desk's other records).
    pub const ALL: [&str; 23] = [
        SERVICE_OPEN,
        SERVICE_REFUSAL,
        SERVICE_OVERRIDE,
        SERVICE_INSPECTION,
        SERVICE_QUOTE,
        PAYMENT_INTENT,
        PAYMENT_RESULT,
        PAYMENT_RECOVERY,
        PAYMENT_HOLD,
        PAYMENT_REVERSAL_INTENT,
        PAYMENT_REVERSAL,
        CARD_INTENT,
        CARD_RESULT,
        TAG_INTENT,
        TAG_RESULT,
        LABEL_INTENT,
        LABEL_RESULT,
        SERVICE_REPRINT,
        STOCK_SPOILED,
        SERVICE_COMPLETE,
        SERVICE_CANCEL,
        SERVICE_VOID,
        RECEIPT_PRINT,
    ];
}

/// What the officer entered (or the booking carried) for a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRequest {
    /// The service.
    pub service: ServiceKind,
    /// The booking served, if any (walk-ups have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<String>,
    /// The citizen.
    pub citizen: Citizen,
    /// The vehicle, for vehicle services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vehicle: Option<Vehicle>,
    /// The licence grade, for driving licence services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grade: Option<LicenceGrade>,
    /// Why a document is replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<ReplacementReason>,
    /// Supplies bought, by code.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supplies: Vec<SupplyQty>,
    /// Data changes of a driving licence data update (field → new value).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub changes: BTreeMap<String, String>,
}

/// A quantity of one supplies item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupplyQty {
    /// Item code from the fee schedule.
    pub code: String,
    /// How many (1–99).
    pub qty: u32,
}

/// `service.open`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceOpen {
    /// Transaction id.
    pub txn: String,
    /// Officer who opened it.
    pub officer: String,
    /// What was asked.
    pub request: ServiceRequest,
    /// Where the dossier came from: `booking`, `hq` (live lookup) or `none`.
    pub dossier_source: String,
    /// The dossier the decision was made on (what the documents print comes from it and the
    /// request), so the transaction can be finished and audited offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dossier: Option<super::model::Dossier>,
}

/// One failed prerequisite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Stable code, e.g. `prereq.unpaid_fines`.
    pub code: String,
    /// In Arabic.
    pub ar: String,
    /// In English.
    pub en: String,
    /// Whether a supervisor may override it with a reason.
    pub overridable: bool,
}

/// `service.refusal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRefusal {
    /// Transaction id.
    pub txn: String,
    /// Officer.
    pub officer: String,
    /// What failed.
    pub refusals: Vec<Refusal>,
}

/// `service.override`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceOverride {
    /// Transaction id.
    pub txn: String,
    /// The supervisor.
    pub officer: String,
    /// The refusal overridden.
    pub code: String,
    /// Why.
    pub reason: String,
}

/// `service.inspection`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInspection {
    /// Transaction id.
    pub txn: String,
    /// Officer who inspected.
    pub officer: String,
    /// The chassis number on the vehicle matches the record.
    pub vin_matches: bool,
    /// The engine number on the vehicle matches the record.
    pub engine_matches: bool,
    /// Checklist item code → passed.
    pub checklist: BTreeMap<String, bool>,
    /// Whether the vehicle passed.
    pub passed: bool,
    /// Why it failed (codes: `vin_mismatch`, `engine_mismatch`, `checklist.<item>`).
    pub reasons: Vec<String>,
    /// Officer's notes.
    #[serde(default)]
    pub notes: String,
}

/// One fee line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeLine {
    /// Code from the fee schedule.
    pub code: String,
    /// In Arabic.
    pub label_ar: String,
    /// In English.
    pub label_en: String,
    /// Piastres.
    pub amount: Piastres,
}

/// `service.quote`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceQuote {
    /// Transaction id.
    pub txn: String,
    /// Officer.
    pub officer: String,
    /// The fee schedule version used.
    pub schedule_version: u64,
    /// Fee lines.
    pub lines: Vec<FeeLine>,
    /// Their sum, piastres.
    pub total: Piastres,
    /// Expiry of the document issued (from the schedule's validity periods), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<jiff::civil::Date>,
}

/// `payment.intent`: written before the purchase is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentIntent {
    /// Transaction id.
    pub txn: String,
    /// Officer.
    pub officer: String,
    /// Piastres to charge.
    pub amount: Piastres,
    /// The terminal's last receipt number before this purchase (from its repeat receipt), so a
    /// recovered result can be told apart from an older transaction.
    pub receipt_before: Option<u32>,
    /// Attempt number (a declined card may be followed by another card).
    pub attempt: u32,
}

/// How a payment step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayOutcome {
    /// Money moved.
    Approved,
    /// The card or issuer said no.
    Declined,
    /// Cancelled at the terminal or by us before the card was read.
    Aborted,
    /// The purchase certainly did not reach the terminal (port not open, refused before sending).
    Failed,
    /// It may have been charged: the answer was lost. Recovered by repeat receipt.
    Unknown,
}

/// `payment.result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentResult {
    /// Transaction id.
    pub txn: String,
    /// Attempt number.
    pub attempt: u32,
    /// Outcome.
    pub outcome: PayOutcome,
    /// Piastres asked.
    pub amount: Piastres,
    /// The terminal's approval, when approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// Why not approved, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The device fault code, when one caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

/// What a repeat receipt said about a purchase whose answer was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recovered {
    /// The terminal's last transaction is this purchase: approved.
    Approved,
    /// The terminal's last transaction is older (or declined): nothing was charged.
    NotCharged,
    /// The terminal could not be asked.
    Unknown,
}

/// `payment.recovery`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecovery {
    /// Transaction id.
    pub txn: String,
    /// Attempt number of the purchase recovered.
    pub attempt: u32,
    /// What was found.
    pub outcome: Recovered,
    /// The recovered approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// What the terminal said instead (its last receipt number), or why it could not be asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `payment.hold`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentHold {
    /// Transaction id.
    pub txn: String,
    /// Why.
    pub reason: String,
    /// Piastres possibly charged.
    pub amount: Piastres,
}

/// What a device step did to controlled stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stock {
    /// One item went to the citizen.
    Issued,
    /// One item was (or may have been) used and is spoiled; kept for audit.
    Spoiled,
    /// No item used.
    None,
}

/// How a device step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    /// Done and verified.
    Done,
    /// Did not happen; the device certainly did nothing with stock (or its stock use is recorded).
    Failed,
    /// May have happened: counted as spoiled, and the step is done again.
    Unknown,
}

/// A physical step after payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Print the card.
    Card,
    /// Encode the e-sticker tag.
    Tag,
    /// Print the sticker label.
    Label,
}

impl Step {
    /// Every step, in workflow order.
    pub const ALL: [Step; 3] = [Step::Card, Step::Tag, Step::Label];

    /// Wire name.
    pub fn name(self) -> &'static str {
        match self {
            Step::Card => "card",
            Step::Tag => "tag",
            Step::Label => "label",
        }
    }

    /// (intent kind, result kind).
    pub fn kinds(self) -> (&'static str, &'static str) {
        match self {
            Step::Card => (kind::CARD_INTENT, kind::CARD_RESULT),
            Step::Tag => (kind::TAG_INTENT, kind::TAG_RESULT),
            Step::Label => (kind::LABEL_INTENT, kind::LABEL_RESULT),
        }
    }
}

/// `card.intent`, `tag.intent`, `label.intent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepIntent {
    /// Transaction id.
    pub txn: String,
    /// Officer.
    pub officer: String,
    /// 1, 2, … (a reprint or retry is a new attempt).
    pub attempt: u32,
}

/// `card.result`, `tag.result`, `label.result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepResult {
    /// Transaction id.
    pub txn: String,
    /// Attempt number.
    pub attempt: u32,
    /// Outcome.
    pub outcome: StepOutcome,
    /// What it did to stock.
    pub stock: Stock,
    /// Device fault code, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// Detail for a technician.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Tag TID (hex), for tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    /// Tag EPC (hex), for tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epc: Option<String>,
    /// Set when the result was written at start-up for an intent a crash left without result.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recovered: bool,
}

/// `service.reprint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceReprint {
    /// Transaction id.
    pub txn: String,
    /// Who asked (a supervisor for any reprint after the first).
    pub officer: String,
    /// `card`, `tag`, `label` or `receipt`.
    pub what: String,
    /// Why.
    pub reason: String,
    /// 1 for the first reprint of this item.
    pub number: u32,
    /// The item printed before is spoiled (card/label): stock.
    pub spoils_previous: bool,
}

/// `stock.spoiled`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockSpoiled {
    /// Transaction id.
    pub txn: String,
    /// Officer.
    pub officer: String,
    /// `card`, `tag` or `label`.
    pub item: Step,
    /// Why.
    pub reason: String,
}

/// `service.complete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceComplete {
    /// Transaction id.
    pub txn: String,
    /// Officer.
    pub officer: String,
    /// The service.
    pub service: ServiceKind,
    /// Piastres paid.
    pub total: Piastres,
    /// Our receipt number (the transaction id).
    pub receipt_no: String,
    /// For an inspection: passed or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed: Option<bool>,
    /// Document expiry (licences, sticker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<jiff::civil::Date>,
    /// For a damaged e-sticker's replacement: the old sticker's TID (hex, from the dossier), void
    /// from now on; the new one is in the `tag.result` record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces_tid: Option<String>,
}

/// `service.cancel`, `service.void`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEnd {
    /// Transaction id.
    pub txn: String,
    /// Officer (a supervisor for a void).
    pub officer: String,
    /// Why.
    pub reason: String,
}

/// `payment.reversal_intent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReversalIntent {
    /// Transaction id.
    pub txn: String,
    /// Supervisor.
    pub officer: String,
    /// The terminal receipt number of the purchase reversed.
    pub receipt_no: u32,
    /// Piastres.
    pub amount: Piastres,
    /// Attempt number.
    pub attempt: u32,
    /// The terminal's last receipt number before this reversal (its repeat receipt), so a
    /// reversal whose answer was lost can be told from one that never happened.
    #[serde(default)]
    pub receipt_before: Option<u32>,
}

/// `payment.reversal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReversalResult {
    /// Transaction id.
    pub txn: String,
    /// Attempt number.
    pub attempt: u32,
    /// Outcome (`unknown`: recovered by repeat receipt like a purchase).
    pub outcome: PayOutcome,
    /// The terminal's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// Why not approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `receipt.print`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptPrint {
    /// Transaction id.
    pub txn: String,
    /// Officer.
    pub officer: String,
    /// `pdf` or `roll80`.
    pub format: String,
    /// 1 for the first copy.
    pub copy: u32,
}

#[cfg(test)]
mod tests {
    #[test]
    fn journal_format_documents_every_service_record() {
        let doc = include_str!("../../docs/journal-format.md");
        let others = [
            "booking.state",
            "refdata.applied",
            "refdata.refused",
            "officer.login",
            "officer.logout",
            "shift.open",
            "shift.close",
        ];
        for k in super::kind::ALL.iter().chain(others.iter()) {
            assert!(doc.contains(&format!("`{k}`")), "docs/journal-format.md does not document {k}");
        }
    }
}
