//! The contract between the local HTTP API and the service desk: the [`Desk`] trait and every
//! request, view and event type that crosses it.
//!
//! The router (`super::router`) does HTTP only: it authenticates the bearer token through
//! [`Desk::session`], refuses non-supervisors on supervisor endpoints, parses bodies strictly into
//! the request types below and maps [`DeskError`] to a status and the JSON error body. Everything
//! else (rules, state, records, devices) is the desk's. The desk checks roles again itself, so a
//! caller other than the router cannot skip them.
//!
//! Request types refuse unknown fields; view types are what the API sends back, field for field
//! (`docs/api.md` documents them). Times are UTC instants (RFC 3339); money is piastres.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::devices::{Fault, Health, Lang};
use crate::office::model::{
    Booking, BookingState, Citizen, Date, Dossier, FieldError, LicenceGrade, Piastres, Plate,
    ReplacementReason, Role, ServiceKind, Vehicle,
};

// ---------------------------------------------------------------------------------------------
// The trait
// ---------------------------------------------------------------------------------------------

/// The service desk as the API sees it. Every method but [`Desk::login`], [`Desk::session`] and
/// [`Desk::events`] is called with the caller's [`Session`], already authenticated.
///
/// Methods return futures that are `Send` so the router can run them on tokio's worker threads.
/// A method returns only once what it did is on record (journaled), except [`Desk::proceed`],
/// which starts the remaining workflow steps in the background and reports them as events.
pub trait Desk: Send + Sync + 'static {
    /// Checks an officer's PIN and opens a session (journals `officer.login` either way).
    /// Errors: 401 `auth.bad_credentials`, 423 `auth.locked_out`, 422 for a malformed PIN or id.
    fn login(&self, req: LoginRequest) -> impl Future<Output = Result<SessionGrant, DeskError>> + Send;

    /// The session a bearer token belongs to; refreshes its idle expiry.
    /// Errors: 401 `auth.bad_token` (unknown, expired or logged out).
    fn session(&self, token: &Token) -> impl Future<Output = Result<Session, DeskError>> + Send;

    /// Whether the token's session is still valid, without refreshing its expiry (an open event
    /// stream asks this now and then, and ends when the answer is no; it must not keep an idle
    /// console logged in).
    fn session_valid(&self, token: &Token) -> impl Future<Output = bool> + Send;

    /// Ends the session (journals `officer.logout`); its token is refused afterwards.
    fn logout(&self, who: &Session) -> impl Future<Output = Result<(), DeskError>> + Send;

    /// Bookings whose slot starts on `date` (a calendar day in the service's time zone,
    /// Africa/Cairo), in slot order; `None` means today by the desk's clock.
    fn bookings(
        &self,
        who: &Session,
        date: Option<Date>,
    ) -> impl Future<Output = Result<Vec<BookingView>, DeskError>> + Send;

    /// One booking. Errors: 404 `not_found.booking`.
    fn booking(&self, who: &Session, id: &str)
    -> impl Future<Output = Result<BookingView, DeskError>> + Send;

    /// Moves a booking (journals `booking.state`). Errors: 404 `not_found.booking`,
    /// 409 `state.booking` (details: `state`, `allowed`), 422 `booking.reason_required`.
    fn booking_state(
        &self,
        who: &Session,
        id: &str,
        req: BookingStateRequest,
    ) -> impl Future<Output = Result<BookingView, DeskError>> + Send;

    /// Applies a reference-data bundle (supervisor). `bytes` is the request body exactly as
    /// received: the desk parses it and journals its SHA-256 (`refdata.applied`).
    /// Errors: 400 `bundle.bad_json`, 422 `bundle.*` (e.g. `bundle.stale_version`, `bundle.wrong_van`).
    fn import(
        &self,
        who: &Session,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<ImportReport, DeskError>> + Send;

    /// Validates and normalises one value as the officer types it (no record is written).
    /// Errors: 422 with the field errors.
    fn validate(
        &self,
        who: &Session,
        req: ValidateRequest,
    ) -> impl Future<Output = Result<Validated, DeskError>> + Send;

    /// The fee schedule in force, as applied from its bundle. Errors: 404 `not_found.schedule`.
    fn schedule(&self, who: &Session) -> impl Future<Output = Result<serde_json::Value, DeskError>> + Send;

    /// What HQ knows about a citizen (and vehicle): from a booking's dossier if the van holds one,
    /// else a live HQ lookup. Errors: 404 `not_found.dossier`, 503 `hq.unreachable`,
    /// 422 for malformed query values.
    fn dossier(
        &self,
        who: &Session,
        query: DossierQuery,
    ) -> impl Future<Output = Result<Dossier, DeskError>> + Send;

    /// Opens a service transaction (journals `service.open`, and `service.quote` when the
    /// prerequisites pass). Returns it in state `open` (inspection pending), `quoted` or
    /// `refused`. Errors: 422 with every field error, 409 `state.no_shift` without an open shift,
    /// 404 `not_found.booking`, 409 `state.booking` when the booking cannot be served now.
    fn open_service(
        &self,
        who: &Session,
        req: ServiceRequest,
    ) -> impl Future<Output = Result<TxnView, DeskError>> + Send;

    /// Transactions matching `filter`, newest first.
    fn services(
        &self,
        who: &Session,
        filter: ServiceFilter,
    ) -> impl Future<Output = Result<Vec<TxnView>, DeskError>> + Send;

    /// One transaction. Errors: 404 `not_found.txn`.
    fn service(&self, who: &Session, txn: &str) -> impl Future<Output = Result<TxnView, DeskError>> + Send;

    /// Records the inspection of the vehicle (state `open` → `quoted` | `refused`).
    /// Errors: 404, 409 `state.txn`, 422.
    fn inspect(
        &self,
        who: &Session,
        txn: &str,
        req: InspectionRequest,
    ) -> impl Future<Output = Result<TxnView, DeskError>> + Send;

    /// Overrides an overridable refusal (supervisor). When none is left the transaction is quoted.
    /// Errors: 403 `auth.role`, 404, 409 `state.txn`, 422 `override.not_overridable`/`override.unknown_code`.
    fn override_refusal(
        &self,
        who: &Session,
        txn: &str,
        req: OverrideRequest,
    ) -> impl Future<Output = Result<TxnView, DeskError>> + Send;

    /// Starts (or resumes after a failed step) the workflow: pay → card → tag → label → complete.
    /// Returns as soon as the first step is under way, with the view at that moment; progress
    /// arrives as [`DeskEvent`]s. A failed step is retried; a payment is never sent twice.
    /// Errors: 404, 409 `state.txn` (e.g. refused, held, completed), 409 `state.busy`
    /// (already running), 503 `device.*` when a needed device is not usable.
    fn proceed(&self, who: &Session, txn: &str) -> impl Future<Output = Result<TxnView, DeskError>> + Send;

    /// Cancels before payment (journals `service.cancel`). Errors: 404, 409 `state.txn`.
    fn cancel(
        &self,
        who: &Session,
        txn: &str,
        req: ReasonRequest,
    ) -> impl Future<Output = Result<TxnView, DeskError>> + Send;

    /// Voids a transaction (supervisor), reversing its payment if it was charged.
    /// Errors: 403, 404, 409 `state.txn`, 503 `device.payment.*` when the reversal cannot be sent.
    fn void(
        &self,
        who: &Session,
        txn: &str,
        req: ReasonRequest,
    ) -> impl Future<Output = Result<TxnView, DeskError>> + Send;

    /// Reprints a document of a completed transaction. The first receipt reprint is any
    /// officer's; any other reprint needs a supervisor (the desk decides: 403 `auth.role`).
    fn reprint(
        &self,
        who: &Session,
        txn: &str,
        req: ReprintRequest,
    ) -> impl Future<Output = Result<TxnView, DeskError>> + Send;

    /// The receipt as a PDF. Errors: 404, 409 `state.txn` (not completed).
    fn receipt_pdf(
        &self,
        who: &Session,
        txn: &str,
        format: ReceiptFormat,
    ) -> impl Future<Output = Result<Vec<u8>, DeskError>> + Send;

    /// The journal records of a transaction, each as its export JSON object, in sequence order.
    fn records(
        &self,
        who: &Session,
        txn: &str,
    ) -> impl Future<Output = Result<Vec<serde_json::Value>, DeskError>> + Send;

    /// The open shift, if any.
    fn shift(&self, who: &Session) -> impl Future<Output = Result<Option<ShiftView>, DeskError>> + Send;

    /// Opens a shift with the stock counted in the van; runs the devices' self-test.
    /// Errors: 409 `state.shift_open`, 422.
    fn open_shift(
        &self,
        who: &Session,
        req: ShiftOpenRequest,
    ) -> impl Future<Output = Result<ShiftView, DeskError>> + Send;

    /// Closes the shift (supervisor): terminal end-of-day, totals against the journal, stock
    /// counted against expected. Errors: 403, 409 `state.no_shift`, 409 `state.txn_running`.
    fn close_shift(
        &self,
        who: &Session,
        req: ShiftCloseRequest,
    ) -> impl Future<Output = Result<ShiftReportView, DeskError>> + Send;

    /// A closed (or the open) shift's report as a PDF. Errors: 404 `not_found.shift`.
    fn shift_report_pdf(
        &self,
        who: &Session,
        id: &str,
    ) -> impl Future<Output = Result<Vec<u8>, DeskError>> + Send;

    /// Each device's health, keyed by device name (`payment`, `card`, `sticker`, `rfid`, `gpio`).
    fn devices(
        &self,
        who: &Session,
    ) -> impl Future<Output = Result<BTreeMap<String, DeviceView>, DeskError>> + Send;

    /// What anyone who reaches the API may know before logging in (`GET /van`): the van's id and
    /// whether it is a training van (the console shows the sample officers only then).
    fn van(&self) -> serde_json::Value;

    /// The uplink to HQ as `vanctl sync status --json` shows it (`docs/api.md`, `GET /sync`):
    /// `{"enabled": false, "why"}` when the van does not sync.
    fn sync(&self, who: &Session) -> impl Future<Output = Result<serde_json::Value, DeskError>> + Send;

    /// The van's alarms: power failure (draining on the UPS) and the latched tamper alarm.
    fn alarms(&self, who: &Session) -> impl Future<Output = Result<AlarmView, DeskError>> + Send;

    /// Clears the latched tamper alarm (supervisor; journals `tamper.cleared` with who and why).
    /// Errors: 403 `auth.role`, 409 `tamper.switch_open` while the case is still open,
    /// 409 `tamper.not_latched`, 422 `tamper.reason_required`.
    fn clear_tamper(
        &self,
        who: &Session,
        req: ReasonRequest,
    ) -> impl Future<Output = Result<AlarmView, DeskError>> + Send;

    /// What the daemon knows about itself for `GET /healthz` and `GET /metrics` (no personal
    /// data). `None` (the default): this desk cannot tell, and `/healthz` answers 503.
    fn ops(&self) -> impl Future<Output = Option<super::ops::OpsSnapshot>> + Send {
        async { None }
    }

    /// A new subscription to the desk's events (progress, transaction states, device health).
    /// A receiver that falls behind loses the oldest events (`RecvError::Lagged`); clients then
    /// re-read the views they show.
    fn events(&self) -> tokio::sync::broadcast::Receiver<DeskEvent>;
}

// ---------------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------------

/// A session's bearer token. Secret: its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Token(pub String);

impl Token {
    /// The token text (for comparison and the login response only; never log it).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(…)")
    }
}

/// An officer's PIN as typed (may hold Eastern Arabic digits). Secret: its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Pin(pub String);

impl Pin {
    /// The PIN text, to check it (never log it).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(…)")
    }
}

/// `POST /session`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Officer id from the roster.
    pub officer_id: String,
    /// The officer's PIN.
    pub pin: Pin,
}

/// An officer as shown to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfficerView {
    /// Officer id.
    pub id: String,
    /// Name in Arabic.
    pub name_ar: String,
    /// Name in Latin script.
    pub name_en: String,
    /// Role.
    pub role: Role,
}

/// An authenticated session: who calls, until when. Handed to every desk method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    /// The officer.
    pub officer: OfficerView,
    /// When the session ends unless used again (UTC).
    pub expires_at: jiff::Timestamp,
    /// Its token (not serialised: `GET /session` does not echo it).
    #[serde(skip)]
    pub token: Token,
}

impl Session {
    /// Whether the officer is a supervisor.
    pub fn is_supervisor(&self) -> bool {
        self.officer.role == Role::Supervisor
    }
}

/// The answer to a successful login.
#[derive(Debug, Clone, Serialize)]
pub struct SessionGrant {
    /// The bearer token for `Authorization: Bearer …`.
    pub token: Token,
    /// The officer.
    pub officer: OfficerView,
    /// When the session ends unless used again (UTC).
    pub expires_at: jiff::Timestamp,
}

// ---------------------------------------------------------------------------------------------
// Bookings, import, validation, dossiers
// ---------------------------------------------------------------------------------------------

/// A booking with its state in this van.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingView {
    /// The booking as HQ sent it.
    pub booking: Booking,
    /// Its state in the van.
    pub state: BookingState,
    /// The transaction serving it, if one was opened.
    #[serde(default)]
    pub txn: Option<String>,
}

/// The states an officer may move a booking to by hand (the others follow from services).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingTarget {
    /// The citizen is here.
    Arrived,
    /// The citizen did not come.
    NoShow,
    /// Cancelled in the van (a reason is required).
    Cancelled,
}

impl From<BookingTarget> for BookingState {
    fn from(t: BookingTarget) -> BookingState {
        match t {
            BookingTarget::Arrived => BookingState::Arrived,
            BookingTarget::NoShow => BookingState::NoShow,
            BookingTarget::Cancelled => BookingState::Cancelled,
        }
    }
}

/// `POST /bookings/{id}/state`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookingStateRequest {
    /// The new state.
    pub to: BookingTarget,
    /// Why (required for `cancelled` and `no_show`).
    #[serde(default)]
    pub reason: Option<String>,
}

/// The kinds of reference-data bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BundleKind {
    /// Bookings with their dossiers.
    Bookings,
    /// The fee schedule.
    Schedule,
    /// The officer roster.
    Roster,
    /// The block list.
    Blocklist,
}

/// What an import applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    /// Which bundle.
    pub bundle: BundleKind,
    /// Its version.
    pub version: u64,
    /// Items applied.
    pub items: u32,
    /// Items skipped (bookings whose stored version is equal or higher).
    pub skipped: u32,
}

/// `POST /validate`: one value to check, tagged by `field`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "field", rename_all = "snake_case", deny_unknown_fields)]
pub enum ValidateRequest {
    /// A national ID (14 digits; Eastern Arabic digits accepted).
    NationalId {
        /// As typed.
        value: String,
    },
    /// A plate, letters and digits apart.
    Plate {
        /// Arabic letters as typed.
        letters: String,
        /// Digits as typed.
        digits: String,
    },
    /// A chassis number.
    Vin {
        /// As typed.
        value: String,
    },
    /// An engine number.
    EngineNo {
        /// As typed.
        value: String,
    },
    /// A mobile phone number.
    Phone {
        /// As typed.
        value: String,
    },
}

impl ValidateRequest {
    /// The `field` name of the request (`national_id`, `plate`, …).
    pub fn field(&self) -> &'static str {
        match self {
            ValidateRequest::NationalId { .. } => "national_id",
            ValidateRequest::Plate { .. } => "plate",
            ValidateRequest::Vin { .. } => "vin",
            ValidateRequest::EngineNo { .. } => "engine_no",
            ValidateRequest::Phone { .. } => "phone",
        }
    }
}

/// A normalised value: text, or a plate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Normalised {
    /// National ID, VIN, engine number, phone: ASCII, canonical form.
    Text(String),
    /// A plate, letters single-spaced, digits ASCII.
    Plate(Plate),
}

/// A value that passed validation. Serialised with `"ok": true`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Validated {
    /// Always `true` (failures are 422 errors).
    pub ok: bool,
    /// The value as it will be stored.
    pub normalised: Normalised,
    /// What the value says, e.g. for a national ID `{"birth_date": "1990-01-01", "sex": "male",
    /// "governorate": "01", "governorate_ar": "القاهرة"}`.
    pub info: BTreeMap<String, serde_json::Value>,
}

impl Validated {
    /// A passed value (`ok` is `true`).
    pub fn new(normalised: Normalised, info: BTreeMap<String, serde_json::Value>) -> Validated {
        Validated { ok: true, normalised, info }
    }
}

/// `GET /dossier?national_id=…&plate_letters=…&plate_digits=…`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DossierQuery {
    /// The citizen's national ID.
    pub national_id: String,
    /// Plate letters, for a vehicle.
    #[serde(default)]
    pub plate_letters: Option<String>,
    /// Plate digits, for a vehicle.
    #[serde(default)]
    pub plate_digits: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Services (transactions)
// ---------------------------------------------------------------------------------------------

/// `POST /services`: what the officer entered for a service (the `service.open` record's own
/// type: `{service, booking_id?, citizen, vehicle?, grade?, replacement?, supplies?, changes?}`).
pub use crate::office::records::ServiceRequest;
/// A supplies item and how many: `{code, qty}`.
pub use crate::office::records::SupplyQty;

/// `GET /services?state=open|today`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceFilter {
    /// Opened today (Africa/Cairo), any state. The default.
    #[default]
    Today,
    /// Not yet in a final state (`completed`, `cancelled`, `voided`, `reversed`), any day.
    Open,
}

/// `POST /services/{txn}/inspection`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InspectionRequest {
    /// The VIN on the chassis matches the record.
    pub vin_matches: bool,
    /// The engine number matches the record.
    pub engine_matches: bool,
    /// Checklist item code → passed.
    pub checklist: BTreeMap<String, bool>,
    /// Inspector's notes.
    #[serde(default)]
    pub notes: Option<String>,
}

/// `POST /services/{txn}/override`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    /// The refusal's code (e.g. `prereq.inspection_due`).
    pub code: String,
    /// Why (journaled).
    pub reason: String,
}

/// The van's alarms (`GET /alarms`, and the `alarm` event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmView {
    /// Mains is lost and the van runs on its UPS (or is stopping): new services are refused
    /// with 503 `power.failing`.
    pub power_failing: bool,
    /// The tamper alarm.
    pub tamper: TamperView,
}

/// The tamper alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TamperView {
    /// Latched (since the case was opened, until a supervisor clears it): supervisor
    /// functions are refused with 409 `tamper.latched`.
    pub latched: bool,
    /// When it was latched (UTC), if latched.
    pub since: Option<String>,
    /// The `gpio.tamper` record that latched it, if latched.
    pub raised_seq: Option<u64>,
    /// Whether the tamper switch is open now (the alarm cannot be cleared while it is).
    pub switch_open: bool,
}

/// `POST /services/{txn}/cancel` and `/void`, `POST /tamper/clear`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    /// Why (journaled).
    pub reason: String,
}

/// What to reprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReprintWhat {
    /// The licence card (uses a card from stock).
    Card,
    /// The sticker label (uses a label from stock).
    Label,
    /// The receipt.
    Receipt,
}

/// `POST /services/{txn}/reprint`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReprintRequest {
    /// What.
    pub what: ReprintWhat,
    /// Why (journaled).
    pub reason: String,
}

/// `GET /services/{txn}/receipt?format=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptFormat {
    /// A4 page. The default.
    #[default]
    A4,
    /// 80 mm roll.
    Roll80,
}

/// A transaction's state. See `docs/api.md` for the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnState {
    /// Opened; the vehicle inspection is pending.
    Open,
    /// Prerequisites passed; the quote is shown; waiting for `proceed`.
    Quoted,
    /// A prerequisite failed; see `refusals` (a supervisor may override the overridable ones).
    Refused,
    /// The terminal is taking the payment.
    Paying,
    /// Payment approved; documents not started (or a document step failed: see `steps`).
    Paid,
    /// The card is printing.
    Printing,
    /// The e-sticker is encoding.
    Encoding,
    /// The sticker label is printing.
    Labelling,
    /// Done: documents issued, receipt numbered.
    Completed,
    /// The terminal's answer was lost; recovery (status enquiry) is running.
    PaymentUnknown,
    /// Recovery could not tell whether the card was charged; held for reconciliation.
    Held,
    /// Cancelled before payment.
    Cancelled,
    /// Voided by a supervisor; the payment's reversal is under way.
    Voiding,
    /// Voided by a supervisor (nothing was charged, or the charge could not be reversed here).
    Voided,
    /// Voided and the payment reversed on the terminal.
    Reversed,
}

impl TxnState {
    /// Every state, in workflow order.
    pub const ALL: [TxnState; 15] = [
        TxnState::Open,
        TxnState::Quoted,
        TxnState::Refused,
        TxnState::Paying,
        TxnState::Paid,
        TxnState::Printing,
        TxnState::Encoding,
        TxnState::Labelling,
        TxnState::Completed,
        TxnState::PaymentUnknown,
        TxnState::Held,
        TxnState::Cancelled,
        TxnState::Voiding,
        TxnState::Voided,
        TxnState::Reversed,
    ];

    /// The wire name (`payment_unknown`, …).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Open => "open",
            TxnState::Quoted => "quoted",
            TxnState::Refused => "refused",
            TxnState::Paying => "paying",
            TxnState::Paid => "paid",
            TxnState::Printing => "printing",
            TxnState::Encoding => "encoding",
            TxnState::Labelling => "labelling",
            TxnState::Completed => "completed",
            TxnState::PaymentUnknown => "payment_unknown",
            TxnState::Held => "held",
            TxnState::Cancelled => "cancelled",
            TxnState::Voiding => "voiding",
            TxnState::Voided => "voided",
            TxnState::Reversed => "reversed",
        }
    }

    /// Whether nothing more happens to the transaction (except reprints of a completed one).
    pub fn is_final(self) -> bool {
        matches!(self, TxnState::Completed | TxnState::Cancelled | TxnState::Voided | TxnState::Reversed)
    }
}

/// What an officer may do to a transaction (`TxnView::next`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `POST /services/{txn}/proceed`.
    Proceed,
    /// `POST /services/{txn}/cancel`.
    Cancel,
    /// `POST /services/{txn}/void` (supervisor).
    Void,
    /// `POST /services/{txn}/override` (supervisor).
    Override,
    /// `POST /services/{txn}/reprint`.
    Reprint,
    /// `POST /services/{txn}/inspection`.
    Inspect,
}

impl Action {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Action::Proceed => "proceed",
            Action::Cancel => "cancel",
            Action::Void => "void",
            Action::Override => "override",
            Action::Reprint => "reprint",
            Action::Inspect => "inspect",
        }
    }
}

/// One line of a quote: `{code, label_ar, label_en, amount}` (the record's fee line).
pub type QuoteLine = crate::office::records::FeeLine;

/// The fees of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// The fee schedule's version used.
    pub schedule_version: u64,
    /// The lines.
    pub lines: Vec<QuoteLine>,
    /// Sum of the lines, piastres.
    pub total: Piastres,
}

/// Who overrode a refusal and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overridden {
    /// Supervisor id.
    pub by: String,
    /// Why.
    pub reason: String,
}

/// A failed prerequisite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Stable code (`prereq.unpaid_fines`, `prereq.blocked`, …).
    pub code: String,
    /// What, in Arabic.
    pub ar: String,
    /// What, in English.
    pub en: String,
    /// Whether a supervisor may override it.
    pub overridable: bool,
    /// Set once overridden.
    #[serde(default)]
    pub overridden: Option<Overridden>,
}

/// A payment's outcome as the transaction shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentOutcome {
    /// The terminal approved it.
    Approved,
    /// The card or issuer declined it.
    Declined,
    /// Aborted at the terminal (or by the officer) before any charge.
    Aborted,
    /// Recovery established nothing was charged.
    NotCharged,
    /// Not known whether the card was charged.
    Unknown,
    /// Approved, then reversed on void.
    Reversed,
}

/// The payment of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentView {
    /// Outcome.
    pub outcome: PaymentOutcome,
    /// Amount, piastres.
    pub amount: Piastres,
    /// The terminal's receipt number (ZVT BMP 0x87).
    #[serde(default)]
    pub receipt_no: Option<String>,
    /// Masked card number as the terminal reports it.
    #[serde(default)]
    pub masked_pan: Option<String>,
    /// Card scheme name (e.g. `Meeza`, `Visa`).
    #[serde(default)]
    pub card_name: Option<String>,
}

/// The workflow steps after the quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Card payment.
    Payment,
    /// Licence card print.
    Card,
    /// E-sticker encode.
    Tag,
    /// Sticker label print.
    Label,
    /// Reversal of the payment (on void).
    Reversal,
}

/// A step's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Not started.
    Pending,
    /// Under way.
    Running,
    /// Done.
    Done,
    /// Failed without effect (retry with `proceed`).
    Failed,
    /// The device may have acted; being recovered.
    Unknown,
    /// Failed and used up a stock item (spoiled card, tag or label); retry with `proceed`.
    Spoiled,
}

/// A fault as shown to a person: code and words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultView {
    /// Stable code (`card.ribbon_ended`, `payment.not_ready`, …).
    pub code: String,
    /// What is wrong, Arabic.
    pub ar: String,
    /// What is wrong, English.
    pub en: String,
    /// What to do, Arabic.
    pub action_ar: String,
    /// What to do, English.
    pub action_en: String,
}

impl From<Fault> for FaultView {
    fn from(f: Fault) -> FaultView {
        FaultView {
            code: f.code(),
            ar: f.text(Lang::Ar).to_owned(),
            en: f.text(Lang::En).to_owned(),
            action_ar: f.action(Lang::Ar).to_owned(),
            action_en: f.action(Lang::En).to_owned(),
        }
    }
}

/// One workflow step of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepView {
    /// Which step.
    pub step: StepKind,
    /// Its state.
    pub state: StepState,
    /// Attempts made so far.
    pub attempts: u32,
    /// The fault that stopped the last attempt.
    #[serde(default)]
    pub fault: Option<FaultView>,
}

/// Why a transaction is held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// Why (journaled `payment.hold`).
    pub reason: String,
}

/// The inspection recorded on a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectionView {
    /// As entered.
    #[serde(flatten)]
    pub entered: InspectionRequest,
    /// The desk's verdict.
    pub passed: bool,
    /// Why it failed (`vin_mismatch`, `engine_mismatch`, `checklist.<item>`); empty when passed.
    #[serde(default)]
    pub reasons: Vec<String>,
}

/// A service transaction as clients see it: the workflow's face.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnView {
    /// Transaction id (`T-<van>-<seq>`).
    pub txn: String,
    /// Which service.
    pub service: ServiceKind,
    /// State.
    pub state: TxnState,
    /// The officer who opened it.
    pub officer: String,
    /// When it was opened (UTC).
    pub opened_at: jiff::Timestamp,
    /// The booking served, if any.
    #[serde(default)]
    pub booking_id: Option<String>,
    /// The citizen.
    pub citizen: Citizen,
    /// The vehicle, for vehicle services.
    #[serde(default)]
    pub vehicle: Option<Vehicle>,
    /// The licence grade, for driving licence services.
    #[serde(default)]
    pub grade: Option<LicenceGrade>,
    /// Lost or damaged, for replacements.
    #[serde(default)]
    pub replacement: Option<ReplacementReason>,
    /// Items, for supplies.
    #[serde(default)]
    pub supplies: Vec<SupplyQty>,
    /// The inspection, once recorded.
    #[serde(default)]
    pub inspection: Option<InspectionView>,
    /// The fees, once quoted.
    #[serde(default)]
    pub quote: Option<Quote>,
    /// Failed prerequisites (empty when none).
    #[serde(default)]
    pub refusals: Vec<Refusal>,
    /// The payment, once attempted.
    #[serde(default)]
    pub payment: Option<PaymentView>,
    /// The workflow steps this service has (payment first), with their states.
    #[serde(default)]
    pub steps: Vec<StepView>,
    /// What the calling officer may do now.
    #[serde(default)]
    pub next: Vec<Action>,
    /// When it completed (UTC).
    #[serde(default)]
    pub completed_at: Option<jiff::Timestamp>,
    /// The van's receipt number, once completed.
    #[serde(default)]
    pub receipt_no: Option<String>,
    /// Set when held for reconciliation.
    #[serde(default)]
    pub held: Option<Held>,
}

// ---------------------------------------------------------------------------------------------
// Shifts and devices
// ---------------------------------------------------------------------------------------------

/// Controlled stock counts `{cards, labels, tags}` (the shift records' own type).
pub use crate::office::shift::StockCounts;
/// A count and amount of something (`{what, count, amount}`: a service, a card scheme).
pub use crate::office::shift::Total;

/// `POST /shift/open`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftOpenRequest {
    /// Stock counted at the start.
    pub stock: StockCounts,
}

/// `POST /shift/close`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftCloseRequest {
    /// Stock counted at the end.
    pub counted: StockCounts,
}

/// One device's self-test at shift open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfTestView {
    /// Device name.
    pub device: String,
    /// Whether every check passed.
    pub ok: bool,
    /// One line per check.
    pub lines: Vec<String>,
}

impl From<&crate::devices::SelfTestReport> for SelfTestView {
    fn from(r: &crate::devices::SelfTestReport) -> SelfTestView {
        SelfTestView { device: r.device.clone(), ok: r.ok, lines: r.lines.clone() }
    }
}

/// A count and a sum of payments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Totals {
    /// Number of payments.
    pub count: u32,
    /// Sum, piastres.
    pub amount: Piastres,
}

/// A shift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShiftView {
    /// Shift id.
    pub id: String,
    /// Who opened it.
    pub opened_by: String,
    /// When (UTC).
    pub opened_at: jiff::Timestamp,
    /// Stock counted at open.
    pub stock_open: StockCounts,
    /// Stock issued so far (good documents).
    pub issued: StockCounts,
    /// Stock spoiled so far.
    pub spoiled: StockCounts,
    /// Services completed so far.
    pub completed: u32,
    /// Approved payments so far (journal).
    pub payments: Totals,
    /// The devices' self-test at open.
    pub self_test: Vec<SelfTestView>,
}

/// Controlled stock items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StockItem {
    /// Blank licence card.
    Card,
    /// Sticker label.
    Label,
    /// E-sticker tag.
    Tag,
}

/// One stock line of a shift report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLine {
    /// Item.
    pub item: StockItem,
    /// Counted at open.
    pub opening: u32,
    /// Issued (good).
    pub issued: u32,
    /// Spoiled.
    pub spoiled: u32,
    /// `opening - issued - spoiled` (negative: more used than was on board).
    pub expected: i64,
    /// Counted at close.
    pub counted: u32,
    /// `counted - expected` (negative: missing).
    pub difference: i64,
    /// Whether the difference needs explaining (non-zero).
    pub flagged: bool,
}

/// A closed shift's reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShiftReportView {
    /// The shift.
    pub shift: ShiftView,
    /// Who closed it.
    pub closed_by: String,
    /// When (UTC).
    pub closed_at: jiff::Timestamp,
    /// Completed services, by service.
    pub by_service: Vec<Total>,
    /// Approved, unreversed payments, by card scheme.
    pub by_payment: Vec<Total>,
    /// The terminal's end-of-day totals; `null` when the end-of-day failed (see `terminal_error`).
    #[serde(default)]
    pub terminal: Option<Totals>,
    /// Why the end-of-day failed.
    #[serde(default)]
    pub terminal_error: Option<String>,
    /// Approved payments minus reversals, from the journal.
    pub journal: Totals,
    /// Whether terminal and journal totals agree.
    pub payments_match: bool,
    /// Transactions still held for reconciliation (payment outcome unknown).
    pub held: Vec<String>,
    /// Transactions paid but not finished (documents pending).
    pub unfinished: Vec<String>,
    /// Every difference, as stable codes (`totals.amount`, `totals.count`, `stock.card`, …).
    pub mismatches: Vec<String>,
    /// Stock lines.
    pub stock: Vec<StockLine>,
}

/// A device's health as clients see it (what `vanctl devices` shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceView {
    /// `absent`, `connected`, `busy`, `fault`, `disconnected`.
    pub state: String,
    /// The fault, in state `fault`.
    #[serde(default)]
    pub fault: Option<FaultView>,
    /// For a technician: the job in state `busy`, the device's words in `fault`, why in
    /// `disconnected`; empty otherwise.
    #[serde(default)]
    pub detail: String,
}

impl From<&Health> for DeviceView {
    fn from(h: &Health) -> DeviceView {
        let (fault, detail) = match h {
            Health::Absent | Health::Connected => (None, String::new()),
            Health::Busy { what } => (None, what.clone()),
            Health::Fault { fault, detail } => (Some(FaultView::from(*fault)), detail.clone()),
            Health::Disconnected { why } => (None, why.clone()),
        };
        DeviceView { state: h.state_name().to_owned(), fault, detail }
    }
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// What the desk tells connected clients (`GET /events`, one SSE event per value; the SSE event
/// name is the variant's tag and the data is the rest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DeskEvent {
    /// A step of a running transaction says something (terminal prompt, print/encode progress).
    Progress {
        /// Transaction.
        txn: String,
        /// The step.
        step: StepKind,
        /// What to show (the terminal's own display text, or the desk's words).
        text: String,
    },
    /// A transaction changed state.
    Txn {
        /// Transaction.
        txn: String,
        /// Its new state.
        state: TxnState,
    },
    /// The van's alarms changed (power failure, tamper).
    Alarm {
        /// The alarms now.
        alarm: AlarmView,
    },
    /// A device's health changed.
    Device {
        /// Device name.
        device: String,
        /// Its health.
        health: DeviceView,
    },
}

impl DeskEvent {
    /// The SSE event name (`progress`, `txn`, `device`).
    pub fn name(&self) -> &'static str {
        match self {
            DeskEvent::Progress { .. } => "progress",
            DeskEvent::Txn { .. } => "txn",
            DeskEvent::Device { .. } => "device",
            DeskEvent::Alarm { .. } => "alarm",
        }
    }

    /// The SSE data: the event's fields as one JSON object (without the `event` tag).
    pub fn data(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.remove("event");
        }
        v
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// A problem as clients see it: `{"code", "field", "ar", "en", "details"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// Stable dotted code (`state.txn`, `auth.locked_out`, `national_id.bad_date`).
    pub code: String,
    /// JSON path of the field concerned, if any (`citizen.national_id`).
    pub field: Option<String>,
    /// What is wrong, Arabic.
    pub ar: String,
    /// What is wrong, English.
    pub en: String,
    /// Machine-readable specifics (e.g. `{"state": "paid", "allowed": ["proceed"]}`).
    pub details: Option<serde_json::Value>,
}

impl Problem {
    /// A problem without field or details.
    pub fn new(code: impl Into<String>, ar: impl Into<String>, en: impl Into<String>) -> Problem {
        Problem { code: code.into(), field: None, ar: ar.into(), en: en.into(), details: None }
    }

    /// The same problem about `field`.
    pub fn with_field(mut self, field: impl Into<String>) -> Problem {
        self.field = Some(field.into());
        self
    }

    /// The same problem with `details`.
    pub fn with_details(mut self, details: serde_json::Value) -> Problem {
        self.details = Some(details);
        self
    }
}

impl From<FieldError> for Problem {
    fn from(e: FieldError) -> Problem {
        Problem {
            code: e.code,
            field: if e.field.is_empty() { None } else { Some(e.field) },
            ar: e.ar,
            en: e.en,
            details: None,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{} ({field}): {}", self.code, self.en),
            None => write!(f, "{}: {}", self.code, self.en),
        }
    }
}

/// Which kind of failure a [`DeskError`] is; each is one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// 400: the request is malformed beyond field validation (e.g. a bundle that is not JSON).
    BadRequest,
    /// 401: not authenticated (`auth.bad_token`, `auth.bad_credentials`).
    Unauthenticated,
    /// 403: the officer's role does not allow it (`auth.role`).
    Forbidden,
    /// 404: no such thing (`not_found.booking`, `not_found.txn`, …).
    NotFound,
    /// 409: wrong state for this action (`state.*`; details say the state and what is allowed).
    Conflict,
    /// 422: validation or prerequisites failed; every problem found, the first most important.
    Invalid,
    /// 423: too many failed logins (`auth.locked_out`; details: `until`).
    LockedOut,
    /// 503: a device or HQ is not available (`device.*`, `hq.unreachable`).
    Unavailable,
    /// 500: the desk failed (e.g. the journal refused an append); nothing was done.
    Internal,
}

impl ErrorKind {
    /// The HTTP status code.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::Invalid => 422,
            ErrorKind::LockedOut => 423,
            ErrorKind::Unavailable => 503,
            ErrorKind::Internal => 500,
        }
    }
}

/// Why a desk call failed: its kind (one HTTP status) and the problems to show, the main one
/// first (only [`ErrorKind::Invalid`] usually has more than one). Small, so `Result`s stay cheap.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind:?}: {}", .problems.first().map(|p| p.to_string()).unwrap_or_default())]
pub struct DeskError {
    /// The kind.
    pub kind: ErrorKind,
    /// The problems, at least one.
    pub problems: Vec<Problem>,
}

impl DeskError {
    /// An error of `kind` with one problem.
    pub fn new(kind: ErrorKind, problem: Problem) -> DeskError {
        DeskError { kind, problems: vec![problem] }
    }

    /// 400 with `problem`.
    pub fn bad_request(problem: Problem) -> DeskError {
        DeskError::new(ErrorKind::BadRequest, problem)
    }

    /// 401 with `problem` (e.g. `auth.bad_credentials`).
    pub fn unauthenticated(problem: Problem) -> DeskError {
        DeskError::new(ErrorKind::Unauthenticated, problem)
    }

    /// 409 with `problem` (`state.*`).
    pub fn conflict(problem: Problem) -> DeskError {
        DeskError::new(ErrorKind::Conflict, problem)
    }

    /// 423 with `problem` (`auth.locked_out`).
    pub fn locked_out(problem: Problem) -> DeskError {
        DeskError::new(ErrorKind::LockedOut, problem)
    }

    /// 503 with `problem` (`device.*`, `hq.unreachable`).
    pub fn unavailable(problem: Problem) -> DeskError {
        DeskError::new(ErrorKind::Unavailable, problem)
    }

    /// 500 with `problem`.
    pub fn internal(problem: Problem) -> DeskError {
        DeskError::new(ErrorKind::Internal, problem)
    }

    /// 422 from field errors (validation). An empty list still yields one problem.
    pub fn invalid(errors: impl IntoIterator<Item = FieldError>) -> DeskError {
        DeskError::invalid_problems(errors.into_iter().map(Problem::from).collect())
    }

    /// 422 from problems (prerequisites with details). An empty list still yields one problem.
    pub fn invalid_problems(mut problems: Vec<Problem>) -> DeskError {
        if problems.is_empty() {
            problems.push(Problem::new("validation.failed", "البيانات غير صحيحة", "the request was refused"));
        }
        DeskError { kind: ErrorKind::Invalid, problems }
    }

    /// 404 `not_found.<what>` naming the id.
    pub fn not_found(what: &str, id: &str) -> DeskError {
        let (ar, en) = match what {
            "booking" => ("لا يوجد حجز بهذا الرقم", "no such booking"),
            "txn" => ("لا توجد معاملة بهذا الرقم", "no such transaction"),
            "shift" => ("لا توجد وردية بهذا الرقم", "no such shift"),
            "dossier" => ("لا توجد بيانات لدى الإدارة", "HQ holds no such record"),
            "schedule" => ("لا توجد لائحة رسوم", "no fee schedule has been applied"),
            _ => ("غير موجود", "not found"),
        };
        DeskError::new(
            ErrorKind::NotFound,
            Problem::new(format!("not_found.{what}"), ar, format!("{en}: {id}"))
                .with_details(serde_json::json!({ "id": id })),
        )
    }

    /// 409 `state.txn`: `action` is not allowed in `state`; `allowed` lists what is.
    pub fn wrong_txn_state(action: Action, state: TxnState, allowed: &[Action]) -> DeskError {
        DeskError::conflict(
            Problem::new(
                "state.txn",
                format!("لا يمكن تنفيذ هذا الإجراء والمعاملة في حالة {}", state.name()),
                format!("cannot {} a transaction in state {}", action.name(), state.name()),
            )
            .with_details(serde_json::json!({
                "action": action,
                "state": state,
                "allowed": allowed,
            })),
        )
    }

    /// 403 `auth.role`: only a supervisor may do `what`.
    pub fn supervisor_only(what: &str) -> DeskError {
        DeskError::new(
            ErrorKind::Forbidden,
            Problem::new("auth.role", "هذا الإجراء للمشرف فقط", format!("only a supervisor may {what}"))
                .with_details(serde_json::json!({ "required": Role::Supervisor })),
        )
    }

    /// 401 `auth.bad_token`.
    pub fn bad_token() -> DeskError {
        DeskError::unauthenticated(Problem::new(
            "auth.bad_token",
            "الجلسة غير صالحة أو انتهت؛ سجّل الدخول مرة أخرى",
            "the session token is unknown or expired; log in again",
        ))
    }

    /// The main problem.
    pub fn problem(&self) -> Option<&Problem> {
        self.problems.first()
    }
}

impl From<FieldError> for DeskError {
    fn from(e: FieldError) -> DeskError {
        DeskError::invalid([e])
    }
}

impl From<Vec<FieldError>> for DeskError {
    fn from(v: Vec<FieldError>) -> DeskError {
        DeskError::invalid(v)
    }
}

// ---------------------------------------------------------------------------------------------
// From the service desk's own types
// ---------------------------------------------------------------------------------------------

impl From<crate::office::desk::DeskError> for DeskError {
    fn from(e: crate::office::desk::DeskError) -> DeskError {
        use crate::office::desk::ErrorClass as C;
        let kind = match e.class {
            C::Invalid => ErrorKind::Invalid,
            C::NotFound => ErrorKind::NotFound,
            C::State => ErrorKind::Conflict,
            C::Role => ErrorKind::Forbidden,
            C::Device => ErrorKind::Unavailable,
            C::Storage => ErrorKind::Internal,
        };
        DeskError::new(kind, Problem { code: e.code, field: e.field, ar: e.ar, en: e.en, details: None })
    }
}

/// The desk's event converts unless its step has a name the API does not know (the step is then
/// returned, so the caller can log it).
impl TryFrom<crate::office::desk::DeskEvent> for DeskEvent {
    type Error = String;

    fn try_from(e: crate::office::desk::DeskEvent) -> Result<DeskEvent, String> {
        use crate::office::desk::DeskEvent as O;
        Ok(match e {
            O::Progress { txn, step, text } => {
                let kind =
                    serde_json::from_value(serde_json::Value::String(step.clone())).map_err(|_| step)?;
                DeskEvent::Progress { txn, step: kind, text }
            }
            O::Txn { txn, state } => DeskEvent::Txn { txn, state: state.into() },
        })
    }
}

impl From<crate::office::workflow::State> for TxnState {
    fn from(s: crate::office::workflow::State) -> TxnState {
        use crate::office::workflow::State as W;
        match s {
            W::Open => TxnState::Open,
            W::Quoted => TxnState::Quoted,
            W::Refused => TxnState::Refused,
            W::Paying => TxnState::Paying,
            W::PaymentUnknown => TxnState::PaymentUnknown,
            W::Held => TxnState::Held,
            W::Paid => TxnState::Paid,
            W::Printing => TxnState::Printing,
            W::Encoding => TxnState::Encoding,
            W::Labelling => TxnState::Labelling,
            W::Completed => TxnState::Completed,
            W::Cancelled => TxnState::Cancelled,
            W::Voiding => TxnState::Voiding,
            W::Voided => TxnState::Voided,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn validate_request_is_tagged_by_field_and_strict() {
        let r: ValidateRequest =
            serde_json::from_value(json!({"field": "plate", "letters": "أ ب", "digits": "١٢٣"})).unwrap();
        assert_eq!(r, ValidateRequest::Plate { letters: "أ ب".into(), digits: "١٢٣".into() });
        assert_eq!(r.field(), "plate");
        let e = serde_json::from_value::<ValidateRequest>(json!({"field": "vin", "value": "X", "extra": 1}))
            .unwrap_err();
        assert!(e.to_string().contains("extra"), "{e}");
        assert!(serde_json::from_value::<ValidateRequest>(json!({"field": "colour", "value": "X"})).is_err());
    }

    #[test]
    fn event_name_and_data_split_the_tag() {
        let e = DeskEvent::Txn { txn: "T-1".into(), state: TxnState::PaymentUnknown };
        assert_eq!(e.name(), "txn");
        assert_eq!(e.data(), json!({"txn": "T-1", "state": "payment_unknown"}));
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let r: LoginRequest = serde_json::from_value(json!({"officer_id": "o1", "pin": "4711"})).unwrap();
        assert!(!format!("{r:?}").contains("4711"));
        assert!(!format!("{:?}", Token("sekrit".into())).contains("sekrit"));
    }

    #[test]
    fn state_names_match_serde() {
        for s in TxnState::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.name()));
        }
    }

    #[test]
    fn device_view_from_health() {
        let v = DeviceView::from(&Health::fault(Fault::Config));
        assert_eq!(v.state, "fault");
        assert_eq!(v.fault.unwrap().code, "config");
    }

    #[test]
    fn the_desks_own_errors_and_states_convert() {
        use crate::office::desk::{DeskError as OfficeError, ErrorClass};
        let cases = [
            (ErrorClass::Invalid, 422),
            (ErrorClass::NotFound, 404),
            (ErrorClass::State, 409),
            (ErrorClass::Role, 403),
            (ErrorClass::Device, 503),
            (ErrorClass::Storage, 500),
        ];
        for (class, status) in cases {
            let mut e = OfficeError::new(class, "x.y", "ع", "e");
            e.field = Some("citizen.national_id".into());
            let d = DeskError::from(e);
            assert_eq!(d.kind.status(), status, "{class:?}");
            assert_eq!(d.problems[0].code, "x.y");
            assert_eq!(d.problems[0].field.as_deref(), Some("citizen.national_id"));
        }
        // Same wire names on both sides.
        use crate::office::desk::DeskEvent as O;
        use crate::office::workflow::State as W;
        let progress = O::Progress { txn: "T".into(), step: "reversal".into(), text: "…".into() };
        assert_eq!(DeskEvent::try_from(progress).unwrap().data()["step"], "reversal");
        let odd = O::Progress { txn: "T".into(), step: "teleport".into(), text: "…".into() };
        assert_eq!(DeskEvent::try_from(odd), Err("teleport".to_owned()));
        for w in [W::Open, W::PaymentUnknown, W::Labelling, W::Voiding, W::Voided] {
            assert_eq!(serde_json::to_value(w).unwrap(), serde_json::to_value(TxnState::from(w)).unwrap());
        }
    }
}
