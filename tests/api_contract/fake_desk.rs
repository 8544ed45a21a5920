//! A small in-memory desk for the API's contract tests: a roster of two, one booking, a tiny
//! fee table and a transaction machine that runs `proceed` in the background with events. It
//! behaves plausibly; the real desk (`office::desk`) is tested on its own.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use mtu::api::desk::*;
use mtu::devices::{Fault, Health, LinkFault};
use mtu::office::model::*;
use tokio::sync::broadcast;

/// Officer id / PIN and supervisor id / PIN known to the fake.
pub const OFFICER: (&str, &str) = ("o1", "1234");
pub const SUPERVISOR: (&str, &str) = ("s1", "9999");
/// The booking the fake holds (slot today in Cairo).
pub const BOOKING: &str = "B-1";

struct Txn {
    view: TxnView,
}

#[derive(Default)]
struct State {
    sessions: BTreeMap<String, Session>,
    failures: BTreeMap<String, u32>,
    next_token: u64,
    bookings: BTreeMap<String, BookingView>,
    txns: BTreeMap<String, Txn>,
    next_txn: u64,
    shift: Option<ShiftView>,
    steps_to_fail: Vec<StepKind>,
}

pub struct FakeDesk {
    state: Mutex<State>,
    events: broadcast::Sender<DeskEvent>,
}

fn officer(id: &str) -> Option<(OfficerView, &'static str)> {
    match id {
        "o1" => Some((
            OfficerView {
                id: "o1".into(),
                name_ar: "أحمد".into(),
                name_en: "Ahmed".into(),
                role: Role::Officer,
            },
            OFFICER.1,
        )),
        "s1" => Some((
            OfficerView {
                id: "s1".into(),
                name_ar: "منى".into(),
                name_en: "Mona".into(),
                role: Role::Supervisor,
            },
            SUPERVISOR.1,
        )),
        _ => None,
    }
}

fn ascii_digits(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '٠'..='٩' => char::from(b'0' + (c as u32 - '٠' as u32) as u8),
            '۰'..='۹' => char::from(b'0' + (c as u32 - '۰' as u32) as u8),
            c => c,
        })
        .collect()
}

fn check_national_id(field: &str, value: &str) -> Result<String, FieldError> {
    let v = ascii_digits(value.trim());
    if v.len() == 14 && v.bytes().all(|b| b.is_ascii_digit()) {
        Ok(v)
    } else {
        Err(FieldError::new(
            field,
            "national_id.bad_length",
            "الرقم القومي ١٤ رقمًا",
            "a national ID has 14 digits",
        ))
    }
}

fn check_plate(field: &str, letters: &str, digits: &str) -> Result<Plate, Vec<FieldError>> {
    let mut errors = Vec::new();
    let l: Vec<&str> = letters.split_whitespace().collect();
    if l.is_empty() || l.len() > 3 || l.iter().any(|x| x.chars().count() != 1) {
        errors.push(FieldError::new(
            format!("{field}.letters"),
            "plate.bad_letters",
            "حروف اللوحة من ١ إلى ٣",
            "one to three plate letters",
        ));
    }
    let d = ascii_digits(digits.trim());
    if d.is_empty() || d.len() > 4 || !d.bytes().all(|b| b.is_ascii_digit()) {
        errors.push(FieldError::new(
            format!("{field}.digits"),
            "plate.bad_digits",
            "أرقام اللوحة من ١ إلى ٤",
            "one to four plate digits",
        ));
    }
    if errors.is_empty() { Ok(Plate { letters: l.join(" "), digits: d }) } else { Err(errors) }
}

/// The steps a service has, payment first.
fn steps_of(service: ServiceKind) -> Vec<StepKind> {
    let s = service.steps();
    let mut v = vec![StepKind::Payment];
    if s.card.is_some() {
        v.push(StepKind::Card);
    }
    if s.tag {
        v.push(StepKind::Tag);
    }
    if s.label {
        v.push(StepKind::Label);
    }
    v
}

fn next_for(state: TxnState, who: &Session) -> Vec<Action> {
    let mut v = match state {
        TxnState::Open => vec![Action::Inspect, Action::Cancel],
        TxnState::Quoted => vec![Action::Proceed, Action::Cancel],
        TxnState::Refused => vec![Action::Override, Action::Cancel],
        TxnState::Paid => vec![Action::Proceed, Action::Void],
        TxnState::Completed => vec![Action::Reprint, Action::Void],
        TxnState::Held => vec![Action::Void],
        _ => vec![],
    };
    if !who.is_supervisor() {
        v.retain(|a| !matches!(a, Action::Void | Action::Override));
    }
    v
}

fn allowed(state: TxnState) -> Vec<Action> {
    match state {
        TxnState::Open => vec![Action::Inspect, Action::Cancel],
        TxnState::Quoted => vec![Action::Proceed, Action::Cancel],
        TxnState::Refused => vec![Action::Override, Action::Cancel],
        TxnState::Paid => vec![Action::Proceed, Action::Void],
        TxnState::Completed => vec![Action::Reprint, Action::Void],
        TxnState::Held => vec![Action::Void],
        _ => vec![],
    }
}

impl FakeDesk {
    pub fn new() -> FakeDesk {
        let now = jiff::Timestamp::now();
        let citizen = Citizen {
            national_id: "29001011234567".into(),
            name_ar: "محمد علي".into(),
            name_en: Some("Mohamed Ali".into()),
            phone: None,
        };
        let booking = Booking {
            id: BOOKING.into(),
            version: 1,
            channel: Channel::Hotline,
            service: ServiceKind::DrivingLicenceRenewal,
            citizen,
            place: Place { address_ar: "شارع التحرير".into(), governorate: "01".into() },
            slot: Slot { start: now, end: now + jiff::SignedDuration::from_mins(30) },
            dossier: None,
            notes: String::new(),
        };
        let mut state = State::default();
        state
            .bookings
            .insert(BOOKING.into(), BookingView { booking, state: BookingState::Assigned, txn: None });
        let (events, _) = broadcast::channel(64);
        FakeDesk { state: Mutex::new(state), events }
    }

    /// Makes the next `proceed` fail at `step` (once).
    pub fn fail_next(&self, step: StepKind) {
        self.state.lock().unwrap().steps_to_fail.push(step);
    }

    /// Sends an event to subscribers (for tests of the stream itself).
    pub fn emit(&self, ev: DeskEvent) {
        let _ = self.events.send(ev);
    }

    fn txn_view(&self, who: &Session, txn: &str) -> Result<TxnView, DeskError> {
        let st = self.state.lock().unwrap();
        let t = st.txns.get(txn).ok_or_else(|| DeskError::not_found("txn", txn))?;
        let mut v = t.view.clone();
        v.next = next_for(v.state, who);
        Ok(v)
    }

    fn require(&self, txn: &str, action: Action) -> Result<(), DeskError> {
        let st = self.state.lock().unwrap();
        let t = st.txns.get(txn).ok_or_else(|| DeskError::not_found("txn", txn))?;
        let ok = allowed(t.view.state);
        if ok.contains(&action) { Ok(()) } else { Err(DeskError::wrong_txn_state(action, t.view.state, &ok)) }
    }

    fn set_state(&self, txn: &str, state: TxnState) {
        if let Some(t) = self.state.lock().unwrap().txns.get_mut(txn) {
            t.view.state = state;
        }
        self.emit(DeskEvent::Txn { txn: txn.into(), state });
    }

    fn set_step(&self, txn: &str, step: StepKind, state: StepState, fault: Option<Fault>) {
        if let Some(t) = self.state.lock().unwrap().txns.get_mut(txn) {
            for s in &mut t.view.steps {
                if s.step == step {
                    s.state = state;
                    if state == StepState::Running {
                        s.attempts += 1;
                    }
                    s.fault = fault.map(FaultView::from);
                }
            }
        }
    }

    fn progress(&self, txn: &str, step: StepKind, text: &str) {
        self.emit(DeskEvent::Progress { txn: txn.into(), step, text: text.into() });
    }

    /// Runs the remaining steps of `txn` (the background half of `proceed`).
    async fn run(self: std::sync::Arc<Self>, txn: String) {
        let pause = || tokio::time::sleep(Duration::from_millis(5));
        let (steps, paid) = {
            let st = self.state.lock().unwrap();
            let t = &st.txns[&txn];
            (
                t.view.steps.clone(),
                t.view.payment.as_ref().is_some_and(|p| p.outcome == PaymentOutcome::Approved),
            )
        };
        for step in steps {
            if step.state == StepState::Done {
                continue;
            }
            let fail = {
                let mut st = self.state.lock().unwrap();
                let i = st.steps_to_fail.iter().position(|s| *s == step.step);
                i.map(|i| st.steps_to_fail.remove(i)).is_some()
            };
            self.set_step(&txn, step.step, StepState::Running, None);
            match step.step {
                StepKind::Payment => {
                    if !paid {
                        self.set_state(&txn, TxnState::Paying);
                        self.progress(&txn, StepKind::Payment, "Insert card");
                        pause().await;
                        self.progress(&txn, StepKind::Payment, "PIN entry");
                        pause().await;
                        let amount =
                            self.state.lock().unwrap().txns[&txn].view.quote.as_ref().map_or(0, |q| q.total);
                        if let Some(t) = self.state.lock().unwrap().txns.get_mut(&txn) {
                            t.view.payment = Some(PaymentView {
                                outcome: PaymentOutcome::Approved,
                                amount,
                                receipt_no: Some("0042".into()),
                                masked_pan: Some("5078 03** **** 1234".into()),
                                card_name: Some("Meeza".into()),
                            });
                        }
                    }
                    self.set_step(&txn, StepKind::Payment, StepState::Done, None);
                    self.set_state(&txn, TxnState::Paid);
                }
                StepKind::Card => {
                    self.set_state(&txn, TxnState::Printing);
                    self.progress(&txn, StepKind::Card, "Printing card");
                    pause().await;
                    if fail {
                        self.set_step(
                            &txn,
                            StepKind::Card,
                            StepState::Failed,
                            Some(Fault::Link(LinkFault::NoAnswer)),
                        );
                        self.set_state(&txn, TxnState::Paid);
                        return;
                    }
                    self.set_step(&txn, StepKind::Card, StepState::Done, None);
                }
                StepKind::Tag => {
                    self.set_state(&txn, TxnState::Encoding);
                    self.progress(&txn, StepKind::Tag, "Encoding e-sticker");
                    pause().await;
                    self.set_step(&txn, StepKind::Tag, StepState::Done, None);
                }
                StepKind::Reversal => {}
                StepKind::Label => {
                    self.set_state(&txn, TxnState::Labelling);
                    self.progress(&txn, StepKind::Label, "Printing label");
                    pause().await;
                    self.set_step(&txn, StepKind::Label, StepState::Done, None);
                }
            }
        }
        if let Some(t) = self.state.lock().unwrap().txns.get_mut(&txn) {
            t.view.completed_at = Some(jiff::Timestamp::now());
            t.view.receipt_no = Some(format!("R-{}", &txn[2..]));
        }
        self.set_state(&txn, TxnState::Completed);
    }
}

/// The fake needs itself behind an `Arc` to run `proceed` in the background.
pub struct Shared(pub std::sync::Arc<FakeDesk>);

impl Desk for Shared {
    async fn login(&self, req: LoginRequest) -> Result<SessionGrant, DeskError> {
        let mut st = self.0.state.lock().unwrap();
        let failures = st.failures.get(&req.officer_id).copied().unwrap_or(0);
        if failures >= 3 {
            return Err(DeskError::locked_out(
                Problem::new("auth.locked_out", "تم إيقاف الدخول مؤقتًا", "too many wrong PINs; try again later")
                    .with_details(serde_json::json!({ "until": jiff::Timestamp::now() + jiff::SignedDuration::from_mins(15) })),
            ));
        }
        let Some((officer, pin)) = officer(&req.officer_id) else {
            return Err(DeskError::unauthenticated(Problem::new(
                "auth.bad_credentials",
                "بيانات الدخول غير صحيحة",
                "wrong officer id or PIN",
            )));
        };
        if ascii_digits(req.pin.expose()) != pin {
            *st.failures.entry(req.officer_id).or_default() += 1;
            return Err(DeskError::unauthenticated(Problem::new(
                "auth.bad_credentials",
                "بيانات الدخول غير صحيحة",
                "wrong officer id or PIN",
            )));
        }
        st.failures.remove(&req.officer_id);
        st.next_token += 1;
        let token = Token(format!("tok-{}-{}", officer.id, st.next_token));
        let expires_at = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(8);
        st.sessions.insert(
            token.expose().into(),
            Session { officer: officer.clone(), expires_at, token: token.clone() },
        );
        Ok(SessionGrant { token, officer, expires_at })
    }

    async fn session(&self, token: &Token) -> Result<Session, DeskError> {
        self.0.state.lock().unwrap().sessions.get(token.expose()).cloned().ok_or_else(DeskError::bad_token)
    }

    async fn session_valid(&self, token: &Token) -> bool {
        self.0.state.lock().unwrap().sessions.contains_key(token.expose())
    }

    async fn logout(&self, who: &Session) -> Result<(), DeskError> {
        self.0.state.lock().unwrap().sessions.remove(who.token.expose());
        Ok(())
    }

    async fn bookings(&self, _who: &Session, date: Option<Date>) -> Result<Vec<BookingView>, DeskError> {
        let tz = jiff::tz::TimeZone::get("Africa/Cairo").expect("tz database");
        let day = date.unwrap_or_else(|| jiff::Timestamp::now().to_zoned_datetime(tz.clone()).date());
        let st = self.0.state.lock().unwrap();
        Ok(st
            .bookings
            .values()
            .filter(|b| b.booking.slot.start.to_zoned_datetime(tz.clone()).date() == day)
            .cloned()
            .collect())
    }

    async fn booking(&self, _who: &Session, id: &str) -> Result<BookingView, DeskError> {
        self.0
            .state
            .lock()
            .unwrap()
            .bookings
            .get(id)
            .cloned()
            .ok_or_else(|| DeskError::not_found("booking", id))
    }

    async fn booking_state(
        &self,
        _who: &Session,
        id: &str,
        req: BookingStateRequest,
    ) -> Result<BookingView, DeskError> {
        let mut st = self.0.state.lock().unwrap();
        let b = st.bookings.get_mut(id).ok_or_else(|| DeskError::not_found("booking", id))?;
        let to = BookingState::from(req.to);
        if !b.state.can_become(to) {
            return Err(DeskError::conflict(
                Problem::new(
                    "state.booking",
                    "لا يمكن تغيير حالة الحجز",
                    "the booking cannot move to that state",
                )
                .with_details(serde_json::json!({ "state": b.state, "to": to })),
            ));
        }
        if to == BookingState::Cancelled && req.reason.as_deref().unwrap_or("").trim().is_empty() {
            return Err(
                FieldError::new("reason", "booking.reason_required", "اذكر السبب", "give a reason").into()
            );
        }
        b.state = to;
        Ok(b.clone())
    }

    async fn import(&self, who: &Session, bytes: Vec<u8>) -> Result<ImportReport, DeskError> {
        if !who.is_supervisor() {
            return Err(DeskError::supervisor_only("import"));
        }
        let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            DeskError::bad_request(Problem::new("bundle.bad_json", "الملف ليس JSON صحيحًا", e.to_string()))
        })?;
        let bundle: BundleKind = serde_json::from_value(v["bundle"].clone()).map_err(|_| {
            DeskError::invalid([FieldError::new(
                "bundle",
                "bundle.unknown_kind",
                "نوع غير معروف",
                "unknown bundle kind",
            )])
        })?;
        let version = v["version"].as_u64().unwrap_or(0);
        let items = v["items"].as_array().map_or(0, |a| a.len() as u32);
        Ok(ImportReport { bundle, version, items, skipped: 0 })
    }

    async fn validate(&self, _who: &Session, req: ValidateRequest) -> Result<Validated, DeskError> {
        let (normalised, info) = match req {
            ValidateRequest::NationalId { value } => {
                let v = check_national_id("value", &value)?;
                let info = BTreeMap::from([("governorate".to_owned(), serde_json::json!(&v[7..9]))]);
                (Normalised::Text(v), info)
            }
            ValidateRequest::Plate { letters, digits } => (
                Normalised::Plate(check_plate("plate", &letters, &digits).map_err(DeskError::invalid)?),
                BTreeMap::new(),
            ),
            ValidateRequest::Vin { value }
            | ValidateRequest::EngineNo { value }
            | ValidateRequest::Phone { value } => {
                (Normalised::Text(ascii_digits(value.trim()).to_uppercase()), BTreeMap::new())
            }
        };
        Ok(Validated::new(normalised, info))
    }

    async fn schedule(&self, _who: &Session) -> Result<serde_json::Value, DeskError> {
        Ok(serde_json::json!({ "version": 3, "fees": { "dl_renewal": 15000 } }))
    }

    async fn dossier(&self, _who: &Session, q: DossierQuery) -> Result<Dossier, DeskError> {
        check_national_id("national_id", &q.national_id)?;
        Err(DeskError::unavailable(Problem::new(
            "hq.unreachable",
            "تعذر الاتصال بالإدارة",
            "HQ cannot be reached",
        )))
    }

    async fn open_service(&self, who: &Session, req: ServiceRequest) -> Result<TxnView, DeskError> {
        let mut errors = Vec::new();
        if let Err(e) = check_national_id("citizen.national_id", &req.citizen.national_id) {
            errors.push(e);
        }
        if req.citizen.name_ar.trim().is_empty() {
            errors.push(FieldError::new(
                "citizen.name_ar",
                "name.empty",
                "الاسم مطلوب",
                "the name is required",
            ));
        }
        if req.service.is_vehicle() && req.service != ServiceKind::Supplies && req.vehicle.is_none() {
            errors.push(FieldError::new(
                "vehicle",
                "vehicle.required",
                "بيانات المركبة مطلوبة",
                "this service needs the vehicle",
            ));
        }
        if let Some(v) = &req.vehicle {
            if let Err(es) = check_plate("vehicle.plate", &v.plate.letters, &v.plate.digits) {
                errors.extend(es);
            }
        }
        if !errors.is_empty() {
            return Err(DeskError::invalid(errors));
        }
        let mut st = self.0.state.lock().unwrap();
        if st.shift.is_none() {
            return Err(DeskError::conflict(Problem::new(
                "state.no_shift",
                "افتح الوردية أولاً",
                "open a shift first",
            )));
        }
        st.next_txn += 1;
        let txn = format!("T-{:06}", st.next_txn);
        let needs_inspection =
            matches!(req.service, ServiceKind::VehicleLicenceRenewal | ServiceKind::Inspection);
        let view = TxnView {
            txn: txn.clone(),
            service: req.service,
            state: if needs_inspection { TxnState::Open } else { TxnState::Quoted },
            officer: who.officer.id.clone(),
            opened_at: jiff::Timestamp::now(),
            booking_id: req.booking_id,
            citizen: req.citizen,
            vehicle: req.vehicle,
            grade: req.grade,
            replacement: req.replacement,
            supplies: req.supplies,
            inspection: None,
            quote: Some(Quote {
                schedule_version: 3,
                lines: vec![QuoteLine {
                    code: "fee".into(),
                    label_ar: "رسم".into(),
                    label_en: "Fee".into(),
                    amount: 15000,
                }],
                total: 15000,
            }),
            refusals: vec![],
            payment: None,
            steps: steps_of(req.service)
                .into_iter()
                .map(|step| StepView { step, state: StepState::Pending, attempts: 0, fault: None })
                .collect(),
            next: vec![],
            completed_at: None,
            receipt_no: None,
            held: None,
        };
        st.txns.insert(txn.clone(), Txn { view });
        drop(st);
        self.0.txn_view(who, &txn)
    }

    async fn services(&self, who: &Session, filter: ServiceFilter) -> Result<Vec<TxnView>, DeskError> {
        let ids: Vec<String> = {
            let st = self.0.state.lock().unwrap();
            st.txns
                .values()
                .filter(|t| filter == ServiceFilter::Today || !t.view.state.is_final())
                .map(|t| t.view.txn.clone())
                .rev()
                .collect()
        };
        ids.iter().map(|t| self.0.txn_view(who, t)).collect()
    }

    async fn service(&self, who: &Session, txn: &str) -> Result<TxnView, DeskError> {
        self.0.txn_view(who, txn)
    }

    async fn inspect(&self, who: &Session, txn: &str, req: InspectionRequest) -> Result<TxnView, DeskError> {
        self.0.require(txn, Action::Inspect)?;
        let passed = req.vin_matches && req.engine_matches && req.checklist.values().all(|ok| *ok);
        if let Some(t) = self.0.state.lock().unwrap().txns.get_mut(txn) {
            let mut reasons = Vec::new();
            if !req.vin_matches {
                reasons.push("vin_mismatch".to_owned());
            }
            if !req.engine_matches {
                reasons.push("engine_mismatch".to_owned());
            }
            reasons.extend(
                req.checklist.iter().filter(|(_, ok)| !**ok).map(|(item, _)| format!("checklist.{item}")),
            );
            t.view.inspection = Some(InspectionView { entered: req, passed, reasons });
            t.view.state = if passed { TxnState::Quoted } else { TxnState::Refused };
            if !passed {
                t.view.refusals.push(Refusal {
                    code: "prereq.inspection_failed".into(),
                    ar: "لم تجتز المركبة الفحص".into(),
                    en: "the vehicle failed inspection".into(),
                    overridable: false,
                    overridden: None,
                });
            }
        }
        self.0.txn_view(who, txn)
    }

    async fn override_refusal(
        &self,
        who: &Session,
        txn: &str,
        req: OverrideRequest,
    ) -> Result<TxnView, DeskError> {
        if !who.is_supervisor() {
            return Err(DeskError::supervisor_only("override a refusal"));
        }
        self.0.require(txn, Action::Override)?;
        let mut st = self.0.state.lock().unwrap();
        let t = st.txns.get_mut(txn).expect("checked");
        let Some(r) = t.view.refusals.iter_mut().find(|r| r.code == req.code) else {
            return Err(FieldError::new(
                "code",
                "override.unknown_code",
                "لا يوجد رفض بهذا الرمز",
                "no refusal with this code",
            )
            .into());
        };
        if !r.overridable {
            return Err(FieldError::new(
                "code",
                "override.not_overridable",
                "لا يمكن تجاوز هذا الرفض",
                "this refusal cannot be overridden",
            )
            .into());
        }
        r.overridden = Some(Overridden { by: who.officer.id.clone(), reason: req.reason });
        drop(st);
        self.0.txn_view(who, txn)
    }

    async fn proceed(&self, who: &Session, txn: &str) -> Result<TxnView, DeskError> {
        self.0.require(txn, Action::Proceed)?;
        let first = {
            let st = self.0.state.lock().unwrap();
            st.txns[txn].view.steps.iter().find(|s| s.state != StepState::Done).map(|s| s.step)
        };
        let state = match first {
            Some(StepKind::Payment) => TxnState::Paying,
            Some(StepKind::Card) => TxnState::Printing,
            Some(StepKind::Tag) => TxnState::Encoding,
            Some(StepKind::Label) => TxnState::Labelling,
            Some(StepKind::Reversal) => TxnState::Voiding,
            None => TxnState::Completed,
        };
        let view = {
            let mut v = self.0.txn_view(who, txn)?;
            v.state = state;
            v.next = vec![];
            v
        };
        tokio::spawn(self.0.clone().run(txn.to_owned()));
        Ok(view)
    }

    async fn cancel(&self, who: &Session, txn: &str, _req: ReasonRequest) -> Result<TxnView, DeskError> {
        self.0.require(txn, Action::Cancel)?;
        self.0.set_state(txn, TxnState::Cancelled);
        self.0.txn_view(who, txn)
    }

    async fn void(&self, who: &Session, txn: &str, _req: ReasonRequest) -> Result<TxnView, DeskError> {
        if !who.is_supervisor() {
            return Err(DeskError::supervisor_only("void"));
        }
        self.0.require(txn, Action::Void)?;
        let paid = {
            let st = self.0.state.lock().unwrap();
            st.txns[txn].view.payment.as_ref().is_some_and(|p| p.outcome == PaymentOutcome::Approved)
        };
        if paid {
            // The reversal runs in the background, as on the real terminal.
            self.0.set_state(txn, TxnState::Voiding);
            let (desk, id) = (self.0.clone(), txn.to_owned());
            tokio::spawn(async move {
                desk.progress(&id, StepKind::Reversal, "Reversal");
                tokio::time::sleep(Duration::from_millis(5)).await;
                if let Some(t) = desk.state.lock().unwrap().txns.get_mut(&id) {
                    if let Some(p) = &mut t.view.payment {
                        p.outcome = PaymentOutcome::Reversed;
                    }
                }
                desk.set_state(&id, TxnState::Reversed);
            });
        } else {
            self.0.set_state(txn, TxnState::Voided);
        }
        self.0.txn_view(who, txn)
    }

    async fn reprint(&self, who: &Session, txn: &str, req: ReprintRequest) -> Result<TxnView, DeskError> {
        self.0.require(txn, Action::Reprint)?;
        if req.what != ReprintWhat::Receipt && !who.is_supervisor() {
            return Err(DeskError::supervisor_only("reprint a document"));
        }
        self.0.txn_view(who, txn)
    }

    async fn receipt_pdf(
        &self,
        who: &Session,
        txn: &str,
        _format: ReceiptFormat,
    ) -> Result<Vec<u8>, DeskError> {
        let v = self.0.txn_view(who, txn)?;
        if v.state != TxnState::Completed {
            return Err(DeskError::wrong_txn_state(Action::Reprint, v.state, &allowed(v.state)));
        }
        Ok(b"%PDF-1.7\n%fake\n".to_vec())
    }

    async fn records(&self, who: &Session, txn: &str) -> Result<Vec<serde_json::Value>, DeskError> {
        let v = self.0.txn_view(who, txn)?;
        Ok(vec![
            serde_json::json!({ "seq": 1, "kind": "service.open", "payload": { "txn": v.txn, "officer": v.officer } }),
        ])
    }

    async fn shift(&self, _who: &Session) -> Result<Option<ShiftView>, DeskError> {
        Ok(self.0.state.lock().unwrap().shift.clone())
    }

    async fn open_shift(&self, who: &Session, req: ShiftOpenRequest) -> Result<ShiftView, DeskError> {
        let mut st = self.0.state.lock().unwrap();
        if st.shift.is_some() {
            return Err(DeskError::conflict(Problem::new(
                "state.shift_open",
                "الوردية مفتوحة بالفعل",
                "a shift is already open",
            )));
        }
        let view = ShiftView {
            id: "S-1".into(),
            opened_by: who.officer.id.clone(),
            opened_at: jiff::Timestamp::now(),
            stock_open: req.stock,
            issued: StockCounts::default(),
            spoiled: StockCounts::default(),
            completed: 0,
            payments: Totals::default(),
            self_test: vec![SelfTestView {
                device: "payment".into(),
                ok: true,
                lines: vec!["status ok".into()],
            }],
        };
        st.shift = Some(view.clone());
        Ok(view)
    }

    async fn close_shift(&self, who: &Session, req: ShiftCloseRequest) -> Result<ShiftReportView, DeskError> {
        if !who.is_supervisor() {
            return Err(DeskError::supervisor_only("close the shift"));
        }
        let mut st = self.0.state.lock().unwrap();
        let shift = st.shift.take().ok_or_else(|| {
            DeskError::conflict(Problem::new("state.no_shift", "لا توجد وردية مفتوحة", "no shift is open"))
        })?;
        let stock_mismatches: Vec<String> = [
            ("stock.card", shift.stock_open.cards, req.counted.cards),
            ("stock.label", shift.stock_open.labels, req.counted.labels),
            ("stock.tag", shift.stock_open.tags, req.counted.tags),
        ]
        .into_iter()
        .filter(|(_, open, counted)| open != counted)
        .map(|(code, _, _)| code.to_owned())
        .collect();
        let line = |item, opening: u32, counted: u32| StockLine {
            item,
            opening,
            issued: 0,
            spoiled: 0,
            expected: i64::from(opening),
            counted,
            difference: i64::from(counted) - i64::from(opening),
            flagged: counted != opening,
        };
        Ok(ShiftReportView {
            stock: vec![
                line(StockItem::Card, shift.stock_open.cards, req.counted.cards),
                line(StockItem::Label, shift.stock_open.labels, req.counted.labels),
                line(StockItem::Tag, shift.stock_open.tags, req.counted.tags),
            ],
            shift,
            closed_by: who.officer.id.clone(),
            closed_at: jiff::Timestamp::now(),
            by_service: vec![],
            by_payment: vec![],
            terminal: Some(Totals::default()),
            terminal_error: None,
            journal: Totals::default(),
            payments_match: true,
            held: vec![],
            unfinished: vec![],
            mismatches: stock_mismatches,
        })
    }

    async fn shift_report_pdf(&self, _who: &Session, id: &str) -> Result<Vec<u8>, DeskError> {
        if id == "S-1" { Ok(b"%PDF-1.7\n%shift\n".to_vec()) } else { Err(DeskError::not_found("shift", id)) }
    }

    async fn devices(&self, _who: &Session) -> Result<BTreeMap<String, DeviceView>, DeskError> {
        Ok(BTreeMap::from([
            ("payment".to_owned(), DeviceView::from(&Health::Connected)),
            ("card".to_owned(), DeviceView::from(&Health::fault(Fault::Link(LinkFault::Unplugged)))),
        ]))
    }

    fn van(&self) -> serde_json::Value {
        serde_json::json!({"van_id": "MTU-TEST-0001", "training": false})
    }

    async fn sync(&self, _who: &Session) -> Result<serde_json::Value, DeskError> {
        Ok(serde_json::json!({"enabled": true, "pending": 3, "last_success": null, "last_error": "HQ down"}))
    }

    async fn alarms(&self, _who: &Session) -> Result<AlarmView, DeskError> {
        Ok(AlarmView {
            power_failing: false,
            tamper: TamperView { latched: false, since: None, raised_seq: None, switch_open: false },
        })
    }

    async fn clear_tamper(&self, _who: &Session, _req: ReasonRequest) -> Result<AlarmView, DeskError> {
        Err(DeskError::conflict(Problem::new(
            "tamper.not_latched",
            "لا يوجد إنذار",
            "no tamper alarm is latched",
        )))
    }

    fn events(&self) -> broadcast::Receiver<DeskEvent> {
        self.0.events.subscribe()
    }
}
